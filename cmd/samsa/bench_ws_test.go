package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/samsa-broker/samsa/auth"
	"github.com/samsa-broker/samsa/broker"
	wstransport "github.com/samsa-broker/samsa/transports/websocket"
)

// startWSBroker serves an in-process broker's WebSocket transport on
// 127.0.0.1 and returns its ws:// URL; a non-nil a turns auth on.
func startWSBroker(t *testing.T, a *auth.Authenticator) string {
	t.Helper()
	bopts := broker.Options{DataDir: t.TempDir(), AutoCreateTopics: true, DefaultPartitions: 1}
	bopts.Defaults = broker.DefaultTopicConfig()
	bopts.Defaults.Flush = broker.FlushOS
	b, err := broker.Open(bopts)
	if err != nil {
		t.Fatal(err)
	}
	ws := wstransport.New(b, wstransport.Options{Auth: a})
	mux := http.NewServeMux()
	mux.Handle("/ws", ws)
	hs := httptest.NewServer(mux)
	t.Cleanup(func() {
		ws.Close()
		hs.Close()
		b.Close()
	})
	return "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"
}

// runWSBench runs `samsa bench ws MODE --json ARGS...` and decodes its
// result.
func runWSBench(t *testing.T, mode string, args ...string) wsBenchResult {
	t.Helper()
	r := mustRun(t, testContext(t), "", "", append([]string{"bench", "ws", mode, "--json"}, args...)...)
	var res wsBenchResult
	if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
		t.Fatalf("output is not one JSON object: %v\n%s", err, r.stdout)
	}
	if res.Mode != "ws "+mode || res.ElapsedSec <= 0 || res.Machine.NumCPU < 1 {
		t.Fatalf("mode/elapsed/machine not reported: %+v", res)
	}
	return res
}

func checkSummary(t *testing.T, name string, l *latencySummary, count int64) {
	t.Helper()
	if l == nil {
		t.Fatalf("%s missing", name)
	}
	if l.Count != count || l.P50 <= 0 || l.P50 > l.P95 || l.P95 > l.P99 || l.P99 > l.P999 || l.P999 > l.Max {
		t.Fatalf("%s not sane (want %d samples): %+v", name, count, l)
	}
}

// checkMode runs one mode and checks its report: everything delivered.
func checkMode(t *testing.T, url, wantAuth, mode string, extra ...string) {
	t.Helper()
	topic := testTopic(t)
	args := append([]string{"--url", url, "--topic", topic}, extra...)
	switch mode {
	case "produce":
		res := runWSBench(t, mode, append(args, "--records", "3000", "--record-size", "64", "--max-buffered", "500")...)
		if res.Records != 3000 || res.Failed != 0 || res.RecordsPerSec <= 0 || res.MiBPerSec <= 0 || res.Topic != topic {
			t.Fatalf("produce report: %+v", res)
		}
		checkSummary(t, "ack latency", res.AckLatency, 3000)
		if res.Auth != wantAuth {
			t.Fatalf("auth %q, want %q", res.Auth, wantAuth)
		}
	case "fanout":
		res := runWSBench(t, mode, append(args, "--subscribers", "20", "--rate", "400", "--duration", "1s")...)
		if res.Missing != 0 || res.Duplicates != 0 || res.Failed != 0 || res.EndedSubscribers != 0 {
			t.Fatalf("fan-out incomplete: %+v", res)
		}
		if res.ExpectedDeliveries != 20*400 || res.Deliveries != res.ExpectedDeliveries || res.DeliveriesPerSec <= 0 {
			t.Fatalf("fanout counts: %+v", res)
		}
		checkSummary(t, "delivery latency", res.DeliveryLatency, res.Deliveries)
		if res.Auth != wantAuth {
			t.Fatalf("auth %q, want %q", res.Auth, wantAuth)
		}
	case "connect":
		res := runWSBench(t, mode, append(args, "--connections", "15")...)
		if res.Connections != 15 || res.ConnectionsPerSec <= 0 {
			t.Fatalf("connect report: %+v", res)
		}
		checkSummary(t, "connect", res.ConnectLatency, 15)
		if res.Auth != wantAuth {
			t.Fatalf("auth %q, want %q", res.Auth, wantAuth)
		}
	}
}

func TestBenchWS(t *testing.T) {
	url := startWSBroker(t, nil)
	for _, mode := range []string{"produce", "fanout", "connect"} {
		t.Run(mode, func(t *testing.T) { checkMode(t, url, "none", mode) })
	}
	t.Run("fanout-json", func(t *testing.T) { checkMode(t, url, "none", "fanout", "--format", "json") })
	// The text report: one summary line per mode, then the figures.
	r := mustRun(t, testContext(t), "", "", "bench", "ws", "connect", "--url", url, "--connections", "3")
	for _, want := range []string{"bench ws connect: 3 connections", "p50", "p99", "connections/s", "CPUs"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("text output lacks %q:\n%s", want, r.stdout)
		}
	}
}

func TestBenchWSAuth(t *testing.T) {
	issuerSeed, issuerPub, err := auth.NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	userSeed, userPub, err := auth.NewUserKey()
	if err != nil {
		t.Fatal(err)
	}
	staticSeed, staticPub, err := auth.NewUserKey()
	if err != nil {
		t.Fatal(err)
	}
	perms := auth.Permissions{Produce: []string{">"}, Consume: []string{">"}}
	a, err := auth.New(auth.Config{
		Enabled: true, Issuers: []string{issuerPub}, FailedAuthPerMinute: 1000,
		Users: []auth.StaticUser{{Name: "bench", NKey: staticPub, Permissions: perms}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	url := startWSBroker(t, a)

	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	nonceJWT, err := auth.IssueUserJWT(issuerSeed, userPub, perms, time.Hour, false, "bench")
	if err != nil {
		t.Fatal(err)
	}
	bearerJWT, err := auth.IssueUserJWT(issuerSeed, userPub, perms, time.Hour, true, "bench")
	if err != nil {
		t.Fatal(err)
	}
	seedFile, jwtFile, bearerFile := write("user.nk", userSeed), write("user.jwt", nonceJWT), write("user.bearer", bearerJWT)
	staticFile := write("static.nk", staticSeed)

	tests := []struct {
		auth  string
		args  []string
		modes []string
	}{
		{auth: "nonce", args: []string{"--jwt", jwtFile, "--seed", seedFile}, modes: []string{"produce", "fanout", "connect"}},
		{auth: "bearer", args: []string{"--bearer", bearerFile}, modes: []string{"fanout", "connect"}},
		{auth: "nkey", args: []string{"--seed", staticFile}, modes: []string{"connect"}},
	}
	for _, tt := range tests {
		for _, mode := range tt.modes {
			t.Run(tt.auth+"/"+mode, func(t *testing.T) { checkMode(t, url, tt.auth, mode, tt.args...) })
		}
	}

	// Refused credentials and missing ones fail the bench.
	ctx := testContext(t)
	r := runCLI(t, ctx, "", "", "bench", "ws", "connect", "--url", url, "--connections", "1", "--jwt", jwtFile, "--seed", staticFile)
	if r.err == nil || !strings.Contains(r.err.Error(), "unauthorized") {
		t.Errorf("wrong seed: %v, want unauthorized", r.err)
	}
	r = runCLI(t, ctx, "", "", "bench", "ws", "produce", "--url", url, "--records", "1", "--topic", testTopic(t))
	if r.err == nil || !strings.Contains(r.err.Error(), "unauthorized") {
		t.Errorf("no credentials: %v, want unauthorized", r.err)
	}
}

func TestBenchWSFlagErrors(t *testing.T) {
	ctx := testContext(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"bench", "ws"}, "no mode"},
		{[]string{"bench", "ws", "frob"}, `unknown mode "frob"`},
		{[]string{"bench", "ws", "produce", "--url", "http://x/ws"}, "--url"},
		{[]string{"bench", "ws", "fanout", "--record-size", "16"}, "at least 24"},
		{[]string{"bench", "ws", "fanout", "--format", "xml"}, "--format"},
		{[]string{"bench", "ws", "fanout", "--rate", "0"}, "--rate"},
		{[]string{"bench", "ws", "connect", "--connections", "0"}, "--connections"},
		{[]string{"bench", "ws", "produce", "--max-buffered", "0"}, "--max-buffered"},
		{[]string{"bench", "ws", "connect", "--jwt", "x.jwt"}, "--jwt needs --seed"},
		{[]string{"bench", "ws", "connect", "--bearer", "b", "--seed", "s"}, "give --bearer"},
		{[]string{"bench", "ws", "connect", "--seed", "/nonexistent/seed.nk"}, "--seed"},
		{[]string{"bench", "ws", "produce", "extra"}, "unexpected arguments"},
	}
	for _, tt := range tests {
		r := runCLI(t, ctx, "127.0.0.1:1", "", tt.args...)
		if r.err == nil || !strings.Contains(r.err.Error(), tt.want) {
			t.Errorf("%q: got %v, want an error containing %q", tt.args, r.err, tt.want)
		}
	}
}
