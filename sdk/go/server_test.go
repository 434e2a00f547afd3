package samsa

import (
	"context"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"

	"github.com/samsa-broker/samsa/auth"
	"github.com/samsa-broker/samsa/broker"
	wstransport "github.com/samsa-broker/samsa/transports/websocket"
)

// testServer is a broker on a temp dir with the WebSocket transport behind
// httptest.
type testServer struct {
	b   *broker.Broker
	ws  *wstransport.Server
	hs  *httptest.Server
	url string
	ln  *trackingListener
}

type serverConfig struct {
	partitions int32
	autoCreate bool
	flush      broker.FlushPolicy
	dir        string
	auth       *auth.Authenticator // nil: auth off
	authCookie string              // the cookie that may carry a bearer JWT
}

func startServer(t testing.TB, tweak ...func(*serverConfig)) *testServer {
	t.Helper()
	cfg := serverConfig{partitions: 1, autoCreate: true, flush: broker.FlushOS}
	for _, f := range tweak {
		f(&cfg)
	}
	if cfg.dir == "" {
		cfg.dir = t.TempDir()
	}
	bopts := broker.Options{DataDir: cfg.dir, AutoCreateTopics: cfg.autoCreate, DefaultPartitions: cfg.partitions}
	bopts.Defaults = broker.DefaultTopicConfig()
	bopts.Defaults.Flush = cfg.flush
	bopts.Groups.RebalanceDelay = 10 * time.Millisecond
	b, err := broker.Open(bopts)
	if err != nil {
		t.Fatal(err)
	}
	ws := wstransport.New(b, wstransport.Options{HeartbeatInterval: 100 * time.Millisecond, FetchMaxWait: 200 * time.Millisecond, Auth: cfg.auth, AuthCookie: cfg.authCookie})
	mux := http.NewServeMux()
	mux.Handle("/ws", ws)
	hs := httptest.NewUnstartedServer(mux)
	tl := &trackingListener{Listener: hs.Listener}
	hs.Listener = tl
	hs.Start()
	ts := &testServer{b: b, ws: ws, hs: hs, url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws", ln: tl}
	t.Cleanup(ts.close)
	return ts
}

// restartOn starts a server on dir listening on addr (after a close).
func restartOn(t testing.TB, dir, addr string) *testServer {
	t.Helper()
	bopts := broker.Options{DataDir: dir, AutoCreateTopics: true, DefaultPartitions: 1}
	bopts.Defaults = broker.DefaultTopicConfig()
	bopts.Defaults.Flush = broker.FlushOS
	b, err := broker.Open(bopts)
	if err != nil {
		t.Fatal(err)
	}
	ws := wstransport.New(b, wstransport.Options{FetchMaxWait: 200 * time.Millisecond})
	mux := http.NewServeMux()
	mux.Handle("/ws", ws)
	var ln net.Listener
	for range 100 {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewUnstartedServer(mux)
	hs.Listener.Close()
	hs.Listener = ln
	hs.Start()
	ts := &testServer{b: b, ws: ws, hs: hs, url: "ws://" + addr + "/ws"}
	t.Cleanup(ts.close)
	return ts
}

// trackingListener remembers the connections it accepted, so that a test
// can drop them from the server's side.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.conns = append(l.conns, c)
		l.mu.Unlock()
	}
	return c, err
}

// dropConns closes every connection the server accepted so far (from the
// server's side, without a close frame) and returns how many there were.
func (ts *testServer) dropConns() int {
	l := ts.ln
	l.mu.Lock()
	conns := l.conns
	l.conns = nil
	l.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return len(conns)
}

func (ts *testServer) close() {
	ts.ws.Close()
	ts.hs.Close()
	ts.b.Close()
}

func dial(t testing.TB, url string, opts Options) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// killer tracks the TCP connections a client dials so that a test can cut
// them at random points.
type killer struct {
	mu    sync.Mutex
	conns []net.Conn
	kills int
}

func (k *killer) dialer() *gws.Dialer {
	return &gws.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			k.mu.Lock()
			k.conns = append(k.conns, c)
			k.mu.Unlock()
		}
		return c, err
	}}
}

// killOne abruptly closes the newest connection.
func (k *killer) killOne() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.conns) == 0 {
		return
	}
	c := k.conns[len(k.conns)-1]
	k.conns = k.conns[:len(k.conns)-1]
	if rand.IntN(2) == 0 {
		// Half-open: only our side goes away.
		_ = c.(*net.TCPConn).SetLinger(0)
	}
	_ = c.Close()
	k.kills++
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
