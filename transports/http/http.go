// Package http serves samsa's HTTP listener: health now; the WebSocket
// transport, the admin API, metrics and the console mount here later.
package http

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/samsa-broker/samsa/broker"
)

// Handler returns the HTTP handler of the broker's HTTP listener.
func Handler(b *broker.Broker, logger *slog.Logger) http.Handler {
	started := time.Now()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"status":         "ok",
			"cluster_id":     b.ClusterID(),
			"node_id":        b.NodeID(),
			"topics":         len(b.Topics()),
			"disk_bytes":     b.DiskUsage(),
			"uptime_seconds": int64(time.Since(started).Seconds()),
		})
	})
	// Profiles for operators (the listener is loopback by default).
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
