package record

import (
	"bytes"
	"context"
	"hash/crc32"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// These tests cross-check the codec against franz-go: its kmsg structs and
// its own compressors/decompressors, and a real franz-go producer writing to
// kfake, an in-process fake Kafka cluster.

var kgoCodecs = map[Codec]kgo.CompressionCodec{
	Gzip:   kgo.GzipCompression(),
	Snappy: kgo.SnappyCompression(),
	LZ4:    kgo.Lz4Compression(),
	Zstd:   kgo.ZstdCompression(),
}

// franzBatch encodes recs the way franz-go does, with kmsg and kgo's default
// compressor, independently of AppendBatch.
func franzBatch(t *testing.T, c Codec, base int64, recs []Record) []byte {
	t.Helper()
	var raw []byte
	for i, r := range recs {
		kr := kmsg.Record{
			TimestampDelta64: r.Timestamp - recs[0].Timestamp,
			OffsetDelta:      int32(i),
			Key:              r.Key,
			Value:            r.Value,
		}
		for _, h := range r.Headers {
			kr.Headers = append(kr.Headers, kmsg.Header{Key: h.Key, Value: h.Value})
		}
		kr.Length = int32(len(kr.AppendTo(nil)) - 1) // Length 0 is one varint byte
		raw = kr.AppendTo(raw)
	}
	if c != None {
		comp, err := kgo.DefaultCompressor(kgoCodecs[c])
		if err != nil {
			t.Fatal(err)
		}
		out, used := comp.Compress(new(bytes.Buffer), raw)
		if int(used) != int(c) {
			t.Fatalf("franz-go compressed with %d, want %s", used, c)
		}
		raw = bytes.Clone(out)
	}
	maxTS := recs[0].Timestamp
	for _, r := range recs {
		maxTS = max(maxTS, r.Timestamp)
	}
	kb := kmsg.RecordBatch{
		FirstOffset:          base,
		PartitionLeaderEpoch: 4,
		Magic:                2,
		Attributes:           int16(c),
		LastOffsetDelta:      int32(len(recs) - 1),
		FirstTimestamp:       recs[0].Timestamp,
		MaxTimestamp:         maxTS,
		ProducerID:           77,
		ProducerEpoch:        2,
		FirstSequence:        100,
		NumRecords:           int32(len(recs)),
		Records:              raw,
	}
	b := kb.AppendTo(nil)
	kb.Length = int32(len(b) - 12)
	kb.CRC = int32(crc32.Checksum(kb.AppendTo(nil)[21:], crc32.MakeTable(crc32.Castagnoli)))
	return kb.AppendTo(nil)
}

func franzSets() map[string][]Record {
	return map[string][]Record{
		"many": manyRecords(500, 10),
		"nulls and headers": {
			{Timestamp: 3},
			{Timestamp: 2, Key: []byte{}, Value: []byte{}},
			{Timestamp: 9, Key: []byte("k"), Value: []byte("v"), Headers: []Header{{Key: "a", Value: nil}, {Key: "b", Value: []byte("c")}}},
		},
	}
}

func TestDecodeFranzGoBatches(t *testing.T) {
	for name, recs := range franzSets() {
		for _, c := range allCodecs {
			t.Run(name+"/"+c.String(), func(t *testing.T) {
				b, n, err := DecodeBatch(franzBatch(t, c, 5000, recs), 0)
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 || b.BaseOffset != 5000 || b.LeaderEpoch != 4 || b.ProducerID != 77 ||
					b.ProducerEpoch != 2 || b.BaseSequence != 100 || b.Codec() != c {
					t.Fatalf("header %+v", b)
				}
				if err := equalRecords(numbered(5000, recs), b.Records); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

func TestFranzGoDecodesOurBatches(t *testing.T) {
	dec := kgo.DefaultDecompressor()
	for name, recs := range franzSets() {
		for _, c := range allCodecs {
			t.Run(name+"/"+c.String(), func(t *testing.T) {
				buf, err := AppendBatch(nil, recs, EncodeOptions{Codec: c, ProducerID: 8, ProducerEpoch: 1, BaseSequence: 3})
				if err != nil {
					t.Fatal(err)
				}
				var kb kmsg.RecordBatch
				if err := kb.ReadFrom(buf); err != nil {
					t.Fatal(err)
				}
				if int(kb.Length) != len(buf)-12 || kb.Magic != 2 {
					t.Fatalf("length %d magic %d", kb.Length, kb.Magic)
				}
				if uint32(kb.CRC) != crc32.Checksum(buf[21:], crc32.MakeTable(crc32.Castagnoli)) {
					t.Fatal("crc")
				}
				if kb.ProducerID != 8 || kb.ProducerEpoch != 1 || kb.FirstSequence != 3 ||
					kb.NumRecords != int32(len(recs)) || kb.LastOffsetDelta != int32(len(recs)-1) ||
					kb.FirstTimestamp != recs[0].Timestamp || kb.PartitionLeaderEpoch != -1 {
					t.Fatalf("header %+v", kb)
				}
				raw, err := dec.Decompress(kb.Records, kgo.CompressionCodecType(kb.Attributes&7))
				if err != nil {
					t.Fatal(err)
				}
				var got []Record
				for len(raw) > 0 {
					var kr kmsg.Record
					if err := kr.ReadFrom(raw); err != nil {
						t.Fatal(err)
					}
					r := Record{
						Offset:    kb.FirstOffset + int64(kr.OffsetDelta),
						Timestamp: kb.FirstTimestamp + kr.TimestampDelta64,
						Key:       kr.Key,
						Value:     kr.Value,
					}
					for _, h := range kr.Headers {
						r.Headers = append(r.Headers, Header{Key: h.Key, Value: h.Value})
					}
					got = append(got, r)
					raw = raw[len(kr.AppendTo(nil)):]
				}
				if err := equalRecords(numbered(0, recs), got); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// TestKfakeFranzGoProducer produces with a real franz-go client to kfake,
// fetches the raw batches back and decodes them.
func TestKfakeFranzGoProducer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a fake cluster")
	}
	const topic = "t"
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var want []Record
	var offset int64
	for _, c := range allCodecs {
		kc := kgo.NoCompression()
		if c != None {
			kc = kgoCodecs[c]
		}
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(cluster.ListenAddrs()...),
			kgo.DefaultProduceTopic(topic),
			kgo.ProducerBatchCompression(kc),
			kgo.ProducerLinger(50*time.Millisecond),
		)
		if err != nil {
			t.Fatal(err)
		}
		var krs []*kgo.Record
		for i, r := range manyRecords(50, uint64(c)) {
			// Compressible, or franz-go keeps a batch uncompressed when
			// compression does not pay (snappy has no entropy coding).
			r.Value = append(bytes.Repeat([]byte(`{"sensor":"temp","reading":`), 4), r.Value...)
			kr := &kgo.Record{Key: r.Key, Value: r.Value, Timestamp: time.UnixMilli(r.Timestamp)}
			for _, h := range r.Headers {
				kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
			}
			krs = append(krs, kr)
			r.Offset = offset + int64(i)
			want = append(want, r)
		}
		offset += int64(len(krs))
		if err := cl.ProduceSync(ctx, krs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
		cl.Close()
	}

	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	meta := kmsg.NewPtrMetadataRequest()
	mt := kmsg.NewMetadataRequestTopic()
	mt.Topic = kmsg.StringPtr(topic)
	meta.Topics = append(meta.Topics, mt)
	mresp, err := meta.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	fetch := kmsg.NewPtrFetchRequest()
	fetch.ReplicaID = -1
	fetch.MaxBytes = 64 << 20
	ft := kmsg.NewFetchRequestTopic()
	ft.Topic = topic
	ft.TopicID = mresp.Topics[0].TopicID
	fp := kmsg.NewFetchRequestTopicPartition()
	fp.PartitionMaxBytes = 64 << 20
	ft.Partitions = append(ft.Partitions, fp)
	fetch.Topics = append(fetch.Topics, ft)
	fresp, err := fetch.RequestWith(ctx, cl)
	if err != nil {
		t.Fatal(err)
	}
	if len(fresp.Topics) != 1 || len(fresp.Topics[0].Partitions) != 1 {
		t.Fatalf("fetch response %+v", fresp)
	}
	p := fresp.Topics[0].Partitions[0]
	if p.ErrorCode != 0 {
		t.Fatalf("fetch error code %d", p.ErrorCode)
	}

	var got []Record
	codecs := map[Codec]bool{}
	err = DecodeBatches(p.RecordBatches, 0, func(b Batch) error {
		codecs[b.Codec()] = true
		got = append(got, b.Records...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(codecs) != len(allCodecs) {
		t.Errorf("saw codecs %v, want all five", codecs)
	}
	if err := equalRecords(want, got); err != nil {
		t.Fatal(err)
	}
}
