package wasm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
)

// Pool runs one module version with one binding's parameters and limits.
// It is safe for concurrent use: concurrent Runs execute in parallel on
// separate instances.
type Pool struct {
	h      *Host
	c      *compiledModule
	info   ModuleInfo
	params []byte
	limits Limits

	mu       sync.Mutex
	idle     []*instance
	live     int
	closed   bool
	inflight sync.WaitGroup
	maxIdle  int

	runs, failures                                      atomic.Uint64
	traps, timeouts, memFailures, abiFailures, guestErr atomic.Uint64
	guestNanos                                          atomic.Int64
}

func (h *Host) newPool(c *compiledModule, info ModuleInfo, params []byte, limits Limits) (*Pool, error) {
	if len(params) > MaxParamsBytes {
		return nil, fmt.Errorf("wasm: parameters are %d bytes, the limit is %d", len(params), MaxParamsBytes)
	}
	limits = limits.withDefaults()
	if c.minPages > limits.MemoryPages {
		return nil, fmt.Errorf("wasm: module %s v%d needs %d pages of memory to start, more than the binding's limit of %d pages",
			info.Name, info.Version, c.minPages, limits.MemoryPages)
	}
	p := &Pool{
		h:       h,
		c:       c,
		info:    info,
		params:  append([]byte{}, params...), // never nil: samsa_init is always called
		limits:  limits,
		maxIdle: 2 * runtime.GOMAXPROCS(0),
	}
	return p, nil
}

// Module describes the module version the pool runs.
func (p *Pool) Module() ModuleInfo { return p.info }

// Limits returns the pool's limits, defaults filled in.
func (p *Pool) Limits() Limits { return p.limits }

// Stats returns the pool's counters.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	live, idle := p.live, len(p.idle)
	p.mu.Unlock()
	return PoolStats{
		Runs:           p.runs.Load(),
		Failures:       p.failures.Load(),
		Traps:          p.traps.Load(),
		Timeouts:       p.timeouts.Load(),
		MemoryFailures: p.memFailures.Load(),
		ABIFailures:    p.abiFailures.Load(),
		GuestErrors:    p.guestErr.Load(),
		GuestTime:      time.Duration(p.guestNanos.Load()),
		Instances:      live,
		Idle:           idle,
	}
}

// Warm makes sure the pool has at least one idle instance, creating one
// now: a binding can surface a failing samsa_init (bad parameters) when it
// is made rather than at its first batch.
func (p *Pool) Warm(ctx context.Context) error {
	in, _, err := p.get(ctx)
	if err != nil {
		return err
	}
	p.put(ctx, in)
	return nil
}

// Close waits for in-flight Runs and closes the idle instances. Runs after
// Close return ErrPoolClosed.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.inflight.Wait()
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.live -= len(idle)
	p.mu.Unlock()
	for _, in := range idle {
		in.close(context.Background())
	}
	p.h.release(p.c)
	return nil
}

// begin registers an in-flight operation; false when closed.
func (p *Pool) begin() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.inflight.Add(1)
	return true
}

// get takes an idle instance or creates one. When creating one fails, it
// returns what the guest logged before failing.
func (p *Pool) get(ctx context.Context) (*instance, []LogLine, error) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		in := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		return in, nil, nil
	}
	p.live++
	p.mu.Unlock()
	in, logs, err := p.h.newInstance(ctx, p.c, instanceConfig{
		name:        p.info.Name,
		params:      p.params,
		pages:       p.limits.MemoryPages,
		initTimeout: max(4*p.limits.Timeout, time.Second),
	})
	if err != nil {
		p.mu.Lock()
		p.live--
		p.mu.Unlock()
		return nil, logs, p.failed(err, "creating an instance")
	}
	return in, nil, nil
}

// put returns a healthy instance to the pool.
func (p *Pool) put(ctx context.Context, in *instance) {
	p.mu.Lock()
	if !p.closed && len(p.idle) < p.maxIdle {
		p.idle = append(p.idle, in)
		p.mu.Unlock()
		return
	}
	p.live--
	p.mu.Unlock()
	in.close(ctx)
}

// discard drops a failed instance.
func (p *Pool) discard(ctx context.Context, in *instance) {
	p.mu.Lock()
	p.live--
	p.mu.Unlock()
	in.close(ctx)
}

// failed counts a failure and wraps it. Errors that are not a
// *FilterError (the caller's context ending) pass through uncounted.
func (p *Pool) failed(err error, during string) error {
	var fe *FilterError
	if !errors.As(err, &fe) {
		return err
	}
	fe.Module = p.info
	p.failures.Add(1)
	switch fe.Kind {
	case FailTrap:
		p.traps.Add(1)
	case FailTimeout:
		p.timeouts.Add(1)
	case FailMemory:
		p.memFailures.Add(1)
	case FailABI:
		p.abiFailures.Add(1)
	case FailGuest:
		p.guestErr.Add(1)
	}
	p.h.log.Warn("wasm: filter failed", "module", p.info.Name, "version", p.info.Version,
		"kind", string(fe.Kind), "during", during, "err", fe.Err)
	return fe
}

// Run runs the filter on one batch and returns one decision per record.
// On a failure the instance is discarded and err is a *FilterError
// (wrapping ErrFilterFailed and the cause); logs written before the failure
// are still returned. The decisions' byte slices are the caller's.
func (p *Pool) Run(ctx context.Context, path Path, topic string, partition int32, recs []Record) ([]Decision, []LogLine, error) {
	return p.RunInto(ctx, path, topic, partition, recs, nil)
}

// RunInto is Run decoding into dst's backing array when it has room,
// which saves an allocation per batch for callers that recycle decision
// slices. dst's old contents are overwritten.
func (p *Pool) RunInto(ctx context.Context, path Path, topic string, partition int32, recs []Record, dst []Decision) ([]Decision, []LogLine, error) {
	if path != ProducePath && path != ConsumePath {
		return nil, nil, fmt.Errorf("wasm: unknown path %d", path)
	}
	size, err := inputSize(topic, recs)
	if err != nil {
		return nil, nil, fmt.Errorf("wasm: %w", err)
	}
	if p.h.isClosed.Load() {
		return nil, nil, ErrHostClosed
	}
	if !p.begin() {
		return nil, nil, ErrPoolClosed
	}
	defer p.inflight.Done()
	p.runs.Add(1)
	in, logs, err := p.get(ctx)
	if err != nil {
		return nil, logs, err
	}
	ds, err := in.run(ctx, p.limits.Timeout, path, topic, partition, recs, size, dst)
	p.guestNanos.Add(int64(in.guestTime))
	logs = in.logs.take()
	if err != nil {
		p.discard(ctx, in)
		return nil, logs, p.failed(err, "a batch")
	}
	p.put(ctx, in)
	return ds, logs, nil
}

// instance is one instantiated module. It is used by one goroutine at a
// time.
type instance struct {
	mod    api.Module
	mem    api.Memory
	alloc  api.Function
	filter api.Function
	stack  [2]uint64
	lim    *memLimiter
	logs   logSink
	log    *slog.Logger
	dec    outputDecoder
	// guestTime is the time the last run spent in calls into the guest.
	guestTime time.Duration
}

func (in *instance) close(ctx context.Context) {
	if in.mod != nil {
		in.mod.Close(ctx)
	}
}

// failure turns an error from calling into the guest into a *FilterError
// (discarding the instance), or into the caller's context error when that
// is what stopped the call. cctx is the call's context (with the deadline).
func (in *instance) failure(parent, cctx context.Context, err error) error {
	in.close(parent)
	if parent.Err() != nil {
		return fmt.Errorf("wasm: filter call abandoned: %w", parent.Err())
	}
	// wazero's errors carry a multi-line wasm stack trace: keep it for
	// the debug log, and the first line for the error.
	if msg := err.Error(); strings.Contains(msg, "\n") {
		in.debugLog("wasm: filter call failed", "err", msg)
		err = &shortError{msg: msg[:strings.IndexByte(msg, '\n')], cause: err}
	}
	kind := FailTrap
	var ee *sys.ExitError
	switch {
	case in.lim.hit:
		// First: a guest that runs out of memory often dies slowly (Go
		// prints every goroutine's stack) and may then hit the deadline.
		kind = FailMemory
		err = fmt.Errorf("memory growth past the limit of %d pages was refused: %w", in.lim.limit>>16, err)
	case cctx.Err() == context.DeadlineExceeded,
		errors.As(err, &ee) && ee.ExitCode() == sys.ExitCodeDeadlineExceeded:
		kind = FailTimeout
		err = fmt.Errorf("stopped at the time limit: %w", err)
	}
	if s := in.logs.lastStderr(); s != "" {
		err = fmt.Errorf("%w%s", err, s)
	}
	return &FilterError{Kind: kind, Err: err}
}

// shortError is an error with a shorter message than its cause.
type shortError struct {
	msg   string
	cause error
}

func (e *shortError) Error() string { return e.msg }
func (e *shortError) Unwrap() error { return e.cause }

func (in *instance) debugLog(msg string, args ...any) {
	if in.log != nil {
		in.log.Debug(msg, args...)
	}
}

func abiError(format string, args ...any) error {
	return &FilterError{Kind: FailABI, Err: fmt.Errorf(format, args...)}
}

// allocate calls samsa_alloc(size) and checks the result.
func (in *instance) allocate(ctx context.Context, size int) (uint32, error) {
	in.stack[0] = uint64(uint32(size))
	if err := in.alloc.CallWithStack(ctx, in.stack[:]); err != nil {
		return 0, err
	}
	ptr := uint32(in.stack[0])
	if ptr == 0 {
		return 0, &FilterError{Kind: FailMemory, Err: fmt.Errorf("samsa_alloc(%d) returned 0 (out of memory)", size)}
	}
	if uint64(ptr)+uint64(size) > uint64(in.mem.Size()) {
		return 0, abiError("samsa_alloc(%d) returned %#x, outside memory (%d bytes)", size, ptr, in.mem.Size())
	}
	return ptr, nil
}

func (in *instance) run(ctx context.Context, timeout time.Duration, path Path, topic string, partition int32, recs []Record, size int, dst []Decision) ([]Decision, error) {
	in.logs.begin()
	in.lim.hit = false
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	t0 := time.Now()
	in.guestTime = 0
	ptr, err := in.allocate(cctx, size)
	in.guestTime = time.Since(t0)
	if err != nil {
		var fe *FilterError
		if errors.As(err, &fe) {
			return nil, err
		}
		return nil, in.failure(ctx, cctx, fmt.Errorf("samsa_alloc: %w", err))
	}
	buf, _ := in.mem.Read(ptr, uint32(size)) // bounds checked by allocate
	encodeInput(buf, topic, partition, recs)

	in.stack[0], in.stack[1] = uint64(ptr), uint64(size)
	t0 = time.Now()
	err = in.filter.CallWithStack(cctx, in.stack[:])
	in.guestTime += time.Since(t0)
	if err != nil {
		return nil, in.failure(ctx, cctx, fmt.Errorf("samsa_filter: %w", err))
	}
	res := int64(in.stack[0])
	if res < 0 {
		return nil, &FilterError{Kind: FailGuest, Err: fmt.Errorf("samsa_filter returned an error (%d)%s", res, in.logs.lastStderr())}
	}
	optr, olen := uint32(uint64(res)>>32), uint32(res)
	if uint64(optr)+uint64(olen) > uint64(in.mem.Size()) {
		return nil, abiError("samsa_filter returned output at %#x, %d bytes: outside memory (%d bytes)", optr, olen, in.mem.Size())
	}
	out, _ := in.mem.Read(optr, olen)
	ds, err := in.dec.decode(out, len(recs), path, dst)
	if err != nil {
		return nil, abiError("bad output: %v", err)
	}
	return ds, nil
}

// memLimiter backs one instance's linear memory and refuses to grow it
// past limit bytes (see the package doc).
type memLimiter struct {
	limit uint64
	hit   bool // a growth was refused (read and reset by the owning goroutine)
	buf   []byte
}

func (l *memLimiter) Allocate(capacity, _ uint64) experimental.LinearMemory {
	l.buf = make([]byte, 0, min(capacity, l.limit))
	return l
}

func (l *memLimiter) Reallocate(size uint64) []byte {
	if size > l.limit {
		l.hit = true
		return nil
	}
	if size <= uint64(cap(l.buf)) {
		// Capacity past the old length was never visible to the guest and
		// is still zero.
		l.buf = l.buf[:size]
		return l.buf
	}
	newCap := min(max(size, 2*uint64(cap(l.buf))), l.limit)
	nb := make([]byte, size, newCap)
	copy(nb, l.buf)
	l.buf = nb
	return nb
}

func (l *memLimiter) Free() { l.buf = nil }

// logSink collects one instance's stdout and stderr as lines, at most
// MaxLogBytesPerCall bytes per call.
type logSink struct {
	lines   []LogLine
	start   int // index in lines of the current call's first line
	partial [2][]byte
	used    int
	cut     bool
}

var streamNames = [2]string{"stdout", "stderr"}

// begin starts a call's budget.
func (s *logSink) begin() { s.used, s.cut, s.start = 0, false, len(s.lines) }

func (s *logSink) reset() {
	s.begin()
	s.lines = nil
	s.partial[0], s.partial[1] = s.partial[0][:0], s.partial[1][:0]
}

func (s *logSink) write(stream int, p []byte) {
	if s.cut {
		return
	}
	if room := MaxLogBytesPerCall - s.used; len(p) > room {
		p = p[:room]
		s.cut = true
	}
	s.used += len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			s.partial[stream] = append(s.partial[stream], p...)
			break
		}
		s.emit(stream, p[:i])
		p = p[i+1:]
	}
	if s.cut {
		s.flush()
		s.lines = append(s.lines, LogLine{Stream: streamNames[stream],
			Line: fmt.Sprintf("[samsa: the rest of this call's output was cut at %d bytes]", MaxLogBytesPerCall)})
	}
}

func (s *logSink) emit(stream int, tail []byte) {
	line := s.partial[stream]
	if len(line) > 0 {
		line = append(line, tail...)
		s.partial[stream] = line[:0]
	} else {
		line = tail
	}
	line = trimCR(line)
	s.lines = append(s.lines, LogLine{Stream: streamNames[stream], Line: string(line)})
}

func trimCR(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\r' {
		return b[:n-1]
	}
	return b
}

// flush ends unterminated lines.
func (s *logSink) flush() {
	for i := range s.partial {
		if len(s.partial[i]) > 0 {
			s.emit(i, nil)
		}
	}
}

// take ends the call: it returns the lines collected since the last take.
func (s *logSink) take() []LogLine {
	s.flush()
	l := s.lines
	s.lines = nil
	return l
}

// lastStderr returns ": stderr: " and the first non-empty stderr line of
// the current call (for a Go panic, the panic message), for error
// messages, or "".
func (s *logSink) lastStderr() string {
	for _, l := range s.lines[min(s.start, len(s.lines)):] {
		if l.Stream == "stderr" && strings.TrimSpace(l.Line) != "" && !strings.HasPrefix(l.Line, "[samsa:") {
			return ": stderr: " + l.Line
		}
	}
	if p := s.partial[1]; len(p) > 0 {
		return ": stderr: " + string(trimCR(p))
	}
	return ""
}

type streamWriter struct {
	sink   *logSink
	stream int
}

func (w *streamWriter) Write(p []byte) (int, error) {
	w.sink.write(w.stream, p)
	return len(p), nil
}
