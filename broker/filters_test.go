package broker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/samsa-broker/samsa/broker/record"
	"github.com/samsa-broker/samsa/wasm"
)

// Guest modules are built at test time from testdata/guest, one per mode
// (see its doc comment), and cached for the test binary's life.
var (
	guestMu    sync.Mutex
	guestDir   string
	guestBuilt = map[string][]byte{}
)

func TestMain(m *testing.M) {
	code := m.Run()
	if guestDir != "" {
		os.RemoveAll(guestDir)
	}
	os.Exit(code)
}

func guestModule(t testing.TB, mode string) []byte {
	t.Helper()
	guestMu.Lock()
	defer guestMu.Unlock()
	if m, ok := guestBuilt[mode]; ok {
		return m
	}
	if guestDir == "" {
		d, err := os.MkdirTemp("", "samsa-guests-")
		if err != nil {
			t.Fatal(err)
		}
		guestDir = d
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Skip("no go toolchain to build guest modules")
		}
	}
	out := filepath.Join(guestDir, mode+".wasm")
	cmd := exec.Command(goBin, "build", "-buildmode=c-shared", "-ldflags=-X=main.mode="+mode, "-o", out, ".")
	cmd.Dir = filepath.Join("testdata", "guest")
	if wd, err := os.Getwd(); err == nil && filepath.Base(wd) != "broker" {
		cmd.Dir = filepath.Join(wd, "..", "..", "broker", "testdata", "guest")
	}
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build guest %s: %v\n%s", mode, err, msg)
	}
	m, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	guestBuilt[mode] = m
	return m
}

// openFilters opens a broker with a Wasm host whose modules live in
// dir/filters (dir "" is a new temp dir).
func openFilters(t testing.TB, dataDir string, mod func(*Options)) *Broker {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	host, err := wasm.NewHost(context.Background(), wasm.Options{Dir: filepath.Join(dataDir, "filters"), Interpreter: raceEnabled})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close(context.Background()) })
	opts := Options{DataDir: dataDir, AutoCreateTopics: true, DefaultPartitions: 1, Filters: host}
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

func deploy(t testing.TB, b *Broker, name, mode string) wasm.ModuleInfo {
	t.Helper()
	info, err := b.DeployFilter(context.Background(), name, guestModule(t, mode))
	if err != nil {
		t.Fatalf("deploy %s: %v", name, err)
	}
	return info
}

func bind(t testing.TB, b *Broker, spec BindingSpec) Binding {
	t.Helper()
	if spec.TimeoutMs == 0 {
		// The 100 ms default is for production; a loaded CI machine running
		// the interpreter under -race needs room. Tests of the time limit
		// set their own.
		spec.TimeoutMs = 10000
	}
	bd, err := b.Bind(context.Background(), spec)
	if err != nil {
		t.Fatalf("bind %+v: %v", spec, err)
	}
	return bd
}

func mustTopic(t testing.TB, b *Broker, name string, partitions int32) {
	t.Helper()
	if _, err := b.CreateTopic(name, partitions, nil, false); err != nil {
		t.Fatal(err)
	}
}

// keyedBatch encodes key=value pairs ("k=v", or "v" for a null key) with
// codec c.
func keyedBatch(t testing.TB, c record.Codec, kvs ...string) []byte {
	t.Helper()
	recs := make([]record.Record, len(kvs))
	for i, kv := range kvs {
		recs[i] = record.Record{Timestamp: nowMs() + int64(i), Value: []byte(kv)} // recent: retention keeps it
		if k, v, ok := strings.Cut(kv, "="); ok {
			recs[i].Key, recs[i].Value = []byte(k), []byte(v)
		}
		recs[i].Headers = []record.Header{{Key: "h", Value: []byte("x")}}
	}
	out, err := record.AppendBatch(nil, recs, record.EncodeOptions{Codec: c})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// fetchAll fetches a topic or view partition from offset 0 and returns its
// batches.
func fetchAll(t testing.TB, b *Broker, topic string, part int32) []record.Batch {
	t.Helper()
	res := b.Fetch(context.Background(), FetchRequest{MaxBytes: 1 << 30, Partitions: []FetchPartition{{Topic: topic, Partition: part, Offset: 0, MaxBytes: 1 << 30}}})
	if res[0].Err != nil {
		t.Fatalf("fetch %s-%d: %v", topic, part, res[0].Err)
	}
	var out []record.Batch
	if err := record.DecodeBatches(res[0].Records, 0, func(bt record.Batch) error {
		out = append(out, bt)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// kvs renders a topic partition's records as "offset:key=value".
func kvs(t testing.TB, b *Broker, topic string, part int32) []string {
	t.Helper()
	var out []string
	for _, bt := range fetchAll(t, b, topic, part) {
		for _, r := range bt.Records {
			s := string(r.Value)
			if r.Key != nil {
				s = string(r.Key) + "=" + s
			}
			out = append(out, fmt.Sprintf("%d:%s", r.Offset, s))
		}
	}
	return out
}

func TestProduceFilters(t *testing.T) {
	b := openFilters(t, "", nil)
	tests := []struct {
		mode string
		in   []string
		want []string
	}{
		{"keep", []string{"a", "b", "c"}, []string{"0:a", "1:b", "2:c"}},
		// Dropped records leave their offsets unused (an empty batch takes
		// them), so the producer's offsets stay right.
		{"dropodd", []string{"a", "b", "c", "d", "e"}, []string{"0:a", "1:c", "2:e"}},
		{"upper", []string{"k=abc", "def"}, []string{"0:k=ABC", "1:DEF"}},
		{"reject", []string{"good", "fine"}, []string{"0:good", "1:fine"}},
		{"route", []string{"x", "both=1"}, []string{"0:x", "1:both=1"}},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			topic := "t-" + tt.mode
			mustTopic(t, b, topic, 1)
			deploy(t, b, tt.mode, tt.mode)
			bind(t, b, BindingSpec{Filter: tt.mode, Produce: topic})
			r := produce(t, b, topic, 0, keyedBatch(t, record.None, tt.in...))
			if r.Err != nil || r.BaseOffset != 0 {
				t.Fatalf("produce: %+v", r)
			}
			if got := kvs(t, b, topic, 0); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
			// Headers survive, and the next produce follows on.
			for _, bt := range fetchAll(t, b, topic, 0) {
				for _, r := range bt.Records {
					if len(r.Headers) != 1 || r.Headers[0].Key != "h" {
						t.Fatalf("headers %+v", r.Headers)
					}
				}
			}
			if r := produce(t, b, topic, 0, keyedBatch(t, record.None, "next")); r.Err != nil || r.BaseOffset != int64(len(tt.in)) {
				t.Fatalf("next produce: %+v", r)
			}
		})
	}
	st := b.Bindings()
	if len(st) != len(tests) {
		t.Fatalf("bindings: %+v", st)
	}
	for _, bd := range st {
		if bd.Stats.Batches != 2 || bd.Stats.Failures != 0 {
			t.Errorf("binding %s stats %+v", bd.Filter, bd.Stats)
		}
		if bd.Filter == "dropodd" && bd.Stats.Dropped != 2 {
			t.Errorf("dropodd stats %+v", bd.Stats)
		}
	}
}

func TestProduceFilterKeepsCodec(t *testing.T) {
	b := openFilters(t, "", nil)
	deploy(t, b, "upper", "upper")
	deploy(t, b, "dropodd", "dropodd")
	for _, c := range []record.Codec{record.Zstd, record.Gzip, record.Snappy, record.LZ4} {
		topic := "codec-" + c.String()
		mustTopic(t, b, topic, 1)
		bind(t, b, BindingSpec{Filter: "upper", Produce: topic})
		bind(t, b, BindingSpec{Filter: "dropodd", Produce: topic}) // a chain: upper, then dropodd
		mustProduce(t, b, topic, 0, keyedBatch(t, c, "one", "two", "three", strings.Repeat("z", 1000)))
		bts := fetchAll(t, b, topic, 0)
		if len(bts) != 2 || bts[0].Codec() != c || len(bts[0].Records) != 2 {
			t.Fatalf("%s: stored %d batches, first codec %s with %d records", c, len(bts), bts[0].Codec(), len(bts[0].Records))
		}
		if got := kvs(t, b, topic, 0); fmt.Sprint(got) != "[0:ONE 1:THREE]" {
			t.Fatalf("%s: %v", c, got)
		}
		if bts[1].BaseOffset != 2 || bts[1].LastOffsetDelta != 1 || len(bts[1].Records) != 0 {
			t.Fatalf("%s: trailing batch %+v", c, bts[1])
		}
	}
}

func TestProduceFilterReject(t *testing.T) {
	b := openFilters(t, "", nil)
	mustTopic(t, b, "t", 2)
	deploy(t, b, "rej", "reject")
	bind(t, b, BindingSpec{Filter: "rej", Produce: "t"})
	res := b.Produce(-1, []ProducePartition{
		{Topic: "t", Partition: 0, Records: keyedBatch(t, record.None, "ok", "this is bad", "ok")},
		{Topic: "t", Partition: 1, Records: keyedBatch(t, record.None, "ok")},
	}).Wait(context.Background())
	if !errors.Is(res[0].Err, ErrFilterRejected) {
		t.Fatalf("want ErrFilterRejected, got %v", res[0].Err)
	}
	var fe *FilterError
	if !errors.As(res[0].Err, &fe) || fe.Message != "bad record: this is bad" {
		t.Fatalf("message: %#v", res[0].Err)
	}
	if res[1].Err != nil {
		t.Fatalf("other partition: %v", res[1].Err)
	}
	if _, hwm, _ := b.Offsets("t", 0); hwm != 0 {
		t.Fatalf("rejected batch appended something: hwm %d", hwm)
	}
	if st := b.Bindings()[0].Stats; st.Rejected != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestProduceFilterOnError(t *testing.T) {
	b := openFilters(t, "", nil)
	deploy(t, b, "spin", "spin")
	for _, policy := range []OnError{OnErrorReject, OnErrorDrop, OnErrorPass, DeadLetter("dlq")} {
		t.Run(string(policy), func(t *testing.T) {
			topic := "t-" + strings.ReplaceAll(string(policy), ":", "-")
			mustTopic(t, b, topic, 1)
			bind(t, b, BindingSpec{Filter: "spin", Produce: topic, OnError: policy, TimeoutMs: 50})
			start := time.Now()
			r := produce(t, b, topic, 0, keyedBatch(t, record.None, "a", "b"))
			if el := time.Since(start); el > 5*time.Second {
				t.Fatalf("produce took %v", el)
			}
			got := kvs(t, b, topic, 0)
			switch policy {
			case OnErrorReject:
				if !errors.Is(r.Err, ErrFilterRejected) || !errors.Is(r.Err, wasm.ErrFilterFailed) || len(got) != 0 {
					t.Fatalf("err %v, records %v", r.Err, got)
				}
			case OnErrorDrop:
				if r.Err != nil || len(got) != 0 {
					t.Fatalf("err %v, records %v", r.Err, got)
				}
			case OnErrorPass:
				if r.Err != nil || fmt.Sprint(got) != "[0:a 1:b]" {
					t.Fatalf("err %v, records %v", r.Err, got)
				}
			default:
				if r.Err != nil || len(got) != 0 {
					t.Fatalf("err %v, records %v", r.Err, got)
				}
				if got := kvs(t, b, "dlq", 0); fmt.Sprint(got) != "[0:a 1:b]" {
					t.Fatalf("dead letters %v", got)
				}
				bt := fetchAll(t, b, "dlq", 0)[0]
				h := bt.Records[0].Headers
				if len(h) != 2 || h[1].Key != FilterErrorHeader || !strings.Contains(string(h[1].Value), "timeout") {
					t.Fatalf("dead letter headers %+v", h)
				}
			}
			if st := b.Bindings(); st[len(st)-1].Stats.Failures != 1 {
				t.Fatalf("stats %+v", st[len(st)-1].Stats)
			}
		})
	}
}

func TestProduceFilterRoutes(t *testing.T) {
	b := openFilters(t, "", nil)
	mustTopic(t, b, "src", 1)
	deploy(t, b, "route", "route")
	bind(t, b, BindingSpec{Filter: "route", Produce: "src"})
	mustProduce(t, b, "src", 0, keyedBatch(t, record.Gzip, "a=1", "stay", "both=2", "a=3"))
	if got := kvs(t, b, "src", 0); fmt.Sprint(got) != "[0:stay 1:both=2]" {
		t.Fatalf("src: %v", got)
	}
	if got := kvs(t, b, "route-a", 0); fmt.Sprint(got) != "[0:a=1 1:a=3]" {
		t.Fatalf("route-a: %v", got)
	}
	if got := kvs(t, b, "route-both", 0); fmt.Sprint(got) != "[0:both=2]" {
		t.Fatalf("route-both: %v", got)
	}
	// Auto-creation off: a route to a missing topic fails the produce and
	// appends nothing.
	b.opts.AutoCreateTopics = false
	r := produce(t, b, "src", 0, keyedBatch(t, record.None, "new=1", "stay"))
	if !errors.Is(r.Err, ErrUnknownTopic) {
		t.Fatalf("route to a missing topic: %v", r.Err)
	}
	if _, hwm, _ := b.Offsets("src", 0); hwm != 4 {
		t.Fatalf("hwm %d after a failed route", hwm)
	}
}

func TestProduceFilterIdempotent(t *testing.T) {
	dir := t.TempDir()
	b := openFilters(t, dir, nil)
	mustTopic(t, b, "t", 1)
	deploy(t, b, "dropodd", "dropodd")
	bind(t, b, BindingSpec{Filter: "dropodd", Produce: "t"})
	pid, epoch, _ := b.InitProducerID("")
	first := idempotentBatch(t, pid, epoch, 0, "a", "b", "c", "d")
	if off := mustProduce(t, b, "t", 0, bytes.Clone(first)); off != 0 {
		t.Fatalf("offset %d", off)
	}
	if off := mustProduce(t, b, "t", 0, bytes.Clone(first)); off != 0 {
		t.Fatalf("retry answered %d", off)
	}
	if off := mustProduce(t, b, "t", 0, idempotentBatch(t, pid, epoch, 4, "e", "f")); off != 4 {
		t.Fatalf("offset %d", off)
	}
	if got := kvs(t, b, "t", 0); fmt.Sprint(got) != "[0:a 1:c 4:e]" {
		t.Fatalf("records %v", got)
	}
	// After a restart the producer's sequence continues where it was.
	b.Close()
	b = openFilters(t, dir, nil)
	if off := mustProduce(t, b, "t", 0, idempotentBatch(t, pid, epoch, 6, "g")); off != 6 {
		t.Fatalf("offset after restart %d", off)
	}
	if r := produce(t, b, "t", 0, idempotentBatch(t, pid, epoch, 9, "gap")); !errors.Is(r.Err, ErrOutOfOrderSequence) {
		t.Fatalf("gap: %v", r.Err)
	}
}

func TestViews(t *testing.T) {
	b := openFilters(t, "", nil)
	mustTopic(t, b, "src", 2)
	deploy(t, b, "dropodd", "dropodd")
	deploy(t, b, "upper", "upper")
	bind(t, b, BindingSpec{Filter: "dropodd", View: "even", Topic: "src"})
	bind(t, b, BindingSpec{Filter: "upper", View: "loud", Topic: "src"})
	mustProduce(t, b, "src", 0, keyedBatch(t, record.Zstd, "a", "b", "c", "d"))
	mustProduce(t, b, "src", 0, keyedBatch(t, record.None, "e"))
	mustProduce(t, b, "src", 0, keyedBatch(t, record.None, "f"))
	if got := kvs(t, b, "even", 0); fmt.Sprint(got) != "[0:a 2:c 4:e]" {
		t.Fatalf("even: %v", got)
	}
	bts := fetchAll(t, b, "even", 0)
	if len(bts) != 3 || bts[0].Codec() != record.Zstd || bts[0].BaseOffset != 0 || bts[0].LastOffsetDelta != 3 {
		t.Fatalf("first view batch must span its source batch with its codec: %+v", bts[0])
	}
	if bts[2].BaseOffset != 5 || len(bts[2].Records) != 0 || bts[2].LastOffsetDelta != 0 {
		t.Fatalf("a batch with every record dropped is an empty batch: %+v", bts[2])
	}
	if got := kvs(t, b, "loud", 0); fmt.Sprint(got) != "[0:A 1:B 2:C 3:D 4:E 5:F]" {
		t.Fatalf("loud: %v", got)
	}
	// A fetch inside a batch, and at the end.
	res := b.Fetch(context.Background(), FetchRequest{Partitions: []FetchPartition{{Topic: "even", Partition: 0, Offset: 5, MaxBytes: 1 << 20}}})
	if res[0].Err != nil || res[0].HighWatermark != 6 {
		t.Fatalf("fetch: %+v", res[0])
	}
	// Offsets are the source's.
	if start, hwm, err := b.Offsets("even", 0); err != nil || start != 0 || hwm != 6 {
		t.Fatalf("offsets %d %d %v", start, hwm, err)
	}
	if off, _, err := b.ListOffset("even", 1, LatestTimestamp); err != nil || off != 0 {
		t.Fatalf("list offset %d %v", off, err)
	}
	info, err := b.View("even")
	if err != nil || info.Partitions != 2 || info.Source != "src" {
		t.Fatalf("view info %+v %v", info, err)
	}
	if vi, err := b.ViewByID(info.ID); err != nil || vi.Name != "even" {
		t.Fatalf("by id %+v %v", vi, err)
	}
	if vs := b.Views(); len(vs) != 2 {
		t.Fatalf("views %+v", vs)
	}
	// Views are read-only and their names are taken.
	if r := produce(t, b, "even", 0, keyedBatch(t, record.None, "x")); !errors.Is(r.Err, ErrInvalidTopic) {
		t.Fatalf("produce to a view: %v", r.Err)
	}
	if _, err := b.CreateTopic("even", 1, nil, false); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("create a topic named like a view: %v", err)
	}
	if _, err := b.AutoCreate("even"); err == nil {
		t.Fatal("auto-create of a view name succeeded")
	}
	if _, err := b.Bind(context.Background(), BindingSpec{Filter: "upper", View: "src", Topic: "src"}); !errors.Is(err, ErrTopicExists) {
		t.Fatalf("view named like a topic: %v", err)
	}
	// Group commits accept view partitions.
	if p, vb, err := b.readPartition("even", 1); err != nil || vb == nil || p.topic != "src" {
		t.Fatalf("read partition of a view: %v", err)
	}
}

func TestViewDropsMostAndLongPolls(t *testing.T) {
	b := openFilters(t, "", nil)
	mustTopic(t, b, "src", 1)
	deploy(t, b, "dropmost", "dropmost")
	bind(t, b, BindingSpec{Filter: "dropmost", View: "tenth", Topic: "src"})
	for i := 0; i < 50; i++ {
		mustProduce(t, b, "src", 0, keyedBatch(t, record.Snappy, fmt.Sprint(i), "x", "y"))
	}
	// A consumer that follows the batches reaches the high watermark.
	off, seen := int64(0), 0
	for off < 150 {
		res := b.Fetch(context.Background(), FetchRequest{Partitions: []FetchPartition{{Topic: "tenth", Offset: off, MaxBytes: 200}}})
		if res[0].Err != nil || len(res[0].Records) == 0 {
			t.Fatalf("stuck at %d: %+v", off, res[0])
		}
		record.DecodeBatches(res[0].Records, 0, func(bt record.Batch) error {
			for _, r := range bt.Records {
				if r.Offset%10 != 0 {
					t.Fatalf("offset %d came through", r.Offset)
				}
				seen++
			}
			off = bt.LastOffset() + 1
			return nil
		})
	}
	if seen != 15 {
		t.Fatalf("saw %d records", seen)
	}
	// A long poll on the view wakes on an append to the source.
	done := make(chan []FetchResult)
	go func() {
		done <- b.Fetch(context.Background(), FetchRequest{MaxWait: 5 * time.Second, MinBytes: 1, Partitions: []FetchPartition{{Topic: "tenth", Offset: 150, MaxBytes: 1 << 20}}})
	}()
	time.Sleep(50 * time.Millisecond)
	mustProduce(t, b, "src", 0, keyedBatch(t, record.None, "late"))
	select {
	case res := <-done:
		if res[0].Err != nil || len(res[0].Records) == 0 {
			t.Fatalf("long poll: %+v", res[0])
		}
	case <-time.After(3 * time.Second):
		t.Fatal("long poll on a view did not wake")
	}
}

func TestViewOnError(t *testing.T) {
	b := openFilters(t, "", nil)
	mustTopic(t, b, "src", 1)
	deploy(t, b, "spin", "spin")
	mustProduce(t, b, "src", 0, keyedBatch(t, record.None, "a", "b"))
	for _, policy := range []OnError{OnErrorPass, OnErrorDrop, OnErrorReject, DeadLetter("vdlq")} {
		name := "v-" + strings.ReplaceAll(string(policy), ":", "-")
		bind(t, b, BindingSpec{Filter: "spin", View: name, Topic: "src", OnError: policy, TimeoutMs: 50})
		res := b.Fetch(context.Background(), FetchRequest{Partitions: []FetchPartition{{Topic: name, Offset: 0, MaxBytes: 1 << 20}}})
		var n int
		record.DecodeBatches(res[0].Records, 0, func(bt record.Batch) error { n += len(bt.Records); return nil })
		switch policy {
		case OnErrorPass:
			if res[0].Err != nil || n != 2 {
				t.Fatalf("pass: %v, %d records", res[0].Err, n)
			}
		case OnErrorDrop:
			if res[0].Err != nil || n != 0 || len(res[0].Records) == 0 {
				t.Fatalf("drop: %v, %d records", res[0].Err, n)
			}
		case OnErrorReject:
			if !errors.Is(res[0].Err, ErrFilterRejected) {
				t.Fatalf("reject: %v", res[0].Err)
			}
		default:
			if res[0].Err != nil || n != 0 {
				t.Fatalf("dead-letter: %v, %d records", res[0].Err, n)
			}
			if got := kvs(t, b, "vdlq", 0); fmt.Sprint(got) != "[0:a 1:b]" {
				t.Fatalf("dead letters %v", got)
			}
			// Reading the view again (another consumer, a seek) sends
			// nothing twice; a new failed record is sent once.
			b.Fetch(context.Background(), FetchRequest{Partitions: []FetchPartition{{Topic: name, Offset: 0, MaxBytes: 1 << 20}}})
			mustProduce(t, b, "src", 0, keyedBatch(t, record.None, "c"))
			for range 2 {
				res := b.Fetch(context.Background(), FetchRequest{Partitions: []FetchPartition{{Topic: name, Offset: 0, MaxBytes: 1 << 20}}})
				if res[0].Err != nil {
					t.Fatal(res[0].Err)
				}
			}
			if got := kvs(t, b, "vdlq", 0); fmt.Sprint(got) != "[0:a 1:b 2:c]" {
				t.Fatalf("dead letters after re-reads %v", got)
			}
		}
	}
}

func TestReplaceFilterWhileRunning(t *testing.T) {
	b := openFilters(t, "", nil)
	mustTopic(t, b, "t", 1)
	deploy(t, b, "f", "keep")
	bind(t, b, BindingSpec{Filter: "f", Produce: "t"})
	var (
		wg       sync.WaitGroup
		failures atomic.Int64
		produced atomic.Int64
		stop     atomic.Bool
	)
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				res := b.Produce(-1, []ProducePartition{{Topic: "t", Records: keyedBatch(t, record.None, "abc")}}).Wait(context.Background())
				if res[0].Err != nil {
					failures.Add(1)
					t.Errorf("produce failed during the swap: %v", res[0].Err)
				}
				produced.Add(1)
			}
		}()
	}
	for produced.Load() < 50 {
		time.Sleep(time.Millisecond)
	}
	info := deploy(t, b, "f", "upper")
	if info.Version != 2 {
		t.Fatalf("version %d", info.Version)
	}
	at := produced.Load()
	for produced.Load() < at+50 {
		time.Sleep(time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if failures.Load() > 0 {
		t.Fatalf("%d produces failed", failures.Load())
	}
	got := kvs(t, b, "t", 0)
	if last := got[len(got)-1]; !strings.HasSuffix(last, ":ABC") {
		t.Fatalf("last record %s: v2 did not take over", last)
	}
	if bd := b.Bindings()[0]; bd.ActiveVersion != 2 {
		t.Fatalf("active version %d", bd.ActiveVersion)
	}
	// Unbind while producing: nothing fails either, and records go in
	// unfiltered afterwards.
	stop.Store(false)
	produced.Store(0)
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				res := b.Produce(-1, []ProducePartition{{Topic: "t", Records: keyedBatch(t, record.None, "abc")}}).Wait(context.Background())
				if res[0].Err != nil {
					t.Errorf("produce failed during unbind: %v", res[0].Err)
				}
				produced.Add(1)
			}
		}()
	}
	for produced.Load() < 20 {
		time.Sleep(time.Millisecond)
	}
	if err := b.Unbind(b.Bindings()[0].ID); err != nil {
		t.Fatal(err)
	}
	at = produced.Load()
	for produced.Load() < at+20 {
		time.Sleep(time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	got = kvs(t, b, "t", 0)
	if last := got[len(got)-1]; !strings.HasSuffix(last, ":abc") {
		t.Fatalf("last record %s after unbind", last)
	}
	if err := b.RemoveFilter("f"); err != nil {
		t.Fatalf("remove unbound filter: %v", err)
	}
}

func TestBindingsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	b := openFilters(t, dir, nil)
	mustTopic(t, b, "t", 1)
	deploy(t, b, "upper", "upper")
	deploy(t, b, "dropodd", "dropodd")
	p := bind(t, b, BindingSpec{Filter: "upper", Produce: "t", Params: []byte(`{"a":1}`), TimeoutMs: 500})
	v := bind(t, b, BindingSpec{Filter: "dropodd", View: "t-even", Topic: "t", Version: 1})
	if err := b.RemoveFilter("upper"); !errors.Is(err, ErrFilterInUse) {
		t.Fatalf("remove a bound filter: %v", err)
	}
	b.Close()

	b = openFilters(t, dir, nil)
	bs := b.Bindings()
	if len(bs) != 2 || bs[0].ID != p.ID || bs[1].ID != v.ID || bs[0].TimeoutMs != 500 || string(bs[0].Params) != `{"a":1}` || bs[1].Version != 1 || bs[0].OnError != OnErrorReject || bs[1].OnError != OnErrorPass {
		t.Fatalf("bindings after restart: %+v", bs)
	}
	mustProduce(t, b, "t", 0, keyedBatch(t, record.None, "a", "b", "c"))
	if got := kvs(t, b, "t-even", 0); fmt.Sprint(got) != "[0:A 2:C]" {
		t.Fatalf("after restart: %v", got)
	}
	b.Close()

	// A broker whose host lost the modules still opens; the bindings fail
	// their batches by their policies (reject on produce, pass on views).
	other := t.TempDir()
	host, err := wasm.NewHost(context.Background(), wasm.Options{Dir: other, Interpreter: raceEnabled})
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close(context.Background())
	b2, err := Open(Options{DataDir: dir, Filters: host})
	if err != nil {
		t.Fatalf("open with modules missing: %v", err)
	}
	defer b2.Close()
	if bs := b2.Bindings(); len(bs) != 2 || bs[0].Error == "" {
		t.Fatalf("bindings: %+v", bs)
	}
	if r := produce(t, b2, "t", 0, keyedBatch(t, record.None, "x")); !errors.Is(r.Err, ErrFilterRejected) {
		t.Fatalf("produce with the module missing: %v", r.Err)
	}
	if got := kvs(t, b2, "t-even", 0); fmt.Sprint(got) != "[0:A 1:B 2:C]" {
		t.Fatalf("view with the module missing: %v", got)
	}
}

func TestFilterLogs(t *testing.T) {
	b := openFilters(t, "", nil)
	mustTopic(t, b, "t", 1)
	deploy(t, b, "logger", "log")
	bd := bind(t, b, BindingSpec{Filter: "logger", Produce: "t"})
	mustProduce(t, b, "t", 0, keyedBatch(t, record.None, "a", "b"))
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := b.Topic(FilterLogsTopic); err == nil {
			bts := fetchAll(t, b, FilterLogsTopic, 0)
			var lines []string
			for _, bt := range bts {
				for _, r := range bt.Records {
					hs := map[string]string{}
					for _, h := range r.Headers {
						hs[h.Key] = string(h.Value)
					}
					if string(r.Key) != "logger" || hs["binding"] != bd.ID || hs["version"] != "1" {
						t.Fatalf("log record %s %v", r.Key, hs)
					}
					lines = append(lines, hs["stream"]+":"+string(r.Value))
				}
			}
			if len(lines) == 2 {
				if fmt.Sprint(lines) != "[stdout:batch of 2 on t stderr:stderr line]" && fmt.Sprint(lines) != "[stderr:stderr line stdout:batch of 2 on t]" {
					t.Fatalf("lines %v", lines)
				}
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("no filter logs")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if w, d := b.FilterLogStats(); w != 2 || d != 0 {
		t.Fatalf("log stats %d %d", w, d)
	}
}

func TestBindValidation(t *testing.T) {
	b := openFilters(t, "", nil)
	mustTopic(t, b, "t", 1)
	deploy(t, b, "keep", "keep")
	tests := []struct {
		spec BindingSpec
		want error
	}{
		{BindingSpec{Filter: "nope", Produce: "t"}, wasm.ErrUnknownModule},
		{BindingSpec{Filter: "keep", Produce: "t", Version: 7}, wasm.ErrUnknownModule},
		{BindingSpec{Filter: "keep", Produce: "missing"}, ErrUnknownTopic},
		{BindingSpec{Filter: "keep", View: "v", Topic: "missing"}, ErrUnknownTopic},
		{BindingSpec{Filter: "keep", View: "bad name", Topic: "t"}, ErrInvalidTopic},
		{BindingSpec{Filter: "keep"}, ErrInvalidConfig},
		{BindingSpec{Filter: "keep", Produce: "t", View: "v"}, ErrInvalidConfig},
		{BindingSpec{Filter: "keep", Produce: "t", OnError: "explode"}, ErrInvalidConfig},
		{BindingSpec{Filter: "keep", Produce: "t", OnError: "dead-letter:"}, ErrInvalidConfig},
		{BindingSpec{Filter: "keep", Produce: "t", Params: []byte("{nope")}, ErrInvalidConfig},
		{BindingSpec{Filter: "keep", Produce: "t", Params: []byte(`"` + strings.Repeat("x", MaxFilterParams) + `"`)}, ErrInvalidConfig},
	}
	for _, tt := range tests {
		if _, err := b.Bind(context.Background(), tt.spec); !errors.Is(err, tt.want) {
			t.Errorf("%+v: got %v, want %v", tt.spec, err, tt.want)
		}
	}
	if err := b.Unbind("b-nope"); !errors.Is(err, ErrUnknownBinding) {
		t.Fatalf("unbind: %v", err)
	}
	bd := bind(t, b, BindingSpec{Filter: "keep", Produce: "t", OnError: DeadLetter("dl")})
	if _, err := b.Topic("dl"); err != nil {
		t.Fatalf("dead-letter topic not created: %v", err)
	}
	if err := b.Unbind(bd.ID); err != nil {
		t.Fatal(err)
	}
	off := openTest(t, nil)
	if _, err := off.Bind(context.Background(), BindingSpec{Filter: "keep", Produce: "t"}); !errors.Is(err, ErrFiltersDisabled) {
		t.Fatalf("filters off: %v", err)
	}
}

// BenchmarkProduceFilter compares Broker.Produce with no binding and with
// a keep-all binding, 100 records of 100 bytes per batch.
//
// With flush.policy=os the numbers are the CPU cost; with the default,
// always, each produce also waits for its fsync as a real one does.
func BenchmarkProduceFilter(b *testing.B) {
	for _, flush := range []FlushPolicy{FlushOS, FlushAlways} {
		for _, bound := range []bool{false, true} {
			name := "flush=" + string(flush) + "/none"
			if bound {
				name = "flush=" + string(flush) + "/keep-all"
			}
			benchProduce(b, name, flush, bound)
		}
	}
}

func benchProduce(b *testing.B, name string, flush FlushPolicy, bound bool) {
	b.Run(name, func(b *testing.B) {
		br := openFilters(b, "", func(o *Options) { o.Defaults = DefaultTopicConfig(); o.Defaults.Flush = flush })
		mustTopic(b, br, "t", 1)
		if bound {
			deploy(b, br, "keep", "keep")
			bind(b, br, BindingSpec{Filter: "keep", Produce: "t"})
		}
		recs := make([]record.Record, 100)
		for i := range recs {
			recs[i] = record.Record{Timestamp: nowMs(), Key: []byte(fmt.Sprint(i)), Value: bytes.Repeat([]byte("v"), 100)}
		}
		data, _ := record.AppendBatch(nil, recs, record.EncodeOptions{})
		buf := make([]byte, len(data))
		b.SetBytes(int64(len(data)))
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			copy(buf, data)
			res := br.Produce(1, []ProducePartition{{Topic: "t", Records: buf}}).Wait(context.Background())
			if res[0].Err != nil {
				b.Fatal(res[0].Err)
			}
		}
	})
}

// BenchmarkFetchView compares fetching a topic and a keep-all view of it.
func BenchmarkFetchView(b *testing.B) {
	br := openFilters(b, "", func(o *Options) { o.Defaults = DefaultTopicConfig(); o.Defaults.Flush = FlushOS })
	mustTopic(b, br, "t", 1)
	deploy(b, br, "keep", "keep")
	bind(b, br, BindingSpec{Filter: "keep", View: "v", Topic: "t"})
	recs := make([]record.Record, 100)
	for i := range recs {
		recs[i] = record.Record{Timestamp: nowMs(), Key: []byte(fmt.Sprint(i)), Value: bytes.Repeat([]byte("v"), 100)}
	}
	data, _ := record.AppendBatch(nil, recs, record.EncodeOptions{})
	for i := 0; i < 100; i++ {
		if res := br.Produce(1, []ProducePartition{{Topic: "t", Records: bytes.Clone(data)}}).Wait(context.Background()); res[0].Err != nil {
			b.Fatal(res[0].Err)
		}
	}
	for _, topic := range []string{"t", "v"} {
		b.Run(topic, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for i := 0; i < b.N; i++ {
				off := int64(i%100) * 100
				res := br.Fetch(context.Background(), FetchRequest{Partitions: []FetchPartition{{Topic: topic, Offset: off, MaxBytes: 1}}})
				if res[0].Err != nil || len(res[0].Records) == 0 {
					b.Fatal(res[0].Err)
				}
				br.ReleaseFetch(res)
			}
		})
	}
}
