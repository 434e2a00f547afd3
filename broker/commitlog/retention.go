package commitlog

import "fmt"

// DeleteBefore advances the log start offset to offset (DeleteRecords) and
// deletes the segments entirely below it. The new start offset is persisted
// durably before anything is deleted and is honored on reopen. An offset at
// or below the start offset does nothing; one above the end offset returns
// ErrOffsetOutOfRange.
func (l *Log) DeleteBefore(offset int64) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.mu.RLock()
	closed, start, end := l.closed, l.start, l.end
	l.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if offset > end {
		return l.outOfRange(offset, start, end)
	}
	if offset <= start {
		return nil
	}
	if err := l.writeCheckpoint(offset); err != nil {
		return fmt.Errorf("commitlog: persist log start offset %d: %w", offset, err)
	}
	l.mu.Lock()
	l.start = offset
	l.mu.Unlock()
	for len(l.segs) > 1 && l.segs[0].next <= offset {
		l.deleteOldest()
	}
	return nil
}

// deleteOldest removes the oldest segment, which is not the active one. The
// caller holds appendMu. The removal becomes durable with the next Sync.
func (l *Log) deleteOldest() {
	s := l.segs[0]
	l.mu.Lock()
	l.segs = l.segs[1:]
	l.size -= s.size
	l.start = max(l.start, l.segs[0].base)
	l.dirGen++
	l.mu.Unlock()
	s.retire()
	l.removeSegmentFiles(s.base)
	l.logger.Info("commitlog: deleted segment", "segment", segmentName(s.base), "bytes", s.size, "next_offset", s.next)
}

// ApplyRetention deletes segments by age (the segment's largest timestamp
// is older than Now()-RetentionAge; an entirely expired, non-empty active
// segment is rolled first and then deleted) and by size (the oldest segment
// while Size() minus its size is still >= RetentionBytes). It advances the
// start offset and returns how many segments it deleted.
func (l *Log) ApplyRetention() (deletedSegments int, err error) {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.mu.RLock()
	closed := l.closed
	l.mu.RUnlock()
	if closed {
		return 0, ErrClosed
	}
	if l.opts.RetentionAge > 0 {
		cutoff := l.opts.Now().Add(-l.opts.RetentionAge).UnixMilli()
		for {
			s := l.segs[0]
			if s.size == 0 || s.maxTS >= cutoff {
				break
			}
			if len(l.segs) == 1 {
				if err := l.roll(); err != nil {
					return deletedSegments, err
				}
			}
			l.deleteOldest()
			deletedSegments++
		}
	}
	if l.opts.RetentionBytes > 0 {
		for len(l.segs) > 1 && l.size-l.segs[0].size >= l.opts.RetentionBytes {
			l.deleteOldest()
			deletedSegments++
		}
	}
	return deletedSegments, nil
}

// OldestSegment describes the oldest segment, for a broker-wide disk guard.
// ok is false if only the active segment exists.
func (l *Log) OldestSegment() (baseOffset, maxTimestamp, size int64, ok bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed || len(l.segs) < 2 {
		return 0, 0, 0, false
	}
	s := l.segs[0]
	return s.base, s.maxTS, s.size, true
}

// DeleteOldestSegment deletes the oldest segment, for the broker-wide disk
// guard. It never deletes the active segment: with only that one left it
// returns ErrNoDeletableSegment.
func (l *Log) DeleteOldestSegment() error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.mu.RLock()
	closed, n := l.closed, len(l.segs)
	l.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if n < 2 {
		return ErrNoDeletableSegment
	}
	l.deleteOldest()
	return nil
}
