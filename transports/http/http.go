// Package http serves samsa's HTTP listener: health (/healthz), the admin
// REST API (/api/v1, admin.go), the WebSocket transport (/ws), profiles
// (/debug/pprof) and the browser console at / (console.go): every other
// GET or HEAD is a console file.
package http

import (
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/samsa-broker/samsa/auth"
	"github.com/samsa-broker/samsa/broker"
)

// Option changes the HTTP handler.
type Option func(*handlerOptions)

type handlerOptions struct {
	admin   AdminOptions
	ws      http.Handler
	auth    *auth.Authenticator
	console fs.FS
}

// WithWebSocket mounts the WebSocket transport at /ws.
func WithWebSocket(h http.Handler) Option {
	return func(o *handlerOptions) { o.ws = h }
}

// WithAdmin configures the admin API (upload limit, binding defaults).
func WithAdmin(ao AdminOptions) Option {
	return func(o *handlerOptions) { o.admin = ao }
}

// Handler returns the HTTP handler of the broker's HTTP listener.
func Handler(b *broker.Broker, logger *slog.Logger, opts ...Option) http.Handler {
	var ho handlerOptions
	for _, o := range opts {
		o(&ho)
	}
	if ho.admin.Logger == nil && logger != nil {
		ho.admin.Logger = logger.With("api", "admin")
	}
	if ho.admin.Auth == nil {
		ho.admin.Auth = ho.auth
	}
	started := time.Now()
	mux := http.NewServeMux()
	// The admin REST API (filters and bindings) under /api/v1.
	mountAdmin(mux, b, ho.admin)
	if ho.ws != nil {
		mux.Handle("/ws", ho.ws)
	}
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
	// Profiles for operators (the listener is loopback by default; with
	// auth on they need the admin permission).
	g := newGate(ho.admin.Auth, ho.admin.Logger)
	mux.Handle("/debug/pprof/", g.require("admin", isAdmin, http.HandlerFunc(pprof.Index)))
	mux.Handle("/debug/pprof/profile", g.require("admin", isAdmin, http.HandlerFunc(pprof.Profile)))
	mux.Handle("/debug/pprof/trace", g.require("admin", isAdmin, http.HandlerFunc(pprof.Trace)))
	// The console takes what no pattern above does: ServeMux prefers the
	// more specific patterns, so /ws, /api/, /healthz and /debug/pprof/
	// keep their handlers. Other paths under /debug/ are never console
	// files.
	if ho.console != nil {
		mux.Handle("/", newConsoleHandler(ho.console))
		mux.Handle("/debug/", http.NotFoundHandler())
	}
	return mux
}
