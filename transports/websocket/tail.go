package websocket

import (
	"encoding/binary"
	"sync"
	"time"

	"github.com/samsa-broker/samsa/broker"
	"github.com/samsa-broker/samsa/broker/record"
)

// Fan-out at the tail of a partition.
//
// A subscription that has read everything of a partition does not
// long-poll the broker itself: it attaches to the partition's tailer, one
// goroutine per (topic or view, partition) with attached subscriptions.
// The tailer reads each new batch once, decodes it once, encodes its
// records once per delivery format, and queues the same bytes on every
// attached subscription's connection, behind a per-subscription message
// head. A thousand subscribers of a topic therefore cost one read and
// one encoding per batch plus a queue append per subscriber, instead of a
// thousand reads, decodes and encodings.
//
// A subscription is delivered by its tailer or by its own loop (run),
// never both: partState.att names the attachment, and the tailer only
// delivers, under the subscription's lock, while it is still the one
// named. Whatever the tailer cannot deliver whole (not enough credit, the
// connection's queue over its bound, a gap, a read error) detaches the
// subscription and wakes it; its own loop then carries on from the same
// offset and attaches again once it has caught up.
// Subscriptions with a consume filter are never attached: their records
// differ per subscription.

// tailKey names a partition of a topic or view, as subscribed.
type tailKey struct {
	topic string
	p     int32
}

// tailer follows one partition for its attached subscriptions.
type tailer struct {
	srv *Server
	key tailKey

	// mu guards next and subs; it is never held while a subscription's
	// lock is taken.
	mu   sync.Mutex
	next int64 // where the next read starts: everything before is delivered
	subs []*attachment
}

// attachment is a subscription's partition attached to a tailer.
type attachment struct {
	s *subscription
	p int32
}

// tailEntry is a chunk of records the tailer delivers: it covers offsets
// [from, to), with recs the records among them (owned, in order).
type tailEntry struct {
	from, to int64
	hwm      int64
	recs     []record.Record
	bodies   map[string][]byte // encoded records by subscription.format
}

// Limits of one entry, so that a delivery stays well under
// maxMessageBytes whatever the encoding.
const (
	tailEntryRecords = 512
	tailEntryBytes   = 64 << 10
	tailFetchBytes   = 1 << 20
)

// tailLinger is the least time between two delivery rounds of a tailer
// with n subscriptions attached: none for a few, up to TailLinger for
// many, where a round costs a write per connection.
func (srv *Server) tailLinger(n int) time.Duration {
	const per = 4 * time.Microsecond
	return min(time.Duration(n)*per, srv.opts.TailLinger)
}

// attach attaches partition ps of s (s.mu held) to its tailer, creating
// the tailer when there is none. It fails when the tailer has already
// passed ps.next: the subscription must read up to it first.
func (srv *Server) attach(s *subscription, ps *partState) bool {
	key := tailKey{topic: s.topic, p: ps.p}
	srv.tailMu.Lock()
	if srv.tailClosed {
		srv.tailMu.Unlock()
		return false
	}
	t := srv.tails[key]
	if t == nil {
		t = &tailer{srv: srv, key: key, next: ps.next}
		if srv.tails == nil {
			srv.tails = make(map[tailKey]*tailer)
		}
		srv.tails[key] = t
		srv.tailWG.Add(1)
		go t.run()
	}
	t.mu.Lock()
	srv.tailMu.Unlock()
	defer t.mu.Unlock()
	if ps.next < t.next {
		return false
	}
	a := &attachment{s: s, p: ps.p}
	t.subs = append(t.subs, a)
	ps.att = a
	return true
}

// closeTails stops the tailers (at server close).
func (srv *Server) closeTails() {
	srv.tailMu.Lock()
	srv.tailClosed = true
	srv.tailMu.Unlock()
	srv.tailWG.Wait()
}

// run reads the partition from t.next and delivers what it reads, until
// no subscription is attached or the server stops.
func (t *tailer) run() {
	defer t.srv.tailWG.Done()
	ctx := t.srv.ctx
	b := t.srv.b
	var live []*attachment
	var lastRound time.Time
	for {
		t.mu.Lock()
		next := t.next
		n := len(t.subs)
		t.mu.Unlock()
		if d := time.Until(lastRound.Add(t.srv.tailLinger(n))); d > 0 {
			// Many subscribers: gather what arrives meanwhile into the
			// next round, so that each connection gets one message (and
			// one write) for several records.
			tm := time.NewTimer(d)
			select {
			case <-tm.C:
			case <-ctx.Done():
				tm.Stop()
			}
		}
		res := b.Fetch(ctx, broker.FetchRequest{
			MaxWait: t.srv.opts.FetchMaxWait, MinBytes: 1, MaxBytes: tailFetchBytes,
			Partitions: []broker.FetchPartition{{Topic: t.key.topic, Partition: t.key.p, Offset: next}},
		})
		r := &res[0]
		var entries []*tailEntry
		var failed error
		switch {
		case ctx.Err() != nil:
			failed = ctx.Err()
		case r.Err != nil:
			failed = r.Err
		case len(r.Records) > 0:
			entries, failed = t.decode(next, r)
		}
		b.ReleaseFetch(res)

		t.mu.Lock()
		subs := t.subs
		t.subs = nil
		if failed == nil && len(entries) > 0 {
			t.next = entries[len(entries)-1].to
		}
		t.mu.Unlock()

		// Deliver; keep the attachments that are still live.
		if len(entries) > 0 {
			lastRound = time.Now()
			t.srv.tailRounds.Add(1)
		}
		live = live[:0]
		for _, a := range subs {
			if t.deliver(a, entries, failed) {
				live = append(live, a)
			}
		}
		if t.finish(live, failed) {
			return
		}
	}
}

// finish puts the live attachments back, next to any attached meanwhile.
// It reports true when the tailer is done: nothing is attached, or the
// read failed (every attachment was detached: the subscriptions' own
// loops handle the error), or the server stops.
func (t *tailer) finish(live []*attachment, failed error) bool {
	t.srv.tailMu.Lock()
	defer t.srv.tailMu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	if failed == nil && !t.srv.tailClosed {
		t.subs = append(t.subs, live...)
		if len(t.subs) > 0 {
			return false
		}
	}
	for _, a := range t.subs {
		t.detach(a)
	}
	t.subs = nil
	if t.srv.tails[t.key] == t {
		delete(t.srv.tails, t.key)
	}
	return true
}

// detach ends attachment a, which was attached after the tailer stopped
// delivering: its subscription reads by itself again.
func (t *tailer) detach(a *attachment) {
	s := a.s
	// Lock order is s.mu before t.mu (attach); finish holds t.mu, so
	// the subscription is detached from its own goroutine.
	go func() {
		s.mu.Lock()
		if ps := s.part(a.p); ps != nil && ps.att == a {
			ps.att = nil
		}
		s.mu.Unlock()
		s.wakeUp()
	}()
}

// decode turns a fetch result read at next into entries.
func (t *tailer) decode(next int64, r *broker.FetchResult) ([]*tailEntry, error) {
	var entries []*tailEntry
	cur := &tailEntry{from: next, to: next, hwm: r.HighWatermark}
	var size int
	push := func() {
		entries = append(entries, cur)
		cur = &tailEntry{from: cur.to, to: cur.to, hwm: r.HighWatermark}
		size = 0
	}
	err := record.DecodeBatches(r.Records, 0, func(bt record.Batch) error {
		last := bt.LastOffset()
		if last < cur.to {
			return nil
		}
		if !bt.IsControl() {
			for k := range bt.Records {
				rec := &bt.Records[k]
				if rec.Offset < cur.to {
					continue
				}
				if len(cur.recs) >= tailEntryRecords || size >= tailEntryBytes {
					push()
				}
				cur.recs = append(cur.recs, ownRecord(rec))
				size += len(rec.Key) + len(rec.Value)
				cur.to = rec.Offset + 1
			}
		}
		cur.to = last + 1
		return nil
	})
	if err != nil {
		return nil, err
	}
	if cur.to > cur.from {
		entries = append(entries, cur)
	}
	return entries, nil
}

// ownRecord copies r out of the fetch buffers (header keys are strings,
// which the decoder already copied).
func ownRecord(r *record.Record) record.Record {
	n := len(r.Key) + len(r.Value)
	for _, h := range r.Headers {
		n += len(h.Value)
	}
	buf := make([]byte, 0, n)
	take := func(b []byte) []byte {
		if b == nil {
			return nil
		}
		buf = append(buf, b...)
		return buf[len(buf)-len(b) : len(buf) : len(buf)]
	}
	o := record.Record{Offset: r.Offset, Timestamp: r.Timestamp, Key: take(r.Key), Value: take(r.Value)}
	if len(r.Headers) > 0 {
		o.Headers = make([]record.Header, len(r.Headers))
		for i, h := range r.Headers {
			o.Headers[i] = record.Header{Key: h.Key, Value: take(h.Value)}
		}
	}
	return o
}

// body returns the entry's records encoded for s's format, computed once
// per format: binary, count then records; JSON, the records and the
// closing "]}".
func (e *tailEntry) body(s *subscription, p int32) []byte {
	f := s.format
	if b, ok := e.bodies[f]; ok {
		return b
	}
	var b []byte
	if s.binary {
		b = make([]byte, 4, 4+len(e.recs)*48)
		binary.LittleEndian.PutUint32(b, uint32(len(e.recs)))
		for i := range e.recs {
			b = appendRecord(b, true, "", "", p, &e.recs[i])
		}
	} else {
		b = make([]byte, 0, 2+len(e.recs)*160)
		for i := range e.recs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendRecord(b, false, s.enc, s.keyEnc, p, &e.recs[i])
		}
		b = append(b, "]}"...)
	}
	if e.bodies == nil {
		e.bodies = make(map[string][]byte, 1)
	}
	e.bodies[f] = b
	return b
}

// deliver queues entries on a's subscription. It reports whether a stays
// attached.
func (t *tailer) deliver(a *attachment, entries []*tailEntry, failed error) bool {
	s := a.s
	s.mu.Lock()
	ps := s.part(a.p)
	if s.closed || ps == nil || ps.att != a {
		s.mu.Unlock()
		return false
	}
	ok := failed == nil
	for _, e := range entries {
		if !ok {
			break
		}
		ps.hwm = max(ps.hwm, e.hwm)
		switch {
		case ps.next >= e.to:
			continue
		case ps.next < e.from:
			ok = false // a gap: not possible while attached, but never skip records
			continue
		}
		n := int64(len(e.recs)) // records at or after ps.next
		if ps.next > e.from {
			n = 0
			for i := range e.recs {
				if e.recs[i].Offset >= ps.next {
					n++
				}
			}
		}
		if n > 0 {
			if s.credit < n || !s.c.pendingOK() {
				ok = false
				continue
			}
			if ps.next == e.from {
				s.c.enqueue(outMsg{kind: s.outKind, head: s.head, data: e.body(s, a.p)})
			} else {
				out := msgBuilder{s: s}
				for i := range e.recs {
					if e.recs[i].Offset >= ps.next {
						out.add(a.p, &e.recs[i])
					}
				}
				out.flush()
			}
			s.credit -= n
		}
		ps.next = e.to
	}
	if !ok {
		ps.att = nil
	}
	s.mu.Unlock()
	if !ok {
		s.wakeUp()
	}
	return ok
}
