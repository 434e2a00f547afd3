// Package samsa is a Go client for samsa's WebSocket protocol samsa.v1
// (transports/websocket/PROTOCOL.md): produce with acks (batched, JSON or
// binary frames), subscriptions with credit-based flow control, consumer
// groups and commits, and reconnection with jittered backoff that resumes
// every subscription from the last delivered offset of each partition, so
// that the application sees every record once, in order, with no gaps.
//
//	c, err := samsa.Dial(ctx, "ws://127.0.0.1:8080/ws", samsa.Options{})
//	ack, err := c.Produce(ctx, "readings", samsa.Record{Key: []byte("s1"), Value: []byte(`{"t":21}`)})
//	sub, err := c.Subscribe(ctx, "readings", samsa.SubscribeOptions{From: samsa.Earliest()})
//	for {
//		rec, err := sub.Next(ctx)
//		...
//	}
//
// # Authentication
//
// When the broker requires authentication (PROTOCOL.md §9) every
// connection authenticates right after the server's hello, before its
// subscriptions resume, with Options.Credentials: a user JWT and the
// user's nkey seed (the seed signs the connection's nonce and never leaves
// the process), a static nkey user's seed, or a bearer JWT.
//
//	c, err := samsa.Dial(ctx, url, samsa.Options{
//		Credentials: &samsa.Credentials{JWT: userJWT, Seed: userSeed},
//	})
//	if errors.Is(err, samsa.ErrUnauthorized) { ... } // refused: terminal
//
// For short-lived tokens, Options.CredentialsFunc is called on every
// (re)connect and at about 90% of each token's lifetime, to refresh it on
// the live connection; a 4001 close (token expired, revoked) then
// reconnects with fresh credentials instead of ending the client. An op
// without the permission fails with ErrForbidden and the client carries
// on.
package samsa

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	gws "github.com/gorilla/websocket"
)

// Subprotocol is the WebSocket subprotocol the client offers.
const Subprotocol = "samsa.v1"

// Header is a record header. A nil Value is a Kafka null.
type Header struct {
	Key   string
	Value []byte
}

// Record is a record to produce or a delivered one.
type Record struct {
	// Topic, Partition and Offset of a delivered record.
	Topic     string
	Partition int32
	Offset    int64
	// Timestamp: create time (milliseconds precision). On produce the
	// zero time means the server's clock; records with a timestamp are
	// sent as JSON even when Options.Binary is set (binary produce frames
	// carry none).
	Timestamp time.Time
	// Key and Value; nil is a Kafka null, distinct from empty.
	Key, Value []byte
	Headers    []Header
	// UsePartition makes Produce send the record to Partition. Without
	// it a keyed record goes where Kafka's default partitioner puts its
	// key and an unkeyed one is placed round robin by the server.
	UsePartition bool
}

// Ack is where a produced record was appended.
type Ack struct {
	Topic     string
	Partition int32
	Offset    int64
}

// Options configure a Client. The zero value is usable.
type Options struct {
	// Binary sends produce requests as binary frames (kind 1) and makes
	// subscriptions default to binary deliveries: the fast path.
	// Otherwise JSON text frames are used.
	Binary bool
	// Header is sent with the WebSocket handshake (Origin,
	// Authorization, ...).
	Header http.Header
	// Dialer dials the connections; its Subprotocols are replaced.
	Dialer *gws.Dialer

	// Credentials authenticate every connection right after hello when
	// the server requires it (hello "auth":"required", PROTOCOL.md §9),
	// before the subscriptions are resumed. A refusal (unauthorized) is
	// Dial's error, or ends the client on a reconnect: errors.Is(err,
	// ErrUnauthorized). They are static: when the token expires the
	// server closes the connection with 4001 and the client ends with
	// that *CloseError (use CredentialsFunc for short-lived tokens). nil:
	// no auth op is sent (a cookie in Header may authenticate instead).
	Credentials *Credentials
	// CredentialsFunc, instead of Credentials, is called for fresh
	// credentials on every (re)connect, and at about 90% of a token's
	// lifetime to refresh it on the live connection (a failed refresh is
	// retried at half the time left). A 4001 close (token expired or
	// revoked) then reconnects through it instead of ending the client;
	// if the server refuses what it returns, the client ends with that
	// error. Its errors are retried with backoff on reconnects, except
	// one that wraps ErrUnauthorized, which ends the client; Dial returns
	// them. ctx bounds the call.
	CredentialsFunc func(ctx context.Context) (Credentials, error)

	// MinBackoff and MaxBackoff bound the jittered exponential backoff
	// between reconnection attempts. 100 ms and 5 s.
	MinBackoff, MaxBackoff time.Duration
	// NoReconnect: a lost connection ends the client (every call fails
	// with the error that ended it).
	NoReconnect bool

	// MaxInflight is the number of produce requests in flight (sent, not
	// acknowledged) per connection. 4: few requests in flight make
	// records produced meanwhile batch into bigger ones. At most 64 (the
	// server's limit).
	MaxInflight int
	// MaxBatchBytes bounds one produce request (records batched into one
	// op). 1 MiB, and never above the server's max_frame_bytes (minus
	// framing); lower it for topics with a smaller max.message.bytes.
	MaxBatchBytes int
	// MaxBufferedRecords bounds the records waiting to be sent;
	// ProduceAsync blocks beyond it. 262144.
	MaxBufferedRecords int
	// RetryInflight resends the produce requests that were in flight when
	// a connection was lost, on the next connection (at least once: the
	// records may then be appended twice). By default their callbacks get
	// ErrDisconnected instead (at most once). Records not yet sent are
	// always kept and sent after the reconnect.
	RetryInflight bool

	// ReadTimeout: a connection on which nothing arrives for this long is
	// considered dead (the server pings every 20 s). 75 s.
	ReadTimeout time.Duration
	// WriteTimeout of one frame. 30 s.
	WriteTimeout time.Duration
	// HandshakeTimeout of the WebSocket upgrade and hello. 10 s.
	HandshakeTimeout time.Duration

	// Logger for reconnects and dropped frames. Default: discard.
	Logger *slog.Logger
	// OnConnect is called (from the client's goroutine) after each
	// successful connection with the server's session id.
	OnConnect func(session string)
	// OnDisconnect is called when a connection ends.
	OnDisconnect func(err error)
}

func (o Options) withDefaults() Options {
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Second
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.MaxInflight <= 0 {
		o.MaxInflight = 4
	}
	// Beyond 64 the server stops reading the connection: its writes (and
	// credit grants) would block.
	o.MaxInflight = min(o.MaxInflight, 64)
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = 1 << 20
	}
	if o.MaxBufferedRecords <= 0 {
		o.MaxBufferedRecords = 1 << 18
	}
	if o.ReadTimeout <= 0 {
		o.ReadTimeout = 75 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.HandshakeTimeout <= 0 {
		o.HandshakeTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Client is a connection to a samsa broker's WebSocket endpoint that
// reconnects by itself. Its methods are safe for concurrent use.
type Client struct {
	url    string
	opts   Options
	log    *slog.Logger
	ctx    context.Context // ends at Close
	cancel context.CancelFunc
	nextID atomic.Uint32

	mu       sync.Mutex
	sess     *session      // nil while disconnected
	sessCh   chan struct{} // closed when sess changes
	subs     []*Subscription
	subSeq   int
	closed   bool
	err      error // terminal error (closed, permanent close)
	done     chan struct{}
	sessions atomic.Int64 // connections made (tests)

	prod producer
}

// Dial connects to url (ws://host:port/ws) and returns a client that
// keeps the connection up until Close. The first connection is made
// before Dial returns; its failure is Dial's error.
func Dial(ctx context.Context, url string, opts Options) (*Client, error) {
	opts = opts.withDefaults()
	c := &Client{url: url, opts: opts, log: opts.Logger, sessCh: make(chan struct{}), done: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.prod.init(c)
	if opts.Credentials != nil && opts.CredentialsFunc != nil {
		c.cancel()
		return nil, fmt.Errorf("%w: set Options.Credentials or Options.CredentialsFunc, not both", ErrInvalidCredentials)
	}
	s, err := c.connect(ctx)
	if err != nil {
		c.cancel()
		return nil, err
	}
	c.install(s)
	go c.run(s)
	go c.prod.loop()
	return c, nil
}

// Session is the server's id of the current connection ("" while
// disconnected).
func (c *Client) Session() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return ""
	}
	return c.sess.id
}

// Connections is the number of connections the client has made.
func (c *Client) Connections() int { return int(c.sessions.Load()) }

// Limits are the server's limits from hello.
type Limits struct {
	MaxFrameBytes, MaxSubscriptions, MaxPendingBytes int
}

// Limits of the current (or last) connection.
func (c *Client) Limits() Limits {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return Limits{}
	}
	return c.sess.limits
}

// Close ends the client: the connection is closed normally, records not
// yet acknowledged fail with ErrClosed (call Flush first to wait for
// them), and subscriptions end with ErrClosed.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.done
		return nil
	}
	c.closed = true
	if c.err == nil {
		c.err = ErrClosed
	}
	s := c.sess
	c.mu.Unlock()
	c.cancel()
	if s != nil {
		s.closeNormal()
	}
	<-c.done
	return nil
}

// Ping sends a ping op and waits for the pong: the round trip time.
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	_, err := c.roundTrip(ctx, func(b []byte, id uint32) []byte {
		return fmt.Appendf(b, `{"op":"ping","id":%d}`, id)
	})
	return time.Since(start), err
}

// CommitOffsets commits offsets (next offset to read, per partition) of
// topic for group without being a member (Kafka's simple commit; accepted
// while the group has no members).
func (c *Client) CommitOffsets(ctx context.Context, group, topic string, offsets map[int32]int64) error {
	_, err := c.roundTrip(ctx, func(b []byte, id uint32) []byte {
		b = fmt.Appendf(b, `{"op":"commit","id":%d,"group":`, id)
		b = appendJSONString(b, group)
		b = append(b, `,"topic":`...)
		b = appendJSONString(b, topic)
		b = append(b, `,"offsets":`...)
		b = appendOffsetList(b, offsets)
		return append(b, '}')
	})
	return err
}

// current returns the live session, waiting for one up to ctx.
func (c *Client) current(ctx context.Context) (*session, error) {
	for {
		c.mu.Lock()
		s, ch, err := c.sess, c.sessCh, c.err
		c.mu.Unlock()
		if err != nil {
			return nil, err
		}
		if s != nil && !s.isDead() {
			return s, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// roundTrip sends a request built by build (given the id) and waits for
// its reply. A connection lost meanwhile retries on the next one (the
// ops sent this way are idempotent).
func (c *Client) roundTrip(ctx context.Context, build func(b []byte, id uint32) []byte) (*envelope, error) {
	for {
		s, err := c.current(ctx)
		if err != nil {
			return nil, err
		}
		ch := make(chan reply, 1)
		id := c.nextID.Add(1)
		if !s.register(id, &call{fn: func(e *envelope, err error) { ch <- reply{e, err} }}) {
			s.waitDone(ctx)
			continue
		}
		if err := s.writeText(build(nil, id)); err != nil {
			// The session is failing; its reader fails the call.
		}
		select {
		case r := <-ch:
			if errors.Is(r.err, ErrDisconnected) {
				continue
			}
			return r.env, r.err
		case <-ctx.Done():
			s.unregister(id)
			return nil, ctx.Err()
		}
	}
}

type reply struct {
	env *envelope
	err error
}

// install makes s the current session and resubscribes.
func (c *Client) install(s *session) {
	c.sessions.Add(1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		s.closeNormal()
		return
	}
	c.sess = s
	close(c.sessCh)
	c.sessCh = make(chan struct{})
	subs := append([]*Subscription(nil), c.subs...)
	c.mu.Unlock()
	for _, sub := range subs {
		sub.subscribeOn(s)
	}
	c.prod.wake()
	if c.opts.OnConnect != nil {
		c.opts.OnConnect(s.id)
	}
}

// run watches the connection and reconnects until Close.
func (c *Client) run(s *session) {
	defer close(c.done)
	attempt := 0
	for {
		<-s.done
		lived := time.Since(s.started)
		c.mu.Lock()
		if c.sess == s {
			c.sess = nil
			close(c.sessCh)
			c.sessCh = make(chan struct{})
		}
		closed := c.closed
		c.mu.Unlock()
		if c.opts.OnDisconnect != nil && !closed {
			c.opts.OnDisconnect(s.err)
		}
		if !closed && (c.opts.NoReconnect || c.permanent(s.err)) {
			c.fail(s.err)
			closed = true
		}
		if closed {
			c.shutdown()
			return
		}
		c.log.Info("samsa: connection lost", "err", s.err, "session", s.id)
		if lived > 10*time.Second {
			attempt = 0
		}
		for {
			if !c.sleep(c.backoff(attempt)) {
				c.shutdown()
				return
			}
			attempt++
			ns, err := c.connect(c.ctx)
			if err == nil {
				s = ns
				break
			}
			if authTerminal(err) {
				// Refused credentials: reconnecting with them (or with
				// what CredentialsFunc gives) would only spin.
				c.log.Warn("samsa: authentication refused, giving up", "err", err)
				c.fail(err)
				c.shutdown()
				return
			}
			c.log.Info("samsa: reconnect failed", "err", err, "attempt", attempt)
		}
		c.install(s)
	}
}

// permanent reports whether the close that ended a connection rules out
// reconnecting: 1008, and 4001 unless CredentialsFunc can give new
// credentials.
func (c *Client) permanent(err error) bool {
	var ce *CloseError
	if !errors.As(err, &ce) || !ce.Permanent() {
		return false
	}
	return ce.Code != CloseUnauthorized || c.opts.CredentialsFunc == nil
}

// backoff is the jittered exponential delay before attempt n (0-based):
// uniformly in [d/2, d] with d = min(MaxBackoff, MinBackoff·2^n).
func (c *Client) backoff(n int) time.Duration {
	d := c.opts.MinBackoff
	for i := 0; i < n && d < c.opts.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, c.opts.MaxBackoff)
	return d/2 + rand.N(d/2+1)
}

func (c *Client) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-c.ctx.Done():
		return false
	}
}

// fail makes err the client's terminal error.
func (c *Client) fail(err error) {
	if err == nil {
		err = ErrClosed
	}
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
}

// shutdown fails everything pending with the terminal error.
func (c *Client) shutdown() {
	c.mu.Lock()
	err := c.err
	if err == nil {
		err = ErrClosed
		c.err = err
	}
	c.closed = true
	subs := c.subs
	c.subs = nil
	close(c.sessCh)
	c.sessCh = make(chan struct{})
	c.mu.Unlock()
	c.cancel()
	for _, sub := range subs {
		sub.end(err)
	}
	c.prod.shutdown(err)
}

func (c *Client) terminalErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// --- one connection ---

type call struct {
	op *prodOp                // a produce request
	fn func(*envelope, error) // any other request
}

type session struct {
	c       *Client
	ws      *gws.Conn
	id      string
	limits  Limits
	started time.Time
	nonce   []byte // hello's nonce, signed by nonce authentication

	wmu sync.Mutex // writes

	mu    sync.Mutex
	calls map[uint32]*call
	dead  bool
	auth  AuthInfo      // the identity, refreshed by refreshLoop
	slots chan struct{} // produce requests in flight

	done chan struct{}
	err  error // why it ended (set before done is closed)
}

func (c *Client) connect(ctx context.Context) (*session, error) {
	d := gws.Dialer{}
	if c.opts.Dialer != nil {
		d = *c.opts.Dialer
	}
	d.Subprotocols = []string{Subprotocol}
	if d.HandshakeTimeout == 0 {
		d.HandshakeTimeout = c.opts.HandshakeTimeout
	}
	if d.ReadBufferSize == 0 {
		d.ReadBufferSize = 64 << 10
	}
	if d.WriteBufferSize == 0 {
		d.WriteBufferSize = 64 << 10
	}
	ws, resp, err := d.DialContext(ctx, c.url, c.opts.Header)
	if err != nil {
		if resp != nil {
			var body [512]byte
			n, _ := resp.Body.Read(body[:])
			resp.Body.Close()
			return nil, fmt.Errorf("samsa: dial %s: %s: %s", c.url, resp.Status, bytes.TrimSpace(body[:n]))
		}
		return nil, fmt.Errorf("samsa: dial %s: %w", c.url, err)
	}
	if ws.Subprotocol() != Subprotocol {
		ws.Close()
		return nil, fmt.Errorf("samsa: dial %s: server did not accept subprotocol %s", c.url, Subprotocol)
	}
	// The first frame is hello.
	deadline := time.Now().Add(c.opts.HandshakeTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = ws.SetReadDeadline(deadline)
	var hello envelope
	if err := ws.ReadJSON(&hello); err != nil {
		ws.Close()
		return nil, fmt.Errorf("samsa: dial %s: reading hello: %w", c.url, closeErr(err))
	}
	if hello.Type != "hello" {
		ws.Close()
		return nil, fmt.Errorf("samsa: dial %s: first frame is %q, not hello", c.url, hello.Type)
	}
	nonce, err := base64.StdEncoding.DecodeString(hello.Nonce)
	if err != nil {
		ws.Close()
		return nil, fmt.Errorf("samsa: dial %s: hello nonce is not base64: %w", c.url, err)
	}
	var ai AuthInfo
	authAt := time.Now()
	if hello.Auth == "required" {
		if ai, err = c.authenticateWS(ctx, ws, nonce, deadline); err != nil {
			ws.Close()
			return nil, fmt.Errorf("samsa: dial %s: authentication: %w", c.url, err)
		}
	}
	s := &session{
		c: c, ws: ws, id: hello.Session, started: time.Now(), nonce: nonce, auth: ai,
		limits: Limits{hello.Limits.MaxFrameBytes, hello.Limits.MaxSubscriptions, hello.Limits.MaxPendingBytes},
		calls:  make(map[uint32]*call),
		slots:  make(chan struct{}, c.opts.MaxInflight),
		done:   make(chan struct{}),
	}
	if s.limits.MaxFrameBytes <= 0 {
		s.limits.MaxFrameBytes = 1 << 20
	}
	for range c.opts.MaxInflight {
		s.slots <- struct{}{}
	}
	ws.SetPingHandler(func(data string) error {
		_ = ws.SetReadDeadline(time.Now().Add(c.opts.ReadTimeout))
		err := ws.WriteControl(gws.PongMessage, []byte(data), time.Now().Add(c.opts.WriteTimeout))
		if errors.Is(err, gws.ErrCloseSent) {
			return nil
		}
		return err
	})
	go s.read()
	if c.opts.CredentialsFunc != nil && !ai.Expires.IsZero() {
		go s.refreshLoop(authAt)
	}
	return s, nil
}

// closeErr turns a gorilla close error into a *CloseError.
func closeErr(err error) error {
	var ce *gws.CloseError
	if errors.As(err, &ce) {
		return &CloseError{Code: ce.Code, Reason: ce.Text}
	}
	return err
}

func (s *session) register(id uint32, cl *call) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		return false
	}
	s.calls[id] = cl
	return true
}

func (s *session) unregister(id uint32) *call {
	s.mu.Lock()
	defer s.mu.Unlock()
	cl := s.calls[id]
	delete(s.calls, id)
	return cl
}

func (s *session) waitDone(ctx context.Context) {
	select {
	case <-s.done:
	case <-ctx.Done():
	}
}

func (s *session) isDead() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *session) writeText(b []byte) error   { return s.write(gws.TextMessage, b) }
func (s *session) writeBinary(b []byte) error { return s.write(gws.BinaryMessage, b) }

func (s *session) write(mt int, b []byte) error {
	s.wmu.Lock()
	_ = s.ws.SetWriteDeadline(time.Now().Add(s.c.opts.WriteTimeout))
	err := s.ws.WriteMessage(mt, b)
	s.wmu.Unlock()
	if err != nil {
		// Make the reader notice.
		_ = s.ws.NetConn().Close()
	}
	return err
}

// closeNormal sends a 1000 close and closes the connection.
func (s *session) closeNormal() {
	_ = s.ws.WriteControl(gws.CloseMessage, gws.FormatCloseMessage(gws.CloseNormalClosure, ""), time.Now().Add(time.Second))
	// Give the server a moment to answer, then cut.
	select {
	case <-s.done:
	case <-time.After(time.Second):
	}
	_ = s.ws.NetConn().Close()
}

// read dispatches every frame of the connection until it ends, then fails
// the requests still waiting for a reply.
func (s *session) read() {
	c := s.c
	buf := new(bytes.Buffer)
	var err error
	for {
		_ = s.ws.SetReadDeadline(time.Now().Add(c.opts.ReadTimeout))
		mt, r, e := s.ws.NextReader()
		if e != nil {
			err = closeErr(e)
			break
		}
		buf.Reset()
		if _, e := buf.ReadFrom(r); e != nil {
			err = closeErr(e)
			break
		}
		data := buf.Bytes()
		if mt == gws.BinaryMessage {
			err = s.handleBinary(data)
		} else {
			err = s.handleText(data)
		}
		if err != nil {
			c.log.Warn("samsa: protocol error, dropping the connection", "err", err)
			break
		}
		if buf.Cap() > 4<<20 {
			buf = new(bytes.Buffer)
		}
	}
	_ = s.ws.Close()
	s.mu.Lock()
	s.dead = true
	calls := s.calls
	s.calls = nil
	s.mu.Unlock()
	// Fail (or requeue) what waited for a reply before anyone sees the
	// session done: Close returns after every callback ran.
	var ops []*prodOp
	for _, cl := range calls {
		if cl.op != nil {
			ops = append(ops, cl.op)
		} else {
			cl.fn(nil, ErrDisconnected)
		}
	}
	c.prod.disconnected(ops)
	s.err = err
	close(s.done)
}

func (s *session) handleBinary(data []byte) error {
	if len(data) == 0 {
		return errors.New("empty binary frame")
	}
	switch data[0] {
	case kindAck:
		a, err := parseBinaryAck(data[1:])
		if err != nil {
			return err
		}
		cl := s.unregister(a.id)
		if cl == nil || cl.op == nil {
			return fmt.Errorf("binary ack for unknown request %d", a.id)
		}
		var aerr error
		if a.err != nil {
			aerr = a.err
		}
		s.c.prod.acked(s, cl.op, aerr, a.count, a.result)
	case kindRecords:
		sub, recs, err := parseBinaryRecords(data[1:], s.c.subTopic)
		if err != nil {
			return err
		}
		if sb := s.c.subByName(sub); sb != nil {
			sb.deliver(s, recs)
		}
	default:
		// Unknown kinds are ignored (forward compatibility).
	}
	return nil
}

func (s *session) handleText(data []byte) error {
	// Fast path for records messages in the server's layout; anything
	// else (or anything it refuses) takes encoding/json below.
	if sub, recs, ok := parseRecordsJSON(data); ok {
		if sb := s.c.subByName(sub); sb != nil {
			for i := range recs {
				recs[i].Topic = sb.topic
			}
			sb.deliver(s, recs)
		}
		return nil
	}
	var e envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return fmt.Errorf("bad JSON from the server: %w", err)
	}
	switch e.Type {
	case "records":
		sb := s.c.subByName(e.Sub)
		if sb == nil {
			return nil
		}
		recs := make([]Record, len(e.Records))
		for i := range e.Records {
			r, err := e.Records[i].record(sb.topic)
			if err != nil {
				return err
			}
			recs[i] = r
		}
		sb.deliver(s, recs)
		return nil
	case "authenticated":
		if len(e.ID) == 0 {
			// The cookie of the upgrade request authenticated the
			// connection (PROTOCOL.md §9).
			ai := authInfoOf(&e)
			s.mu.Lock()
			s.auth = ai
			s.mu.Unlock()
			return nil
		}
	case "reset", "assigned", "revoked":
		if sb := s.c.subByName(e.Sub); sb != nil {
			sb.event(s, &e)
		}
		return nil
	case "error":
		perr := &Error{Code: Code(e.Code), Message: e.Message, Sub: e.Sub}
		if id, ok := parseID(e.ID); ok {
			if cl := s.unregister(id); cl != nil {
				if cl.op != nil {
					s.c.prod.acked(s, cl.op, perr, 0, nil)
				} else {
					cl.fn(&e, perr)
				}
				return nil
			}
		}
		if e.Sub != "" {
			if sb := s.c.subByName(e.Sub); sb != nil {
				sb.serverError(s, perr)
			}
			return nil
		}
		s.c.log.Warn("samsa: error from the server", "code", e.Code, "message", e.Message)
		return nil
	}
	id, ok := parseID(e.ID)
	if !ok {
		return nil // unknown or unsolicited type: ignored
	}
	cl := s.unregister(id)
	if cl == nil {
		return nil
	}
	if cl.op != nil {
		if e.Type != "ack" {
			return fmt.Errorf("reply %q to a produce request", e.Type)
		}
		s.c.prod.acked(s, cl.op, nil, len(e.Results), func(i int) (int32, int64) {
			return e.Results[i].Partition, e.Results[i].Offset
		})
		return nil
	}
	cl.fn(&e, nil)
	return nil
}
