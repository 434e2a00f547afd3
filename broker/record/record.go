// Package record encodes and decodes Kafka RecordBatch v2 (magic 2) record
// batches, the unit of data that samsa stores on disk and moves between
// clients.
//
// Most of the broker handles batches as opaque bytes (validated, offset
// assigned, appended, sent). This package is for the parts that need the
// records inside: ListOffsets by timestamp, the WebSocket transport, Wasm
// filters and tests.
//
// # Layout
//
// A batch is a 61-byte big-endian header followed by the records, which are
// compressed as a whole when the batch's codec is not None:
//
//	offset  size  field
//	     0     8  baseOffset
//	     8     4  batchLength (bytes after this field)
//	    12     4  partitionLeaderEpoch
//	    16     1  magic (2)
//	    17     4  crc (CRC-32C of bytes 21..end)
//	    21     2  attributes (bits 0-2 codec, 3 timestamp type, 4 transactional, 5 control)
//	    23     4  lastOffsetDelta
//	    27     8  baseTimestamp
//	    35     8  maxTimestamp
//	    43     8  producerId
//	    51     2  producerEpoch
//	    53     4  baseSequence
//	    57     4  recordCount
//	    61     -  records
//
// Each record is: length varint, attributes int8, timestampDelta varlong,
// offsetDelta varint, key (varint length, -1 = null, then bytes), value (same),
// header count varint, then per header a key (varint length, bytes) and a
// value (varint length, -1 = null, then bytes). Varints are zigzag encoded.
//
// # Errors
//
// Every error this package returns (other than the callback's own, which
// DecodeBatches passes through) wraps one of the Err* sentinels below; match
// them with errors.Is. ErrChecksum and ErrTruncated also match
// ErrCorrupt.
package record

import (
	"errors"
	"fmt"
	"strings"
)

// Sizes and offsets of the RecordBatch v2 header.
const (
	// HeaderSize is the size in bytes of a RecordBatch v2 header; the records
	// start at this offset.
	HeaderSize = 61
	// Magic is the only record batch format version this package handles.
	Magic = 2

	// LengthFieldEnd is the number of leading bytes (baseOffset and
	// batchLength) that batchLength does not count: a batch occupies
	// LengthFieldEnd + batchLength bytes.
	LengthFieldEnd = 12

	// Byte offsets of the header fields, from the start of the batch. The
	// table in the package documentation gives their sizes.

	OffBaseOffset      = 0  // OffBaseOffset is where baseOffset (int64) starts.
	OffBatchLength     = 8  // OffBatchLength is where batchLength (int32) starts.
	OffLeaderEpoch     = 12 // OffLeaderEpoch is where partitionLeaderEpoch (int32) starts.
	OffMagic           = 16 // OffMagic is where magic (int8) starts.
	OffCRC             = 17 // OffCRC is where crc (uint32, CRC-32C of bytes OffAttributes..end) starts.
	OffAttributes      = 21 // OffAttributes is where attributes (int16) starts; the CRC covers from here.
	OffLastOffsetDelta = 23 // OffLastOffsetDelta is where lastOffsetDelta (int32) starts.
	OffBaseTimestamp   = 27 // OffBaseTimestamp is where baseTimestamp (int64) starts.
	OffMaxTimestamp    = 35 // OffMaxTimestamp is where maxTimestamp (int64) starts.
	OffProducerID      = 43 // OffProducerID is where producerId (int64) starts.
	OffProducerEpoch   = 51 // OffProducerEpoch is where producerEpoch (int16) starts.
	OffBaseSequence    = 53 // OffBaseSequence is where baseSequence (int32) starts.
	OffRecordCount     = 57 // OffRecordCount is where recordCount (int32) starts.
)

// Attribute bits of a batch.
const (
	// AttrCodecMask selects the compression codec bits of the attributes.
	AttrCodecMask int16 = 0x07
	// AttrLogAppendTime is set when the batch's timestamps are the broker's
	// log append time rather than the producer's create time.
	AttrLogAppendTime int16 = 0x08
	// AttrTransactional is set on batches written by a transactional
	// producer.
	AttrTransactional int16 = 0x10
	// AttrControl is set on control batches (transaction markers).
	AttrControl int16 = 0x20
)

// DefaultMaxDecompressed is the decompression limit used when a caller passes
// a limit of zero or less to DecodeBatch or DecodeBatches.
const DefaultMaxDecompressed = 64 << 20

// Errors returned by this package, always wrapped with detail.
var (
	// ErrCorrupt reports a malformed batch: bad lengths, varints, counts or
	// compressed data. ErrChecksum and ErrTruncated wrap it.
	ErrCorrupt = errors.New("record: corrupt record batch")
	// ErrChecksum reports a CRC-32C mismatch. It matches ErrCorrupt too.
	ErrChecksum = fmt.Errorf("%w: crc-32c mismatch", ErrCorrupt)
	// ErrTruncated reports input that ends before the batch does. It
	// matches ErrCorrupt too.
	ErrTruncated = fmt.Errorf("%w: truncated", ErrCorrupt)
	// ErrUnsupportedMagic reports a batch whose magic byte is not 2.
	ErrUnsupportedMagic = errors.New("record: unsupported record batch magic")
	// ErrUnsupportedCodec reports an unknown compression codec.
	ErrUnsupportedCodec = errors.New("record: unsupported compression codec")
	// ErrTooLarge reports records that would decompress beyond the caller's
	// limit (a decompression bomb, or simply a limit set too low).
	ErrTooLarge = errors.New("record: decompressed records exceed limit")
	// ErrInvalid reports records or options that AppendBatch cannot encode.
	ErrInvalid = errors.New("record: invalid records to encode")
)

// Header is a record header. Kafka header keys are strings; a nil Value is
// a null value.
type Header struct {
	Key   string
	Value []byte
}

// Record is one record of a batch.
//
// Records returned by DecodeBatch alias memory: for an uncompressed batch,
// Key, Value and header values point into the input buffer; for a compressed
// one, into a buffer holding the decompressed records that the batch owns.
// Copy them before modifying the input or keeping them beyond its lifetime.
// Their capacity is clipped to their length, so appending to them never
// overwrites neighbouring data.
type Record struct {
	// Offset is the absolute offset: the batch's base offset plus the
	// record's offset delta.
	Offset int64
	// Timestamp is in milliseconds since the Unix epoch. For a batch with
	// log append time it is the batch's MaxTimestamp.
	Timestamp int64
	// Key is the record key; nil means null, a non-nil empty slice is an
	// empty key.
	Key []byte
	// Value is the record value; nil means null (a tombstone).
	Value []byte
	// Headers are the record headers, in order.
	Headers []Header
}

// Codec is a record batch compression codec, as stored in the low three bits
// of the batch attributes.
type Codec int8

// Compression codecs.
const (
	None   Codec = 0
	Gzip   Codec = 1
	Snappy Codec = 2
	LZ4    Codec = 3
	Zstd   Codec = 4
)

// String returns the codec's Kafka name: none, gzip, snappy, lz4 or zstd.
func (c Codec) String() string {
	switch c {
	case None:
		return "none"
	case Gzip:
		return "gzip"
	case Snappy:
		return "snappy"
	case LZ4:
		return "lz4"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("codec(%d)", int8(c))
}

// Valid reports whether c is one of the five known codecs.
func (c Codec) Valid() bool { return c >= None && c <= Zstd }

// ParseCodec returns the codec with the given Kafka name (case-insensitive;
// "" and "uncompressed" mean None, as in Kafka's compression.type).
func ParseCodec(s string) (Codec, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "none", "uncompressed":
		return None, nil
	case "gzip":
		return Gzip, nil
	case "snappy":
		return Snappy, nil
	case "lz4":
		return LZ4, nil
	case "zstd":
		return Zstd, nil
	}
	return None, fmt.Errorf("%w: %q", ErrUnsupportedCodec, s)
}

// Batch is a decoded RecordBatch v2.
type Batch struct {
	// BaseOffset is the offset of the first record of the batch (as
	// assigned by the broker).
	BaseOffset int64
	// LeaderEpoch is the partition leader epoch (-1 where none is kept).
	LeaderEpoch int32
	// Attributes are the raw batch attributes; see Codec, IsControl,
	// IsTransactional and IsLogAppendTime.
	Attributes int16
	// LastOffsetDelta is the offset delta of the last record; the batch
	// spans offsets BaseOffset..BaseOffset+LastOffsetDelta.
	LastOffsetDelta int32
	// BaseTimestamp is the timestamp of the first record, in milliseconds.
	BaseTimestamp int64
	// MaxTimestamp is the largest record timestamp (or the log append
	// time), in milliseconds.
	MaxTimestamp int64
	// ProducerID is the idempotent/transactional producer id, -1 if none.
	ProducerID int64
	// ProducerEpoch is the producer epoch, -1 if none.
	ProducerEpoch int16
	// BaseSequence is the sequence number of the first record, -1 if none.
	BaseSequence int32
	// Records are the decoded records; see Record for what they alias.
	Records []Record
}

// Codec returns the batch's compression codec.
func (b Batch) Codec() Codec { return Codec(b.Attributes & AttrCodecMask) }

// IsControl reports whether the batch is a control batch (its records are
// transaction markers, not data).
func (b Batch) IsControl() bool { return b.Attributes&AttrControl != 0 }

// IsTransactional reports whether the batch was written by a transactional
// producer.
func (b Batch) IsTransactional() bool { return b.Attributes&AttrTransactional != 0 }

// IsLogAppendTime reports whether the batch's timestamps are the log append
// time (every record's timestamp is then MaxTimestamp).
func (b Batch) IsLogAppendTime() bool { return b.Attributes&AttrLogAppendTime != 0 }

// LastOffset returns the offset of the last record the batch spans.
func (b Batch) LastOffset() int64 { return b.BaseOffset + int64(b.LastOffsetDelta) }
