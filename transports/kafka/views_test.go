package kafka

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/samsa-broker/samsa/broker"
	"github.com/samsa-broker/samsa/wasm"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

var (
	guestOnce sync.Map // mode -> []byte
	guestMu   sync.Mutex
)

// guestModule builds the broker's test guest (broker/testdata/guest) in
// the given mode.
func guestModule(t testing.TB, mode string) []byte {
	t.Helper()
	guestMu.Lock()
	defer guestMu.Unlock()
	if m, ok := guestOnce.Load(mode); ok {
		return m.([]byte)
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Skip("no go toolchain to build guest modules")
		}
	}
	out := filepath.Join(t.TempDir(), mode+".wasm")
	cmd := exec.Command(goBin, "build", "-buildmode=c-shared", "-ldflags=-X=main.mode="+mode, "-o", out, ".")
	cmd.Dir = filepath.Join("..", "..", "broker", "testdata", "guest")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build guest %s: %v\n%s", mode, err, msg)
	}
	m, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	guestOnce.Store(mode, m)
	return m
}

func startFilterServer(t *testing.T) *testEnv {
	t.Helper()
	host, err := wasm.NewHost(context.Background(), wasm.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close(context.Background()) })
	return startServer(t, func(o *broker.Options, _ *Options) { o.Filters = host })
}

// TestKgoConsumeView has franz-go consume a view that drops nine records
// in ten, in a consumer group: it sees the source offsets, gets past the
// batches the view emptied, and commits offsets on the view.
func TestKgoConsumeView(t *testing.T) {
	e := startFilterServer(t)
	ctx := testCtx(t)
	b := e.b
	if _, err := b.CreateTopic("src", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DeployFilter(ctx, "dropmost", guestModule(t, "dropmost")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Bind(ctx, broker.BindingSpec{Filter: "dropmost", View: "tenth", Topic: "src"}); err != nil {
		t.Fatal(err)
	}
	prod := e.client(t, kgo.DefaultProduceTopic("src"), kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	// 299 records: the last batches hold only dropped offsets.
	for i := 0; i < 299; i += 7 {
		var rs []*kgo.Record
		for j := i; j < min(i+7, 299); j++ {
			rs = append(rs, kgo.StringRecord(fmt.Sprint(j)))
		}
		if err := prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	adm := kadm.NewClient(e.client(t))
	tds, err := adm.ListTopics(ctx, "tenth")
	if err != nil || tds["tenth"].Err != nil || len(tds["tenth"].Partitions) != 1 {
		t.Fatalf("metadata of the view: %+v %v", tds, err)
	}
	ends, err := adm.ListEndOffsets(ctx, "tenth")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := ends.Lookup("tenth", 0); o.Offset != 299 {
		t.Fatalf("view end offset %+v", o)
	}

	cons := e.client(t, kgo.ConsumeTopics("tenth"), kgo.ConsumerGroup("g"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.FetchMaxBytes(2000))
	var got []*kgo.Record
	poll := func(n int) {
		for len(got) < n {
			fs := cons.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatalf("consumed %d of %d records: %v", len(got), n, ctx.Err())
			}
			for _, fe := range fs.Errors() {
				t.Fatalf("fetch error %s-%d: %v", fe.Topic, fe.Partition, fe.Err)
			}
			got = append(got, fs.Records()...)
		}
	}
	poll(30)
	for i, r := range got {
		if r.Offset != int64(i*10) || string(r.Value) != fmt.Sprint(i*10) {
			t.Fatalf("record %d: offset %d value %s", i, r.Offset, r.Value)
		}
	}
	// Offsets 291..299 are dropped; the consumer must get past them to see
	// the next record the view keeps.
	if err := prod.ProduceSync(ctx, kgo.StringRecord("299")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if err := prod.ProduceSync(ctx, kgo.StringRecord("300")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	poll(31)
	if r := got[30]; r.Offset != 300 || string(r.Value) != "300" {
		t.Fatalf("after the dropped tail: offset %d value %s", r.Offset, r.Value)
	}
	if err := cons.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("commit on a view: %v", err)
	}
	offs, err := adm.FetchOffsets(ctx, "g")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup("tenth", 0); !ok || o.At != 301 || o.Err != nil {
		t.Fatalf("committed offset on the view: %+v", o)
	}
	lag := b.GroupLag("g")
	if len(lag) != 1 || lag[0].Topic != "tenth" || lag[0].HighWatermark != 301 || lag[0].Lag != 0 {
		t.Fatalf("lag %+v", lag)
	}
}

func TestProduceRejectedByFilter(t *testing.T) {
	e := startFilterServer(t)
	ctx := testCtx(t)
	b := e.b
	if _, err := b.CreateTopic("strict", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DeployFilter(ctx, "rej", guestModule(t, "reject")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Bind(ctx, broker.BindingSpec{Filter: "rej", Produce: "strict"}); err != nil {
		t.Fatal(err)
	}
	cl := e.client(t, kgo.DefaultProduceTopic("strict"))
	if err := cl.ProduceSync(ctx, kgo.StringRecord("fine")).FirstErr(); err != nil {
		t.Fatal(err)
	}
	err := cl.ProduceSync(ctx, kgo.StringRecord("so bad")).FirstErr()
	if !errors.Is(err, kerr.PolicyViolation) {
		t.Fatalf("want POLICY_VIOLATION, got %v", err)
	}

	c := e.dial(t)
	c.send(produceReq(9, -1, "strict", 0, batch(t, "bad again")), 1)
	resp := kmsg.NewPtrProduceResponse()
	resp.Version = 9
	c.recv(1, resp)
	p := resp.Topics[0].Partitions[0]
	if p.ErrorCode != kerr.PolicyViolation.Code || p.ErrorMessage == nil || *p.ErrorMessage != "bad record: bad again" {
		t.Fatalf("code %d message %v", p.ErrorCode, p.ErrorMessage)
	}
	// Producing to a view is refused.
	if _, err := b.Bind(ctx, broker.BindingSpec{Filter: "rej", View: "strict-view", Topic: "strict"}); err != nil {
		t.Fatal(err)
	}
	c.send(produceReq(9, -1, "strict-view", 0, batch(t, "x")), 2)
	resp = kmsg.NewPtrProduceResponse()
	resp.Version = 9
	c.recv(2, resp)
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidTopicException.Code {
		t.Fatalf("produce to a view: code %d", code)
	}
	// Metadata lists the view; fetch by name at an old version works too.
	c.send(metadataReq(1), 3)
	md := kmsg.NewPtrMetadataResponse()
	md.Version = 1
	c.recv(3, md)
	found := false
	for _, tp := range md.Topics {
		found = found || (tp.Topic != nil && *tp.Topic == "strict-view" && len(tp.Partitions) == 1)
	}
	if !found {
		t.Fatalf("metadata does not list the view")
	}
	c.send(fetchReq(4, "strict-view", 0, 0, 0), 4)
	fr := kmsg.NewPtrFetchResponse()
	fr.Version = 4
	c.recv(4, fr)
	if fp := fr.Topics[0].Partitions[0]; fp.ErrorCode != 0 || fp.HighWatermark != 1 || len(fp.RecordBatches) == 0 {
		t.Fatalf("fetch of the view: %+v", fp)
	}
}

// TestKcatConsumeView has librdkafka (kcat) read a view that drops nine
// records in ten to its end.
func TestKcatConsumeView(t *testing.T) {
	kcat := requireKcat(t)
	e := startFilterServer(t)
	ctx := testCtx(t)
	b := e.b
	if _, err := b.CreateTopic("src", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	if _, err := b.DeployFilter(ctx, "dropmost", guestModule(t, "dropmost")); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Bind(ctx, broker.BindingSpec{Filter: "dropmost", View: "tenth", Topic: "src"}); err != nil {
		t.Fatal(err)
	}
	prod := e.client(t, kgo.DefaultProduceTopic("src"), kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	for i := 0; i < 295; i += 9 {
		var rs []*kgo.Record
		for j := i; j < min(i+9, 295); j++ {
			rs = append(rs, kgo.StringRecord(fmt.Sprint(j)))
		}
		if err := prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.CommandContext(ctx, kcat, "-C", "-b", e.addr, "-t", "tenth", "-o", "beginning", "-e", "-q", "-f", "%o:%s\n").CombinedOutput()
	if err != nil {
		t.Fatalf("kcat: %v\n%s", err, out)
	}
	var want string
	for i := 0; i < 295; i += 10 {
		want += fmt.Sprintf("%d:%d\n", i, i)
	}
	if string(out) != want {
		t.Fatalf("kcat read:\n%s\nwant:\n%s", out, want)
	}
}

// requireKcat returns kcat's path; without kcat the test fails under
// CI=true (CI installs it) and is skipped otherwise.
func requireKcat(t *testing.T) string {
	t.Helper()
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kcat is required under CI=true: %v", err)
		}
		t.Skip("kcat is not installed")
	}
	return kcat
}
