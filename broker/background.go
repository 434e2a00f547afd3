package broker

import (
	"fmt"
	"time"
)

// background runs retention, the disk guard and interval flushes until the
// broker closes.
func (b *Broker) background() {
	defer b.bg.Done()
	flushTick := time.NewTicker(50 * time.Millisecond)
	defer flushTick.Stop()
	retentionTick := time.NewTicker(b.opts.RetentionCheckInterval)
	defer retentionTick.Stop()
	b.applyRetention()
	for {
		select {
		case <-b.ctx.Done():
			return
		case <-flushTick.C:
			b.flushIntervals()
		case <-retentionTick.C:
			b.applyRetention()
		}
	}
}

func (b *Broker) allPartitions() []*partition {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var out []*partition
	for _, t := range b.topics {
		out = append(out, t.partitions...)
	}
	return out
}

// flushIntervals fsyncs partitions with flush.policy=interval whose interval
// has passed.
func (b *Broker) flushIntervals() {
	now := time.Now().UnixNano()
	b.mu.RLock()
	var due []*partition
	for _, t := range b.topics {
		if t.cfg.Flush != FlushInterval {
			continue
		}
		for _, p := range t.partitions {
			if now-p.lastSync.Load() >= t.cfg.FlushMs*int64(time.Millisecond) && p.log.SyncedOffset() < p.log.EndOffset() {
				due = append(due, p)
			}
		}
	}
	b.mu.RUnlock()
	for _, p := range due {
		if _, err := p.log.Sync(); err != nil {
			b.logger.Error("interval flush failed", "topic", p.topic, "partition", p.idx, "err", err)
		}
		p.lastSync.Store(now)
	}
}

// applyRetention deletes expired segments of every partition, then enforces
// max_disk_bytes.
func (b *Broker) applyRetention() {
	for _, p := range b.allPartitions() {
		n, err := p.log.ApplyRetention()
		if err != nil {
			b.logger.Error("retention failed", "topic", p.topic, "partition", p.idx, "err", err)
		}
		if n > 0 {
			b.logger.Info("retention deleted segments", "topic", p.topic, "partition", p.idx, "segments", n, "log_start_offset", p.log.StartOffset())
		}
	}
	if b.opts.MaxDiskBytes > 0 {
		if err := b.freeDisk(0); err != nil {
			b.logger.Warn("disk guard", "err", err)
		}
	}
}

// DiskUsage is the bytes of all partitions' segments.
func (b *Broker) DiskUsage() int64 {
	var n int64
	for _, p := range b.allPartitions() {
		n += p.log.Size()
	}
	return n
}

// reserveDisk makes room for n more bytes under max_disk_bytes, deleting the
// oldest segments broker-wide when needed, or fails with ErrDiskFull.
func (b *Broker) reserveDisk(n int64) error {
	if b.opts.MaxDiskBytes <= 0 {
		return nil
	}
	return b.freeDisk(n)
}

func (b *Broker) freeDisk(need int64) error {
	b.diskMu.Lock()
	defer b.diskMu.Unlock()
	for {
		used := b.DiskUsage()
		if used+need <= b.opts.MaxDiskBytes {
			return nil
		}
		// Delete the segment whose newest record is the oldest of all.
		var victim *partition
		var oldest int64
		for _, p := range b.allPartitions() {
			_, maxTS, _, ok := p.log.OldestSegment()
			if ok && (victim == nil || maxTS < oldest) {
				victim, oldest = p, maxTS
			}
		}
		if victim == nil {
			return fmt.Errorf("%w: %d bytes used of %d, %d more needed, and only active segments are left", ErrDiskFull, used, b.opts.MaxDiskBytes, need)
		}
		if err := victim.log.DeleteOldestSegment(); err != nil {
			return storageError(err)
		}
		b.logger.Warn("max_disk_bytes reached: deleted the oldest segment", "topic", victim.topic, "partition", victim.idx, "log_start_offset", victim.log.StartOffset())
	}
}
