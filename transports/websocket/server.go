// Package websocket serves samsa's browser protocol (samsa.v1) over
// gorilla/websocket. PROTOCOL.md beside this file is its specification.
//
// Mount Handler at /ws on the HTTP listener and call (*Server).Close on
// shutdown: hijacked connections are not closed by http.Server.Shutdown.
package websocket

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gws "github.com/gorilla/websocket"

	"github.com/samsa-broker/samsa/auth"
	"github.com/samsa-broker/samsa/broker"
)

// Subprotocol is the WebSocket subprotocol this package speaks.
const Subprotocol = "samsa.v1"

// Options configure the WebSocket transport. Zero values take the
// defaults of PROTOCOL.md.
type Options struct {
	// AllowedOrigins: empty allows same-origin pages and clients without
	// an Origin header; "*" allows every origin; otherwise the listed
	// origins ("https://app.example.com") plus same-origin.
	AllowedOrigins []string
	// TrustProxy takes the client IP from X-Forwarded-For.
	TrustProxy bool
	// MaxFrameBytes bounds a client frame (close 1009 beyond). 1 MiB.
	MaxFrameBytes int
	// MaxSubscriptions per connection. 64.
	MaxSubscriptions int
	// MaxPendingBytes of queued outgoing frames per connection before log
	// reads pause. 4 MiB.
	MaxPendingBytes int
	// MaxConnections per server (HTTP 503 beyond). 20000.
	MaxConnections int

	// PingInterval between server pings. 20 s.
	PingInterval time.Duration
	// IdleTimeout closes a connection that sent nothing for this long. 60 s.
	IdleTimeout time.Duration
	// WriteTimeout closes (4008) a connection whose client does not read
	// for this long while data waits. 60 s.
	WriteTimeout time.Duration
	// NoSharedTail turns off the shared tail reads (tail.go): every
	// subscription then reads the log by itself. For measurements.
	NoSharedTail bool
	// TailLinger bounds how long a partition's new records may wait to be
	// delivered together to the subscriptions at its end: the wait grows
	// with their number (4 µs each, so 4 ms for 1,000), up to this. 5 ms.
	TailLinger time.Duration
	// FetchMaxWait is the long-poll wait of subscription reads. 500 ms.
	FetchMaxWait time.Duration
	// SessionTimeout of group members. 30 s.
	SessionTimeout time.Duration
	// HeartbeatInterval of group members. 1 s.
	HeartbeatInterval time.Duration
	// MaxInflightProduce per connection before reading pauses. 64.
	MaxInflightProduce int

	// Auth, when non-nil and enabled, requires every connection to
	// authenticate (PROTOCOL.md §9) and checks each op's permissions.
	// Nil or disabled: every op is allowed ("auth":"none").
	Auth *auth.Authenticator
	// AuthCookie names a cookie of the upgrade request that may carry a
	// bearer JWT (browsers). Empty: cookies are not read.
	AuthCookie string
	// AuthTimeout closes (4001) a connection that has not authenticated
	// within it, when auth is on. 30 s.
	AuthTimeout time.Duration

	// Filter runs consume filters of subscriptions; nil: a subscription
	// with a filter gets "unavailable".
	Filter ConsumeFilter
	// Logger gets warnings (nil: discarded).
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.MaxFrameBytes, 1<<20)
	def(&o.MaxSubscriptions, 64)
	def(&o.MaxPendingBytes, 4<<20)
	def(&o.MaxConnections, 20000)
	def(&o.MaxInflightProduce, 64)
	defd(&o.PingInterval, 20*time.Second)
	defd(&o.IdleTimeout, 60*time.Second)
	defd(&o.WriteTimeout, 60*time.Second)
	defd(&o.FetchMaxWait, 500*time.Millisecond)
	defd(&o.TailLinger, 5*time.Millisecond)
	defd(&o.SessionTimeout, 30*time.Second)
	defd(&o.HeartbeatInterval, time.Second)
	defd(&o.AuthTimeout, 30*time.Second)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Server is the WebSocket transport of one broker: an http.Handler.
type Server struct {
	b    *broker.Broker
	opts Options
	up   gws.Upgrader
	ctx  context.Context
	stop context.CancelFunc

	mu     sync.Mutex
	conns  map[*conn]struct{}
	closed bool
	count  atomic.Int64
	wg     sync.WaitGroup // connections

	unrevoke func() // stops revocation callbacks

	frames   frameBufs // gather buffers of the write loops
	readBufs sync.Pool // *bytes.Buffer: messages being read (readBuf)

	// Tailers of partitions with subscriptions at their end (tail.go).
	tailMu     sync.Mutex
	tails      map[tailKey]*tailer
	tailClosed bool
	tailWG     sync.WaitGroup
	tailRounds atomic.Int64 // delivery rounds of tailers, for tests

	gorillaBufs sync.Pool // gorilla's write buffers (unused: see frame.go)

	// stats for tests and metrics
	closes sync.Map // close code (int) -> *atomic.Int64
}

// Handler returns the WebSocket transport of b, to mount at /ws.
func Handler(b *broker.Broker, opts Options) *Server { return New(b, opts) }

// New returns the WebSocket transport of b.
func New(b *broker.Broker, opts Options) *Server {
	opts = opts.withDefaults()
	s := &Server{b: b, opts: opts, conns: make(map[*conn]struct{})}
	s.ctx, s.stop = context.WithCancel(context.Background())
	s.up = gws.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   1024,
		// The server writes its frames itself (frame.go): with a pool,
		// gorilla never allocates its own write buffer.
		WriteBufferSize: 4096,
		WriteBufferPool: &s.gorillaBufs,
		Subprotocols:    []string{Subprotocol},
		CheckOrigin:     s.checkOrigin,
		Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
			http.Error(w, reason.Error(), status)
		},
	}
	if s.authOn() {
		// Revoking a user's key closes its connections (4001).
		s.unrevoke = opts.Auth.OnRevoke(s.revoke)
	}
	go s.pinger()
	return s
}

// ServeHTTP upgrades the request and serves the connection until it ends.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !gws.IsWebSocketUpgrade(r) {
		http.Error(w, "samsa: this endpoint speaks WebSocket (subprotocol "+Subprotocol+")", http.StatusBadRequest)
		return
	}
	ok := false
	for _, p := range gws.Subprotocols(r) {
		if p == Subprotocol {
			ok = true
		}
	}
	if !ok {
		http.Error(w, "samsa: the WebSocket subprotocol \""+Subprotocol+"\" is required (Sec-WebSocket-Protocol)", http.StatusBadRequest)
		return
	}
	if !s.checkOrigin(r) {
		http.Error(w, "samsa: origin not allowed", http.StatusForbidden)
		return
	}
	if n := s.count.Add(1); n > int64(s.opts.MaxConnections) {
		s.count.Add(-1)
		http.Error(w, "samsa: too many WebSocket connections", http.StatusServiceUnavailable)
		return
	}
	ip := s.clientIP(r)
	// A bearer JWT in the configured cookie authenticates the connection
	// from the start; a bad one leaves it unauthenticated (the page may
	// still send an auth op) and is reported after hello.
	cookieP, cookieErr := s.authCookie(r, ip)
	ws, err := s.up.Upgrade(w, r, nil)
	if err != nil {
		s.count.Add(-1)
		return // the upgrader answered
	}
	c := newConn(s, ws, ip, cookieP, cookieErr)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		s.count.Add(-1)
		_ = ws.WriteControl(gws.CloseMessage, gws.FormatCloseMessage(CloseRestart, "broker shutting down"), time.Now().Add(time.Second))
		_ = ws.Close()
		return
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	// Serve on a fresh goroutine and return: the HTTP server's per
	// connection state (request, buffers) is then freed, which keeps idle
	// connections small.
	go func() {
		defer func() {
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
			s.count.Add(-1)
			s.wg.Done()
		}()
		c.serve()
	}()
}

// Connections is the number of open connections.
func (s *Server) Connections() int { return int(s.count.Load()) }

// Close closes every connection with 1012 (server restart) and refuses new
// ones. It waits up to a few seconds for connections to end.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if s.unrevoke != nil {
		s.unrevoke()
	}
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()
	s.stop()
	s.closeTails()
	for _, c := range conns {
		c.closeWith(CloseRestart, "broker shutting down")
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	return nil
}

func (s *Server) countClose(code int) {
	v, _ := s.closes.LoadOrStore(code, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}

// closeCount is how many connections were closed with code.
func (s *Server) closeCount(code int) int64 {
	if v, ok := s.closes.Load(code); ok {
		return v.(*atomic.Int64).Load()
	}
	return 0
}

// pinger pings every connection each PingInterval, through the
// connections' write queues (it never blocks on a connection).
func (s *Server) pinger() {
	t := time.NewTicker(s.opts.PingInterval)
	defer t.Stop()
	var list []*conn
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		list = list[:0]
		s.mu.Lock()
		for c := range s.conns {
			list = append(list, c)
		}
		s.mu.Unlock()
		for _, c := range list {
			c.enqueue(outMsg{kind: outPing})
		}
		clear(list)
	}
}

func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	for _, o := range s.opts.AllowedOrigins {
		if o == "*" || strings.EqualFold(strings.TrimRight(o, "/"), origin) {
			return true
		}
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

func (s *Server) clientIP(r *http.Request) string {
	if s.opts.TrustProxy {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			first, _, _ := strings.Cut(xff, ",")
			if ip := strings.TrimSpace(first); ip != "" {
				return ip
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// newSessionID returns a random session id and nonce.
func newSessionID() (string, []byte) {
	var b [28]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:12]), b[12:]
}

// helloFrame is the first frame of a connection.
func (s *Server) helloFrame(session string, nonce []byte) []byte {
	mode := "none"
	if s.authOn() {
		mode = "required"
	}
	h := map[string]any{
		"type": "hello", "version": 1, "server": "samsa", "session": session,
		"nonce": base64.StdEncoding.EncodeToString(nonce), "auth": mode,
		"limits": map[string]int{
			"max_frame_bytes":   s.opts.MaxFrameBytes,
			"max_subscriptions": s.opts.MaxSubscriptions,
			"max_pending_bytes": s.opts.MaxPendingBytes,
		},
	}
	b, _ := json.Marshal(h)
	return b
}
