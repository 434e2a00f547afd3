package record

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
)

var allCodecs = []Codec{None, Gzip, Snappy, LZ4, Zstd}

// equalRecords reports the first difference between want and got, telling
// nil (null) apart from empty.
func equalRecords(want, got []Record) error {
	if len(want) != len(got) {
		return fmt.Errorf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		w, g := &want[i], &got[i]
		if w.Offset != g.Offset {
			return fmt.Errorf("record %d: offset %d, want %d", i, g.Offset, w.Offset)
		}
		if w.Timestamp != g.Timestamp {
			return fmt.Errorf("record %d: timestamp %d, want %d", i, g.Timestamp, w.Timestamp)
		}
		if err := equalBytes("key", w.Key, g.Key); err != nil {
			return fmt.Errorf("record %d: %v", i, err)
		}
		if err := equalBytes("value", w.Value, g.Value); err != nil {
			return fmt.Errorf("record %d: %v", i, err)
		}
		if len(w.Headers) != len(g.Headers) {
			return fmt.Errorf("record %d: %d headers, want %d", i, len(g.Headers), len(w.Headers))
		}
		for j := range w.Headers {
			if w.Headers[j].Key != g.Headers[j].Key {
				return fmt.Errorf("record %d header %d: key %q, want %q", i, j, g.Headers[j].Key, w.Headers[j].Key)
			}
			if err := equalBytes("header value", w.Headers[j].Value, g.Headers[j].Value); err != nil {
				return fmt.Errorf("record %d header %d: %v", i, j, err)
			}
		}
	}
	return nil
}

func equalBytes(what string, want, got []byte) error {
	if (want == nil) != (got == nil) {
		return fmt.Errorf("%s nil=%v, want nil=%v", what, got == nil, want == nil)
	}
	if !bytes.Equal(want, got) {
		return fmt.Errorf("%s %q, want %q", what, trunc(got), trunc(want))
	}
	return nil
}

func trunc(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// numbered gives records consecutive offsets from base, as a decoder reports
// them.
func numbered(base int64, recs []Record) []Record {
	out := make([]Record, len(recs))
	copy(out, recs)
	for i := range out {
		out[i].Offset = base + int64(i)
	}
	return out
}

func manyRecords(n int, seed uint64) []Record {
	rng := rand.New(rand.NewPCG(seed, 1))
	recs := make([]Record, n)
	for i := range recs {
		r := &recs[i]
		r.Timestamp = 1_700_000_000_000 + int64(i)*3 - int64(rng.IntN(5))
		switch i % 7 {
		case 0: // null key
		case 1:
			r.Key = []byte{}
		default:
			r.Key = fmt.Appendf(nil, "key-%d", i)
		}
		if i%11 != 5 {
			v := make([]byte, rng.IntN(300))
			for j := range v {
				v[j] = "abcdefgh{}\":, 0123456789"[rng.IntN(24)]
			}
			r.Value = v
		}
		for j := range i % 4 {
			h := Header{Key: fmt.Sprintf("h%d", j), Value: fmt.Appendf(nil, "v%d-%d", i, j)}
			if j == 2 {
				h.Value = nil
			}
			r.Headers = append(r.Headers, h)
		}
	}
	return recs
}

func TestRoundTrip(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB, compressible
	sets := []struct {
		name string
		recs []Record
		want []Record // nil: numbered(0, recs)
	}{
		{name: "one", recs: []Record{{Timestamp: 1000, Key: []byte("k"), Value: []byte("v")}}},
		{name: "null key and value", recs: []Record{{Timestamp: 5}}},
		{name: "empty key and value", recs: []Record{{Key: []byte{}, Value: []byte{}}}},
		{name: "headers", recs: []Record{{
			Timestamp: 1,
			Value:     []byte("x"),
			Headers: []Header{
				{Key: "content-type", Value: []byte("application/json")},
				{Key: "null", Value: nil},
				{Key: "empty", Value: []byte{}},
				{Key: "", Value: []byte("empty key")},
				{Key: "content-type", Value: []byte("dup")},
			},
		}}},
		{name: "varying header keys", recs: func() []Record {
			recs := make([]Record, 30)
			for i := range recs {
				for j := range i % 12 {
					recs[i].Headers = append(recs[i].Headers, Header{Key: fmt.Sprintf("k%d-%d", j, i%3), Value: []byte{byte(j)}})
				}
			}
			return recs
		}()},
		{name: "negative timestamp deltas", recs: []Record{
			{Timestamp: 1000, Value: []byte("a")},
			{Timestamp: 10, Value: []byte("b")},
			{Timestamp: -1, Value: []byte("c")},
			{Timestamp: 5000, Value: []byte("d")},
		}},
		{name: "many", recs: manyRecords(1000, 1)},
		{name: "large value", recs: []Record{{Key: []byte("big"), Value: big}, {Value: big[:1000]}}},
		{
			name: "explicit offsets with gaps",
			recs: []Record{{Offset: 100, Value: []byte("a")}, {Offset: 101}, {Offset: 105, Value: []byte("c")}, {Offset: 1 << 30}},
			want: []Record{{Offset: 100, Value: []byte("a")}, {Offset: 101}, {Offset: 105, Value: []byte("c")}, {Offset: 1 << 30}},
		},
	}
	for _, set := range sets {
		for _, c := range allCodecs {
			t.Run(set.name+"/"+c.String(), func(t *testing.T) {
				want := set.want
				if want == nil {
					want = numbered(0, set.recs)
				}
				prefix := []byte("prefix")
				buf, err := AppendBatch(prefix, set.recs, EncodeOptions{Codec: c})
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.HasPrefix(buf, []byte("prefix")) {
					t.Fatal("prefix clobbered")
				}
				enc := buf[len(prefix):]
				b, n, err := DecodeBatch(enc, 0)
				if err != nil {
					t.Fatal(err)
				}
				if n != len(enc) {
					t.Fatalf("consumed %d of %d", n, len(enc))
				}
				if b.Codec() != c {
					t.Fatalf("codec %s, want %s", b.Codec(), c)
				}
				if err := equalRecords(want, b.Records); err != nil {
					t.Fatal(err)
				}
				if b.BaseOffset != want[0].Offset {
					t.Errorf("base offset %d, want %d", b.BaseOffset, want[0].Offset)
				}
				if got, w := b.LastOffset(), want[len(want)-1].Offset; got != w {
					t.Errorf("last offset %d, want %d", got, w)
				}
				maxTS := want[0].Timestamp
				for _, r := range want {
					maxTS = max(maxTS, r.Timestamp)
				}
				if b.BaseTimestamp != want[0].Timestamp || b.MaxTimestamp != maxTS {
					t.Errorf("timestamps base %d max %d, want %d %d", b.BaseTimestamp, b.MaxTimestamp, want[0].Timestamp, maxTS)
				}
				if b.LeaderEpoch != -1 || b.ProducerID != -1 || b.ProducerEpoch != -1 || b.BaseSequence != -1 {
					t.Errorf("epoch/producer %d %d %d %d, want all -1", b.LeaderEpoch, b.ProducerID, b.ProducerEpoch, b.BaseSequence)
				}
				if b.IsControl() || b.IsTransactional() || b.IsLogAppendTime() {
					t.Errorf("attributes %#x", b.Attributes)
				}
			})
		}
	}
}

func TestUncompressedAliasesInput(t *testing.T) {
	buf, err := AppendBatch(nil, []Record{{Key: []byte("key"), Value: []byte("value")}, {Value: []byte("next")}}, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := DecodeBatch(buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	k := b.Records[0].Key
	if i := bytes.Index(buf, []byte("key")); &buf[i] != &k[0] {
		t.Error("key does not alias the input")
	}
	if cap(k) != len(k) || cap(b.Records[0].Value) != len(b.Records[0].Value) {
		t.Error("capacity not clipped")
	}
	_ = append(b.Records[0].Value, "XXXX"...)
	if b.Records[1].Value[0] != 'n' {
		t.Error("append to a value overwrote the next record")
	}
}

func TestEncodeOptions(t *testing.T) {
	recs := []Record{{Timestamp: 10}, {Timestamp: 30}, {Timestamp: 20}}
	buf, err := AppendBatch(nil, recs, EncodeOptions{ProducerID: 42, ProducerEpoch: 3, BaseSequence: 7, LogAppendTime: true, Codec: Zstd})
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := DecodeBatch(buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	if b.ProducerID != 42 || b.ProducerEpoch != 3 || b.BaseSequence != 7 {
		t.Errorf("producer %d/%d/%d", b.ProducerID, b.ProducerEpoch, b.BaseSequence)
	}
	if !b.IsLogAppendTime() || b.Codec() != Zstd || b.LastOffsetDelta != 2 {
		t.Errorf("attributes %#x, last offset delta %d", b.Attributes, b.LastOffsetDelta)
	}
	for _, r := range b.Records {
		if r.Timestamp != 30 {
			t.Errorf("log append time: record timestamp %d, want max timestamp 30", r.Timestamp)
		}
	}

	// Negative producer ids mean none, whatever the other fields say.
	buf, _ = AppendBatch(nil, recs, EncodeOptions{ProducerID: -1, ProducerEpoch: 3, BaseSequence: 7})
	b, _, _ = DecodeBatch(buf, 0)
	if b.ProducerID != -1 || b.ProducerEpoch != -1 || b.BaseSequence != -1 {
		t.Errorf("producer %d/%d/%d, want -1s", b.ProducerID, b.ProducerEpoch, b.BaseSequence)
	}
}

func TestEncodeErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		recs []Record
		opts EncodeOptions
		want error
	}{
		{"no records", nil, EncodeOptions{}, ErrInvalid},
		{"bad codec", []Record{{}}, EncodeOptions{Codec: 5}, ErrUnsupportedCodec},
		{"decreasing offsets", []Record{{Offset: 5}, {Offset: 4}}, EncodeOptions{}, ErrInvalid},
		{"repeated offsets", []Record{{Offset: 5}, {Offset: 5}}, EncodeOptions{}, ErrInvalid},
		{"negative offset", []Record{{Offset: -3}}, EncodeOptions{}, ErrInvalid},
		{"delta overflow", []Record{{Offset: 1}, {Offset: 1 << 40}}, EncodeOptions{}, ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := []byte("keep")
			out, err := AppendBatch(dst, tc.recs, tc.opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
			if string(out) != "keep" {
				t.Fatalf("dst changed to %q", out)
			}
		})
	}
}

func TestCodecNames(t *testing.T) {
	for _, c := range allCodecs {
		got, err := ParseCodec(strings.ToUpper(c.String()))
		if err != nil || got != c {
			t.Errorf("ParseCodec(%q) = %v, %v", c, got, err)
		}
	}
	if _, err := ParseCodec("brotli"); !errors.Is(err, ErrUnsupportedCodec) {
		t.Errorf("ParseCodec(brotli) err %v", err)
	}
	if s := Codec(7).String(); s != "codec(7)" {
		t.Errorf("Codec(7) = %q", s)
	}
}

// TestKnownBytes decodes a batch assembled byte by byte, independently of
// the encoder: one record, key "k", value "hello", header "h" = "v".
func TestKnownBytes(t *testing.T) {
	rec := []byte{
		0x00,      // attributes
		0x04,      // timestampDelta 2
		0x02,      // offsetDelta 1
		0x02, 'k', // key length 1
		0x0a, 'h', 'e', 'l', 'l', 'o', // value length 5
		0x02,      // 1 header
		0x02, 'h', // header key length 1
		0x02, 'v', // header value length 1
	}
	rec = append([]byte{byte(len(rec) << 1)}, rec...)
	// A second record: null key, null value, no headers, offsetDelta 2,
	// timestampDelta -1.
	rec = append(rec, 0x0c, 0x00, 0x01, 0x04, 0x01, 0x01, 0x00)

	h := []byte{
		0, 0, 0, 0, 0, 0, 0x03, 0xe8, // baseOffset 1000
		0, 0, 0, 0, // batchLength, below
		0, 0, 0, 7, // leader epoch 7
		2,          // magic
		0, 0, 0, 0, // crc, below
		0, 0x10, // attributes: transactional
		0, 0, 0, 2, // lastOffsetDelta
		0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x00, // baseTimestamp 1700000000000
		0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x02, // maxTimestamp
		0, 0, 0, 0, 0, 0, 0, 9, // producerId 9
		0, 1, // producerEpoch 1
		0, 0, 0, 4, // baseSequence 4
		0, 0, 0, 2, // recordCount 2
	}
	b := append(h, rec...)
	binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))

	got, n, err := DecodeBatch(b, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n != len(b) {
		t.Fatalf("consumed %d of %d", n, len(b))
	}
	want := Batch{
		BaseOffset: 1000, LeaderEpoch: 7, Attributes: 0x10, LastOffsetDelta: 2,
		BaseTimestamp: 1700000000000, MaxTimestamp: 1700000000002,
		ProducerID: 9, ProducerEpoch: 1, BaseSequence: 4,
	}
	recs := got.Records
	got.Records = nil
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("header\n got %+v\nwant %+v", got, want)
	}
	if !got.IsTransactional() || got.IsControl() || got.Codec() != None {
		t.Error("attribute accessors")
	}
	wantRecs := []Record{
		{Offset: 1001, Timestamp: 1700000000002, Key: []byte("k"), Value: []byte("hello"), Headers: []Header{{"h", []byte("v")}}},
		{Offset: 1002, Timestamp: 1699999999999},
	}
	if err := equalRecords(wantRecs, recs); err != nil {
		t.Fatal(err)
	}
}

// snappyLiteral is a raw snappy block holding p as one literal, built by
// hand (p must be 1..60 bytes).
func snappyLiteral(p []byte) []byte {
	b := binary.AppendUvarint(nil, uint64(len(p)))
	b = append(b, byte(len(p)-1)<<2)
	return append(b, p...)
}

func xerial(blocks ...[]byte) []byte {
	b := []byte{0x82, 'S', 'N', 'A', 'P', 'P', 'Y', 0, 0, 0, 0, 1, 0, 0, 0, 1}
	for _, blk := range blocks {
		b = binary.BigEndian.AppendUint32(b, uint32(len(blk)))
		b = append(b, blk...)
	}
	return b
}

// compressedBatch builds a batch around an already compressed records
// section, independently of AppendBatch's compression.
func compressedBatch(t testing.TB, c Codec, count int, compressed []byte) []byte {
	t.Helper()
	recs := make([]Record, count)
	tmpl, err := AppendBatch(nil, recs, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b := append(tmpl[:HeaderSize:HeaderSize], compressed...)
	binary.BigEndian.PutUint32(b[OffBatchLength:], uint32(len(b)-LengthFieldEnd))
	binary.BigEndian.PutUint16(b[OffAttributes:], uint16(c))
	binary.BigEndian.PutUint32(b[OffCRC:], crc32.Checksum(b[OffAttributes:], castagnoli))
	return b
}

func TestXerialSnappy(t *testing.T) {
	recs := manyRecords(300, 2)
	raw, err := appendRecords(nil, recs, 0, 0, true) // base timestamp 0, as compressedBatch writes
	if err != nil {
		t.Fatal(err)
	}
	// snappy-java writes 32 KiB blocks.
	var blocks [][]byte
	for rest := raw; len(rest) > 0; {
		n := min(len(rest), 32<<10)
		blocks = append(blocks, s2.EncodeSnappy(nil, rest[:n]))
		rest = rest[n:]
	}
	if len(blocks) < 2 {
		t.Fatalf("want several blocks, got %d", len(blocks))
	}
	b, _, err := DecodeBatch(compressedBatch(t, Snappy, len(recs), xerial(blocks...)), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := equalRecords(numbered(0, recs), b.Records); err != nil {
		t.Fatal(err)
	}

	// Hand-made blocks: a record split across two literal blocks.
	one := []Record{{Key: []byte("key"), Value: []byte("a value that spans two xerial blocks")}}
	raw, _ = appendRecords(nil, one, 0, 0, true)
	stream := xerial(snappyLiteral(raw[:10]), snappyLiteral(raw[10:]))
	b, _, err = DecodeBatch(compressedBatch(t, Snappy, 1, stream), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := equalRecords(one, b.Records); err != nil {
		t.Fatal(err)
	}
	// The same, as one raw (unframed) snappy block.
	b, _, err = DecodeBatch(compressedBatch(t, Snappy, 1, snappyLiteral(raw)), 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := equalRecords(one, b.Records); err != nil {
		t.Fatal(err)
	}

	// Broken framing.
	for name, s := range map[string][]byte{
		"block past end": xerial(snappyLiteral(raw))[:30],
		"zero block":     append(xerial(), 0, 0, 0, 0),
		"short length":   append(xerial(), 0, 0),
		"bad block":      xerial([]byte{0x05, 0xff}),
	} {
		_, _, err := DecodeBatch(compressedBatch(t, Snappy, 1, s), 0)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err %v, want ErrCorrupt", name, err)
		}
	}
}

func TestChecksum(t *testing.T) {
	for _, c := range allCodecs {
		buf, err := AppendBatch(nil, manyRecords(20, 3), EncodeOptions{Codec: c})
		if err != nil {
			t.Fatal(err)
		}
		for _, at := range []int{OffAttributes, OffRecordCount + 2, HeaderSize + 3, len(buf) - 1} {
			bad := bytes.Clone(buf)
			bad[at] ^= 0x40
			_, _, err := DecodeBatch(bad, 0)
			if !errors.Is(err, ErrChecksum) || !errors.Is(err, ErrCorrupt) {
				t.Errorf("%s: flipped byte %d: err %v, want ErrChecksum", c, at, err)
			}
		}
		// The base offset, length prefix and leader epoch are outside the
		// CRC: the broker rewrites the base offset.
		moved := bytes.Clone(buf)
		binary.BigEndian.PutUint64(moved, 12345)
		binary.BigEndian.PutUint32(moved[OffLeaderEpoch:], 3)
		b, _, err := DecodeBatch(moved, 0)
		if err != nil {
			t.Fatalf("%s: rewritten base offset: %v", c, err)
		}
		if b.BaseOffset != 12345 || b.Records[0].Offset != 12345 || b.Records[19].Offset != 12345+19 {
			t.Errorf("%s: offsets not rebased: %d %d", c, b.BaseOffset, b.Records[0].Offset)
		}
	}
}

func TestTruncated(t *testing.T) {
	for _, c := range allCodecs {
		buf, err := AppendBatch(nil, manyRecords(5, 4), EncodeOptions{Codec: c})
		if err != nil {
			t.Fatal(err)
		}
		for n := range len(buf) {
			_, _, err := DecodeBatch(buf[:n], 0)
			if !errors.Is(err, ErrTruncated) {
				t.Fatalf("%s: %d of %d bytes: err %v, want ErrTruncated", c, n, len(buf), err)
			}
			calls := 0
			err = DecodeBatches(buf[:n], 0, func(Batch) error { calls++; return nil })
			if err != nil || calls != 0 {
				t.Fatalf("%s: DecodeBatches of %d bytes: %d calls, err %v", c, n, calls, err)
			}
		}
	}
}

func TestDecodeBatches(t *testing.T) {
	var buf []byte
	var want [][]Record
	for i, c := range allCodecs {
		recs := manyRecords(10+i, uint64(i))
		var err error
		if buf, err = AppendBatch(buf, recs, EncodeOptions{Codec: c}); err != nil {
			t.Fatal(err)
		}
		want = append(want, numbered(0, recs))
	}
	full := len(buf)
	// A fetch response cut at its byte limit: part of one more batch.
	extra, _ := AppendBatch(nil, manyRecords(10, 9), EncodeOptions{})
	buf = append(buf, extra[:len(extra)/2]...)

	var got []Batch
	if err := DecodeBatches(buf, 0, func(b Batch) error { got = append(got, b); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d batches, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i].Codec() != allCodecs[i] {
			t.Errorf("batch %d: codec %s", i, got[i].Codec())
		}
		if err := equalRecords(want[i], got[i].Records); err != nil {
			t.Errorf("batch %d: %v", i, err)
		}
	}

	// fn's error stops the walk and is returned.
	stop := errors.New("stop")
	calls := 0
	if err := DecodeBatches(buf, 0, func(Batch) error { calls++; return stop }); err != stop || calls != 1 {
		t.Errorf("err %v after %d calls", err, calls)
	}
	// A complete but corrupt batch in the middle is an error.
	bad := bytes.Clone(buf[:full])
	bad[len(bad)-1] ^= 1
	if err := DecodeBatches(bad, 0, func(Batch) error { return nil }); !errors.Is(err, ErrChecksum) {
		t.Errorf("corrupt last batch: err %v", err)
	}
	if err := DecodeBatches(nil, 0, func(Batch) error { return stop }); err != nil {
		t.Errorf("empty input: %v", err)
	}
}

// reseal recomputes the CRC after a test edits a batch.
func reseal(b []byte) []byte {
	binary.BigEndian.PutUint32(b[OffCRC:], crc32.Checksum(b[OffAttributes:], castagnoli))
	return b
}

func TestCorrupt(t *testing.T) {
	good, err := AppendBatch(nil, []Record{{Key: []byte("k"), Value: []byte("v")}, {Value: []byte("w")}}, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"magic 1", edit(func(b []byte) []byte { b[OffMagic] = 1; return b }), ErrUnsupportedMagic},
		{"short batch length", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:], 48); return b }), ErrCorrupt},
		{"negative batch length", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[8:], 0xffffffff); return b }), ErrCorrupt},
		{"codec 6", edit(func(b []byte) []byte { b[OffAttributes+1] |= 6; return reseal(b) }), ErrUnsupportedCodec},
		{"negative count", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[OffRecordCount:], 0xffffffff); return reseal(b) }), ErrCorrupt},
		{"count too high", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[OffRecordCount:], 3); return reseal(b) }), ErrCorrupt},
		{"count too low", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[OffRecordCount:], 1); return reseal(b) }), ErrCorrupt},
		{"count huge", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[OffRecordCount:], 1<<30); return reseal(b) }), ErrCorrupt},
		{"record length too long", edit(func(b []byte) []byte { b[HeaderSize] += 2; return reseal(b) }), ErrCorrupt},
		{"record length too short", edit(func(b []byte) []byte { b[HeaderSize] -= 2; return reseal(b) }), ErrCorrupt},
		{"key length past record", edit(func(b []byte) []byte { b[HeaderSize+4] = 0x40; return reseal(b) }), ErrCorrupt},
		{"key length -2", edit(func(b []byte) []byte { b[HeaderSize+4] = 0x03; return reseal(b) }), ErrCorrupt},
		{"overlong varint", edit(func(b []byte) []byte {
			b = append(b[:HeaderSize+2:HeaderSize+2], append([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x00}, b[HeaderSize+3:]...)...)
			binary.BigEndian.PutUint32(b[8:], uint32(len(b)-12))
			return reseal(b)
		}), ErrCorrupt},
		{"zero record count with data", edit(func(b []byte) []byte { binary.BigEndian.PutUint32(b[OffRecordCount:], 0); return reseal(b) }), ErrCorrupt},
		{"garbage gzip", compressedBatch(t, Gzip, 1, []byte("not gzip at all, really")), ErrCorrupt},
		{"garbage lz4", compressedBatch(t, LZ4, 1, []byte("not lz4 at all, really")), ErrCorrupt},
		{"garbage zstd", compressedBatch(t, Zstd, 1, []byte("not zstd at all, really")), ErrCorrupt},
		{"garbage snappy", compressedBatch(t, Snappy, 1, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}), ErrCorrupt},
		{"empty zstd", compressedBatch(t, Zstd, 1, nil), ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := DecodeBatch(tc.b, 0)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}

	// A batch with no records is valid.
	empty := edit(func(b []byte) []byte {
		b = b[:HeaderSize]
		binary.BigEndian.PutUint32(b[8:], HeaderSize-12)
		binary.BigEndian.PutUint32(b[OffRecordCount:], 0)
		return reseal(b)
	})
	if b, _, err := DecodeBatch(empty, 0); err != nil || len(b.Records) != 0 {
		t.Errorf("empty batch: %v, %d records", err, len(b.Records))
	}
}

func TestDecompressionBomb(t *testing.T) {
	// 1,000 records of 16 KiB of zeros: ~16 MiB that compress to little.
	zeros := make([]byte, 16<<10)
	recs := make([]Record, 1000)
	for i := range recs {
		recs[i].Value = zeros
	}
	raw, err := appendRecords(nil, recs, 0, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	const limit = 1 << 20

	zstdStream := func() []byte { // no frame content size: the streaming path
		var b bytes.Buffer
		w, _ := zstd.NewWriter(&b)
		_, _ = w.Write(raw)
		_ = w.Close()
		return b.Bytes()
	}
	gzipLyingSize := func() []byte {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		_, _ = w.Write(raw)
		_ = w.Close()
		out := b.Bytes()
		binary.LittleEndian.PutUint32(out[len(out)-4:], 10) // ISIZE lies
		return out
	}
	lz4Frame := func() []byte {
		var b bytes.Buffer
		w := lz4.NewWriter(&b)
		_, _ = w.Write(raw)
		_ = w.Close()
		return b.Bytes()
	}
	var blocks [][]byte
	for rest := raw; len(rest) > 0; rest = rest[min(len(rest), 1<<20):] {
		blocks = append(blocks, s2.EncodeSnappy(nil, rest[:min(len(rest), 1<<20)]))
	}

	cases := map[string][]byte{}
	for _, c := range []Codec{Gzip, Snappy, LZ4, Zstd} {
		b, err := AppendBatch(nil, recs, EncodeOptions{Codec: c})
		if err != nil {
			t.Fatal(err)
		}
		cases[c.String()] = b
	}
	cases["zstd stream"] = compressedBatch(t, Zstd, len(recs), zstdStream())
	cases["gzip lying isize"] = compressedBatch(t, Gzip, len(recs), gzipLyingSize())
	cases["lz4 frame"] = compressedBatch(t, LZ4, len(recs), lz4Frame())
	cases["xerial"] = compressedBatch(t, Snappy, len(recs), xerial(blocks...))

	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if len(b) > len(raw)/16 {
				t.Fatalf("bomb is %d bytes: not much of a bomb", len(b))
			}
			_, _, err := DecodeBatch(b, limit)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("err %v, want ErrTooLarge", err)
			}
			if err := DecodeBatches(b, limit, func(Batch) error { return nil }); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("DecodeBatches err %v, want ErrTooLarge", err)
			}
			if name == "gzip lying isize" {
				return // the trailer is wrong: only the limit matters
			}
			// Exactly enough room decodes.
			got, _, err := DecodeBatch(b, len(raw))
			if err != nil {
				t.Fatalf("limit = size: %v", err)
			}
			if len(got.Records) != len(recs) {
				t.Fatalf("%d records", len(got.Records))
			}
			if _, _, err := DecodeBatch(b, len(raw)-1); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("limit = size-1: err %v, want ErrTooLarge", err)
			}
		})
	}
}

func TestConcurrentCodecs(t *testing.T) {
	// Pools and shared encoders/decoders under the race detector.
	recs := manyRecords(200, 5)
	want := numbered(0, recs)
	done := make(chan error)
	for g := range 8 {
		go func() {
			var err error
			for i := range 20 {
				c := allCodecs[(g+i)%len(allCodecs)]
				var buf []byte
				if buf, err = AppendBatch(nil, recs, EncodeOptions{Codec: c}); err != nil {
					break
				}
				var b Batch
				if b, _, err = DecodeBatch(buf, 0); err != nil {
					break
				}
				if err = equalRecords(want, b.Records); err != nil {
					break
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func FuzzDecodeBatch(f *testing.F) {
	for _, c := range allCodecs {
		b, err := AppendBatch(nil, manyRecords(5, 6), EncodeOptions{Codec: c, ProducerID: 1})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	one, _ := AppendBatch(nil, []Record{{Key: []byte("k"), Headers: []Header{{Key: "h"}}}}, EncodeOptions{})
	f.Add(one)
	f.Add(compressedBatch(f, Snappy, 1, xerial(snappyLiteral([]byte{0x0c, 0, 0, 0, 1, 1, 0}))))
	f.Add([]byte{})
	f.Add(make([]byte, HeaderSize))

	f.Fuzz(func(t *testing.T, data []byte) {
		b, n, err := DecodeBatch(data, 1<<20)
		if err != nil {
			if n != 0 {
				t.Fatalf("error %v with %d bytes consumed", err, n)
			}
		} else {
			if n < HeaderSize || n > len(data) {
				t.Fatalf("consumed %d of %d", n, len(data))
			}
			// What decodes re-encodes to the same records.
			recs := b.Records
			if len(recs) > 0 && !b.IsLogAppendTime() {
				enc, err := AppendBatch(nil, recs, EncodeOptions{Codec: b.Codec()})
				if err == nil {
					b2, _, err := DecodeBatch(enc, 0)
					if err != nil {
						t.Fatalf("re-encoded batch: %v", err)
					}
					for i := range recs {
						b2.Records[i].Offset = recs[i].Offset // numbering may differ
					}
					if err := equalRecords(recs, b2.Records); err != nil {
						t.Fatalf("re-encoded batch: %v", err)
					}
				}
			}
		}
		_ = DecodeBatches(data, 1<<20, func(Batch) error { return nil })
	})
}

func benchDecode(b *testing.B, c Codec) {
	recs := manyRecords(1000, 7)
	buf, err := AppendBatch(nil, recs, EncodeOptions{Codec: c})
	if err != nil {
		b.Fatal(err)
	}
	raw, _ := appendRecords(nil, recs, 0, 0, true)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		bt, _, err := DecodeBatch(buf, 0)
		if err != nil || len(bt.Records) != 1000 {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeBatch1000(b *testing.B) {
	b.Run("none", func(b *testing.B) { benchDecode(b, None) })
	b.Run("zstd", func(b *testing.B) { benchDecode(b, Zstd) })
	b.Run("lz4", func(b *testing.B) { benchDecode(b, LZ4) })
	b.Run("snappy", func(b *testing.B) { benchDecode(b, Snappy) })
	b.Run("gzip", func(b *testing.B) { benchDecode(b, Gzip) })
}

func BenchmarkAppendBatch1000(b *testing.B) {
	recs := manyRecords(1000, 8)
	for _, c := range []Codec{None, Zstd} {
		b.Run(c.String(), func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				var err error
				if buf, err = AppendBatch(buf[:0], recs, EncodeOptions{Codec: c}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
