package record

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"math"
	"math/bits"
	"slices"
	"sync"
)

// EncodeOptions control how AppendBatch writes a batch.
type EncodeOptions struct {
	// Codec compresses the records; None (the zero value) leaves them
	// uncompressed.
	Codec Codec
	// ProducerID is the idempotent producer id. Zero (the zero value) and
	// negative values mean no producer: the batch then carries producer
	// id, producer epoch and base sequence -1, whatever ProducerEpoch and
	// BaseSequence say. A producer id of 0 therefore cannot be written,
	// so producer ids must be allocated from 1.
	ProducerID int64
	// ProducerEpoch is the producer epoch, used when ProducerID > 0.
	ProducerEpoch int16
	// BaseSequence is the sequence number of the first record, used when
	// ProducerID > 0.
	BaseSequence int32
	// LogAppendTime marks the timestamps as the log append time. Readers
	// then report MaxTimestamp for every record, so set every record's
	// Timestamp to the append time.
	LogAppendTime bool
	// Span makes the batch span exactly the offsets BaseOffset ..
	// BaseOffset+LastOffsetDelta, whichever records it holds: the records'
	// Offsets are absolute, must be strictly increasing and lie inside the
	// span, and need not start at BaseOffset or end at its last offset (a
	// filtered view re-encodes a source batch this way so that consumers
	// advance past the records it dropped). With Span, AppendBatch also
	// accepts no records and then writes an empty batch, as
	// AppendEmptyBatch does.
	Span bool
	// BaseOffset is the batch's base offset when Span is set.
	BaseOffset int64
	// LastOffsetDelta is the batch's last offset delta when Span is set.
	LastOffsetDelta int32
	// MaxTimestamp, when Span is set and it is larger than every record's
	// timestamp, is written as the batch's max timestamp (a re-encoded
	// batch keeps its source's), and is the timestamp of an empty batch.
	MaxTimestamp int64
}

// scratch holds records before they are compressed.
var scratch = sync.Pool{New: func() any { return new([]byte) }}

// maxPooledScratch keeps the pool from pinning the buffers of rare huge
// batches.
const maxPooledScratch = 4 << 20

// AppendBatch encodes recs as one RecordBatch v2 appended to dst, and returns
// the extended slice. It computes the offset and timestamp deltas, the last
// offset delta, the max timestamp, the record count and the CRC-32C; the
// partition leader epoch is written as -1.
//
// Offsets: if every record's Offset is zero (records built by a producer),
// the records get consecutive offsets from base offset 0. Otherwise the
// offsets are taken as given, relative to the first record: the base offset
// is recs[0].Offset and each offset delta is Offset - recs[0].Offset. They
// must then be non-negative and strictly increasing, and may have gaps (a
// filtered view keeps its source's offsets). The broker rewrites the base
// offset when it appends a batch, so only the deltas matter there.
//
// Timestamps: the base timestamp is recs[0].Timestamp and the deltas are
// relative to it; they may be negative.
//
// recs must not be empty; header keys and values, keys and values must each
// fit in an int32 length. On error dst is returned unchanged (its spare
// capacity may have been written to).
func AppendBatch(dst []byte, recs []Record, opts EncodeOptions) ([]byte, error) {
	if opts.Span {
		return appendSpan(dst, recs, opts)
	}
	if len(recs) == 0 {
		return dst, fmt.Errorf("%w: no records", ErrInvalid)
	}
	if len(recs) > math.MaxInt32 {
		return dst, fmt.Errorf("%w: %d records", ErrInvalid, len(recs))
	}
	if !opts.Codec.Valid() {
		return dst, fmt.Errorf("%w: %s", ErrUnsupportedCodec, opts.Codec)
	}

	sequential := true
	for i := range recs {
		if recs[i].Offset != 0 {
			sequential = false
			break
		}
	}
	base := recs[0].Offset
	if base < 0 {
		return dst, fmt.Errorf("%w: negative offset %d", ErrInvalid, base)
	}
	baseTS := recs[0].Timestamp
	maxTS := baseTS
	var lastDelta int64
	for i := range recs {
		if recs[i].Timestamp > maxTS {
			maxTS = recs[i].Timestamp
		}
		if sequential {
			lastDelta = int64(i)
			continue
		}
		d := recs[i].Offset - base
		if i > 0 && d <= lastDelta {
			return dst, fmt.Errorf("%w: offset %d of record %d does not follow %d", ErrInvalid, recs[i].Offset, i, base+lastDelta)
		}
		if d > math.MaxInt32 || d < 0 {
			return dst, fmt.Errorf("%w: offset %d of record %d is too far from base offset %d", ErrInvalid, recs[i].Offset, i, base)
		}
		lastDelta = d
	}

	start := len(dst)
	if opts.Codec == None {
		// One allocation for the whole batch rather than a doubling
		// series: records are their key, value and headers plus at most
		// a few varints each.
		dst = slices.Grow(dst, HeaderSize+uncompressedSizeBound(recs))
	}
	out, err := appendBody(append(dst, make([]byte, HeaderSize)...), recs, base, baseTS, sequential, opts.Codec)
	if err != nil {
		return dst, err
	}

	size := len(out) - start
	if size-LengthFieldEnd > math.MaxInt32 {
		return dst, fmt.Errorf("%w: batch of %d bytes", ErrInvalid, size)
	}
	attrs := int16(opts.Codec)
	if opts.LogAppendTime {
		attrs |= AttrLogAppendTime
	}
	pid, epoch, seq := int64(-1), int16(-1), int32(-1)
	if opts.ProducerID > 0 {
		pid, epoch, seq = opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence
	}
	h := out[start : start+HeaderSize]
	be := binary.BigEndian
	be.PutUint64(h[OffBaseOffset:], uint64(base))
	be.PutUint32(h[OffBatchLength:], uint32(size-LengthFieldEnd))
	be.PutUint32(h[OffLeaderEpoch:], math.MaxUint32) // -1
	h[OffMagic] = Magic
	be.PutUint16(h[OffAttributes:], uint16(attrs))
	be.PutUint32(h[OffLastOffsetDelta:], uint32(lastDelta))
	be.PutUint64(h[OffBaseTimestamp:], uint64(baseTS))
	be.PutUint64(h[OffMaxTimestamp:], uint64(maxTS))
	be.PutUint64(h[OffProducerID:], uint64(pid))
	be.PutUint16(h[OffProducerEpoch:], uint16(epoch))
	be.PutUint32(h[OffBaseSequence:], uint32(seq))
	be.PutUint32(h[OffRecordCount:], uint32(len(recs)))
	be.PutUint32(h[OffCRC:], crc32.Checksum(out[start+OffAttributes:], castagnoli))
	return out, nil
}

// uncompressedSizeBound bounds the encoded size of recs in a batch: each
// record's key, value and headers plus its length, attributes, deltas and
// the varint lengths (at most 5 bytes each for what fits a batch).
func uncompressedSizeBound(recs []Record) int {
	n := 0
	for i := range recs {
		r := &recs[i]
		n += 5 + 1 + 10 + 5 + 5 + len(r.Key) + 5 + len(r.Value) + 5
		for _, h := range r.Headers {
			n += 5 + len(h.Key) + 5 + len(h.Value)
		}
	}
	return n
}

// appendSpan is AppendBatch with opts.Span set.
func appendSpan(dst []byte, recs []Record, opts EncodeOptions) ([]byte, error) {
	base, lastDelta := opts.BaseOffset, int64(opts.LastOffsetDelta)
	if base < 0 || lastDelta < 0 {
		return dst, fmt.Errorf("%w: span of base offset %d and last offset delta %d", ErrInvalid, base, lastDelta)
	}
	if !opts.Codec.Valid() {
		return dst, fmt.Errorf("%w: %s", ErrUnsupportedCodec, opts.Codec)
	}
	if len(recs) == 0 {
		return appendEmpty(dst, base, int32(lastDelta), opts.MaxTimestamp, opts), nil
	}
	prev := base - 1
	maxTS := opts.MaxTimestamp
	for i := range recs {
		o := recs[i].Offset
		if o <= prev || o > base+lastDelta {
			return dst, fmt.Errorf("%w: offset %d of record %d is outside the span %d..%d or out of order", ErrInvalid, o, i, base, base+lastDelta)
		}
		prev = o
		maxTS = max(maxTS, recs[i].Timestamp)
	}
	baseTS := recs[0].Timestamp
	start := len(dst)
	out, err := appendBody(append(dst, make([]byte, HeaderSize)...), recs, base, baseTS, false, opts.Codec)
	if err != nil {
		return dst, err
	}
	if len(out)-start-LengthFieldEnd > math.MaxInt32 {
		return dst, fmt.Errorf("%w: batch of %d bytes", ErrInvalid, len(out)-start)
	}
	writeHeader(out[start:], int16(opts.Codec), base, int32(lastDelta), baseTS, maxTS, int32(len(recs)), opts)
	return out, nil
}

// AppendEmptyBatch appends a batch with no records that spans the offsets
// baseOffset .. baseOffset+lastOffsetDelta, as Kafka's log compaction leaves
// behind when it removes every record of a batch: consumers skip it and
// continue after its last offset. It has no producer and no compression.
func AppendEmptyBatch(dst []byte, baseOffset int64, lastOffsetDelta int32, maxTimestamp int64) []byte {
	return appendEmpty(dst, baseOffset, lastOffsetDelta, maxTimestamp, EncodeOptions{})
}

// appendEmpty writes an empty batch with the producer fields and timestamp
// type of opts (its codec is ignored: there is nothing to compress).
func appendEmpty(dst []byte, base int64, lastDelta int32, maxTS int64, opts EncodeOptions) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, HeaderSize)...)
	writeHeader(dst[start:], 0, base, lastDelta, maxTS, maxTS, 0, opts)
	return dst
}

// writeHeader fills the header of the batch that b holds exactly (records
// included) and its CRC.
func writeHeader(b []byte, attrs int16, base int64, lastDelta int32, baseTS, maxTS int64, count int32, opts EncodeOptions) {
	if opts.LogAppendTime {
		attrs |= AttrLogAppendTime
	}
	pid, epoch, seq := int64(-1), int16(-1), int32(-1)
	if opts.ProducerID > 0 {
		pid, epoch, seq = opts.ProducerID, opts.ProducerEpoch, opts.BaseSequence
	}
	be := binary.BigEndian
	be.PutUint64(b[OffBaseOffset:], uint64(base))
	be.PutUint32(b[OffBatchLength:], uint32(len(b)-LengthFieldEnd))
	be.PutUint32(b[OffLeaderEpoch:], math.MaxUint32) // -1
	b[OffMagic] = Magic
	be.PutUint16(b[OffAttributes:], uint16(attrs))
	be.PutUint32(b[OffLastOffsetDelta:], uint32(lastDelta))
	be.PutUint64(b[OffBaseTimestamp:], uint64(baseTS))
	be.PutUint64(b[OffMaxTimestamp:], uint64(maxTS))
	be.PutUint64(b[OffProducerID:], uint64(pid))
	be.PutUint16(b[OffProducerEpoch:], uint16(epoch))
	be.PutUint32(b[OffBaseSequence:], uint32(seq))
	be.PutUint32(b[OffRecordCount:], uint32(count))
	be.PutUint32(b[OffCRC:], crc32.Checksum(b[OffAttributes:], castagnoli))
}

// varintSize is the size of v zigzag varint encoded.
// appendBody appends the records of a batch to out (which already holds
// the header's room), compressed with codec.
func appendBody(out []byte, recs []Record, base, baseTS int64, sequential bool, codec Codec) ([]byte, error) {
	if codec == None {
		return appendRecords(out, recs, base, baseTS, sequential)
	}
	sp := scratch.Get().(*[]byte)
	raw, err := appendRecords((*sp)[:0], recs, base, baseTS, sequential)
	if err == nil {
		out, err = compress(out, codec, raw)
	}
	if cap(raw) <= maxPooledScratch {
		*sp = raw[:0]
		scratch.Put(sp)
	}
	return out, err
}

func varintSize(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	return (bits.Len64(u|1) + 6) / 7
}

// bytesSize is the encoded size of a nullable length-prefixed byte string.
func bytesSize(b []byte) int {
	if b == nil {
		return 1 // -1
	}
	return varintSize(int64(len(b))) + len(b)
}

func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return append(dst, 1) // zigzag(-1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}

func appendRecords(dst []byte, recs []Record, base, baseTS int64, sequential bool) ([]byte, error) {
	for i := range recs {
		r := &recs[i]
		if len(r.Key) > math.MaxInt32 || len(r.Value) > math.MaxInt32 || len(r.Headers) > math.MaxInt32 {
			return nil, fmt.Errorf("%w: record %d has a field too large", ErrInvalid, i)
		}
		offDelta := int64(i)
		if !sequential {
			offDelta = r.Offset - base
		}
		tsDelta := r.Timestamp - baseTS
		body := 1 + varintSize(tsDelta) + varintSize(offDelta) +
			bytesSize(r.Key) + bytesSize(r.Value) + varintSize(int64(len(r.Headers)))
		for j := range r.Headers {
			h := &r.Headers[j]
			if len(h.Key) > math.MaxInt32 || len(h.Value) > math.MaxInt32 {
				return nil, fmt.Errorf("%w: record %d header %d is too large", ErrInvalid, i, j)
			}
			body += varintSize(int64(len(h.Key))) + len(h.Key) + bytesSize(h.Value)
		}
		if body > math.MaxInt32 {
			return nil, fmt.Errorf("%w: record %d is %d bytes", ErrInvalid, i, body)
		}
		dst = binary.AppendVarint(dst, int64(body))
		dst = append(dst, 0) // record attributes
		dst = binary.AppendVarint(dst, tsDelta)
		dst = binary.AppendVarint(dst, offDelta)
		dst = appendBytes(dst, r.Key)
		dst = appendBytes(dst, r.Value)
		dst = binary.AppendVarint(dst, int64(len(r.Headers)))
		for j := range r.Headers {
			h := &r.Headers[j]
			dst = binary.AppendVarint(dst, int64(len(h.Key)))
			dst = append(dst, h.Key...)
			dst = appendBytes(dst, h.Value)
		}
	}
	return dst, nil
}
