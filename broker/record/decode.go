package record

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// minRecordSize is the smallest encoding of a record body plus its length
// prefix: length, attributes, timestampDelta, offsetDelta, keyLength,
// valueLength and headerCount, one byte each.
const minRecordSize = 7

// DecodeBatch decodes the record batch at the start of b and returns it with
// the number of bytes it occupies (LengthFieldEnd + batchLength). Bytes after
// the batch are not looked at.
//
// It checks the magic byte and the CRC-32C, decompresses the records if the
// batch is compressed, refusing with ErrTooLarge to inflate them beyond
// maxDecompressed bytes (DefaultMaxDecompressed if maxDecompressed <= 0),
// and decodes exactly recordCount records, which must fill the records
// section exactly.
//
// The returned records alias b when the batch is uncompressed (see Record).
// Input shorter than the batch it declares gives ErrTruncated.
func DecodeBatch(b []byte, maxDecompressed int) (Batch, int, error) {
	return DecodeBatchInto(b, maxDecompressed, nil)
}

// DecodeBatchInto is DecodeBatch that decodes the records into dst's
// backing array when it has room (its old contents are overwritten), which
// saves an allocation per batch for callers that recycle record slices.
func DecodeBatchInto(b []byte, maxDecompressed int, dst []Record) (Batch, int, error) {
	n, err := batchSize(b)
	if err != nil {
		return Batch{}, 0, err
	}
	if n > len(b) {
		return Batch{}, 0, fmt.Errorf("%w: batch of %d bytes, have %d", ErrTruncated, n, len(b))
	}
	bt, err := decodeFull(b[:n], maxDecompressed, dst)
	if err != nil {
		return Batch{}, 0, err
	}
	return bt, n, nil
}

// DecodeBatches decodes the sequence of batches in b (a log segment slice or
// the records of a fetch response) and calls fn with each, in order. It stops
// at the first error, from decoding or from fn, and returns it.
//
// A trailing partial batch, as when a fetch response is cut at its byte
// limit, is ignored: DecodeBatches returns nil once fewer bytes remain than
// the next batch declares. A batch that is complete but invalid is an error.
// maxDecompressed applies to each batch as in DecodeBatch.
func DecodeBatches(b []byte, maxDecompressed int, fn func(Batch) error) error {
	for len(b) > 0 {
		if len(b) < LengthFieldEnd {
			return nil // partial length prefix
		}
		n, err := batchSize(b)
		if err != nil {
			return err
		}
		if n > len(b) {
			return nil // partial trailing batch
		}
		bt, err := decodeFull(b[:n], maxDecompressed, nil)
		if err != nil {
			return err
		}
		if err := fn(bt); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// batchSize returns the total size of the batch starting at b, from its
// batchLength field, validating that the field is sane.
func batchSize(b []byte) (int, error) {
	if len(b) < LengthFieldEnd {
		return 0, fmt.Errorf("%w: %d bytes, need at least %d for the batch length", ErrTruncated, len(b), LengthFieldEnd)
	}
	l := int32(binary.BigEndian.Uint32(b[OffBatchLength:]))
	if l < HeaderSize-LengthFieldEnd {
		return 0, fmt.Errorf("%w: batch length %d is shorter than the header", ErrCorrupt, l)
	}
	return LengthFieldEnd + int(l), nil
}

// decodeFull decodes b, which holds exactly one batch (len(b) >= HeaderSize).
func decodeFull(b []byte, maxDecompressed int, dst []Record) (Batch, error) {
	if m := int8(b[OffMagic]); m != Magic {
		return Batch{}, fmt.Errorf("%w: magic %d", ErrUnsupportedMagic, m)
	}
	want := binary.BigEndian.Uint32(b[OffCRC:])
	if got := crc32.Checksum(b[OffAttributes:], castagnoli); got != want {
		return Batch{}, fmt.Errorf("%w: stored %08x, computed %08x", ErrChecksum, want, got)
	}
	bt := Batch{
		BaseOffset:      int64(binary.BigEndian.Uint64(b[OffBaseOffset:])),
		LeaderEpoch:     int32(binary.BigEndian.Uint32(b[OffLeaderEpoch:])),
		Attributes:      int16(binary.BigEndian.Uint16(b[OffAttributes:])),
		LastOffsetDelta: int32(binary.BigEndian.Uint32(b[OffLastOffsetDelta:])),
		BaseTimestamp:   int64(binary.BigEndian.Uint64(b[OffBaseTimestamp:])),
		MaxTimestamp:    int64(binary.BigEndian.Uint64(b[OffMaxTimestamp:])),
		ProducerID:      int64(binary.BigEndian.Uint64(b[OffProducerID:])),
		ProducerEpoch:   int16(binary.BigEndian.Uint16(b[OffProducerEpoch:])),
		BaseSequence:    int32(binary.BigEndian.Uint32(b[OffBaseSequence:])),
	}
	count := int32(binary.BigEndian.Uint32(b[OffRecordCount:]))
	if count < 0 {
		return Batch{}, fmt.Errorf("%w: negative record count %d", ErrCorrupt, count)
	}
	data := b[HeaderSize:]
	if c := bt.Codec(); c != None {
		if maxDecompressed <= 0 {
			maxDecompressed = DefaultMaxDecompressed
		}
		var err error
		if data, err = decompress(c, data, maxDecompressed); err != nil {
			return Batch{}, err
		}
	}
	recs, err := decodeRecords(data, int(count), &bt, dst)
	if err != nil {
		return Batch{}, err
	}
	bt.Records = recs
	return bt, nil
}

// reader is a cursor over a records section. Errors are sticky: once a read
// fails, every later read returns zero values and err reports the first
// failure.
type reader struct {
	b   []byte
	i   int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
	}
}

// uvarint reads an unsigned LEB128 varint of at most maxBytes bytes.
func (r *reader) uvarint(maxBytes int) uint64 {
	if r.err != nil {
		return 0
	}
	// Fast path: one byte.
	if r.i < len(r.b) && r.b[r.i] < 0x80 {
		v := uint64(r.b[r.i])
		r.i++
		return v
	}
	var v uint64
	var shift uint
	for n := 0; n < maxBytes; n++ {
		if r.i >= len(r.b) {
			r.fail("varint runs past the end of the records at %d", r.i)
			return 0
		}
		c := r.b[r.i]
		r.i++
		v |= uint64(c&0x7f) << shift
		if c < 0x80 {
			if n == maxBytes-1 && maxBytes == 10 && c > 1 {
				r.fail("varlong overflows 64 bits at %d", r.i)
				return 0
			}
			return v
		}
		shift += 7
	}
	r.fail("varint longer than %d bytes at %d", maxBytes, r.i)
	return 0
}

// varint reads a zigzag varint that must fit in 32 bits.
func (r *reader) varint() int32 {
	u := r.uvarint(5)
	if u > 0xffffffff {
		r.fail("varint overflows 32 bits at %d", r.i)
		return 0
	}
	return int32(uint32(u>>1) ^ -uint32(u&1))
}

// varlong reads a zigzag varint of up to 64 bits.
func (r *reader) varlong() int64 {
	u := r.uvarint(10)
	return int64(u>>1) ^ -int64(u&1)
}

// bytes reads a length-prefixed byte string; a length of -1 is null (nil).
// The result aliases r.b with its capacity clipped.
func (r *reader) bytes(what string) []byte {
	n := r.varint()
	if r.err != nil {
		return nil
	}
	if n < 0 {
		if n != -1 {
			r.fail("%s length %d", what, n)
		}
		return nil
	}
	end := r.i + int(n)
	if end > len(r.b) {
		r.fail("%s length %d runs past the end of the record", what, n)
		return nil
	}
	s := r.b[r.i:end:end]
	r.i = end
	return s
}

// decodeRecords decodes count records filling data exactly.
func decodeRecords(data []byte, count int, bt *Batch, dst []Record) ([]Record, error) {
	if count > len(data)/minRecordSize {
		return nil, fmt.Errorf("%w: %d records cannot fit in %d bytes", ErrCorrupt, count, len(data))
	}
	if count == 0 {
		if len(data) != 0 {
			return nil, fmt.Errorf("%w: %d bytes after the last record", ErrCorrupt, len(data))
		}
		return nil, nil
	}
	var recs []Record
	if cap(dst) >= count {
		recs = dst[:count]
		clear(recs)
	} else {
		recs = make([]Record, count)
	}
	logAppend := bt.IsLogAppendTime()
	r := reader{b: data}
	var (
		arena []Header // backing store shared by the records' headers
		// keyCache holds the last header key seen at each of the first
		// positions: records of a batch tend to repeat their header keys,
		// and reusing the strings saves an allocation per header.
		keyCache [8]string
	)
	for i := range recs {
		r.b = data
		length := r.varint()
		if r.err != nil {
			break
		}
		start := r.i
		if length < 0 || int(length) > len(data)-start {
			r.fail("record %d length %d with %d bytes left", i, length, len(data)-start)
			break
		}
		end := start + int(length)
		// Confine the record's fields to its declared length.
		r.b = data[:end]

		rec := &recs[i]
		if r.i >= end {
			r.fail("record %d is empty", i)
			break
		}
		r.i++ // record attributes, unused
		tsDelta := r.varlong()
		offDelta := r.varint()
		rec.Offset = bt.BaseOffset + int64(offDelta)
		if logAppend {
			rec.Timestamp = bt.MaxTimestamp
		} else {
			rec.Timestamp = bt.BaseTimestamp + tsDelta
		}
		rec.Key = r.bytes("key")
		rec.Value = r.bytes("value")
		nh := r.varint()
		if r.err != nil {
			break
		}
		if nh < 0 || int(nh) > (end-r.i)/2 {
			r.fail("record %d header count %d with %d bytes left", i, nh, end-r.i)
			break
		}
		if nh > 0 {
			n := int(nh)
			if cap(arena)-len(arena) < n {
				// Size the next chunk for the remaining records, assuming
				// they carry as many headers as this one.
				size := min(n*(count-i), max(n, 1024))
				arena = make([]Header, 0, size)
			}
			hs := arena[len(arena) : len(arena)+n : len(arena)+n]
			arena = arena[:len(arena)+n]
			for j := range hs {
				k := r.bytes("header key")
				if r.err == nil && k == nil {
					r.fail("record %d header %d has a null key", i, j)
				}
				if r.err != nil {
					break
				}
				if j < len(keyCache) {
					if keyCache[j] != string(k) { // no allocation
						keyCache[j] = string(k)
					}
					hs[j].Key = keyCache[j]
				} else {
					hs[j].Key = string(k)
				}
				hs[j].Value = r.bytes("header value")
			}
			rec.Headers = hs
		}
		if r.err != nil {
			break
		}
		if r.i != end {
			r.fail("record %d has %d bytes past its fields", i, end-r.i)
			break
		}
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.i != len(data) {
		return nil, fmt.Errorf("%w: %d bytes after the last record", ErrCorrupt, len(data)-r.i)
	}
	return recs, nil
}
