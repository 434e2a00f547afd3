package websocket

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/samsa-broker/samsa/auth"
	"github.com/samsa-broker/samsa/broker"
	"github.com/samsa-broker/samsa/broker/record"
)

// ConsumeFilter runs a deployed filter, by name and with parameters, on the
// records of one batch on the consume path of a subscription. The broker
// provides it (see the package README of the report); nil in Options turns
// subscription filters off.
type ConsumeFilter interface {
	// FilterRecords runs the latest version of the deployed filter name
	// with params on recs, the records of one batch of topic/partition
	// in offset order, and returns the records to deliver in offset
	// order: dropped records are left out, rewritten ones carry their new
	// key, value and headers and keep their source offset. With no
	// records it only checks that the filter exists. Errors: wrapping
	// ErrFilterNotFound (no such filter) or ErrFilterUnavailable
	// (filters are off); any other error is a failure of the filter.
	FilterRecords(ctx context.Context, name string, params json.RawMessage, topic string, partition int32, recs []record.Record) ([]record.Record, error)
}

// fromKind is where a subscription starts.
type fromKind uint8

const (
	fromLatest fromKind = iota
	fromEarliest
	fromOffset
	fromOffsets
	fromTimestamp
)

type fromSpec struct {
	kind fromKind
	n    int64 // offset or timestamp
	offs map[int32]int64
}

func parseFrom(raw json.RawMessage) (fromSpec, *protoError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return fromSpec{kind: fromLatest}, nil
	}
	if raw[0] == '"' {
		var s string
		_ = json.Unmarshal(raw, &s)
		switch s {
		case "earliest":
			return fromSpec{kind: fromEarliest}, nil
		case "latest":
			return fromSpec{kind: fromLatest}, nil
		}
		return fromSpec{}, errf(codeBadRequest, "from: want \"earliest\", \"latest\", {\"offset\":N}, {\"offsets\":{...}} or {\"timestamp\":ms}")
	}
	var o struct {
		Offset    *int64           `json:"offset"`
		Offsets   map[string]int64 `json:"offsets"`
		Timestamp *int64           `json:"timestamp"`
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		return fromSpec{}, errf(codeBadRequest, "from: %v", err)
	}
	switch {
	case o.Offset != nil:
		return fromSpec{kind: fromOffset, n: *o.Offset}, nil
	case o.Offsets != nil:
		f := fromSpec{kind: fromOffsets, offs: make(map[int32]int64, len(o.Offsets))}
		for k, v := range o.Offsets {
			p, err := strconv.ParseInt(k, 10, 32)
			if err != nil || p < 0 {
				return fromSpec{}, errf(codeBadRequest, "from.offsets: bad partition %q", k)
			}
			f.offs[int32(p)] = v
		}
		return f, nil
	case o.Timestamp != nil:
		return fromSpec{kind: fromTimestamp, n: *o.Timestamp}, nil
	}
	return fromSpec{}, errf(codeBadRequest, "from: want \"earliest\", \"latest\", {\"offset\":N}, {\"offsets\":{...}} or {\"timestamp\":ms}")
}

// partState is an assigned partition and the next offset to deliver.
type partState struct {
	p    int32
	next int64
	hwm  int64
	att  *attachment // non-nil while the partition's tailer delivers it (tail.go)
}

// subscription is one subscribe of a connection.
type subscription struct {
	c        *conn
	name     string
	topic    string // what the client subscribed to (a topic or a view)
	offTopic string // where offsets are asked (a view's source)
	binary   bool
	enc      string
	keyEnc   string
	filter   *filterRequest
	from     fromSpec
	// head starts every delivery message of the subscription; outKind and
	// format say how its records are encoded (tail.go shares encodings
	// between subscriptions of the same format).
	head    []byte
	outKind outKind
	format  string
	ctx     context.Context
	cancel  context.CancelFunc
	wake    chan struct{}
	done    chan struct{}

	mu          sync.Mutex
	credit      int64
	parts       []partState
	gen         uint64
	closed      bool
	fetchCancel context.CancelFunc
	grp         *member
}

func (s *subscription) wakeUp() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// stop ends the subscription: nothing of it is queued after stop returns.
func (s *subscription) stop() {
	s.mu.Lock()
	s.closed = true
	s.gen++
	if s.fetchCancel != nil {
		s.fetchCancel()
	}
	s.mu.Unlock()
	s.cancel()
}

const maxCredit = 1<<31 - 1

func (c *conn) subscribe(req *request) *protoError {
	b := c.s.b
	if req.Sub == "" || len(req.Sub) > 256 {
		return errf(codeBadRequest, "subscribe: sub must be 1 to 256 bytes")
	}
	if req.Topic == "" {
		return errf(codeBadRequest, "subscribe: topic is required")
	}
	enc, keyEnc := req.Encoding, req.KeyEncoding
	if enc == "" {
		enc = encAuto
	}
	if keyEnc == "" {
		keyEnc = encAuto
	}
	if !validEncoding(enc, true) || !validEncoding(keyEnc, true) {
		return errf(codeBadRequest, "subscribe: encoding must be auto, json, text or base64")
	}
	var bin bool
	switch req.Format {
	case "", "json":
	case "binary":
		bin = true
	default:
		return errf(codeBadRequest, "subscribe: format must be json or binary")
	}
	credit := int64(1000)
	if req.Credit != nil {
		credit = *req.Credit
		if credit < 1 || credit > maxCredit {
			return errf(codeBadRequest, "subscribe: credit must be 1 to %d", maxCredit)
		}
	}
	if req.Group != "" && req.Partitions != nil {
		return errf(codeBadRequest, "subscribe: partitions cannot be given with group (the group assigns them)")
	}
	from, perr := parseFrom(req.From)
	if perr != nil {
		return perr
	}
	// A filter runs on what the subscription may read: consume on the
	// topic (or view) covers it.
	if perr := c.allow(auth.ConsumeTopic, req.Topic); perr != nil {
		return perr
	}
	if req.Group != "" {
		if perr := c.allow(auth.JoinGroup, req.Group); perr != nil {
			return perr
		}
	}
	c.mu.Lock()
	_, dup := c.subs[req.Sub]
	n := len(c.subs)
	c.mu.Unlock()
	if dup {
		return errf(codeBadRequest, "subscribe: sub %q exists on this connection", req.Sub)
	}
	if n >= c.s.opts.MaxSubscriptions {
		return errf(codeLimit, "subscribe: at most %d subscriptions per connection", c.s.opts.MaxSubscriptions)
	}
	// A topic or a filtered view.
	offTopic := req.Topic
	info, err := b.View(req.Topic)
	if err == nil {
		offTopic = info.Source
	} else if info, err = b.Topic(req.Topic); err != nil {
		// A missing topic is created on first use, as by a producer, but
		// only for a user who may produce to it (auth.AutoCreateTopic):
		// reading alone creates nothing.
		if c.allow(auth.AutoCreateTopic, req.Topic) != nil {
			return toProto(err)
		}
		if info, err = b.AutoCreate(req.Topic); err != nil {
			return toProto(err)
		}
	}
	if req.Filter != nil {
		if req.Filter.Name == "" {
			return errf(codeBadRequest, "subscribe: filter.name is required")
		}
		if len(req.Filter.Params) > 64<<10 {
			return errf(codeTooLarge, "subscribe: filter.params over 64 KiB")
		}
		if c.s.opts.Filter == nil {
			return errf(codeUnavailable, "subscribe: consume filters are not available on this broker")
		}
		if _, err := c.s.opts.Filter.FilterRecords(c.ctx, req.Filter.Name, req.Filter.Params, req.Topic, 0, nil); err != nil {
			return toProto(err)
		}
	}
	s := &subscription{
		c: c, name: req.Sub, topic: req.Topic, offTopic: offTopic, binary: bin, enc: enc, keyEnc: keyEnc,
		filter: req.Filter, from: from, credit: credit,
		wake: make(chan struct{}, 1), done: make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(c.ctx)
	s.initFormat()
	var reply []byte
	if req.Group == "" {
		parts := req.Partitions
		if parts == nil {
			parts = make([]int32, info.Partitions)
			for i := range parts {
				parts[i] = int32(i)
			}
		}
		seen := make(map[int32]bool, len(parts))
		for _, p := range parts {
			if p < 0 || p >= info.Partitions {
				return errf(codeUnknownTopic, "subscribe: topic %q has %d partitions, no partition %d", req.Topic, info.Partitions, p)
			}
			if seen[p] {
				return errf(codeBadRequest, "subscribe: partition %d listed twice", p)
			}
			seen[p] = true
		}
		for _, p := range parts {
			next, hwm, err := c.s.startOffset(offTopic, p, from, -1)
			if err != nil {
				return toProto(err)
			}
			s.parts = append(s.parts, partState{p: p, next: next, hwm: hwm})
		}
		reply = s.partsReply("subscribed", req.ID, s.parts, nil)
	} else {
		st := c.s.opts.SessionTimeout
		if req.SessionTimeoutMs > 0 {
			st = time.Duration(req.SessionTimeoutMs) * time.Millisecond
		}
		s.grp = &member{group: req.Group, sessionTimeout: st}
		b := make([]byte, 0, 96)
		b = append(b, `{"type":"subscribed",`...)
		b = appendID(b, req.ID)
		b = append(b, `"sub":`...)
		b = appendString(b, s.name)
		b = append(b, `,"topic":`...)
		b = appendString(b, s.topic)
		b = append(b, `,"group":`...)
		b = appendString(b, req.Group)
		b = append(b, `,"partitions":[]}`...)
		reply = b
	}
	c.mu.Lock()
	if c.subs == nil {
		c.subs = make(map[string]*subscription)
	}
	if _, dup := c.subs[req.Sub]; dup {
		c.mu.Unlock()
		return errf(codeBadRequest, "subscribe: sub %q exists on this connection", req.Sub)
	}
	c.subs[req.Sub] = s
	c.mu.Unlock()
	c.sendText(reply)
	go s.run()
	if s.grp != nil {
		go s.runGroup()
	}
	return nil
}

// initFormat sets head, outKind and format from the delivery settings.
func (s *subscription) initFormat() {
	m := msgBuilder{s: s}
	m.start()
	if s.binary {
		s.head = m.buf[:len(m.buf)-4] // without the count, which starts a shared body
		s.outKind = outBinary
		s.format = "binary"
		return
	}
	s.head = m.buf
	s.outKind = outText
	s.format = "json:" + s.enc + ":" + s.keyEnc
}

// partsReply builds subscribed/assigned: {"type":typ,"id":..,"sub":..,"partitions":[...]}.
func (s *subscription) partsReply(typ string, id json.RawMessage, parts []partState, extra func([]byte) []byte) []byte {
	b := make([]byte, 0, 64+len(parts)*56)
	b = append(b, `{"type":`...)
	b = appendString(b, typ)
	b = append(b, ',')
	b = appendID(b, id)
	b = append(b, `"sub":`...)
	b = appendString(b, s.name)
	b = append(b, `,"topic":`...)
	b = appendString(b, s.topic)
	if extra != nil {
		b = extra(b)
	}
	b = append(b, `,"partitions":[`...)
	for i, ps := range parts {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"partition":`...)
		b = strconv.AppendInt(b, int64(ps.p), 10)
		b = append(b, `,"offset":`...)
		b = strconv.AppendInt(b, ps.next, 10)
		b = append(b, `,"high_watermark":`...)
		b = strconv.AppendInt(b, ps.hwm, 10)
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// startOffset resolves where partition p starts. floor >= 0 (a group's
// committed offset) wins over from unless from names a larger offset for p.
func (srv *Server) startOffset(topic string, p int32, from fromSpec, committed int64) (next, hwm int64, err error) {
	b := srv.b
	start, hwm, err := b.Offsets(topic, p)
	if err != nil {
		return 0, 0, err
	}
	clamp := func(o int64) int64 { return max(start, min(o, hwm)) }
	if committed >= 0 {
		o := committed
		if from.kind == fromOffsets {
			if v, ok := from.offs[p]; ok && v > o {
				o = v
			}
		}
		return clamp(o), hwm, nil
	}
	switch from.kind {
	case fromEarliest:
		return start, hwm, nil
	case fromLatest:
		return hwm, hwm, nil
	case fromOffset:
		return clamp(from.n), hwm, nil
	case fromOffsets:
		if v, ok := from.offs[p]; ok {
			return clamp(v), hwm, nil
		}
		return start, hwm, nil
	case fromTimestamp:
		o, _, err := b.ListOffset(topic, p, from.n)
		if err != nil {
			return 0, 0, err
		}
		if o < 0 {
			return hwm, hwm, nil
		}
		return clamp(o), hwm, nil
	}
	return hwm, hwm, nil
}

func (c *conn) unsubscribe(req *request) *protoError {
	c.mu.Lock()
	s, ok := c.subs[req.Sub]
	if ok {
		delete(c.subs, req.Sub)
	}
	c.mu.Unlock()
	if !ok {
		return errf(codeNotFound, "unsubscribe: no subscription %q", req.Sub)
	}
	s.stop()
	c.sendText(simpleReply("unsubscribed", req.ID, req.Sub))
	return nil
}

func (c *conn) credit(req *request) *protoError {
	var n int64
	if err := json.Unmarshal(req.Records, &n); err != nil || n < 0 {
		return errf(codeBadRequest, "credit: records must be a number >= 0")
	}
	c.mu.Lock()
	s, ok := c.subs[req.Sub]
	c.mu.Unlock()
	if !ok {
		return errf(codeNotFound, "credit: no subscription %q", req.Sub)
	}
	s.mu.Lock()
	s.credit = min(s.credit+n, maxCredit)
	now := s.credit
	s.mu.Unlock()
	s.wakeUp()
	if len(req.ID) > 0 {
		b := simpleReply("credited", req.ID, req.Sub)
		b = b[:len(b)-1]
		b = append(b, `,"credit":`...)
		b = strconv.AppendInt(b, now, 10)
		c.sendText(append(b, '}'))
	}
	return nil
}

// endWithError ends the subscription with an error message carrying sub.
func (s *subscription) endWithError(e *protoError) {
	c := s.c
	c.mu.Lock()
	if c.subs[s.name] == s {
		delete(c.subs, s.name)
	}
	c.mu.Unlock()
	s.mu.Lock()
	if !s.closed {
		c.sendText(errorFrame(nil, s.name, e))
	}
	s.mu.Unlock()
	s.stop()
}

// maxMessageBytes is the size at which a delivery message is sent.
const maxMessageBytes = 256 << 10

// run reads the subscription's partitions and delivers records while it
// has credit and the connection's queue has room.
func (s *subscription) run() {
	defer close(s.done)
	b := s.c.s.b
	var fps []broker.FetchPartition
	rot := 0
	backoff := time.Duration(0)
	for s.ctx.Err() == nil {
		if backoff > 0 {
			select {
			case <-time.After(backoff):
			case <-s.ctx.Done():
				return
			}
		}
		s.mu.Lock()
		ready := s.credit > 0 && len(s.parts) > 0 && !s.closed
		var fctx context.Context
		var gen uint64
		var maxBytes int32
		behind := false
		if ready {
			fps = fps[:0]
			n := len(s.parts)
			rot++
			for i := range n {
				ps := &s.parts[(i+rot)%n]
				if ps.att != nil {
					continue
				}
				if s.filter == nil && !s.c.s.opts.NoSharedTail && ps.next >= ps.hwm {
					if s.c.s.attach(s, ps) {
						continue
					}
					behind = true
				}
				fps = append(fps, broker.FetchPartition{Topic: s.topic, Partition: ps.p, Offset: ps.next})
			}
			if len(fps) == 0 {
				ready = false // the tailers deliver every partition
			} else {
				gen = s.gen
				fctx, s.fetchCancel = context.WithCancel(s.ctx)
				maxBytes = int32(min(max(s.credit*512, 16<<10), maxMessageBytes))
			}
		}
		s.mu.Unlock()
		if !ready || !s.c.pendingOK() {
			select {
			case <-s.wake:
			case <-s.ctx.Done():
				return
			}
			continue
		}
		wait := s.c.s.opts.FetchMaxWait
		if behind {
			// A tailer is ahead: read up to it without waiting, then attach.
			wait = 0
		}
		res := b.Fetch(fctx, broker.FetchRequest{MaxWait: wait, MinBytes: 1, MaxBytes: maxBytes, Partitions: fps})
		s.mu.Lock()
		if s.fetchCancel != nil {
			s.fetchCancel()
			s.fetchCancel = nil
		}
		s.mu.Unlock()
		backoff = s.deliver(gen, fps, res)
		b.ReleaseFetch(res)
	}
}

// errNoCredit stops decoding when the credit is used up.
var errNoCredit = errors.New("no credit")

// deliver turns fetched batches into delivery messages. It returns a
// backoff when a partition failed transiently.
func (s *subscription) deliver(gen uint64, fps []broker.FetchPartition, res []broker.FetchResult) time.Duration {
	var backoff time.Duration
	var fatal *protoError
	s.mu.Lock()
	defer func() {
		s.mu.Unlock()
		if fatal != nil {
			s.endWithError(fatal)
		}
	}()
	if s.gen != gen || s.closed {
		return 0
	}
	out := msgBuilder{s: s}
	for i, fp := range fps {
		r := &res[i]
		ps := s.part(fp.Partition)
		if ps == nil || ps.next != fp.Offset || ps.att != nil {
			continue
		}
		ps.hwm = max(ps.hwm, r.HighWatermark)
		if r.Err != nil {
			switch {
			case errors.Is(r.Err, broker.ErrOffsetOutOfRange):
				start, hwm, err := s.c.s.b.Offsets(s.offTopic, fp.Partition)
				if err != nil {
					backoff = time.Second
					continue
				}
				ps.next = max(start, min(ps.next, hwm))
				out.flush()
				s.c.sendText(s.resetFrame(ps))
			case errors.Is(r.Err, broker.ErrUnknownTopic):
				fatal = errf(codeUnknownTopic, "topic %q: partition %d no longer exists", s.topic, fp.Partition)
				out.flush()
				return 0
			default:
				backoff = time.Second
			}
			continue
		}
		if len(r.Records) == 0 || s.credit == 0 {
			continue
		}
		err := record.DecodeBatches(r.Records, 0, func(bt record.Batch) error {
			recs := bt.Records
			if bt.LastOffset() < ps.next || bt.IsControl() {
				if bt.LastOffset() >= ps.next {
					ps.next = bt.LastOffset() + 1
				}
				return nil
			}
			if s.filter != nil {
				var err error
				recs, err = s.c.s.opts.Filter.FilterRecords(s.ctx, s.filter.Name, s.filter.Params, s.topic, fp.Partition, recs)
				if err != nil {
					return err
				}
			}
			for k := range recs {
				rec := &recs[k]
				if rec.Offset < ps.next {
					continue
				}
				if s.credit == 0 {
					return errNoCredit
				}
				out.add(fp.Partition, rec)
				ps.next = rec.Offset + 1
				s.credit--
			}
			if s.credit == 0 && bt.LastOffset() >= ps.next {
				return errNoCredit
			}
			ps.next = bt.LastOffset() + 1
			return nil
		})
		switch {
		case err == nil, errors.Is(err, errNoCredit):
		case errors.Is(err, ErrFilterNotFound), errors.Is(err, ErrFilterUnavailable):
			fatal = toProto(err)
			out.flush()
			return 0
		default:
			s.c.s.opts.Logger.Warn("websocket: subscription read failed", "sub", s.name, "topic", s.topic, "partition", fp.Partition, "err", err)
			fatal = errf(codeInternal, "reading %s-%d: %v", s.topic, fp.Partition, err)
			out.flush()
			return 0
		}
	}
	out.flush()
	return backoff
}

func (s *subscription) part(p int32) *partState {
	for i := range s.parts {
		if s.parts[i].p == p {
			return &s.parts[i]
		}
	}
	return nil
}

func (s *subscription) resetFrame(ps *partState) []byte {
	b := make([]byte, 0, 80)
	b = append(b, `{"type":"reset","sub":`...)
	b = appendString(b, s.name)
	b = append(b, `,"partition":`...)
	b = strconv.AppendInt(b, int64(ps.p), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, ps.next, 10)
	return append(b, '}')
}

// msgBuilder accumulates records into delivery messages.
type msgBuilder struct {
	s     *subscription
	buf   []byte
	count int
}

func (m *msgBuilder) start() {
	s := m.s
	m.buf = make([]byte, 0, 4096)
	if s.binary {
		m.buf = append(m.buf, kindRecords)
		m.buf = binary.LittleEndian.AppendUint16(m.buf, uint16(len(s.name)))
		m.buf = append(m.buf, s.name...)
		m.buf = append(m.buf, 0, 0, 0, 0) // count
		return
	}
	m.buf = append(m.buf, `{"type":"records","sub":`...)
	m.buf = appendString(m.buf, s.name)
	m.buf = append(m.buf, `,"records":[`...)
}

func (m *msgBuilder) add(p int32, r *record.Record) {
	if m.buf == nil {
		m.start()
	}
	s := m.s
	if !s.binary && m.count > 0 {
		m.buf = append(m.buf, ',')
	}
	m.buf = appendRecord(m.buf, s.binary, s.enc, s.keyEnc, p, r)
	m.count++
	if len(m.buf) >= maxMessageBytes {
		m.flush()
	}
}

// appendRecord appends r of partition p as delivered: in the binary
// layout, or as a JSON object with its value and key in the encodings
// enc and keyEnc (PROTOCOL.md, "records").
func appendRecord(b []byte, bin bool, enc, keyEnc string, p int32, r *record.Record) []byte {
	if bin {
		b = binary.LittleEndian.AppendUint32(b, uint32(p))
		b = binary.LittleEndian.AppendUint64(b, uint64(r.Offset))
		b = binary.LittleEndian.AppendUint64(b, uint64(r.Timestamp))
		b = appendNBytes(b, r.Key)
		b = appendNBytes(b, r.Value)
		return appendBinHeaders(b, r.Headers)
	}
	b = append(b, `{"partition":`...)
	b = strconv.AppendInt(b, int64(p), 10)
	b = append(b, `,"offset":`...)
	b = strconv.AppendInt(b, r.Offset, 10)
	b = append(b, `,"timestamp":`...)
	b = strconv.AppendInt(b, r.Timestamp, 10)
	b = append(b, `,"key":`...)
	if r.Key == nil {
		b = append(b, "null"...)
	} else {
		ke := chooseEncoding(r.Key, keyEnc, keyEnc == encAuto)
		b = appendValue(b, r.Key, ke)
		b = append(b, `,"key_encoding":"`...)
		b = append(b, ke...)
		b = append(b, '"')
	}
	b = append(b, `,"value":`...)
	ve := encJSON
	if r.Value != nil {
		ve = chooseEncoding(r.Value, enc, false)
	}
	b = appendValue(b, r.Value, ve)
	b = append(b, `,"encoding":"`...)
	b = append(b, ve...)
	b = append(b, '"')
	if len(r.Headers) > 0 {
		b = append(b, `,"headers":[`...)
		for i, h := range r.Headers {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"key":`...)
			b = appendString(b, validUTF8(h.Key))
			b = append(b, `,"value":`...)
			he := encText
			if h.Value != nil {
				he = chooseEncoding(h.Value, encText, true)
			}
			b = appendValue(b, h.Value, he)
			b = append(b, `,"encoding":"`...)
			b = append(b, he...)
			b = append(b, `"}`...)
		}
		b = append(b, ']')
	}
	return append(b, '}')
}

func (m *msgBuilder) flush() {
	if m.count == 0 {
		return
	}
	s := m.s
	if s.binary {
		off := 1 + 2 + len(s.name)
		binary.LittleEndian.PutUint32(m.buf[off:], uint32(m.count))
		s.c.enqueue(outMsg{kind: outBinary, data: m.buf})
	} else {
		s.c.enqueue(outMsg{kind: outText, data: append(m.buf, "]}"...)})
	}
	m.buf, m.count = nil, 0
}
