package broker

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/samsa-broker/samsa/broker/commitlog"
)

// partition is one partition of a topic: its log, the producer state of
// idempotent producers, and the waiters of long-polling fetches.
type partition struct {
	topic string
	idx   int32
	log   *commitlog.Log

	// flush is the topic's FlushPolicy, read on every produce and fetch.
	flush atomic.Value
	// lastSync is when the log was last fsynced (unix nanos), for
	// flush.policy=interval.
	lastSync atomic.Int64
	flushMs  atomic.Int64

	// mu serializes appends with the idempotent producer checks.
	mu        sync.Mutex
	producers map[int64]*producerState

	wmu     sync.Mutex
	waiters map[*waiter]struct{}
}

// waiter is a long-polling fetch waiting for any of its partitions to grow.
type waiter struct{ ch chan struct{} }

func newPartition(topic string, idx int32, l *commitlog.Log, flush FlushPolicy) *partition {
	p := &partition{topic: topic, idx: idx, log: l, producers: make(map[int64]*producerState), waiters: make(map[*waiter]struct{})}
	p.flush.Store(flush)
	p.lastSync.Store(time.Now().UnixNano())
	return p
}

func (p *partition) flushPolicy() FlushPolicy { return p.flush.Load().(FlushPolicy) }

func (p *partition) setConfig(flush FlushPolicy, opts commitlog.Options) {
	prev := p.flushPolicy()
	p.flush.Store(flush)
	p.log.SetOptions(opts)
	if prev == FlushAlways && flush != FlushAlways {
		// Records appended but not yet synced become visible at once.
		p.notify()
	}
}

// highWatermark is the end of what consumers may read. With flush=always
// only fsynced records are visible, so that a consumer never sees a record
// that a power loss could take back.
func (p *partition) highWatermark() int64 {
	if p.flushPolicy() == FlushAlways {
		return p.log.SyncedOffset()
	}
	return p.log.EndOffset()
}

func (p *partition) addWaiter(w *waiter) {
	p.wmu.Lock()
	p.waiters[w] = struct{}{}
	p.wmu.Unlock()
}

func (p *partition) removeWaiter(w *waiter) {
	p.wmu.Lock()
	delete(p.waiters, w)
	p.wmu.Unlock()
}

// notify wakes every fetch waiting on this partition.
func (p *partition) notify() {
	p.wmu.Lock()
	for w := range p.waiters {
		select {
		case w.ch <- struct{}{}:
		default:
		}
	}
	p.wmu.Unlock()
}

func (p *partition) close() error {
	p.notify()
	return p.log.Close()
}

func (p *partition) delete() error {
	p.notify()
	return p.log.Delete()
}

// producerState is what the partition remembers of one idempotent producer:
// its epoch and its last few batches, to answer retries with the offsets the
// originals got.
type producerState struct {
	epoch   int16
	lastSeq int32
	recent  [5]seqEntry
	n       int // entries used in recent, as a ring
}

type seqEntry struct {
	first, last int32
	offset      int64
}

func (s *producerState) remember(first, last int32, offset int64) {
	s.recent[s.n%len(s.recent)] = seqEntry{first: first, last: last, offset: offset}
	s.n++
	s.lastSeq = last
}

func (s *producerState) duplicate(first, last int32) (int64, bool) {
	for i := 0; i < len(s.recent) && i < s.n; i++ {
		if e := s.recent[i]; e.first == first && e.last == last {
			return e.offset, true
		}
	}
	return 0, false
}

func nextSeq(s int32) int32 {
	if s == 1<<31-1 {
		return 0
	}
	return s + 1
}

func lastSeqOf(h commitlog.BatchHeader) int32 {
	last := int64(h.BaseSequence) + int64(h.LastOffsetDelta)
	if last > 1<<31-1 {
		last -= 1 << 31
	}
	return int32(last)
}

// checkSequence decides what to do with a batch of an idempotent producer:
// append it, answer it as a duplicate with the original offset, or refuse it.
func (p *partition) checkSequence(h commitlog.BatchHeader) (dupOffset int64, dup bool, err error) {
	if h.ProducerID < 0 {
		return 0, false, nil
	}
	st, ok := p.producers[h.ProducerID]
	if !ok {
		// Unknown producers start where they say: their state may have
		// aged out of the window the broker keeps.
		return 0, false, nil
	}
	switch {
	case h.ProducerEpoch < st.epoch:
		return 0, false, fmt.Errorf("%w: producer %d epoch %d is older than %d", ErrInvalidProducerEpoch, h.ProducerID, h.ProducerEpoch, st.epoch)
	case h.ProducerEpoch > st.epoch:
		return 0, false, nil
	}
	if off, ok := st.duplicate(h.BaseSequence, lastSeqOf(h)); ok {
		return off, true, nil
	}
	if want := nextSeq(st.lastSeq); h.BaseSequence != want {
		return 0, false, fmt.Errorf("%w: producer %d sent sequence %d, expected %d", ErrOutOfOrderSequence, h.ProducerID, h.BaseSequence, want)
	}
	return 0, false, nil
}

func (p *partition) recordSequence(h commitlog.BatchHeader, offset int64) {
	if h.ProducerID < 0 {
		return
	}
	st, ok := p.producers[h.ProducerID]
	if !ok || h.ProducerEpoch != st.epoch {
		st = &producerState{epoch: h.ProducerEpoch}
		p.producers[h.ProducerID] = st
	}
	st.remember(h.BaseSequence, lastSeqOf(h), offset)
}

// producerStateWindow is how many recent offsets are scanned at start to
// rebuild idempotent producer state; older producers are treated as new.
const producerStateWindow = 1 << 20

func (p *partition) loadProducerState() error {
	from := p.log.EndOffset() - producerStateWindow
	if start := p.log.StartOffset(); from < start {
		from = start
	}
	if from >= p.log.EndOffset() {
		return nil
	}
	return p.log.Scan(from, func(h commitlog.BatchHeader) error {
		p.recordSequence(h, h.BaseOffset)
		return nil
	})
}

// append validates nothing: the caller has. It checks idempotent sequences
// and appends, returning the base offset of the first batch (or the offset
// a duplicate got the first time).
func (p *partition) append(records []byte, hdrs []commitlog.BatchHeader) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(hdrs) == 1 {
		off, dup, err := p.checkSequence(hdrs[0])
		if err != nil || dup {
			return off, err
		}
		base, _, err := p.log.Append(records)
		if err != nil {
			return 0, storageError(err)
		}
		hdrs[0].BaseOffset = base
		p.recordSequence(hdrs[0], base)
		return base, nil
	}
	// Several batches in one request: handle them one at a time so that
	// each gets its own sequence check.
	first := int64(-1)
	pos := 0
	for _, h := range hdrs {
		raw := records[pos : pos+int(h.Length)]
		pos += int(h.Length)
		off, dup, err := p.checkSequence(h)
		if err != nil {
			return 0, err
		}
		if !dup {
			base, _, err := p.log.Append(raw)
			if err != nil {
				return 0, storageError(err)
			}
			off = base
			p.recordSequence(h, base)
		}
		if first < 0 {
			first = off
		}
	}
	return first, nil
}

func storageError(err error) error {
	if errors.Is(err, ErrStorage) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrStorage, err)
}
