package broker

import (
	"encoding/binary"
	"fmt"

	"github.com/samsa-broker/samsa/broker/record"
	"github.com/samsa-broker/samsa/wasm"
)

// filterView runs the batches a fetch read from a view's source through
// the view's filter and appends the result to dst. Every output batch spans
// its source batch exactly (same base offset and last offset delta, the
// source offsets of the records it keeps, the source codec), and a batch
// whose records were all dropped becomes an empty batch, so that consumers
// advance past what the view drops, as past a compacted batch.
//
// On a failure under OnError reject it stops: it returns what it made so
// far, or the error if that is nothing.
//
// Batches the filter keeps whole are not copied: until the first batch that
// changes, the output is raw itself, and inPlace reports that the result
// is (a prefix of) raw rather than dst.
func (b *Broker) filterView(bd *binding, partition int32, raw, dst []byte) (out []byte, inPlace bool, err error) {
	orig := raw
	pos := 0         // bytes of orig handled so far
	changed := false // whether dst holds the output (else orig[:pos] is it)
	// change switches the output to dst, copying the unchanged batches
	// before the current one.
	change := func(batchStart int) {
		if !changed {
			dst = append(dst, orig[:batchStart]...)
			changed = true
		}
	}
	result := func(e error) ([]byte, bool, error) {
		if changed {
			return dst, false, e
		}
		return orig[:pos], true, e
	}
	s := getScratch()
	defer putScratch(s)
	for len(raw) >= record.LengthFieldEnd {
		n := record.LengthFieldEnd + int(int32(binary.BigEndian.Uint32(raw[8:])))
		if n < record.HeaderSize || n > len(raw) {
			break // a partial trailing batch: not sent
		}
		src := raw[:n]
		raw = raw[n:]
		batchStart := pos
		pos += n
		bt, err := s.decode(src)
		if err != nil {
			pos = batchStart
			if changed || pos > 0 {
				return result(nil)
			}
			return result(fmt.Errorf("view %q: %w: %v", bd.spec.View, ErrCorruptBatch, err))
		}
		if len(bt.Records) == 0 || bt.IsControl() {
			if changed {
				dst = append(dst, src...)
			}
			continue
		}
		recs := s.toWasm(bt.Records, 0)
		decs, skip, err := b.runFilter(s, bd, wasm.ConsumePath, bd.spec.Topic, partition, recs)
		if skip {
			if changed {
				dst = append(dst, src...)
			}
			continue
		}
		c := &bd.counters
		if err != nil {
			switch {
			case bd.onError == OnErrorPass:
				c.passed.Add(1)
				if changed {
					dst = append(dst, src...)
				}
			case bd.onError == OnErrorDrop:
				c.dropped.Add(int64(len(recs)))
				change(batchStart)
				dst = record.AppendEmptyBatch(dst, bt.BaseOffset, bt.LastOffsetDelta, bt.MaxTimestamp)
			case bd.deadTo != "":
				b.deadLetterView(bd, partition, recs, err)
				change(batchStart)
				dst = record.AppendEmptyBatch(dst, bt.BaseOffset, bt.LastOffsetDelta, bt.MaxTimestamp)
			default:
				c.rejected.Add(1)
				pos = batchStart
				if changed || pos > 0 {
					return result(nil)
				}
				return result(&FilterError{Binding: bd.id, Filter: bd.spec.Filter, Message: err.Error(), Err: err})
			}
			continue
		}
		// Kept and rewritten records are compacted to the front of recs,
		// which nothing else refers to.
		keep := recs[:0]
		var kept, rewritten, dropped int64
		for i := range decs {
			d := &decs[i]
			r := recs[i]
			switch d.Action {
			case wasm.Keep:
				kept++
				keep = append(keep, r)
			case wasm.Rewrite:
				rewritten++
				r.Key, r.Value, r.Headers = d.Key, d.Value, d.Headers
				keep = append(keep, r)
			default: // Drop; the host refuses the other actions on this path
				dropped++
			}
		}
		c.kept.Add(kept)
		c.rewritten.Add(rewritten)
		c.dropped.Add(dropped)
		if !(rewritten > 0 || dropped > 0) {
			if changed {
				dst = append(dst, src...)
			}
			continue
		}
		change(batchStart)
		if len(keep) == 0 {
			dst = record.AppendEmptyBatch(dst, bt.BaseOffset, bt.LastOffsetDelta, bt.MaxTimestamp)
			continue
		}
		s.batch = fromWasm(s.batch, keep, 0, false)
		dst, err = record.AppendBatch(dst, s.batch, record.EncodeOptions{
			Codec:           bt.Codec(),
			ProducerID:      bt.ProducerID,
			ProducerEpoch:   bt.ProducerEpoch,
			BaseSequence:    bt.BaseSequence,
			LogAppendTime:   bt.IsLogAppendTime(),
			Span:            true,
			BaseOffset:      bt.BaseOffset,
			LastOffsetDelta: bt.LastOffsetDelta,
			MaxTimestamp:    bt.MaxTimestamp,
		})
		if err != nil {
			return dst, false, fmt.Errorf("view %q: re-encode: %w", bd.spec.View, err)
		}
	}
	return result(nil)
}

// deadLetterView appends a failed view batch's records to the dead-letter
// topic; the view drops them. Every consumer of the view reads the batch,
// and reads it again after a seek: records at offsets already sent during
// this run are not sent again (after a restart, the first read of a failed
// batch sends it once more).
func (b *Broker) deadLetterView(bd *binding, srcPart int32, recs []wasm.Record, cause error) {
	bd.deadMu.Lock()
	defer bd.deadMu.Unlock()
	if bd.deadUpTo == nil {
		bd.deadUpTo = make(map[int32]int64)
	}
	upTo := bd.deadUpTo[srcPart]
	fresh := recs[:0:0]
	for _, r := range recs {
		if r.Offset >= upTo {
			fresh = append(fresh, r)
		}
	}
	if len(fresh) == 0 {
		return
	}
	t, err := b.routeTarget(bd.deadTo)
	if err != nil {
		b.logger.Warn("view: dead-letter topic unavailable", "binding", bd.id, "topic", bd.deadTo, "err", err)
		return
	}
	next := fresh[len(fresh)-1].Offset + 1
	recs = fresh
	failed := false
	byPart := make(map[*partition][]wasm.Record)
	for _, r := range recs {
		r.Offset = 0
		tp := t.partitions[routePartition(r.Key, srcPart, len(t.partitions))]
		byPart[tp] = append(byPart[tp], withFilterError(r, cause.Error()))
	}
	for tp, rs := range byPart {
		if err := b.appendRecords(tp, rs, record.None); err != nil {
			b.logger.Warn("view: dead-letter append failed", "binding", bd.id, "topic", bd.deadTo, "err", err)
			failed = true
			continue
		}
		if tp.flushPolicy() == FlushAlways {
			if _, err := tp.log.Sync(); err != nil {
				b.logger.Warn("view: dead-letter fsync failed", "err", err)
			}
		}
		tp.notify()
	}
	if !failed {
		// A failed append is tried again at the next read.
		bd.deadUpTo[srcPart] = next
	}
	bd.counters.deadLettered.Add(int64(len(recs)))
}
