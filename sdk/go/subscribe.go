package samsa

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"
)

// From is where a subscription starts; the zero value is Latest.
type From struct {
	kind int // 0 latest, 1 earliest, 2 offset, 3 offsets, 4 timestamp
	n    int64
	offs map[int32]int64
}

// Latest: only records produced from now on (the high watermark).
func Latest() From { return From{} }

// Earliest: the log start offset.
func Earliest() From { return From{kind: 1} }

// AtOffset: offset n in every partition.
func AtOffset(n int64) From { return From{kind: 2, n: n} }

// AtOffsets: per partition; partitions missing from m start at the
// earliest offset.
func AtOffsets(m map[int32]int64) From { return From{kind: 3, offs: m} }

// AtTime: per partition the first record at or after t.
func AtTime(t time.Time) From { return From{kind: 4, n: t.UnixMilli()} }

func (f From) appendJSON(b []byte) []byte {
	switch f.kind {
	case 1:
		return append(b, `"earliest"`...)
	case 2:
		return append(strconv.AppendInt(append(b, `{"offset":`...), f.n, 10), '}')
	case 3:
		return appendOffsetMap(append(b, `{"offsets":`...), f.offs)
	case 4:
		return append(strconv.AppendInt(append(b, `{"timestamp":`...), f.n, 10), '}')
	}
	return append(b, `"latest"`...)
}

func appendOffsetMap(b []byte, m map[int32]int64) []byte {
	keys := make([]int32, 0, len(m))
	for p := range m {
		keys = append(keys, p)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, p := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '"')
		b = strconv.AppendInt(b, int64(p), 10)
		b = append(b, `":`...)
		b = strconv.AppendInt(b, m[p], 10)
	}
	return append(b, "}}"...)
}

func appendOffsetList(b []byte, m map[int32]int64) []byte {
	keys := make([]int32, 0, len(m))
	for p := range m {
		keys = append(keys, p)
	}
	slices.Sort(keys)
	b = append(b, '[')
	for i, p := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"partition":`...)
		b = strconv.AppendInt(b, int64(p), 10)
		b = append(b, `,"offset":`...)
		b = strconv.AppendInt(b, m[p], 10)
		b = append(b, '}')
	}
	return append(b, ']')
}

// Filter names a deployed consume filter and its parameters.
type Filter struct {
	Name   string
	Params any // marshaled with encoding/json; nil: none
}

// SubscribeOptions configure a subscription.
type SubscribeOptions struct {
	// From: where to start (default Latest). After a reconnect the
	// subscription resumes where it was, whatever From says.
	From From
	// Partitions to read; nil: every partition. Not with Group.
	Partitions []int32
	// Group makes the subscription a member of this consumer group
	// (range assignor, shared with Kafka consumers).
	Group string
	// SessionTimeout of the group member (0: the server's default).
	SessionTimeout time.Duration
	// Filter runs a deployed consume filter on the deliveries.
	Filter *Filter
	// Credit is the flow control window: records the server may send
	// that Next has not returned yet. 1000.
	Credit int
	// Format of deliveries: "json" or "binary"; "" follows
	// Options.Binary. Values arrive byte-exact either way.
	Format string
	// OnAssigned and OnRevoked are called (from the reader goroutine) on
	// group rebalances.
	OnAssigned func(generation int32, partitions []PartitionOffset)
	OnRevoked  func(partitions []int32)
}

// PartitionOffset is a partition's start offset and high watermark, as
// reported by subscribed and assigned.
type PartitionOffset struct {
	Partition     int32
	Offset        int64
	HighWatermark int64
}

// Subscription is a stream of records of one topic. It survives
// reconnects: it resubscribes from the next offset of every partition, so
// that Next returns each record once, in offset order per partition.
type Subscription struct {
	c      *Client
	name   string
	seq    int
	topic  string
	opts   SubscribeOptions
	binary bool
	credit int
	ctx    context.Context
	cancel context.CancelFunc

	wmu sync.Mutex // orders the subscription's own writes (subscribe, credit, commit)

	mu         sync.Mutex
	sess       *session // the connection it is subscribed on
	q          []Record
	head       int
	notify     chan struct{}
	next       map[int32]int64 // resume state: next offset per partition
	consumed   map[int32]int64 // next offset after what Next returned
	unreported int             // credit used and not yet granted back
	parts      []PartitionOffset
	err        error
	ready      chan struct{}
	isReady    bool
	readyErr   error

	chOnce sync.Once
	ch     chan Record
}

// Subscribe subscribes to topic and waits for the server's confirmation.
func (c *Client) Subscribe(ctx context.Context, topic string, opts SubscribeOptions) (*Subscription, error) {
	if topic == "" {
		return nil, &Error{Code: CodeBadRequest, Message: "subscribe: topic is required"}
	}
	if opts.Group != "" && opts.Partitions != nil {
		return nil, &Error{Code: CodeBadRequest, Message: "subscribe: partitions are not allowed with a group"}
	}
	if opts.Credit <= 0 {
		opts.Credit = 1000
	}
	sub := &Subscription{
		c: c, topic: topic, opts: opts, credit: opts.Credit,
		binary: opts.Format == "binary" || (opts.Format == "" && c.opts.Binary),
		notify: make(chan struct{}, 1), next: make(map[int32]int64), consumed: make(map[int32]int64),
		ready: make(chan struct{}),
	}
	sub.ctx, sub.cancel = context.WithCancel(c.ctx)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		sub.cancel()
		return nil, err
	}
	c.subSeq++
	sub.seq = c.subSeq
	sub.name = "s" + strconv.Itoa(sub.seq)
	c.subs = append(c.subs, sub)
	s := c.sess
	c.mu.Unlock()
	if s != nil {
		sub.subscribeOn(s)
	}
	select {
	case <-sub.ready:
		if sub.readyErr != nil {
			return nil, sub.readyErr
		}
		return sub, nil
	case <-ctx.Done():
		sub.Close()
		return nil, ctx.Err()
	}
}

func (c *Client) subByName(name string) *Subscription {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.subs {
		if s.name == name {
			return s
		}
	}
	return nil
}

func (c *Client) subTopic(name string) string {
	if s := c.subByName(name); s != nil {
		return s.topic
	}
	return ""
}

func (c *Client) removeSub(sub *Subscription) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i := slices.Index(c.subs, sub); i >= 0 {
		c.subs = slices.Delete(c.subs, i, i+1)
	}
}

// Topic of the subscription.
func (sub *Subscription) Topic() string { return sub.topic }

// Partitions as the last subscribed (or assigned) reported them.
func (sub *Subscription) Partitions() []PartitionOffset {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return slices.Clone(sub.parts)
}

// Positions is the next offset per partition after the records received
// so far (the resume state).
func (sub *Subscription) Positions() map[int32]int64 {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	m := make(map[int32]int64, len(sub.next))
	for p, o := range sub.next {
		m[p] = o
	}
	return m
}

// Err is the error that ended the subscription (nil while it runs).
func (sub *Subscription) Err() error {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return sub.err
}

// subscribeOn sends the subscribe request on s: from the resume state
// when there is one, with the credit left in the window.
func (sub *Subscription) subscribeOn(s *session) {
	sub.wmu.Lock()
	defer sub.wmu.Unlock()
	sub.mu.Lock()
	if sub.err != nil {
		sub.mu.Unlock()
		return
	}
	sub.sess = s
	sub.unreported = 0
	credit := max(1, sub.credit-(len(sub.q)-sub.head))
	var from []byte
	if len(sub.next) > 0 {
		from = appendOffsetMap(append(from, `{"offsets":`...), sub.next)
	} else {
		from = sub.opts.From.appendJSON(nil)
	}
	sub.mu.Unlock()

	id := sub.c.nextID.Add(1)
	b := make([]byte, 0, 256)
	b = fmt.Appendf(b, `{"op":"subscribe","id":%d,"sub":"%s","topic":`, id, sub.name)
	b = appendJSONString(b, sub.topic)
	if sub.opts.Partitions != nil {
		b = append(b, `,"partitions":[`...)
		for i, p := range sub.opts.Partitions {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(p), 10)
		}
		b = append(b, ']')
	}
	b = append(b, `,"from":`...)
	b = append(b, from...)
	if sub.opts.Group != "" {
		b = append(b, `,"group":`...)
		b = appendJSONString(b, sub.opts.Group)
		if sub.opts.SessionTimeout > 0 {
			b = fmt.Appendf(b, `,"session_timeout_ms":%d`, sub.opts.SessionTimeout.Milliseconds())
		}
	}
	if f := sub.opts.Filter; f != nil {
		b = append(b, `,"filter":{"name":`...)
		b = appendJSONString(b, f.Name)
		if f.Params != nil {
			pj, err := json.Marshal(f.Params)
			if err != nil {
				sub.failSubscribe(s, &Error{Code: CodeBadRequest, Message: "filter params: " + err.Error()})
				return
			}
			b = append(b, `,"params":`...)
			b = append(b, pj...)
		}
		b = append(b, '}')
	}
	b = fmt.Appendf(b, `,"credit":%d,"encoding":"text","key_encoding":"text"`, credit)
	if sub.binary {
		b = append(b, `,"format":"binary"`...)
	}
	b = append(b, '}')
	if !s.register(id, &call{fn: func(e *envelope, err error) { sub.reply(s, e, err) }}) {
		return // the next connection resubscribes
	}
	_ = s.writeText(b)
}

// reply handles the answer to a subscribe.
func (sub *Subscription) reply(s *session, e *envelope, err error) {
	if err == ErrDisconnected {
		return // resubscribed on the next connection
	}
	if err != nil {
		sub.failSubscribe(s, err)
		return
	}
	sub.mu.Lock()
	if sub.sess != s {
		sub.mu.Unlock()
		return
	}
	if e.Group == "" || len(e.Partitions) > 0 {
		sub.parts = sub.parts[:0]
		for _, p := range e.Partitions {
			sub.next[p.Partition] = p.Offset
			sub.parts = append(sub.parts, PartitionOffset(p))
		}
	}
	if !sub.isReady {
		sub.isReady = true
		close(sub.ready)
	}
	sub.mu.Unlock()
}

func (sub *Subscription) failSubscribe(s *session, err error) {
	sub.mu.Lock()
	if !sub.isReady {
		sub.isReady = true
		sub.readyErr = err
		sub.err = err
		close(sub.ready)
		sub.mu.Unlock()
		sub.c.removeSub(sub)
		sub.cancel()
		return
	}
	sub.mu.Unlock()
	if IsRetriable(err) {
		// E.g. filters briefly unavailable: try again on this connection.
		time.AfterFunc(sub.c.backoff(2), func() {
			sub.mu.Lock()
			same := sub.sess == s && sub.err == nil
			sub.mu.Unlock()
			if same && !s.isDead() {
				sub.subscribeOn(s)
			}
		})
		return
	}
	sub.end(err)
}

// serverError: an error that ended the subscription on the server.
func (sub *Subscription) serverError(s *session, err *Error) {
	sub.mu.Lock()
	same := sub.sess == s
	sub.mu.Unlock()
	if same {
		sub.failSubscribe(s, err)
	}
}

// end ends the subscription with err: Next returns err once the records
// already received are consumed.
func (sub *Subscription) end(err error) {
	sub.mu.Lock()
	if sub.err == nil {
		sub.err = err
	}
	if !sub.isReady {
		sub.isReady = true
		sub.readyErr = err
		close(sub.ready)
	}
	sub.sess = nil
	sub.mu.Unlock()
	sub.c.removeSub(sub)
	sub.signal()
	sub.cancel()
}

func (sub *Subscription) signal() {
	select {
	case sub.notify <- struct{}{}:
	default:
	}
}

// deliver queues records that arrived on s.
func (sub *Subscription) deliver(s *session, recs []Record) {
	sub.mu.Lock()
	if sub.sess != s || sub.err != nil {
		sub.mu.Unlock()
		return
	}
	if sub.head > 0 && sub.head == len(sub.q) {
		clear(sub.q)
		sub.q, sub.head = sub.q[:0], 0
	}
	dropped := 0
	for i := range recs {
		r := &recs[i]
		if n, ok := sub.next[r.Partition]; ok && r.Offset < n {
			dropped++ // already delivered (a batch re-read from its start)
			continue
		}
		sub.next[r.Partition] = r.Offset + 1
		sub.q = append(sub.q, *r)
	}
	sub.unreported += dropped
	sub.mu.Unlock()
	if dropped > 0 {
		sub.grant()
	}
	sub.signal()
}

// event handles reset, assigned and revoked.
func (sub *Subscription) event(s *session, e *envelope) {
	sub.mu.Lock()
	if sub.sess != s {
		sub.mu.Unlock()
		return
	}
	var assigned []PartitionOffset
	var revoked []int32
	switch e.Type {
	case "reset":
		sub.next[e.Partition] = e.Offset
	case "assigned":
		clear(sub.next)
		sub.parts = sub.parts[:0]
		for _, p := range e.Partitions {
			sub.next[p.Partition] = p.Offset
			sub.parts = append(sub.parts, PartitionOffset(p))
		}
		assigned = slices.Clone(sub.parts)
	case "revoked":
		for _, p := range e.Partitions {
			delete(sub.next, p.Partition)
			revoked = append(revoked, p.Partition)
		}
		sub.parts = slices.DeleteFunc(sub.parts, func(po PartitionOffset) bool { return slices.Contains(revoked, po.Partition) })
	}
	sub.mu.Unlock()
	if e.Type == "assigned" && sub.opts.OnAssigned != nil {
		sub.opts.OnAssigned(e.Generation, assigned)
	}
	if e.Type == "revoked" && sub.opts.OnRevoked != nil {
		sub.opts.OnRevoked(revoked)
	}
}

// grant gives the server back the credit of consumed records once half
// the window is used.
func (sub *Subscription) grant() {
	sub.mu.Lock()
	if sub.unreported < max(1, sub.credit/2) || sub.sess == nil || sub.err != nil {
		sub.mu.Unlock()
		return
	}
	sub.mu.Unlock()
	sub.wmu.Lock()
	defer sub.wmu.Unlock()
	sub.mu.Lock()
	s, n := sub.sess, sub.unreported
	if n < max(1, sub.credit/2) || s == nil || sub.err != nil {
		sub.mu.Unlock()
		return
	}
	sub.unreported = 0
	sub.mu.Unlock()
	b := fmt.Appendf(nil, `{"op":"credit","sub":"%s","records":%d}`, sub.name, n)
	_ = s.writeText(b)
}

// Next returns the next record, waiting for one up to ctx. After the
// subscription ended (Close, a server error, the client closed) it returns
// the records already received, then the error.
func (sub *Subscription) Next(ctx context.Context) (Record, error) {
	for {
		sub.mu.Lock()
		if sub.head < len(sub.q) {
			r := sub.q[sub.head]
			sub.q[sub.head] = Record{}
			sub.head++
			more := sub.head < len(sub.q)
			sub.consumed[r.Partition] = r.Offset + 1
			sub.unreported++
			need := sub.unreported >= max(1, sub.credit/2)
			sub.mu.Unlock()
			if need {
				sub.grant()
			}
			if more {
				sub.signal()
			}
			return r, nil
		}
		if err := sub.err; err != nil {
			sub.mu.Unlock()
			return Record{}, err
		}
		sub.mu.Unlock()
		select {
		case <-sub.notify:
		case <-ctx.Done():
			return Record{}, ctx.Err()
		}
	}
}

// C returns a channel of the records (started on first call; Next and C
// should not be mixed). It is closed when the subscription ends; Err then
// says why. A record taken from Next by the channel's goroutine counts as
// consumed for Commit.
func (sub *Subscription) C() <-chan Record {
	sub.chOnce.Do(func() {
		sub.ch = make(chan Record)
		go func() {
			defer close(sub.ch)
			for {
				r, err := sub.Next(context.Background())
				if err != nil {
					return
				}
				select {
				case sub.ch <- r:
				case <-sub.ctx.Done():
					return
				}
			}
		}()
	})
	return sub.ch
}

// Close unsubscribes. Records already received are still returned by
// Next, then ErrSubscriptionClosed.
func (sub *Subscription) Close() error {
	sub.mu.Lock()
	s := sub.sess
	already := sub.err != nil
	sub.mu.Unlock()
	sub.end(ErrSubscriptionClosed)
	if already || s == nil || s.isDead() {
		return nil
	}
	ch := make(chan error, 1)
	id := sub.c.nextID.Add(1)
	if !s.register(id, &call{fn: func(_ *envelope, err error) { ch <- err }}) {
		return nil
	}
	if err := s.writeText(fmt.Appendf(nil, `{"op":"unsubscribe","id":%d,"sub":"%s"}`, id, sub.name)); err != nil {
		return nil
	}
	select {
	case err := <-ch:
		if err == ErrDisconnected {
			return nil
		}
		return err
	case <-time.After(5 * time.Second):
		s.unregister(id)
		return nil
	}
}

// Commit commits, as the group member, the position after the records
// Next returned (Kafka semantics: the next offset to read). Only for
// group subscriptions; see Client.CommitOffsets otherwise.
func (sub *Subscription) Commit(ctx context.Context) error {
	sub.mu.Lock()
	m := make(map[int32]int64, len(sub.consumed))
	for p, o := range sub.consumed {
		m[p] = o
	}
	sub.mu.Unlock()
	if len(m) == 0 {
		return nil
	}
	return sub.CommitOffsets(ctx, m)
}

// CommitOffsets commits offsets (next offset to read, per partition) as
// the group member. During a rebalance it fails with ErrUnavailable
// (retriable).
func (sub *Subscription) CommitOffsets(ctx context.Context, offsets map[int32]int64) error {
	if sub.opts.Group == "" {
		return &Error{Code: CodeBadRequest, Message: "commit: not a group subscription; use Client.CommitOffsets"}
	}
	for {
		sub.wmu.Lock()
		sub.mu.Lock()
		s, err := sub.sess, sub.err
		sub.mu.Unlock()
		if err != nil {
			sub.wmu.Unlock()
			return err
		}
		if s == nil || s.isDead() {
			sub.wmu.Unlock()
			select {
			case <-time.After(20 * time.Millisecond):
				continue
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		ch := make(chan error, 1)
		id := sub.c.nextID.Add(1)
		ok := s.register(id, &call{fn: func(_ *envelope, err error) { ch <- err }})
		if ok {
			b := fmt.Appendf(nil, `{"op":"commit","id":%d,"sub":"%s","offsets":`, id, sub.name)
			b = appendOffsetList(b, offsets)
			_ = s.writeText(append(b, '}'))
		}
		sub.wmu.Unlock()
		if !ok {
			continue
		}
		select {
		case err := <-ch:
			if err == ErrDisconnected {
				continue
			}
			return err
		case <-ctx.Done():
			s.unregister(id)
			return ctx.Err()
		}
	}
}
