package commitlog

import (
	"encoding/binary"
	"hash/crc32"

	"github.com/samsa-broker/samsa/broker/record"
)

// testRecord is one record of a test batch.
type testRecord struct {
	key, value []byte // nil key: null
	tsDelta    int64
}

// makeBatch builds a valid uncompressed RecordBatch v2 with base offset 0
// and the given base timestamp; each record's timestamp is baseTS+tsDelta.
func makeBatch(baseTS int64, recs []testRecord) []byte {
	b := make([]byte, record.HeaderSize, record.HeaderSize+len(recs)*32)
	maxTS := baseTS
	for i, r := range recs {
		var body []byte
		body = append(body, 0) // attributes
		body = binary.AppendVarint(body, r.tsDelta)
		body = binary.AppendVarint(body, int64(i))
		if r.key == nil {
			body = binary.AppendVarint(body, -1)
		} else {
			body = binary.AppendVarint(body, int64(len(r.key)))
			body = append(body, r.key...)
		}
		body = binary.AppendVarint(body, int64(len(r.value)))
		body = append(body, r.value...)
		body = binary.AppendVarint(body, 0) // headers
		b = binary.AppendVarint(b, int64(len(body)))
		b = append(b, body...)
		maxTS = max(maxTS, baseTS+r.tsDelta)
	}
	be := binary.BigEndian
	be.PutUint32(b[record.OffBatchLength:], uint32(len(b)-record.LengthFieldEnd))
	be.PutUint32(b[record.OffLeaderEpoch:], 0xffffffff)
	b[record.OffMagic] = 2
	be.PutUint16(b[record.OffAttributes:], 0)
	be.PutUint32(b[record.OffLastOffsetDelta:], uint32(max(len(recs)-1, 0)))
	be.PutUint64(b[record.OffBaseTimestamp:], uint64(baseTS))
	be.PutUint64(b[record.OffMaxTimestamp:], uint64(maxTS))
	be.PutUint64(b[record.OffProducerID:], 0xffffffffffffffff)
	be.PutUint16(b[record.OffProducerEpoch:], 0xffff)
	be.PutUint32(b[record.OffBaseSequence:], 0xffffffff)
	be.PutUint32(b[record.OffRecordCount:], uint32(len(recs)))
	be.PutUint32(b[record.OffCRC:], crc32.Checksum(b[record.OffAttributes:], castagnoli))
	return b
}

// makeSimpleBatch builds a batch of n records with values of size bytes
// filled with fill, all at timestamp ts.
func makeSimpleBatch(n, size int, ts int64, fill byte) []byte {
	recs := make([]testRecord, n)
	for i := range recs {
		v := make([]byte, size)
		for j := range v {
			v[j] = fill + byte(i)
		}
		recs[i] = testRecord{value: v}
	}
	return makeBatch(ts, recs)
}

// splitBatches splits concatenated batches.
func splitBatches(b []byte) [][]byte {
	var out [][]byte
	for len(b) >= record.LengthFieldEnd {
		n := int(binary.BigEndian.Uint32(b[record.OffBatchLength:])) + record.LengthFieldEnd
		out = append(out, b[:n])
		b = b[n:]
	}
	return out
}

func baseOffsetOf(b []byte) int64 { return int64(binary.BigEndian.Uint64(b)) }

// binaryPutCRC recomputes the CRC of batch b.
func binaryPutCRC(b []byte) {
	binary.BigEndian.PutUint32(b[record.OffCRC:], crc32.Checksum(b[record.OffAttributes:], castagnoli))
}
