package websocket

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	gws "github.com/gorilla/websocket"

	"github.com/samsa-broker/samsa/auth"
)

type outKind uint8

const (
	outText outKind = iota
	outBinary
	outPing
	outClose
)

// outMsg is one queued outgoing frame.
type outMsg struct {
	kind   outKind
	code   int    // outClose
	head   []byte // written before data in the same frame (may be shared)
	data   []byte // may be shared: never modified once queued
	reason string
}

// conn is one WebSocket connection. The goroutine of ServeHTTP reads; a
// writer goroutine exists only while frames are queued, and an acker only
// while produce requests wait for durability.
type conn struct {
	s       *Server
	ws      *gws.Conn
	ip      string
	session string
	ctx     context.Context
	cancel  context.CancelFunc

	// The write queue.
	qmu     sync.Mutex
	queue   []outMsg
	qhead   int
	qbytes  int
	writing bool
	dead    bool // no more frames are written
	closing bool // a close frame is queued
	paused  bool // a subscription waits for the queue to drain

	// The produce ack pipeline, in request order.
	amu      sync.Mutex
	acks     []ackItem
	acking   bool
	inflight int
	slot     chan struct{} // signalled when inflight drops below the limit

	// Subscriptions, by name.
	mu   sync.Mutex
	subs map[string]*subscription

	rr     int32 // round robin partition of unkeyed records
	badRun int   // consecutive bad frames

	// Authentication (auth.go).
	nonce     []byte // the hello nonce's bytes, signed by nonce auth
	sess      atomic.Pointer[session]
	expMu     sync.Mutex
	expTimer  *time.Timer // closes the connection when the token expires
	authTimer *time.Timer // closes it when it does not authenticate in time
}

// newConn starts a connection: hello, then the cookie's authentication
// (p) or its failure (cookieErr) when auth is on.
func newConn(s *Server, ws *gws.Conn, ip string, p *auth.Principal, cookieErr error) *conn {
	session, nonce := newSessionID()
	c := &conn{s: s, ws: ws, ip: ip, session: session}
	c.ctx, c.cancel = context.WithCancel(s.ctx)
	c.enqueue(outMsg{kind: outText, data: s.helloFrame(session, nonce)})
	if !s.authOn() {
		return c
	}
	c.nonce = nonce
	switch {
	case p != nil:
		c.setSession(p)
		b := append([]byte(`{"type":"authenticated",`), `"via":"cookie",`...)
		b = appendSessionFields(b, p)
		c.sendText(append(b, '}'))
	default:
		if cookieErr != nil {
			s.opts.Logger.Info("websocket: cookie authentication failed", "session", session, "ip", ip, "err", cookieErr)
			c.sendText(errorFrame(nil, "", authError(cookieErr)))
		}
		c.expMu.Lock()
		c.authTimer = time.AfterFunc(s.opts.AuthTimeout, func() {
			if c.principal() == nil {
				c.closeWith(CloseUnauthorized, "not authenticated in time")
			}
		})
		c.expMu.Unlock()
	}
	return c
}

// serve reads frames until the connection ends, then tears it down.
func (c *conn) serve() {
	defer c.teardown()
	ws := c.ws
	ws.SetReadLimit(int64(c.s.opts.MaxFrameBytes))
	idle := c.s.opts.IdleTimeout
	_ = ws.SetReadDeadline(time.Now().Add(idle))
	ws.SetPongHandler(func(string) error {
		return ws.SetReadDeadline(time.Now().Add(idle))
	})
	ws.SetPingHandler(func(data string) error {
		_ = ws.SetReadDeadline(time.Now().Add(idle))
		c.enqueue(outMsg{kind: outPing, code: 1, data: []byte(data)})
		return nil
	})
	ws.SetCloseHandler(func(code int, text string) error {
		c.enqueue(outMsg{kind: outClose, code: CloseNormal})
		return nil
	})
	for {
		mt, r, err := ws.NextReader()
		if err != nil {
			c.readFailed(err)
			return
		}
		_ = ws.SetReadDeadline(time.Now().Add(idle))
		buf := c.s.readBuf()
		buf.Reset()
		_, err = buf.ReadFrom(r)
		if err != nil {
			c.s.putReadBuf(buf)
			c.readFailed(err)
			return
		}
		switch mt {
		case gws.TextMessage:
			c.handleText(buf.Bytes())
		case gws.BinaryMessage:
			c.handleBinary(buf.Bytes())
		}
		c.s.putReadBuf(buf)
		if c.badRun >= 10 {
			c.closeWith(CloseProtocolError, "too many bad frames")
		}
		if c.isClosing() {
			c.drainReads()
			return
		}
	}
}

// readFailed handles the end of reading.
func (c *conn) readFailed(err error) {
	var ce *gws.CloseError
	var ne net.Error
	switch {
	case errors.Is(err, gws.ErrReadLimit):
		// gorilla sent the 1009 close frame.
		c.s.countClose(CloseTooBig)
		c.markDead()
	case errors.As(err, &ce):
		// The close handler queued the echo; let it go out.
		c.flushAndDie(time.Second)
	case errors.As(err, &ne) && ne.Timeout():
		if !c.isClosing() {
			c.closeWith(CloseSlowConsumer, "idle timeout")
		}
		c.flushAndDie(time.Second)
	default:
		c.markDead()
	}
}

// drainReads waits briefly for the client's close reply after a close we
// sent.
func (c *conn) drainReads() {
	_ = c.ws.SetReadDeadline(time.Now().Add(2 * time.Second))
	for {
		if _, _, err := c.ws.NextReader(); err != nil {
			c.flushAndDie(time.Second)
			return
		}
	}
}

// teardown ends everything of the connection.
func (c *conn) teardown() {
	c.cancel()
	c.stopAuthTimers()
	c.mu.Lock()
	subs := c.subs
	c.subs = nil
	c.mu.Unlock()
	for _, sub := range subs {
		sub.stop()
	}
	c.markDead()
	_ = c.ws.Close()
}

// flushAndDie waits up to d for the queue to empty, then stops writing.
func (c *conn) flushAndDie(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c.qmu.Lock()
		empty := !c.writing
		c.qmu.Unlock()
		if empty {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.markDead()
}

// markDead stops all writing and frees the queue.
func (c *conn) markDead() {
	c.qmu.Lock()
	c.dead = true
	clear(c.queue[c.qhead:])
	c.queue, c.qhead, c.qbytes = nil, 0, 0
	c.qmu.Unlock()
	c.wakeSubs()
}

// closeWith queues a close frame; nothing after it is written. The reader
// ends when the client answers or the connection fails.
func (c *conn) closeWith(code int, reason string) {
	c.qmu.Lock()
	if c.closing || c.dead {
		c.qmu.Unlock()
		return
	}
	c.closing = true
	c.qmu.Unlock()
	c.s.countClose(code)
	c.enqueueForce(outMsg{kind: outClose, code: code, reason: reason})
	// Bound the wait for the client's close reply.
	_ = c.ws.NetConn().SetReadDeadline(time.Now().Add(3 * time.Second))
}

func (c *conn) isClosing() bool {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return c.closing || c.dead
}

// enqueue queues a frame; it reports false when the connection is dead or
// closing.
func (c *conn) enqueue(m outMsg) bool {
	c.qmu.Lock()
	if c.dead || (c.closing && m.kind != outClose) {
		c.qmu.Unlock()
		return false
	}
	c.pushLocked(m)
	c.qmu.Unlock()
	return true
}

func (c *conn) enqueueForce(m outMsg) {
	c.qmu.Lock()
	if !c.dead {
		c.pushLocked(m)
	}
	c.qmu.Unlock()
}

func (c *conn) pushLocked(m outMsg) {
	c.queue = append(c.queue, m)
	c.qbytes += len(m.head) + len(m.data)
	if !c.writing {
		c.writing = true
		go c.writeLoop()
	}
}

func (c *conn) sendText(b []byte) bool { return c.enqueue(outMsg{kind: outText, data: b}) }

// pendingOK reports whether the queue is under MaxPendingBytes; when not,
// the caller is woken (wakeSubs) once it drains.
func (c *conn) pendingOK() bool {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if c.qbytes < c.s.opts.MaxPendingBytes {
		return true
	}
	c.paused = true
	return false
}

func (c *conn) queuedBytes() int {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return c.qbytes
}

// writeLoop writes queued frames and exits when the queue is empty. It
// takes everything queued at once and writes it with as few system calls
// as possible (writeFrames), so a busy connection batches by itself.
func (c *conn) writeLoop() {
	var batch []outMsg
	for {
		c.qmu.Lock()
		if c.dead || c.qhead == len(c.queue) {
			c.queue, c.qhead = nil, 0
			c.writing = false
			c.qmu.Unlock()
			return
		}
		batch = append(batch[:0], c.queue[c.qhead:]...)
		clear(c.queue[c.qhead:])
		c.queue, c.qhead = c.queue[:0], 0
		c.qmu.Unlock()

		err := c.writeFrames(batch)
		n, closed := 0, false
		for i := range batch {
			n += len(batch[i].head) + len(batch[i].data)
			closed = closed || batch[i].kind == outClose
		}
		clear(batch)

		c.qmu.Lock()
		c.qbytes -= n
		wake := c.paused && c.qbytes < c.s.opts.MaxPendingBytes
		if wake {
			c.paused = false
		}
		if err != nil || closed {
			c.dead = true
			clear(c.queue[c.qhead:])
			c.queue, c.qhead, c.qbytes = nil, 0, 0
			c.writing = false
			c.qmu.Unlock()
			var ne net.Error
			if err != nil && errors.As(err, &ne) && ne.Timeout() {
				// The client did not read for WriteTimeout: slow consumer.
				c.s.countClose(CloseSlowConsumer)
				_ = c.ws.NetConn().Close()
			} else if err != nil {
				_ = c.ws.NetConn().Close()
			}
			c.wakeSubs()
			return
		}
		c.qmu.Unlock()
		if wake {
			c.wakeSubs()
		}
	}
}

// wakeSubs wakes every subscription (the queue drained or died).
func (c *conn) wakeSubs() {
	c.mu.Lock()
	for _, s := range c.subs {
		s.wakeUp()
	}
	c.mu.Unlock()
}

// --- requests ---

// request is any client JSON request; fields are interpreted per op.
type request struct {
	Op               string          `json:"op"`
	ID               json.RawMessage `json:"id"`
	Topic            string          `json:"topic"`
	Records          json.RawMessage `json:"records"`
	Acks             string          `json:"acks"`
	Sub              string          `json:"sub"`
	Partitions       []int32         `json:"partitions"`
	From             json.RawMessage `json:"from"`
	Group            string          `json:"group"`
	Filter           *filterRequest  `json:"filter"`
	Credit           *int64          `json:"credit"`
	Encoding         string          `json:"encoding"`
	KeyEncoding      string          `json:"key_encoding"`
	Format           string          `json:"format"`
	Offsets          json.RawMessage `json:"offsets"`
	SessionTimeoutMs int64           `json:"session_timeout_ms"`
}

type filterRequest struct {
	Name   string          `json:"name"`
	Params json.RawMessage `json:"params"`
}

func (c *conn) handleText(data []byte) {
	var req request
	if err := json.Unmarshal(data, &req); err != nil {
		c.badRun++
		c.sendText(errorFrame(nil, "", errf(codeBadRequest, "not a JSON object: %v", err)))
		return
	}
	if !validID(req.ID) {
		c.badRun++
		c.sendText(errorFrame(nil, "", errf(codeBadRequest, "id must be a string or a number")))
		return
	}
	if req.Op == "" {
		c.badRun++
		c.sendText(errorFrame(req.ID, "", errf(codeBadRequest, "missing op")))
		return
	}
	c.badRun = 0
	if !opAllowedBeforeAuth(req.Op) {
		if perr := c.authenticated(); perr != nil {
			if req.Op == "produce" {
				// Produce replies go out in request order.
				c.readyAck(outMsg{kind: outText, data: errorFrame(req.ID, "", perr)})
			} else {
				c.sendText(errorFrame(req.ID, "", perr))
			}
			return
		}
	}
	var err *protoError
	switch req.Op {
	case "produce":
		c.produceJSON(&req)
		return
	case "subscribe":
		err = c.subscribe(&req)
	case "unsubscribe":
		err = c.unsubscribe(&req)
	case "credit":
		err = c.credit(&req)
	case "commit":
		err = c.commit(&req)
	case "ping":
		c.sendText(simpleReply("pong", req.ID, ""))
	case "auth":
		err = c.handleAuth(req.ID, data)
	default:
		err = errf(codeUnknownOp, "unknown op %q", req.Op)
	}
	if err != nil {
		c.sendText(errorFrame(req.ID, "", err))
	}
}

func (c *conn) handleBinary(data []byte) {
	if len(data) == 0 {
		c.badRun++
		c.sendText(errorFrame(nil, "", errf(codeBadRequest, "empty binary frame")))
		return
	}
	switch data[0] {
	case kindProduce:
		c.produceBinary(data[1:])
	default:
		c.badRun++
		c.sendText(errorFrame(nil, "", errf(codeBadRequest, "unknown binary frame kind %d", data[0])))
	}
}
