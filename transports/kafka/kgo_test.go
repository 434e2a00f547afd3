package kafka

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/samsa-broker/samsa/broker"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// consumeN consumes n records of topic from the start.
func consumeN(t *testing.T, e *testEnv, topic string, n int, opts ...kgo.Opt) []*kgo.Record {
	t.Helper()
	ctx := testCtx(t)
	cl := e.client(t, append([]kgo.Opt{kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart())}, opts...)...)
	var out []*kgo.Record
	for len(out) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records: %v", len(out), n, ctx.Err())
		}
		for _, fe := range fs.Errors() {
			t.Fatalf("fetch error %s-%d: %v", fe.Topic, fe.Partition, fe.Err)
		}
		out = append(out, fs.Records()...)
	}
	if len(out) != n {
		t.Fatalf("consumed %d records, want %d", len(out), n)
	}
	return out
}

func TestKgoProduceConsume(t *testing.T) {
	e := startServer(t)
	ctx := testCtx(t)
	adm := kadm.NewClient(e.client(t))
	const topic, parts, perPart = "orders", 4, 50
	if _, err := adm.CreateTopic(ctx, parts, 1, nil, topic); err != nil {
		t.Fatal(err)
	}

	// acks=all and idempotent are kgo's defaults.
	prod := e.client(t, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	var recs []*kgo.Record
	for p := int32(0); p < parts; p++ {
		for i := 0; i < perPart; i++ {
			recs = append(recs, &kgo.Record{
				Partition: p,
				Key:       []byte(fmt.Sprintf("k%d", i)),
				Value:     []byte(fmt.Sprintf("p%d-v%d", p, i)),
				Headers:   []kgo.RecordHeader{{Key: "h", Value: []byte{byte(i)}}},
			})
		}
	}
	if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		var p, i int64
		if _, err := fmt.Sscanf(string(r.Value), "p%d-v%d", &p, &i); err != nil || r.Offset != i || int64(r.Partition) != p {
			t.Fatalf("record %q produced at %d-%d", r.Value, r.Partition, r.Offset)
		}
	}

	got := consumeN(t, e, topic, parts*perPart)
	next := make(map[int32]int64)
	for _, r := range got {
		want := fmt.Sprintf("p%d-v%d", r.Partition, next[r.Partition])
		if r.Offset != next[r.Partition] || string(r.Value) != want {
			t.Fatalf("partition %d: got offset %d value %q, want offset %d value %q", r.Partition, r.Offset, r.Value, next[r.Partition], want)
		}
		if string(r.Key) != fmt.Sprintf("k%d", r.Offset) || len(r.Headers) != 1 || r.Headers[0].Value[0] != byte(r.Offset) {
			t.Fatalf("record %d-%d: key/headers not preserved: %q %v", r.Partition, r.Offset, r.Key, r.Headers)
		}
		next[r.Partition]++
	}
	for p := int32(0); p < parts; p++ {
		if next[p] != perPart {
			t.Fatalf("partition %d: %d records, want %d", p, next[p], perPart)
		}
	}

	// A second produce continues the sequence.
	if err := prod.ProduceSync(ctx, &kgo.Record{Partition: 2, Value: []byte("more")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := ends.Lookup(topic, 2); o.Offset != perPart+1 {
		t.Fatalf("end offset of partition 2: %d, want %d", o.Offset, perPart+1)
	}
}

func TestKgoCodecs(t *testing.T) {
	e := startServer(t)
	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
		attr  kgo.CompressionCodecType
	}{
		{"none", kgo.NoCompression(), kgo.CodecNone},
		{"gzip", kgo.GzipCompression(), kgo.CodecGzip},
		{"snappy", kgo.SnappyCompression(), kgo.CodecSnappy},
		{"lz4", kgo.Lz4Compression(), kgo.CodecLz4},
		{"zstd", kgo.ZstdCompression(), kgo.CodecZstd},
	}
	for _, tc := range codecs {
		t.Run(tc.name, func(t *testing.T) {
			ctx := testCtx(t)
			topic := "codec-" + tc.name
			prod := e.client(t, kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(tc.codec),
				kgo.AllowAutoTopicCreation(), kgo.ProducerLinger(50*time.Millisecond))
			var vals [][]byte
			for i := 0; i < 40; i++ {
				v := make([]byte, 100+i*37)
				if i%2 == 0 {
					_, _ = rand.Read(v) // incompressible
				} else {
					copy(v, bytes.Repeat([]byte(fmt.Sprintf("value %d ", i)), len(v)))
				}
				vals = append(vals, v)
			}
			vals = append(vals, []byte{}, nil)
			var recs []*kgo.Record
			for _, v := range vals {
				recs = append(recs, &kgo.Record{Value: v})
			}
			if err := prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				t.Fatal(err)
			}
			got := consumeN(t, e, topic, len(vals))
			for i, r := range got {
				if !bytes.Equal(r.Value, vals[i]) || (vals[i] == nil) != (r.Value == nil) {
					t.Fatalf("record %d: value differs (%d bytes, want %d)", i, len(r.Value), len(vals[i]))
				}
				if r.Attrs.CompressionType() != uint8(tc.attr) {
					t.Fatalf("record %d: batch codec %d, want %d", i, r.Attrs.CompressionType(), tc.attr)
				}
			}
		})
	}
}

func TestKadmTopicsAndConfigs(t *testing.T) {
	e := startServer(t, func(o *broker.Options, _ *Options) { o.DefaultPartitions = 2 })
	ctx := testCtx(t)
	adm := kadm.NewClient(e.client(t))

	created, err := adm.CreateTopics(ctx, 3, 1, map[string]*string{"retention.ms": kmsg.StringPtr("60000")}, "a", "b")
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range created.Sorted() {
		if ct.Err != nil || ct.NumPartitions != 3 || ct.ID == [16]byte{} {
			t.Fatalf("create %s: %+v", ct.Topic, ct)
		}
	}
	// Defaults: -1 partitions and replication factor.
	if ct, err := adm.CreateTopic(ctx, -1, -1, nil, "c"); err != nil || ct.Err != nil || ct.NumPartitions != 2 {
		t.Fatalf("create with defaults: %+v %v", ct, err)
	}
	// Errors: exists, invalid name, bad config, bad replication factor.
	checkCreate := func(topic string, parts int32, rf int16, cfg map[string]*string, want error) {
		t.Helper()
		ct, err := adm.CreateTopic(ctx, parts, rf, cfg, topic)
		if err == nil {
			err = ct.Err
		}
		if err != want {
			t.Fatalf("create %q: %v, want %v", topic, err, want)
		}
		if ct.ErrMessage == "" {
			t.Fatalf("create %q: no error message", topic)
		}
	}
	checkCreate("a", 1, 1, nil, kerr.TopicAlreadyExists)
	checkCreate("bad/name", 1, 1, nil, kerr.InvalidTopicException)
	checkCreate("d", 1, 1, map[string]*string{"retention.ms": kmsg.StringPtr("soon")}, kerr.InvalidConfig)
	checkCreate("d", 1, 1, map[string]*string{"no.such.key": kmsg.StringPtr("1")}, kerr.InvalidConfig)
	checkCreate("d", 1, 3, nil, kerr.InvalidReplicationFactor)
	checkCreate("d", 0, 1, nil, kerr.InvalidPartitions)

	// validateOnly creates nothing.
	if _, err := adm.ValidateCreateTopics(ctx, 1, 1, nil, "v"); err != nil {
		t.Fatal(err)
	}

	topics, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := topics.Names(); fmt.Sprint(got) != "[a b c]" {
		t.Fatalf("topics %v", got)
	}
	if td := topics["a"]; len(td.Partitions) != 3 || td.ID == [16]byte{} || td.Partitions[0].Leader != 0 {
		t.Fatalf("topic a: %+v", td)
	}

	// Describe, alter (incremental and whole), describe again.
	cfgOf := func(topic, key string) (string, kmsg.ConfigSource) {
		t.Helper()
		rcs, err := adm.DescribeTopicConfigs(ctx, topic)
		if err != nil {
			t.Fatal(err)
		}
		rc, err := rcs.On(topic, nil)
		if err != nil || rc.Err != nil {
			t.Fatalf("describe %s: %v %v", topic, err, rc.Err)
		}
		for _, c := range rc.Configs {
			if c.Key == key {
				return c.MaybeValue(), c.Source
			}
		}
		t.Fatalf("describe %s: no %s in %+v", topic, key, rc.Configs)
		return "", 0
	}
	if v, src := cfgOf("a", "retention.ms"); v != "60000" || src != kmsg.ConfigSourceDynamicTopicConfig {
		t.Fatalf("retention.ms = %s (source %v)", v, src)
	}
	if v, src := cfgOf("a", "segment.bytes"); v == "" || src != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("segment.bytes = %s (source %v)", v, src)
	}
	alt, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "retention.bytes", Value: kmsg.StringPtr("1048576")},
		{Op: kadm.DeleteConfig, Name: "retention.ms"},
	}, "a")
	if err != nil || alt[0].Err != nil {
		t.Fatalf("alter: %v %+v", err, alt)
	}
	if v, _ := cfgOf("a", "retention.bytes"); v != "1048576" {
		t.Fatalf("retention.bytes = %s", v)
	}
	if _, src := cfgOf("a", "retention.ms"); src != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("retention.ms not back to default")
	}
	alt, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "flush.policy", Value: kmsg.StringPtr("sometimes")}}, "a")
	if err != nil || alt[0].Err != kerr.InvalidConfig || alt[0].ErrMessage == "" {
		t.Fatalf("bad alter: %v %+v", err, alt)
	}
	// Non-incremental AlterConfigs replaces every override.
	alt, err = adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "segment.ms", Value: kmsg.StringPtr("3600000")}}, "a")
	if err != nil || alt[0].Err != nil {
		t.Fatalf("alter state: %v %+v", err, alt)
	}
	if v, _ := cfgOf("a", "segment.ms"); v != "3600000" {
		t.Fatalf("segment.ms = %s", v)
	}
	if _, src := cfgOf("a", "retention.bytes"); src != kmsg.ConfigSourceDefaultConfig {
		t.Fatalf("retention.bytes kept by a whole-set alter")
	}
	rcs, err := adm.DescribeTopicConfigs(ctx, "nope")
	if rc, _ := rcs.On("nope", nil); err == nil && rc.Err != kerr.UnknownTopicOrPartition {
		t.Fatalf("describe unknown topic: %v", rc.Err)
	}
	brokerCfgs, err := adm.DescribeBrokerConfigs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, rc := range brokerCfgs {
		if rc.Err != nil {
			t.Fatalf("broker configs: %v", rc.Err)
		}
	}

	// Partitions only grow.
	cp, err := adm.CreatePartitions(ctx, 2, "a")
	if err != nil || cp["a"].Err != nil {
		t.Fatalf("create partitions: %v %+v", err, cp)
	}
	if info, _ := e.b.Topic("a"); info.Partitions != 5 {
		t.Fatalf("a has %d partitions", info.Partitions)
	}
	cp, err = adm.UpdatePartitions(ctx, 1, "a")
	if err != nil || cp["a"].Err != kerr.InvalidPartitions {
		t.Fatalf("shrink partitions: %v %+v", err, cp)
	}

	dc, err := kmsg.NewPtrDescribeClusterRequest().RequestWith(ctx, e.client(t))
	if err != nil || dc.ErrorCode != 0 || dc.ControllerID != 0 || len(dc.Brokers) != 1 || dc.ClusterID != e.b.ClusterID() {
		t.Fatalf("describe cluster: %+v %v", dc, err)
	}
	md, err := adm.BrokerMetadata(ctx)
	if err != nil || md.Controller != 0 || len(md.Brokers) != 1 || md.Cluster != e.b.ClusterID() {
		t.Fatalf("metadata: %+v %v", md, err)
	}

	del, err := adm.DeleteTopics(ctx, "b", "nope")
	if err != nil {
		t.Fatal(err)
	}
	if del["b"].Err != nil || del["nope"].Err != kerr.UnknownTopicOrPartition {
		t.Fatalf("delete: %+v", del)
	}
	// Delete by topic id (v6+).
	info, _ := e.b.Topic("c")
	dreq := kmsg.NewPtrDeleteTopicsRequest()
	dt := kmsg.NewDeleteTopicsRequestTopic()
	dt.TopicID = info.ID
	dreq.Topics = append(dreq.Topics, dt)
	dresp, err := dreq.RequestWith(ctx, e.client(t))
	if err != nil {
		t.Fatal(err)
	}
	if dresp.Version < 6 || len(dresp.Topics) != 1 || dresp.Topics[0].ErrorCode != 0 || dresp.Topics[0].Topic == nil || *dresp.Topics[0].Topic != "c" {
		t.Fatalf("delete by id: %+v", dresp)
	}
	if names := e.b.Topics(); len(names) != 1 || names[0].Name != "a" {
		t.Fatalf("topics after delete: %+v", names)
	}
}

func TestKadmOffsets(t *testing.T) {
	e := startServer(t)
	ctx := testCtx(t)
	cl := e.client(t, kgo.DefaultProduceTopic("ts"), kgo.AllowAutoTopicCreation())
	adm := kadm.NewClient(cl)

	// Empty topic: start = end = 0.
	if _, err := adm.CreateTopic(ctx, 1, 1, nil, "ts"); err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, "ts")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := ends.Lookup("ts", 0); o.Err != nil || o.Offset != 0 {
		t.Fatalf("empty end offset: %+v", o)
	}

	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	for i := 0; i < 10; i++ {
		r := &kgo.Record{Value: []byte{byte(i)}, Timestamp: base.Add(time.Duration(i) * time.Minute)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	starts, err := adm.ListStartOffsets(ctx, "ts")
	if err != nil {
		t.Fatal(err)
	}
	ends, err = adm.ListEndOffsets(ctx, "ts")
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := starts.Lookup("ts", 0); s.Offset != 0 {
		t.Fatalf("start %+v", s)
	}
	if en, _ := ends.Lookup("ts", 0); en.Offset != 10 {
		t.Fatalf("end %+v", en)
	}
	after, err := adm.ListOffsetsAfterMilli(ctx, base.Add(4*time.Minute+time.Second).UnixMilli(), "ts")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := after.Lookup("ts", 0); o.Err != nil || o.Offset != 5 || o.Timestamp != base.Add(5*time.Minute).UnixMilli() {
		t.Fatalf("offset after 4m: %+v", o)
	}
	// After every record: Kafka answers -1; kadm maps that to the end.
	after, err = adm.ListOffsetsAfterMilli(ctx, time.Now().Add(time.Hour).UnixMilli(), "ts")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := after.Lookup("ts", 0); o.Err != nil || (o.Offset != -1 && o.Offset != 10) {
		t.Fatalf("offset after the future: %+v", o)
	}

	// DeleteRecords moves the start offset.
	del, err := adm.DeleteRecords(ctx, kadm.Offsets{"ts": {0: {Topic: "ts", Partition: 0, At: 4}}})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := del.Lookup("ts", 0); d.Err != nil || d.LowWatermark != 4 {
		t.Fatalf("delete records: %+v", d)
	}
	starts, err = adm.ListStartOffsets(ctx, "ts")
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := starts.Lookup("ts", 0); s.Offset != 4 {
		t.Fatalf("start after delete %+v", s)
	}
	del, err = adm.DeleteRecords(ctx, kadm.Offsets{"ts": {0: {Topic: "ts", Partition: 0, At: 99}}})
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := del.Lookup("ts", 0); d.Err != kerr.OffsetOutOfRange {
		t.Fatalf("delete beyond the end: %+v", d)
	}
	got := consumeN(t, e, "ts", 6)
	if got[0].Offset != 4 {
		t.Fatalf("first consumed offset %d", got[0].Offset)
	}

	// ListOffsets v0 answers old-style offsets.
	lreq := kmsg.NewPtrListOffsetsRequest()
	lreq.Version = 0
	lt := kmsg.NewListOffsetsRequestTopic()
	lt.Topic = "ts"
	lp := kmsg.NewListOffsetsRequestTopicPartition()
	lp.Timestamp, lp.MaxNumOffsets = -1, 1
	lt.Partitions = append(lt.Partitions, lp)
	lreq.Topics = append(lreq.Topics, lt)
	rc := e.dial(t)
	rc.send(lreq, 7)
	lresp := kmsg.NewPtrListOffsetsResponse()
	lresp.Version = 0
	rc.recv(7, lresp)
	if p := lresp.Topics[0].Partitions[0]; p.ErrorCode != 0 || len(p.OldStyleOffsets) != 1 || p.OldStyleOffsets[0] != 10 {
		t.Fatalf("ListOffsets v0: %+v", p)
	}
}

func TestMetadataAutoCreate(t *testing.T) {
	e := startServer(t, func(o *broker.Options, _ *Options) { o.DefaultPartitions = 3; o.NodeID = 7 })
	rc := e.dial(t)
	for i, v := range []int16{0, 1, 3, 4, 7, 9, 10, 12, 13} {
		topic := fmt.Sprintf("auto-%d", v)
		rc.send(metadataReq(v, topic), int32(i))
		resp := kmsg.NewPtrMetadataResponse()
		resp.Version = v
		rc.recv(int32(i), resp)
		if len(resp.Brokers) != 1 || resp.Brokers[0].NodeID != 7 || (v >= 1 && resp.ControllerID != 7) {
			t.Fatalf("v%d brokers %+v controller %d", v, resp.Brokers, resp.ControllerID)
		}
		if v >= 2 && (resp.ClusterID == nil || *resp.ClusterID != e.b.ClusterID()) {
			t.Fatalf("v%d cluster id %v", v, resp.ClusterID)
		}
		if len(resp.Topics) != 1 {
			t.Fatalf("v%d: %d topics", v, len(resp.Topics))
		}
		tp := resp.Topics[0]
		if tp.ErrorCode != 0 || len(tp.Partitions) != 3 || *tp.Topic != topic {
			t.Fatalf("v%d topic %+v", v, tp)
		}
		if v >= 10 && tp.TopicID == [16]byte{} {
			t.Fatalf("v%d: no topic id", v)
		}
		for _, p := range tp.Partitions {
			if p.ErrorCode != 0 || p.Leader != 7 || p.LeaderEpoch != -1 || fmt.Sprint(p.Replicas, p.ISR) != "[7] [7]" {
				t.Fatalf("v%d partition %+v", v, p)
			}
		}
	}

	// AllowAutoTopicCreation false (v4+): unknown.
	req := metadataReq(9, "not-created")
	req.AllowAutoTopicCreation = false
	rc.send(req, 100)
	resp := kmsg.NewPtrMetadataResponse()
	resp.Version = 9
	rc.recv(100, resp)
	if resp.Topics[0].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("no auto-create: %+v", resp.Topics[0])
	}
	// Invalid names are refused, not created.
	rc.send(metadataReq(9, "bad name"), 101)
	resp = kmsg.NewPtrMetadataResponse()
	resp.Version = 9
	rc.recv(101, resp)
	if resp.Topics[0].ErrorCode != kerr.InvalidTopicException.Code {
		t.Fatalf("invalid name: %+v", resp.Topics[0])
	}
	// Null list (v1+) and empty list (v0) are all topics; empty v1+ is none.
	all := kmsg.NewPtrMetadataRequest()
	all.Version = 12
	rc.send(all, 102)
	resp = kmsg.NewPtrMetadataResponse()
	resp.Version = 12
	rc.recv(102, resp)
	if len(resp.Topics) != 9 {
		t.Fatalf("all topics: %d", len(resp.Topics))
	}
	v0 := metadataReq(0)
	rc.send(v0, 103)
	resp = kmsg.NewPtrMetadataResponse()
	resp.Version = 0
	rc.recv(103, resp)
	if len(resp.Topics) != 9 {
		t.Fatalf("v0 all topics: %d", len(resp.Topics))
	}
	none := metadataReq(5)
	none.Topics = []kmsg.MetadataRequestTopic{}
	rc.send(none, 104)
	resp = kmsg.NewPtrMetadataResponse()
	resp.Version = 5
	rc.recv(104, resp)
	if len(resp.Topics) != 0 {
		t.Fatalf("v5 empty list: %d topics", len(resp.Topics))
	}

	// Through kgo: producing to an unknown topic creates it.
	cl := e.client(t, kgo.DefaultProduceTopic("kgo-auto"), kgo.AllowAutoTopicCreation())
	if err := cl.ProduceSync(testCtx(t), &kgo.Record{Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if info, err := e.b.Topic("kgo-auto"); err != nil || info.Partitions != 3 {
		t.Fatalf("kgo-auto: %+v %v", info, err)
	}
}

func TestInitProducerIDTransactional(t *testing.T) {
	e := startServer(t)
	rc := e.dial(t)
	req := kmsg.NewPtrInitProducerIDRequest()
	req.Version = 4
	req.TransactionalID = kmsg.StringPtr("txn")
	rc.send(req, 1)
	resp := kmsg.NewPtrInitProducerIDResponse()
	resp.Version = 4
	rc.recv(1, resp)
	if resp.ErrorCode != kerr.TransactionalIDAuthorizationFailed.Code || resp.ProducerID != -1 {
		t.Fatalf("transactional InitProducerId: %+v", resp)
	}
	req.TransactionalID = nil
	rc.send(req, 2)
	rc.recv(2, resp)
	if resp.ErrorCode != 0 || resp.ProducerID < 0 {
		t.Fatalf("idempotent InitProducerId: %+v", resp)
	}
}

// TestListOffsetsMaxTimestamp: ListOffsets v7+ with timestamp -3 answers
// the first record with the largest timestamp (KIP-734), in any segment;
// older versions refuse it.
func TestListOffsetsMaxTimestamp(t *testing.T) {
	e := startServer(t, func(o *broker.Options, _ *Options) { o.Defaults.SegmentBytes = 300 })
	ctx := testCtx(t)
	cl := e.client(t, kgo.DefaultProduceTopic("maxts"), kgo.AllowAutoTopicCreation())
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	// Largest timestamp (minute 9) first at offset 2, again at offset 5;
	// small segments put them in different segments.
	for i, m := range []int{5, 7, 9, 3, 1, 9, 4} {
		r := &kgo.Record{Value: []byte{byte(i)}, Timestamp: base.Add(time.Duration(m) * time.Minute)}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	ask := func(version int16) kmsg.ListOffsetsResponseTopicPartition {
		t.Helper()
		req := kmsg.NewPtrListOffsetsRequest()
		req.Version = version
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = "maxts"
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Timestamp = -3
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		rc := e.dial(t)
		rc.send(req, 9)
		resp := kmsg.NewPtrListOffsetsResponse()
		resp.Version = version
		rc.recv(9, resp)
		return resp.Topics[0].Partitions[0]
	}
	if p := ask(7); p.ErrorCode != 0 || p.Offset != 2 || p.Timestamp != base.Add(9*time.Minute).UnixMilli() {
		t.Fatalf("max timestamp (v7): %+v", p)
	}
	if p := ask(6); p.ErrorCode != kerr.UnsupportedVersion.Code {
		t.Fatalf("max timestamp at v6: %+v", p)
	}
}
