package broker

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/samsa-broker/samsa/broker/commitlog"
)

// FetchPartition asks for records of one partition from Offset on.
type FetchPartition struct {
	Topic     string
	Partition int32
	Offset    int64
	MaxBytes  int32
}

// FetchRequest is a long-polling read of several partitions.
type FetchRequest struct {
	// MaxWait is how long to wait for MinBytes to be available.
	MaxWait time.Duration
	// MinBytes is how many bytes make the fetch answer before MaxWait.
	MinBytes int32
	// MaxBytes bounds the whole response, except that the first batch found
	// is always returned whole so that a consumer can make progress.
	MaxBytes   int32
	Partitions []FetchPartition
}

// FetchResult is the answer for one FetchPartition. Records holds whole
// batches, the first one containing the requested offset.
type FetchResult struct {
	HighWatermark    int64
	LastStableOffset int64
	LogStartOffset   int64
	Records          []byte
	Err              error
}

// Fetch reads records, waiting up to MaxWait (or until ctx ends) for at
// least MinBytes. It wakes on appends, never by polling. A partition of a
// filtered view is read from its source and through the view's filter
// (see filterView): offsets and high watermark are the source's.
func (b *Broker) Fetch(ctx context.Context, req FetchRequest) []FetchResult {
	results := make([]FetchResult, len(req.Partitions))
	parts := make([]*partition, len(req.Partitions))
	var views []*binding // views[i]: partition i is read through a view
	for i, fp := range req.Partitions {
		p, _, err := b.partition(fp.Topic, fp.Partition)
		if err != nil {
			var vb *binding
			if p, vb, err = b.readPartition(fp.Topic, fp.Partition); vb != nil {
				if views == nil {
					views = make([]*binding, len(req.Partitions))
				}
				views[i] = vb
			}
		}
		if err != nil {
			results[i] = FetchResult{HighWatermark: -1, LastStableOffset: -1, LogStartOffset: -1, Err: err}
			continue
		}
		parts[i] = p
	}
	total, errs := b.readAll(req, parts, views, results)
	if total >= int(req.MinBytes) || errs || req.MaxWait <= 0 {
		return results
	}
	w := &waiter{ch: make(chan struct{}, 1)}
	for _, p := range parts {
		if p != nil {
			p.addWaiter(w)
		}
	}
	defer func() {
		for _, p := range parts {
			if p != nil {
				p.removeWaiter(w)
			}
		}
	}()
	// Read again now that appends wake us: one may have landed in between.
	total, errs = b.readAll(req, parts, views, results)
	timer := time.NewTimer(req.MaxWait)
	defer timer.Stop()
	for total < int(req.MinBytes) && !errs {
		select {
		case <-w.ch:
		case <-timer.C:
			return results
		case <-ctx.Done():
			return results
		case <-b.ctx.Done():
			return results
		}
		total, errs = b.readAll(req, parts, views, results)
	}
	return results
}

// readAll fills results and returns the bytes read and whether any
// partition answered with an error (which ends a long poll, as in Kafka).
// views, if not nil, holds the view binding of each partition read
// through a view, whose records go through its filter.
func (b *Broker) readAll(req FetchRequest, parts []*partition, views []*binding, results []FetchResult) (int, bool) {
	budget := int(req.MaxBytes)
	if budget <= 0 {
		budget = 1 << 30
	}
	total, errs := 0, false
	for i, fp := range req.Partitions {
		p := parts[i]
		if p == nil {
			errs = true
			continue
		}
		hwm := p.highWatermark()
		r := FetchResult{HighWatermark: hwm, LastStableOffset: hwm, LogStartOffset: p.log.StartOffset()}
		remaining := budget - total
		if remaining > 0 || total == 0 {
			limit := int(fp.MaxBytes)
			if limit <= 0 || limit > remaining {
				limit = remaining
			}
			if limit <= 0 {
				limit = 1
			}
			data, err := p.log.ReadAppend(b.readBuf(results[i].Records), fp.Offset, limit, hwm)
			switch {
			case errors.Is(err, commitlog.ErrOffsetOutOfRange):
				r.Err = fmt.Errorf("%w: offset %d of %s-%d is outside [%d, %d]", ErrOffsetOutOfRange, fp.Offset, fp.Topic, fp.Partition, r.LogStartOffset, hwm)
			case err != nil:
				r.Err = storageError(err)
			}
			if views != nil && views[i] != nil && len(data) > 0 {
				buf := b.readBuf(nil)
				out, inPlace, verr := b.filterView(views[i], fp.Partition, data, buf)
				if inPlace {
					b.recycle(buf)
				} else {
					b.recycle(data)
				}
				data = out
				if verr != nil && r.Err == nil {
					r.Err = verr
				}
			}
			if len(data) > 0 {
				r.Records = data
				total += len(data)
			} else {
				b.recycle(data)
			}
		}
		if r.Err != nil {
			errs = true
		}
		results[i] = r
	}
	return total, errs
}

// readBuf returns an empty buffer for a partition's records: the one a
// previous read of the same fetch filled (a long poll reads again), or one
// from the pool.
func (b *Broker) readBuf(prev []byte) []byte {
	if prev != nil {
		return prev[:0]
	}
	if p, ok := b.bufs.Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return nil
}

func (b *Broker) recycle(buf []byte) {
	if cap(buf) == 0 || cap(buf) > maxPooledReadBuf {
		return
	}
	buf = buf[:0]
	b.bufs.Put(&buf)
}

// maxPooledReadBuf keeps rare huge reads from pinning memory in the pool.
const maxPooledReadBuf = 16 << 20

// ReleaseFetch hands the record buffers of results back for reuse. Call it
// once the records have been copied out (encoded into a response); the
// results' Records must not be used afterwards.
func (b *Broker) ReleaseFetch(results []FetchResult) {
	for i := range results {
		b.recycle(results[i].Records)
		results[i].Records = nil
	}
}
