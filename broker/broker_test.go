package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/samsa-broker/samsa/broker/group"
	"github.com/samsa-broker/samsa/broker/record"
	"github.com/samsa-broker/samsa/broker/vfs"
	"github.com/samsa-broker/samsa/wasm"
)

func openTest(t *testing.T, mod func(*Options)) *Broker {
	t.Helper()
	opts := Options{DataDir: t.TempDir(), AutoCreateTopics: true, DefaultPartitions: 1}
	if mod != nil {
		mod(&opts)
	}
	b, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func nowMs() int64 { return time.Now().UnixMilli() }

// batch encodes values as one uncompressed batch with timestamps ts, ts+1...
func batch(t *testing.T, ts int64, values ...string) []byte {
	t.Helper()
	recs := make([]record.Record, len(values))
	for i, v := range values {
		recs[i] = record.Record{Timestamp: ts + int64(i), Value: []byte(v)}
	}
	b, err := record.AppendBatch(nil, recs, record.EncodeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func idempotentBatch(t *testing.T, pid int64, epoch int16, seq int32, values ...string) []byte {
	t.Helper()
	recs := make([]record.Record, len(values))
	for i, v := range values {
		recs[i] = record.Record{Timestamp: nowMs(), Value: []byte(v)}
	}
	b, err := record.AppendBatch(nil, recs, record.EncodeOptions{ProducerID: pid, ProducerEpoch: epoch, BaseSequence: seq})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func produce(t *testing.T, b *Broker, topic string, part int32, records []byte) ProduceResult {
	t.Helper()
	res := b.Produce(-1, []ProducePartition{{Topic: topic, Partition: part, Records: records}}).Wait(context.Background())
	return res[0]
}

func mustProduce(t *testing.T, b *Broker, topic string, part int32, records []byte) int64 {
	t.Helper()
	r := produce(t, b, topic, part, records)
	if r.Err != nil {
		t.Fatalf("produce: %v", r.Err)
	}
	return r.BaseOffset
}

// values fetches everything from offset 0 and decodes the values.
func values(t *testing.T, b *Broker, topic string, part int32, from int64) []string {
	t.Helper()
	res := b.Fetch(context.Background(), FetchRequest{MaxBytes: 1 << 30, Partitions: []FetchPartition{{Topic: topic, Partition: part, Offset: from, MaxBytes: 1 << 30}}})
	if res[0].Err != nil {
		t.Fatalf("fetch: %v", res[0].Err)
	}
	var out []string
	err := record.DecodeBatches(res[0].Records, 1<<30, func(bt record.Batch) error {
		for _, r := range bt.Records {
			if r.Offset >= from {
				out = append(out, string(r.Value))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTopicLifecycle(t *testing.T) {
	b := openTest(t, nil)
	if _, err := b.CreateTopic("orders", 3, map[string]string{"retention.ms": "1000"}, false); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		create  func() error
		wantErr error
	}{
		{"exists", func() error { _, err := b.CreateTopic("orders", 1, nil, false); return err }, ErrTopicExists},
		{"bad name", func() error { _, err := b.CreateTopic("a/b", 1, nil, false); return err }, ErrInvalidTopic},
		{"zero partitions", func() error { _, err := b.CreateTopic("z", 0, nil, false); return err }, ErrInvalidPartitions},
		{"unknown config", func() error {
			_, err := b.CreateTopic("c", 1, map[string]string{"retention.hours": "1"}, false)
			return err
		}, ErrInvalidConfig},
		{"bad config value", func() error {
			_, err := b.CreateTopic("c", 1, map[string]string{"flush.policy": "never"}, false)
			return err
		}, ErrInvalidConfig},
		{"shrink partitions", func() error { return b.CreatePartitions("orders", 2, false) }, ErrInvalidPartitions},
		{"delete unknown", func() error { return b.DeleteTopic("nope") }, ErrUnknownTopic},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.create(); !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
	if err := b.CreatePartitions("orders", 5, false); err != nil {
		t.Fatal(err)
	}
	if err := b.AlterTopicConfig("orders", []ConfigOp{{Name: "retention.ms", Op: ConfigDelete}, {Name: "segment.bytes", Op: ConfigSet, Value: "4096"}}, false); err != nil {
		t.Fatal(err)
	}
	info, err := b.Topic("orders")
	if err != nil {
		t.Fatal(err)
	}
	if info.Partitions != 5 || info.Config.SegmentBytes != 4096 || info.Config.RetentionMs != DefaultTopicConfig().RetentionMs {
		t.Fatalf("after alter: %+v", info)
	}
	if byID, err := b.TopicByID(info.ID); err != nil || byID.Name != "orders" {
		t.Fatalf("TopicByID: %+v %v", byID, err)
	}
	if err := b.DeleteTopic("orders"); err != nil {
		t.Fatal(err)
	}
	if len(b.Topics()) != 0 {
		t.Fatalf("topics after delete: %v", b.Topics())
	}
}

func TestTopicsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateTopic("a", 2, map[string]string{"flush.policy": "os"}, false); err != nil {
		t.Fatal(err)
	}
	mustProduce(t, b, "a", 1, batch(t, nowMs(), "x", "y"))
	cluster := b.ClusterID()
	b.Close()
	b, err = Open(Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	info, err := b.Topic("a")
	if err != nil || info.Partitions != 2 || info.Config.Flush != FlushOS || info.Overrides["flush.policy"] != "os" {
		t.Fatalf("after restart: %+v %v", info, err)
	}
	if b.ClusterID() != cluster {
		t.Fatalf("cluster id changed: %q -> %q", cluster, b.ClusterID())
	}
	if got := values(t, b, "a", 1, 0); fmt.Sprint(got) != "[x y]" {
		t.Fatalf("records after restart: %v", got)
	}
}

func TestProduceFetch(t *testing.T) {
	b := openTest(t, nil)
	if _, err := b.AutoCreate("t"); err != nil {
		t.Fatal(err)
	}
	if off := mustProduce(t, b, "t", 0, batch(t, nowMs(), "a", "b", "c")); off != 0 {
		t.Fatalf("first base offset %d", off)
	}
	if off := mustProduce(t, b, "t", 0, batch(t, nowMs(), "d")); off != 3 {
		t.Fatalf("second base offset %d", off)
	}
	// A fetch inside a batch returns the whole batch; clients skip.
	res := b.Fetch(context.Background(), FetchRequest{MaxBytes: 1 << 20, Partitions: []FetchPartition{{Topic: "t", Offset: 1, MaxBytes: 1 << 20}}})
	if res[0].Err != nil || res[0].HighWatermark != 4 {
		t.Fatalf("fetch: %+v", res[0])
	}
	bt, _, err := record.DecodeBatch(res[0].Records, 1<<20)
	if err != nil || bt.BaseOffset != 0 || len(bt.Records) != 3 {
		t.Fatalf("batch containing offset 1: %+v %v", bt, err)
	}
	if got := values(t, b, "t", 0, 1); fmt.Sprint(got) != "[b c d]" {
		t.Fatalf("values from 1: %v", got)
	}
	out := b.Fetch(context.Background(), FetchRequest{Partitions: []FetchPartition{{Topic: "t", Offset: 99, MaxBytes: 100}}})
	if !errors.Is(out[0].Err, ErrOffsetOutOfRange) {
		t.Fatalf("fetch past the end: %v", out[0].Err)
	}
	unknown := b.Fetch(context.Background(), FetchRequest{Partitions: []FetchPartition{{Topic: "nope", Offset: 0, MaxBytes: 100}}})
	if !errors.Is(unknown[0].Err, ErrUnknownTopic) {
		t.Fatalf("fetch unknown topic: %v", unknown[0].Err)
	}
}

func TestProduceRejectsBadBatches(t *testing.T) {
	b := openTest(t, func(o *Options) { o.Defaults = DefaultTopicConfig(); o.Defaults.MaxMessageBytes = 200 })
	b.AutoCreate("t")
	good := batch(t, nowMs(), "hello")
	flipped := bytes.Clone(good)
	flipped[len(flipped)-1] ^= 0xff
	tests := []struct {
		name    string
		records []byte
		want    error
	}{
		{"empty", nil, ErrCorruptBatch},
		{"bad crc", flipped, ErrCorruptBatch},
		{"truncated", good[:len(good)-3], ErrCorruptBatch},
		{"garbage", []byte("this is not a record batch at all, not at all, no......................."), ErrUnsupportedFormat},
		{"too large", batch(t, nowMs(), string(make([]byte, 300))), ErrBatchTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := produce(t, b, "t", 0, tt.records); !errors.Is(r.Err, tt.want) {
				t.Fatalf("got %v, want %v", r.Err, tt.want)
			}
		})
	}
	if r := produce(t, b, "nope", 0, good); !errors.Is(r.Err, ErrUnknownTopic) {
		t.Fatalf("unknown topic: %v", r.Err)
	}
	// Nothing bad was appended, and good records still go in.
	if off := mustProduce(t, b, "t", 0, good); off != 0 {
		t.Fatalf("offset after rejected batches: %d", off)
	}
}

func TestIdempotentProducer(t *testing.T) {
	b := openTest(t, nil)
	b.AutoCreate("t")
	pid, epoch, err := b.InitProducerID("")
	if err != nil {
		t.Fatal(err)
	}
	first := idempotentBatch(t, pid, epoch, 0, "a", "b")
	if off := mustProduce(t, b, "t", 0, bytes.Clone(first)); off != 0 {
		t.Fatalf("offset %d", off)
	}
	if off := mustProduce(t, b, "t", 0, idempotentBatch(t, pid, epoch, 2, "c")); off != 2 {
		t.Fatalf("offset %d", off)
	}
	// A retry of the first batch gets its original offset and is not
	// appended twice.
	if off := mustProduce(t, b, "t", 0, bytes.Clone(first)); off != 0 {
		t.Fatalf("duplicate answered offset %d, want 0", off)
	}
	if r := produce(t, b, "t", 0, idempotentBatch(t, pid, epoch, 7, "gap")); !errors.Is(r.Err, ErrOutOfOrderSequence) {
		t.Fatalf("sequence gap: %v", r.Err)
	}
	if got := values(t, b, "t", 0, 0); fmt.Sprint(got) != "[a b c]" {
		t.Fatalf("records: %v", got)
	}
	if _, _, err := b.InitProducerID("txn-1"); !errors.Is(err, ErrTransactionsUnsupported) {
		t.Fatalf("transactional id: %v", err)
	}
	pid2, _, _ := b.InitProducerID("")
	if pid2 == pid {
		t.Fatal("producer ids repeat")
	}
}

func TestLongPollWakesOnAppend(t *testing.T) {
	b := openTest(t, nil)
	b.AutoCreate("t")
	done := make(chan []FetchResult)
	start := time.Now()
	go func() {
		done <- b.Fetch(context.Background(), FetchRequest{MaxWait: 10 * time.Second, MinBytes: 1, MaxBytes: 1 << 20,
			Partitions: []FetchPartition{{Topic: "t", Offset: 0, MaxBytes: 1 << 20}}})
	}()
	time.Sleep(50 * time.Millisecond)
	mustProduce(t, b, "t", 0, batch(t, nowMs(), "wake"))
	res := <-done
	if len(res[0].Records) == 0 {
		t.Fatal("long poll returned no records")
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("long poll waited %v: it was not woken by the append", time.Since(start))
	}
	// With nothing new it waits MaxWait and returns empty.
	res = b.Fetch(context.Background(), FetchRequest{MaxWait: 20 * time.Millisecond, MinBytes: 1, Partitions: []FetchPartition{{Topic: "t", Offset: 1, MaxBytes: 100}}})
	if res[0].Err != nil || len(res[0].Records) != 0 || res[0].HighWatermark != 1 {
		t.Fatalf("empty long poll: %+v", res[0])
	}
}

func TestListOffsetAndDeleteRecords(t *testing.T) {
	b := openTest(t, nil)
	b.AutoCreate("t")
	base := nowMs() - 10000
	mustProduce(t, b, "t", 0, batch(t, base+1000, "a", "b", "c")) // base+1000..1002
	mustProduce(t, b, "t", 0, batch(t, base+2000, "d", "e"))      // base+2000..2001
	tests := []struct {
		ts, wantOff, wantTS int64
	}{
		{LatestTimestamp, 5, -1},
		{EarliestTimestamp, 0, -1},
		{0, 0, base + 1000},
		{base + 1001, 1, base + 1001},
		{base + 1500, 3, base + 2000},
		{base + 2001, 4, base + 2001},
		{base + 3000, -1, -1},
	}
	for _, tt := range tests {
		off, ts, err := b.ListOffset("t", 0, tt.ts)
		if err != nil || off != tt.wantOff || ts != tt.wantTS {
			t.Errorf("ListOffset(%d) = %d, %d, %v; want %d, %d", tt.ts, off, ts, err, tt.wantOff, tt.wantTS)
		}
	}
	low, err := b.DeleteRecords("t", 0, 3)
	if err != nil || low != 3 {
		t.Fatalf("DeleteRecords: %d %v", low, err)
	}
	res := b.Fetch(context.Background(), FetchRequest{Partitions: []FetchPartition{{Topic: "t", Offset: 0, MaxBytes: 100}}})
	if !errors.Is(res[0].Err, ErrOffsetOutOfRange) {
		t.Fatalf("fetch below the log start: %v", res[0].Err)
	}
	if _, err := b.DeleteRecords("t", 0, 99); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("delete past the end: %v", err)
	}
}

func TestConcurrentProducersGroupCommit(t *testing.T) {
	b := openTest(t, func(o *Options) { o.DefaultPartitions = 4 })
	b.AutoCreate("t")
	var wg sync.WaitGroup
	for p := int32(0); p < 4; p++ {
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 50; i++ {
					if r := produce(t, b, "t", p, batch(t, nowMs(), "v")); r.Err != nil {
						t.Error(r.Err)
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	for p := int32(0); p < 4; p++ {
		if start, hwm, _ := b.Offsets("t", p); start != 0 || hwm != 200 {
			t.Fatalf("partition %d: [%d, %d), want [0, 200)", p, start, hwm)
		}
	}
}

// With flush=always, what a produce acknowledged survives a power loss,
// topic definitions included.
func TestPowerLossKeepsAcknowledged(t *testing.T) {
	mem := vfs.NewStrictMem()
	open := func() *Broker {
		b, err := Open(Options{DataDir: "/data", FS: mem, AutoCreateTopics: true})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	b := open()
	if _, err := b.CreateTopic("t", 2, nil, false); err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := 0; i < 20; i++ {
		v := fmt.Sprintf("v%d", i)
		mustProduce(t, b, "t", int32(i%2), batch(t, nowMs(), v))
		if i%2 == 0 {
			want = append(want, v)
		}
	}
	mem.Crash()
	b2 := open()
	defer b2.Close()
	if got := values(t, b2, "t", 0, 0); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after power loss: %v, want %v", got, want)
	}
	_ = b // its files belong to the crashed machine
}

func TestFlushOSShowsRecordsAtOnce(t *testing.T) {
	b := openTest(t, nil)
	if _, err := b.CreateTopic("t", 1, map[string]string{"flush.policy": "os"}, false); err != nil {
		t.Fatal(err)
	}
	b.Produce(0, []ProducePartition{{Topic: "t", Records: batch(t, nowMs(), "x")}})
	if _, hwm, _ := b.Offsets("t", 0); hwm != 1 {
		t.Fatalf("hwm %d after an acks=0 produce with flush.policy=os", hwm)
	}
}

func TestMaxDiskBytesDeletesOldestSegments(t *testing.T) {
	b := openTest(t, func(o *Options) {
		o.Defaults = DefaultTopicConfig()
		o.Defaults.SegmentBytes = 2048
		o.MaxDiskBytes = 8192
	})
	b.AutoCreate("t")
	payload := string(make([]byte, 500))
	for i := 0; i < 100; i++ {
		mustProduce(t, b, "t", 0, batch(t, nowMs(), payload))
	}
	if used := b.DiskUsage(); used > 8192 {
		t.Fatalf("disk usage %d over max_disk_bytes 8192", used)
	}
	start, hwm, _ := b.Offsets("t", 0)
	if start == 0 || hwm != 100 {
		t.Fatalf("offsets [%d, %d): the oldest segments should be gone, the newest records kept", start, hwm)
	}
}

func TestDataDirIsLocked(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Options{DataDir: dir}); !errors.Is(err, vfs.ErrLocked) {
		t.Fatalf("second Open of a data dir in use: %v, want ErrLocked", err)
	}
	// The filter host is opened only once the lock is held: a second
	// process must not touch <data_dir>/filters.
	opened := 0
	openFilters := func() (*wasm.Host, error) {
		opened++
		return wasm.NewHost(context.Background(), wasm.Options{Dir: filepath.Join(dir, "filters"), Interpreter: raceEnabled})
	}
	if _, err := Open(Options{DataDir: dir, OpenFilters: openFilters}); !errors.Is(err, vfs.ErrLocked) || opened != 0 {
		t.Fatalf("second Open with a filter host: %v, host opened %d times; want ErrLocked before the host", err, opened)
	}
	b.Close()
	b2, err := Open(Options{DataDir: dir, OpenFilters: openFilters})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if opened != 1 || !b2.FiltersEnabled() {
		t.Fatalf("filter host opened %d times (want 1), filters enabled: %v", opened, b2.FiltersEnabled())
	}
	b2.Close()
}

// A full disk fails the produce with a storage error, loses nothing that
// was acknowledged, and the partition takes records again once there is
// room.
func TestFullDisk(t *testing.T) {
	var full atomic.Bool
	fsys := vfs.NewErrorFS(vfs.OS(), func(op vfs.Op, name string) error {
		if full.Load() && (op == vfs.OpWrite || op == vfs.OpPreallocate) && strings.HasSuffix(name, ".log") {
			return &vfs.PartialWriteError{N: 10, Err: syscall.ENOSPC}
		}
		return nil
	})
	b := openTest(t, func(o *Options) { o.FS = fsys })
	b.AutoCreate("t")
	mustProduce(t, b, "t", 0, batch(t, nowMs(), "before"))
	full.Store(true)
	if r := produce(t, b, "t", 0, batch(t, nowMs(), "lost")); !errors.Is(r.Err, ErrStorage) {
		t.Fatalf("produce on a full disk: %v, want ErrStorage", r.Err)
	}
	full.Store(false)
	if off := mustProduce(t, b, "t", 0, batch(t, nowMs(), "after")); off != 1 {
		t.Fatalf("offset after the disk has room again: %d, want 1", off)
	}
	if got := values(t, b, "t", 0, 0); fmt.Sprint(got) != "[before after]" {
		t.Fatalf("records: %v", got)
	}
}

// Deleting a topic deletes every group's committed offsets of it, durably:
// a topic created again under the name starts without stale positions.
func TestDeleteTopicDeletesOffsets(t *testing.T) {
	dir := t.TempDir()
	b, err := Open(Options{DataDir: dir, AutoCreateTopics: true, DefaultPartitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	for _, topic := range []string{"gone", "kept"} {
		if _, err := b.AutoCreate(topic); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range []string{"g1", "g2"} {
		errs := b.Groups().CommitOffsets(group.CommitRequest{Group: g, Generation: -1, Offsets: []group.OffsetCommit{
			{Topic: "gone", Partition: 0, Offset: 0, LeaderEpoch: -1},
			{Topic: "gone", Partition: 1, Offset: 0, LeaderEpoch: -1},
			{Topic: "kept", Partition: 0, Offset: 0, LeaderEpoch: -1},
		}})
		for _, err := range errs {
			if err != nil {
				t.Fatalf("commit %s: %v", g, err)
			}
		}
	}
	if err := b.DeleteTopic("gone"); err != nil {
		t.Fatal(err)
	}
	check := func(b *Broker) {
		t.Helper()
		for _, g := range []string{"g1", "g2"} {
			got := b.Groups().CommittedOffsets(g)
			want := map[group.TopicPartition]int64{{Topic: "kept", Partition: 0}: 0}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("%s committed offsets %v, want %v", g, got, want)
			}
		}
	}
	check(b)
	b.Close()
	b, err = Open(Options{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	check(b)
}
