package commitlog

import (
	"context"
	"errors"
	"log/slog"
	"sync"
)

// ErrSyncerClosed is returned by Syncer.Sync after Close.
var ErrSyncerClosed = errors.New("commitlog: syncer closed")

// maxParallelSyncs bounds the fsyncs a Syncer runs at once.
const maxParallelSyncs = 64

// Syncer is a group commit: concurrent Sync callers share fsync rounds, so
// that each dirty log costs one fsync per round however many callers wait
// on it.
type Syncer struct {
	logger *slog.Logger

	mu      sync.Mutex
	pending []*syncWaiter
	closed  bool
	kick    chan struct{}
	done    chan struct{}
}

type syncTarget struct {
	log *Log
	end int64
}

type syncWaiter struct {
	targets []syncTarget
	err     error
	done    chan struct{}
}

// NewSyncer starts a Syncer. logger may be nil.
func NewSyncer(logger *slog.Logger) *Syncer {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	s := &Syncer{logger: logger, kick: make(chan struct{}, 1), done: make(chan struct{})}
	go s.loop()
	return s
}

// Sync returns once each log's SyncedOffset is at least its EndOffset at the
// time of the call, or with the first error of a log's fsync, or with the
// context's error (the fsync still happens).
func (s *Syncer) Sync(ctx context.Context, logs ...*Log) error {
	w := &syncWaiter{done: make(chan struct{})}
	for _, l := range logs {
		if end := l.EndOffset(); l.SyncedOffset() < end {
			w.targets = append(w.targets, syncTarget{log: l, end: end})
		}
	}
	if len(w.targets) == 0 {
		return nil
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrSyncerClosed
	}
	s.pending = append(s.pending, w)
	select {
	case s.kick <- struct{}{}:
	default:
	}
	s.mu.Unlock()
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

type syncResult struct {
	synced int64
	err    error
}

func (s *Syncer) loop() {
	defer close(s.done)
	for {
		_, ok := <-s.kick
		s.mu.Lock()
		batch := s.pending
		s.pending = nil
		s.mu.Unlock()
		if len(batch) > 0 {
			s.round(batch)
		}
		if !ok {
			return
		}
	}
}

// round fsyncs each distinct log of batch once, in parallel, and releases
// the waiters.
func (s *Syncer) round(batch []*syncWaiter) {
	results := map[*Log]*syncResult{}
	for _, w := range batch {
		for _, t := range w.targets {
			if results[t.log] == nil {
				results[t.log] = &syncResult{}
			}
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, maxParallelSyncs)
	for l, r := range results {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			r.synced, r.err = l.Sync()
			<-sem
		}()
	}
	wg.Wait()
	for _, w := range batch {
		for _, t := range w.targets {
			r := results[t.log]
			if r.err != nil {
				w.err = r.err
				s.logger.Error("commitlog: group fsync failed", "dir", t.log.dir, "err", r.err)
				break
			}
		}
		close(w.done)
	}
}

// Close stops the Syncer after a last round for the callers already
// waiting. Later calls to Sync return ErrSyncerClosed.
func (s *Syncer) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		<-s.done
		return
	}
	s.closed = true
	close(s.kick)
	s.mu.Unlock()
	<-s.done
}
