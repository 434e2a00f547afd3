package samsa

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// Produce appends rec to topic and waits for its ack. Records produced
// concurrently (Produce from many goroutines, ProduceAsync) are batched
// into one produce request per topic. Canceling ctx stops the wait, not
// the produce: a record already queued may still be appended.
func (c *Client) Produce(ctx context.Context, topic string, rec Record) (Ack, error) {
	ch := make(chan prodResult, 1)
	c.ProduceAsync(ctx, topic, rec, func(a Ack, err error) { ch <- prodResult{a, err} })
	select {
	case r := <-ch:
		return r.ack, r.err
	case <-ctx.Done():
		return Ack{}, ctx.Err()
	}
}

type prodResult struct {
	ack Ack
	err error
}

// ProduceAsync queues rec for topic and returns; cb (which may be nil) is
// called exactly once with the ack or the error, from the client's reader
// goroutine: it must not block. Records are sent in the order they were
// queued; the acks of one topic come in that order too. ProduceAsync
// blocks while Options.MaxBufferedRecords records wait to be sent, up to
// ctx (cb then gets ctx's error). rec's byte slices must not be modified
// until cb runs.
//
// Records that were sent when a connection was lost fail with
// ErrDisconnected (or are resent with Options.RetryInflight); records not
// yet sent wait for the next connection.
func (c *Client) ProduceAsync(ctx context.Context, topic string, rec Record, cb func(Ack, error)) {
	if cb == nil {
		cb = func(Ack, error) {}
	}
	if topic == "" {
		cb(Ack{}, &Error{Code: CodeBadRequest, Message: "produce: topic is required"})
		return
	}
	c.prod.enqueue(ctx, prodItem{topic: topic, rec: rec, cb: cb, json: !c.opts.Binary || !rec.Timestamp.IsZero()})
}

// Flush waits until every record queued so far has been acknowledged or
// has failed.
func (c *Client) Flush(ctx context.Context) error {
	return c.prod.flush(ctx)
}

type prodItem struct {
	topic string
	rec   Record
	cb    func(Ack, error)
	json  bool
}

// prodOp is one produce request in flight.
type prodOp struct {
	id    uint32
	topic string
	items []prodItem
}

type producer struct {
	c *Client

	mu          sync.Mutex
	q           []prodItem // queued, not yet sent: q[head:]
	head        int
	spaceWait   chan struct{} // closed when the queue shrinks (nil: nobody waits)
	outstanding int           // queued or in flight
	idle        chan struct{} // closed when outstanding drops to 0
	err         error         // terminal

	notify  chan struct{}
	frame   []byte // encode buffer of the loop
	opsSent atomic.Int64
	ops     sync.Pool
}

func (p *producer) init(c *Client) {
	p.c = c
	p.notify = make(chan struct{}, 1)
	p.ops.New = func() any { return new(prodOp) }
}

func (p *producer) wake() {
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

func (p *producer) enqueue(ctx context.Context, it prodItem) {
	p.mu.Lock()
	for p.err == nil && len(p.q)-p.head >= p.c.opts.MaxBufferedRecords {
		if p.spaceWait == nil {
			p.spaceWait = make(chan struct{})
		}
		ch := p.spaceWait
		p.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			it.cb(Ack{}, ctx.Err())
			return
		}
		p.mu.Lock()
	}
	if err := p.err; err != nil {
		p.mu.Unlock()
		it.cb(Ack{}, err)
		return
	}
	if len(p.q) == cap(p.q) && p.head > 0 && p.head >= len(p.q)/2 {
		// Reuse the consumed front (amortized: at most half is copied).
		n := copy(p.q, p.q[p.head:])
		clear(p.q[n:])
		p.q = p.q[:n]
		p.head = 0
	}
	p.q = append(p.q, it)
	p.outstanding++
	p.mu.Unlock()
	p.wake()
}

func (p *producer) flush(ctx context.Context) error {
	p.mu.Lock()
	if p.outstanding == 0 {
		p.mu.Unlock()
		return nil
	}
	if p.idle == nil {
		p.idle = make(chan struct{})
	}
	ch := p.idle
	p.mu.Unlock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// completed accounts for n records that got their callback.
func (p *producer) completed(n int) {
	p.mu.Lock()
	p.outstanding -= n
	if p.outstanding == 0 && p.idle != nil {
		close(p.idle)
		p.idle = nil
	}
	p.mu.Unlock()
}

// loop sends the queued records, one produce request per topic at a time,
// up to MaxInflight requests per connection.
func (p *producer) loop() {
	c := p.c
	for {
		select {
		case <-p.notify:
		case <-c.ctx.Done():
			return
		}
		for {
			s, err := c.current(c.ctx)
			if err != nil {
				return
			}
			select {
			case <-s.slots:
			case <-s.done:
				continue
			case <-c.ctx.Done():
				return
			}
			op := p.take(s)
			if op == nil {
				s.slots <- struct{}{}
				break
			}
			isJSON := op.items[0].json // op belongs to the reader once registered
			if !s.register(op.id, &call{op: op}) {
				p.requeue(op.items)
				p.recycle(op)
				s.waitDone(c.ctx)
				continue
			}
			p.opsSent.Add(1)
			var werr error
			if isJSON {
				werr = s.writeText(p.frame)
			} else {
				werr = s.writeBinary(p.frame)
			}
			if werr != nil {
				// The reader fails or requeues the request.
				s.waitDone(c.ctx)
			}
		}
	}
}

// take removes the next request's records from the queue and encodes
// them into p.frame: records of the first queued record's topic (and
// framing), in queue order, up to the batch size. Records of other topics
// keep their places.
func (p *producer) take(s *session) *prodOp {
	c := p.c
	maxFrame := s.limits.MaxFrameBytes - 64
	budget := min(c.opts.MaxBatchBytes, maxFrame)
	p.mu.Lock()
	if p.head == len(p.q) {
		p.mu.Unlock()
		return nil
	}
	op := p.ops.Get().(*prodOp)
	op.id = c.nextID.Add(1)
	first := &p.q[p.head]
	op.topic = first.topic
	mode := first.json
	budget -= 64 + len(op.topic)
	size := 0
	end := p.head
	kept := 0
	const maxSkip = 4096
	for ; end < len(p.q); end++ {
		it := &p.q[end]
		if it.topic != op.topic || it.json != mode {
			if kept++; kept > maxSkip {
				break
			}
			continue
		}
		n := estimate(&it.rec, mode)
		if len(op.items) > 0 && size+n > budget {
			break
		}
		size += n
		op.items = append(op.items, *it)
		it.topic = "" // marks taken
	}
	// Close the holes: the kept records move up, in order, to end at end.
	w := end
	for r := end - 1; r >= p.head; r-- {
		if p.q[r].topic != "" {
			w--
			p.q[w] = p.q[r]
		}
	}
	clear(p.q[p.head:w])
	p.head = w
	if p.head == len(p.q) {
		p.q = p.q[:0]
		p.head = 0
	}
	if p.spaceWait != nil {
		close(p.spaceWait)
		p.spaceWait = nil
	}
	p.mu.Unlock()

	// Encode; a request over the frame limit is split (the rest goes back
	// to the front of the queue); a single record over it fails.
	for {
		if mode {
			p.frame = appendJSONProduce(p.frame[:0], op.id, op.topic, op.items)
		} else {
			p.frame = appendBinaryProduce(p.frame[:0], op.id, op.topic, op.items)
		}
		if len(p.frame) <= s.limits.MaxFrameBytes {
			return op
		}
		if len(op.items) == 1 {
			it := op.items[0]
			p.recycle(op)
			it.cb(Ack{}, &Error{Code: CodeTooLarge, Message: fmt.Sprintf("record of %d bytes exceeds the server's max_frame_bytes %d", len(it.rec.Value), s.limits.MaxFrameBytes)})
			p.completed(1)
			return p.take(s)
		}
		half := len(op.items) / 2
		p.requeue(op.items[half:])
		clear(op.items[half:])
		op.items = op.items[:half]
	}
}

// estimate is the encoded size of a record, an upper bound for binary
// frames and a usual one for JSON (the encoder splits what overflows).
func estimate(r *Record, json bool) int {
	n := binaryRecordSize(r)
	if json {
		n = 2*n + 64 + 40*len(r.Headers)
	}
	return n
}

// requeue puts items back at the front of the queue, in order.
func (p *producer) requeue(items []prodItem) {
	if len(items) == 0 {
		return
	}
	p.mu.Lock()
	if err := p.err; err != nil {
		p.mu.Unlock()
		for _, it := range items {
			it.cb(Ack{}, err)
		}
		p.completed(len(items))
		return
	}
	if p.head >= len(items) {
		p.head -= len(items)
		copy(p.q[p.head:], items)
	} else {
		q := make([]prodItem, 0, len(items)+len(p.q)-p.head+16)
		q = append(q, items...)
		q = append(q, p.q[p.head:]...)
		p.q, p.head = q, 0
	}
	p.mu.Unlock()
	p.wake()
}

func (p *producer) recycle(op *prodOp) {
	clear(op.items)
	if cap(op.items) > 1<<16 {
		op.items = nil
	}
	op.items = op.items[:0]
	p.ops.Put(op)
}

// acked completes op: err, or n results.
func (p *producer) acked(s *session, op *prodOp, err error, n int, result func(int) (int32, int64)) {
	s.slots <- struct{}{}
	if err == nil && n != len(op.items) {
		err = &Error{Code: CodeInternal, Message: fmt.Sprintf("ack has %d results for %d records", n, len(op.items))}
	}
	for i := range op.items {
		it := &op.items[i]
		if err != nil {
			it.cb(Ack{}, err)
			continue
		}
		part, off := result(i)
		it.cb(Ack{Topic: op.topic, Partition: part, Offset: off}, nil)
	}
	p.completed(len(op.items))
	p.recycle(op)
}

// disconnected handles the requests in flight on a lost connection.
func (p *producer) disconnected(ops []*prodOp) {
	if len(ops) == 0 {
		return
	}
	slices.SortFunc(ops, func(a, b *prodOp) int { return int(int32(a.id - b.id)) })
	if p.c.opts.RetryInflight {
		// Requeue the last first so that the queue keeps the send order.
		for i := len(ops) - 1; i >= 0; i-- {
			p.requeue(ops[i].items)
			p.recycle(ops[i])
		}
		return
	}
	for _, op := range ops {
		for _, it := range op.items {
			it.cb(Ack{}, ErrDisconnected)
		}
		p.completed(len(op.items))
		p.recycle(op)
	}
}

// shutdown fails every queued record with err.
func (p *producer) shutdown(err error) {
	p.mu.Lock()
	if p.err == nil {
		p.err = err
	}
	items := p.q[p.head:]
	p.q, p.head = nil, 0
	if p.spaceWait != nil {
		close(p.spaceWait)
		p.spaceWait = nil
	}
	p.mu.Unlock()
	for _, it := range items {
		it.cb(Ack{}, err)
	}
	p.completed(len(items))
}
