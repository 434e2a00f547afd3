// Package commitlog implements the segmented commit log of one partition.
// It stores Kafka RecordBatch v2 (magic 2) batches as they arrive, assigns
// offsets, keeps sparse offset and time indexes, recovers after an unclean
// stop, and applies retention. It knows nothing about Kafka requests.
package commitlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/samsa-broker/samsa/broker/record"
)

// Errors about batches. Errors returned by ParseHeader and ValidateBatches
// wrap one of these with a message saying what is wrong.
var (
	// ErrCorruptBatch reports a truncated or malformed batch, or a CRC
	// mismatch.
	ErrCorruptBatch = errors.New("commitlog: corrupt record batch")
	// ErrBatchTooLarge reports a batch larger than the allowed maximum.
	ErrBatchTooLarge = errors.New("commitlog: record batch too large")
	// ErrUnsupportedMagic reports a batch whose magic byte is not 2.
	ErrUnsupportedMagic = errors.New("commitlog: unsupported record batch magic")
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// BatchHeader is the decoded header of a RecordBatch v2.
type BatchHeader struct {
	BaseOffset      int64
	Length          int32 // total bytes of the batch, including the 12-byte offset and length prefix
	LeaderEpoch     int32
	Magic           int8
	CRC             uint32
	Attributes      int16
	LastOffsetDelta int32
	BaseTimestamp   int64
	MaxTimestamp    int64
	ProducerID      int64
	ProducerEpoch   int16
	BaseSequence    int32
	RecordCount     int32
}

// LastOffset is the offset of the last record of the batch.
func (h BatchHeader) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// NextOffset is the offset following the batch.
func (h BatchHeader) NextOffset() int64 { return h.LastOffset() + 1 }

// ParseHeader decodes the header at the start of b, which must hold at least
// record.HeaderSize (61) bytes. It does not check the CRC or the magic byte.
func ParseHeader(b []byte) (BatchHeader, error) {
	if len(b) < record.HeaderSize {
		return BatchHeader{}, fmt.Errorf("%w: header needs %d bytes, have %d", ErrCorruptBatch, record.HeaderSize, len(b))
	}
	be := binary.BigEndian
	return BatchHeader{
		BaseOffset:      int64(be.Uint64(b[record.OffBaseOffset:])),
		Length:          int32(be.Uint32(b[record.OffBatchLength:])) + record.LengthFieldEnd,
		LeaderEpoch:     int32(be.Uint32(b[record.OffLeaderEpoch:])),
		Magic:           int8(b[record.OffMagic]),
		CRC:             be.Uint32(b[record.OffCRC:]),
		Attributes:      int16(be.Uint16(b[record.OffAttributes:])),
		LastOffsetDelta: int32(be.Uint32(b[record.OffLastOffsetDelta:])),
		BaseTimestamp:   int64(be.Uint64(b[record.OffBaseTimestamp:])),
		MaxTimestamp:    int64(be.Uint64(b[record.OffMaxTimestamp:])),
		ProducerID:      int64(be.Uint64(b[record.OffProducerID:])),
		ProducerEpoch:   int16(be.Uint16(b[record.OffProducerEpoch:])),
		BaseSequence:    int32(be.Uint32(b[record.OffBaseSequence:])),
		RecordCount:     int32(be.Uint32(b[record.OffRecordCount:])),
	}, nil
}

// checkHeader checks the fields of h that do not need the batch body.
func checkHeader(h BatchHeader) error {
	if h.Magic != record.Magic {
		return fmt.Errorf("%w: magic %d", ErrUnsupportedMagic, h.Magic)
	}
	if h.Length < record.HeaderSize {
		return fmt.Errorf("%w: batch length %d shorter than the %d-byte header", ErrCorruptBatch, h.Length-record.LengthFieldEnd, record.HeaderSize-record.LengthFieldEnd)
	}
	if h.RecordCount < 0 {
		return fmt.Errorf("%w: negative record count %d", ErrCorruptBatch, h.RecordCount)
	}
	if h.LastOffsetDelta < 0 {
		return fmt.Errorf("%w: negative last offset delta %d", ErrCorruptBatch, h.LastOffsetDelta)
	}
	if h.RecordCount > 0 && int64(h.RecordCount) != int64(h.LastOffsetDelta)+1 {
		return fmt.Errorf("%w: record count %d does not match last offset delta %d", ErrCorruptBatch, h.RecordCount, h.LastOffsetDelta)
	}
	return nil
}

// checkCRC checks the CRC-32C of the whole batch b.
func checkCRC(b []byte, h BatchHeader) error {
	if c := crc32.Checksum(b[record.OffAttributes:], castagnoli); c != h.CRC {
		return fmt.Errorf("%w: crc mismatch (stored %08x, computed %08x)", ErrCorruptBatch, h.CRC, c)
	}
	return nil
}

// ValidateBatches checks that b is a sequence of one or more whole, valid v2
// batches: lengths, magic 2, CRC-32C, a non-negative record count consistent
// with the last offset delta, and a size within maxBatchBytes (0 = no limit).
// It returns the headers of the batches.
func ValidateBatches(b []byte, maxBatchBytes int) ([]BatchHeader, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: no batches", ErrCorruptBatch)
	}
	var hs []BatchHeader
	for pos := 0; pos < len(b); {
		rest := b[pos:]
		at := func(err error) error {
			return fmt.Errorf("batch %d at byte %d: %w", len(hs), pos, err)
		}
		if len(rest) <= record.OffMagic {
			return nil, at(fmt.Errorf("%w: %d trailing bytes are not a batch", ErrCorruptBatch, len(rest)))
		}
		if m := int8(rest[record.OffMagic]); m != record.Magic {
			return nil, at(fmt.Errorf("%w: magic %d", ErrUnsupportedMagic, m))
		}
		length := int64(int32(binary.BigEndian.Uint32(rest[record.OffBatchLength:]))) + record.LengthFieldEnd
		if length < record.HeaderSize {
			return nil, at(fmt.Errorf("%w: batch length %d shorter than the header", ErrCorruptBatch, length-record.LengthFieldEnd))
		}
		if maxBatchBytes > 0 && length > int64(maxBatchBytes) {
			return nil, at(fmt.Errorf("%w: %d bytes, limit %d", ErrBatchTooLarge, length, maxBatchBytes))
		}
		if length > int64(len(rest)) {
			return nil, at(fmt.Errorf("%w: batch of %d bytes truncated to %d", ErrCorruptBatch, length, len(rest)))
		}
		h, err := ParseHeader(rest)
		if err != nil {
			return nil, at(err)
		}
		if err := checkHeader(h); err != nil {
			return nil, at(err)
		}
		if err := checkCRC(rest[:length], h); err != nil {
			return nil, at(err)
		}
		hs = append(hs, h)
		pos += int(length)
	}
	return hs, nil
}
