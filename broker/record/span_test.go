package record

import (
	"errors"
	"testing"
)

func TestAppendBatchSpan(t *testing.T) {
	for _, c := range []Codec{None, Zstd, Gzip} {
		recs := []Record{
			{Offset: 101, Timestamp: 5, Key: []byte("k"), Value: []byte("a")},
			{Offset: 104, Timestamp: 7, Value: []byte("b"), Headers: []Header{{Key: "h", Value: []byte("v")}}},
		}
		b, err := AppendBatch(nil, recs, EncodeOptions{Codec: c, Span: true, BaseOffset: 100, LastOffsetDelta: 9, MaxTimestamp: 20, ProducerID: 7, ProducerEpoch: 1, BaseSequence: 3})
		if err != nil {
			t.Fatal(err)
		}
		bt, n, err := DecodeBatch(b, 0)
		if err != nil || n != len(b) {
			t.Fatalf("%s: decode: %v", c, err)
		}
		if bt.BaseOffset != 100 || bt.LastOffsetDelta != 9 || bt.MaxTimestamp != 20 || bt.Codec() != c || bt.ProducerID != 7 || bt.BaseSequence != 3 {
			t.Fatalf("%s: header %+v", c, bt)
		}
		if len(bt.Records) != 2 || bt.Records[0].Offset != 101 || bt.Records[1].Offset != 104 || bt.Records[1].Timestamp != 7 || string(bt.Records[1].Headers[0].Value) != "v" {
			t.Fatalf("%s: records %+v", c, bt.Records)
		}
	}
	for _, bad := range [][]Record{
		{{Offset: 99}},
		{{Offset: 111}},
		{{Offset: 102}, {Offset: 101}},
	} {
		if _, err := AppendBatch(nil, bad, EncodeOptions{Span: true, BaseOffset: 100, LastOffsetDelta: 10}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("%+v: %v", bad, err)
		}
	}
}

func TestAppendEmptyBatch(t *testing.T) {
	b := AppendEmptyBatch([]byte("x"), 40, 4, 1234)
	bt, n, err := DecodeBatch(b[1:], 0)
	if err != nil || n != HeaderSize {
		t.Fatal(n, err)
	}
	if bt.BaseOffset != 40 || bt.LastOffset() != 44 || len(bt.Records) != 0 || bt.MaxTimestamp != 1234 || bt.ProducerID != -1 || bt.Codec() != None {
		t.Fatalf("%+v", bt)
	}
	// With Span and no records, AppendBatch writes one with the producer.
	b, err = AppendBatch(nil, nil, EncodeOptions{Codec: Zstd, Span: true, BaseOffset: 0, LastOffsetDelta: 2, ProducerID: 3, BaseSequence: 9})
	if err != nil {
		t.Fatal(err)
	}
	if bt, _, err = DecodeBatch(b, 0); err != nil || bt.ProducerID != 3 || bt.BaseSequence != 9 || bt.LastOffsetDelta != 2 || bt.Codec() != None {
		t.Fatalf("%+v %v", bt, err)
	}
}

func TestDecodeBatchIntoReuses(t *testing.T) {
	b, err := AppendBatch(nil, []Record{{Value: []byte("a")}, {Value: []byte("b")}}, EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dst := make([]Record, 0, 8)
	bt, _, err := DecodeBatchInto(b, 0, dst)
	if err != nil || len(bt.Records) != 2 || &bt.Records[0] != &dst[:1][0] {
		t.Fatalf("records not decoded into dst: %v", err)
	}
	if bt, _, err = DecodeBatchInto(b, 0, make([]Record, 0, 1)); err != nil || len(bt.Records) != 2 {
		t.Fatalf("small dst: %v", err)
	}
}
