// Package kafka serves the Apache Kafka wire protocol on raw TCP so that
// unmodified Kafka clients (franz-go, librdkafka, kafkajs, sarama, kafka-go,
// Java) can produce to and consume from a samsa broker.
//
// franz-go's kmsg is the codec: this package only frames requests and
// responses (the 4-byte size, the request header, and the response header:
// correlation id plus, for flexible versions other than ApiVersions, an empty
// tagged-field section). Each API key has one handler in the table of
// apis.go; every handler calls the Broker API and never touches files.
//
// Per connection, one goroutine reads and decodes requests and one writes
// responses strictly in request order. Produce appends on the read path (so
// idempotent sequences keep request order) and waits for durability off it;
// Fetch long-polls off the read path; everything else runs inline.
package kafka

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/samsa-broker/samsa/auth"
	"github.com/samsa-broker/samsa/broker"
)

// Defaults of Options.
const (
	DefaultMaxFrameBytes = 100 << 20
	DefaultMaxInFlight   = 64
)

// ErrServerClosed is returned by Serve after Close.
var ErrServerClosed = errors.New("kafka: server closed")

// Options configure a Server.
type Options struct {
	// AdvertisedHost and AdvertisedPort are what Metadata and DescribeCluster
	// tell clients to connect to. Empty/zero: the local address of the
	// connection the request arrived on.
	AdvertisedHost string
	AdvertisedPort int32
	// MaxFrameBytes bounds a request frame; a bigger one closes that
	// connection with a log line. 0 is DefaultMaxFrameBytes.
	MaxFrameBytes int32
	// MaxInFlight is how many requests of one connection may be queued
	// before the server stops reading from it. 0 is DefaultMaxInFlight.
	MaxInFlight int
	Logger      *slog.Logger
	// Auth, when enabled, makes every connection authenticate with SASL
	// (PLAIN, SCRAM-SHA-256/512, OAUTHBEARER) before anything but
	// ApiVersions, and checks the principal's permissions in every
	// handler. Nil or disabled: no authentication, everything allowed.
	Auth *auth.Authenticator
	// TLS, when set, serves TLS on every listener given to Serve (client
	// certificates are the config's business).
	TLS *tls.Config
}

// Server serves the Kafka protocol for one broker.
type Server struct {
	b    *broker.Broker
	opts Options
	log  *slog.Logger

	ctx    context.Context // ends at Close
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	wg        sync.WaitGroup // connection goroutines

	stopRevoke func() // unsubscribes from the authenticator's revocations
}

// NewServer returns a server for b. Serve starts it on a listener.
func NewServer(b *broker.Broker, opts Options) *Server {
	if opts.MaxFrameBytes <= 0 {
		opts.MaxFrameBytes = DefaultMaxFrameBytes
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		b:         b,
		opts:      opts,
		log:       opts.Logger.With("transport", "kafka"),
		ctx:       ctx,
		cancel:    cancel,
		listeners: make(map[net.Listener]struct{}),
		conns:     make(map[*conn]struct{}),
	}
	if s.authOn() {
		s.stopRevoke = opts.Auth.OnRevoke(s.revoked)
	}
	return s
}

// Serve accepts connections on ln until ctx ends, Close is called or the
// listener fails. When ctx ends, the connections accepted by this call are
// closed and Serve waits for them. It returns nil when stopped by ctx or
// Close, else the accept error.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		_ = ln.Close()
		return ErrServerClosed
	}
	if s.opts.TLS != nil {
		ln = tls.NewListener(ln, s.opts.TLS)
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()

	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopServer := context.AfterFunc(s.ctx, cancel)
	defer stopServer()
	stopLn := context.AfterFunc(sctx, func() { _ = ln.Close() })
	defer stopLn()

	s.log.Info("kafka listener started", "addr", ln.Addr().String(), "tls", s.opts.TLS != nil, "auth", s.authOn())
	var conns sync.WaitGroup
	var err error
	var backoff time.Duration
	for {
		nc, aerr := ln.Accept()
		if aerr != nil {
			if sctx.Err() != nil || s.isClosed() {
				cancel()
				break
			}
			var ne net.Error
			if errors.As(aerr, &ne) && ne.Timeout() {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", aerr, "backoff", backoff)
				time.Sleep(backoff)
				continue
			}
			err = aerr
			break
		}
		backoff = 0
		c := newConn(s, sctx, nc)
		if !s.track(c, &conns) {
			_ = nc.Close()
			cancel()
			break
		}
		go func() {
			defer s.wg.Done()
			defer conns.Done()
			c.serve()
			s.untrack(c)
		}()
	}
	if sctx.Err() != nil {
		conns.Wait()
		return nil
	}
	return err
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// track registers a new connection unless the server is closed.
func (s *Server) track(c *conn, conns *sync.WaitGroup) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	conns.Add(1)
	return true
}

func (s *Server) untrack(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// Close stops accepting, closes every connection and waits for their
// handlers to return.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	var errs []error
	for ln := range s.listeners {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	for c := range s.conns {
		c.cancel()
	}
	stopRevoke := s.stopRevoke
	s.mu.Unlock()
	if stopRevoke != nil {
		stopRevoke()
	}
	s.cancel()
	s.wg.Wait()
	return errors.Join(errs...)
}

// future is one queued response. The writer sends them in queue order once
// done is closed; a nil frame sends nothing (acks=0 produce).
type future struct {
	done  chan struct{}
	frame []byte
}

// conn is one client connection.
type conn struct {
	s      *Server
	nc     net.Conn
	remote string
	ctx    context.Context
	cancel context.CancelFunc
	queue  chan *future
	// async counts handlers running off the read path.
	async sync.WaitGroup
	// clientID is the client id of the request being handled; handlers
	// run on the read path, which sets it.
	clientID string
	// sasl is the authentication state (sasl.go).
	sasl saslState
}

// remoteHost is the client's address without the port, as Kafka reports
// group members' hosts.
func (c *conn) remoteHost() string {
	host, _, err := net.SplitHostPort(c.remote)
	if err != nil {
		return c.remote
	}
	return "/" + host
}

func newConn(s *Server, ctx context.Context, nc net.Conn) *conn {
	cctx, cancel := context.WithCancel(ctx)
	return &conn{
		s:      s,
		nc:     nc,
		remote: nc.RemoteAddr().String(),
		ctx:    cctx,
		cancel: cancel,
		queue:  make(chan *future, s.opts.MaxInFlight),
	}
}

// protocolError is a client mistake that closes the connection.
type protocolError struct{ msg string }

func (e *protocolError) Error() string { return e.msg }

func protoErrorf(format string, args ...any) error {
	return &protocolError{msg: fmt.Sprintf(format, args...)}
}

// closeError stops reading from a connection and closes it once the
// responses queued so far are written (a failed authentication answers,
// then closes).
type closeError struct{ msg string }

func (e *closeError) Error() string { return e.msg }

func (c *conn) serve() {
	stop := context.AfterFunc(c.ctx, func() { _ = c.nc.Close() })
	defer stop()
	defer c.stopExpiry()
	if !c.tlsHandshake() {
		c.cancel()
		_ = c.nc.Close()
		return
	}
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()

	err := c.readLoop()
	var pe *protocolError
	var ce *closeError
	switch {
	case err == nil:
		// The client closed its side: let queued responses go out.
	case errors.As(err, &ce):
		// We close after the queued responses (the last one says why).
		c.s.log.Info("closing kafka connection", "remote", c.remote, "reason", ce.msg)
	case errors.As(err, &pe):
		c.s.log.Warn("closing kafka connection", "remote", c.remote, "reason", pe.msg)
		c.cancel()
	case c.ctx.Err() != nil:
		// Closed by us (server shutdown or a failed write).
	default:
		c.s.log.Debug("kafka connection read failed", "remote", c.remote, "err", err)
		c.cancel()
	}
	close(c.queue)
	<-writerDone
	c.cancel()
	c.async.Wait()
	_ = c.nc.Close()
}

// readLoop reads frames until EOF (nil) or an error.
func (c *conn) readLoop() error {
	br := bufio.NewReaderSize(c.nc, 64<<10)
	var sizeBuf [4]byte
	var spare []byte
	for {
		if _, err := io.ReadFull(br, sizeBuf[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return protoErrorf("truncated frame size")
			}
			return err
		}
		size := int32(binary.BigEndian.Uint32(sizeBuf[:]))
		if size < 0 || size > c.s.opts.MaxFrameBytes {
			return protoErrorf("frame of %d bytes is outside [0, %d] (max_frame_bytes)", size, c.s.opts.MaxFrameBytes)
		}
		if size > maxPreAuthFrameBytes && c.s.authOn() && c.sasl.principal.Load() == nil {
			return protoErrorf("frame of %d bytes before SASL authentication (at most %d)", size, maxPreAuthFrameBytes)
		}
		frame, err := readFrame(br, int(size), spare)
		spare = nil
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return protoErrorf("truncated frame: wanted %d bytes, got %d", size, len(frame))
			}
			return err
		}
		if c.sasl.raw {
			// After SaslHandshake v0, SASL tokens come unframed.
			if err := c.handleRawToken(frame); err != nil {
				return err
			}
			continue
		}
		if err := c.handleFrame(frame); err != nil {
			return err
		}
		if len(frame) >= 2 && int16(binary.BigEndian.Uint16(frame)) == produceKey {
			// Produce appends its records before handleFrame returns and
			// keeps no reference to the frame: reuse it for the next one.
			spare = frame
		}
	}
}

// readFrame reads size bytes, growing the buffer as data arrives so that a
// client announcing a huge frame and sending nothing costs little memory.
// spare, if large enough, is used instead of a new buffer.
func readFrame(r io.Reader, size int, spare []byte) ([]byte, error) {
	const chunk = 1 << 20
	buf := spare[:0]
	if cap(buf) < size {
		buf = make([]byte, 0, min(size, chunk))
	}
	for len(buf) < size {
		want := min(size-len(buf), chunk)
		if cap(buf)-len(buf) < want {
			nb := make([]byte, len(buf), min(size, max(2*cap(buf), len(buf)+want)))
			copy(nb, buf)
			buf = nb
		}
		n, err := io.ReadFull(r, buf[len(buf):len(buf)+want])
		buf = buf[:len(buf)+n]
		if err != nil {
			return buf, err
		}
	}
	return buf, nil
}

// enqueue reserves the next response slot; it blocks while MaxInFlight
// responses are queued (backpressure: the reader stops reading).
func (c *conn) enqueue() (*future, error) {
	f := &future{done: make(chan struct{})}
	select {
	case c.queue <- f:
		return f, nil
	case <-c.ctx.Done():
		return nil, c.ctx.Err()
	}
}

func (c *conn) writeLoop() {
	bw := bufio.NewWriterSize(c.nc, 64<<10)
	failed := false
	for f := range c.queue {
		select {
		case <-f.done:
		case <-c.ctx.Done():
			failed = true
		}
		if failed || f.frame == nil {
			continue
		}
		if _, err := bw.Write(f.frame); err != nil {
			c.writeFailed(err)
			failed = true
			continue
		}
		if len(c.queue) == 0 {
			if err := bw.Flush(); err != nil {
				c.writeFailed(err)
				failed = true
			}
		}
	}
	if !failed {
		if err := bw.Flush(); err != nil {
			c.writeFailed(err)
		}
	}
}

func (c *conn) writeFailed(err error) {
	if c.ctx.Err() == nil {
		c.s.log.Debug("kafka connection write failed", "remote", c.remote, "err", err)
	}
	c.cancel()
}

// advertised returns the host and port clients should connect to.
func (c *conn) advertised() (string, int32) {
	host, port := c.s.opts.AdvertisedHost, c.s.opts.AdvertisedPort
	if host != "" && port != 0 {
		return host, port
	}
	if h, p, err := net.SplitHostPort(c.nc.LocalAddr().String()); err == nil {
		if host == "" {
			host = h
		}
		if port == 0 {
			if n, err := strconv.ParseInt(p, 10, 32); err == nil {
				port = int32(n)
			}
		}
	}
	return host, port
}
