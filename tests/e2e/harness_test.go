// Package e2e runs the samsa binary as a child process and drives it with
// real Kafka clients: franz-go, sarama, kafka-go, kcat (librdkafka) and
// kafkajs (tests/kafkajs, through node).
//
//	go test ./tests/e2e
//
// TestMain builds ./cmd/samsa once; SAMSA_E2E_BIN=path uses a prebuilt binary
// instead (e.g. one built with -race). Tests that need kcat, node or npm skip
// when the tool is missing, except with CI=true, where they fail.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

var (
	samsaBin   string // the binary built by TestMain
	moduleRoot string // directory holding go.mod
)

func TestMain(m *testing.M) { os.Exit(runMain(m)) }

func runMain(m *testing.M) int {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	gomod := strings.TrimSpace(string(out))
	if err != nil || gomod == "" || gomod == os.DevNull {
		fmt.Fprintf(os.Stderr, "e2e: cannot find go.mod (go env GOMOD: %q, %v)\n", gomod, err)
		return 1
	}
	moduleRoot = filepath.Dir(gomod)
	if bin := os.Getenv("SAMSA_E2E_BIN"); bin != "" {
		samsaBin = bin // a prebuilt binary, e.g. built with -race
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "samsa-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	samsaBin = filepath.Join(dir, "samsa")
	build := exec.Command("go", "build", "-o", samsaBin, "./cmd/samsa")
	build.Dir = moduleRoot
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go build ./cmd/samsa: %v\n%s", err, out)
		return 1
	}
	return m.Run()
}

// brokerOpt changes how a broker is started.
type brokerOpt func(*proc)

// withConfig sets one key of broker.toml: section "" is the top level.
// Strings are quoted; other values are written with %v.
func withConfig(section, key string, value any) brokerOpt {
	return func(p *proc) {
		if p.config[section] == nil {
			p.config[section] = map[string]any{}
		}
		p.config[section][key] = value
	}
}

// proc is one samsa broker process (and its restarts).
type proc struct {
	t         testing.TB
	config    map[string]map[string]any
	dir       string // working directory: no stray ./broker.toml is picked up
	dataDir   string
	cfgPath   string
	kafkaAddr string
	httpAddr  string
	out       *logBuffer // stdout and stderr of every run, in order

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	err  error         // cmd.Wait's result, valid after done
}

// startBroker starts samsa and waits until it serves. Cleanup kills it.
func startBroker(t testing.TB, opts ...brokerOpt) *proc {
	t.Helper()
	p := &proc{t: t, config: map[string]map[string]any{}, out: &logBuffer{}}
	for _, o := range opts {
		o(p)
	}
	p.dir = t.TempDir()
	p.dataDir = filepath.Join(p.dir, "data")
	p.kafkaAddr, p.httpAddr = freeAddr(t), freeAddr(t)
	if len(p.config) > 0 {
		p.cfgPath = filepath.Join(p.dir, "broker.toml")
		if err := os.WriteFile(p.cfgPath, renderTOML(p.config), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if p.running() {
			p.signal(syscall.SIGKILL)
			<-p.done
		}
		if t.Failed() {
			t.Logf("samsa output (data dir %s):\n%s", p.dataDir, p.out.String())
		}
	})
	p.start()
	return p
}

func (p *proc) Addr() string    { return p.kafkaAddr }
func (p *proc) DataDir() string { return p.dataDir }

func (p *proc) start() {
	p.t.Helper()
	args := []string{"serve", "--data-dir", p.dataDir, "--kafka-addr", p.kafkaAddr, "--http-addr", p.httpAddr}
	if p.cfgPath != "" {
		args = append(args, "--config", p.cfgPath)
	}
	cmd := exec.Command(samsaBin, args...)
	cmd.Dir = p.dir
	cmd.Stdout, cmd.Stderr = p.out, p.out
	dieWithParent(cmd)
	mark := p.out.Len()
	fmt.Fprintf(p.out, "=== e2e: starting samsa %s\n", strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		p.t.Fatalf("start samsa: %v", err)
	}
	p.cmd, p.done = cmd, make(chan struct{})
	go func(done chan struct{}) {
		p.err = cmd.Wait()
		close(done)
	}(p.done)

	deadline := time.Now().Add(10 * time.Second)
	for {
		if strings.Contains(p.out.Since(mark), "msg=serving") {
			if c, err := net.DialTimeout("tcp", p.kafkaAddr, time.Second); err == nil {
				c.Close()
				return
			}
		}
		select {
		case <-p.done:
			p.t.Fatalf("samsa exited before serving: %v", p.err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("samsa not serving on %s within 10s", p.kafkaAddr)
		}
	}
}

func (p *proc) running() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) signal(sig syscall.Signal) {
	if p.running() {
		_ = p.cmd.Process.Signal(sig)
	}
}

// Stop sends SIGTERM and waits; a stop that takes over 15 s or exits non-zero
// fails the test.
func (p *proc) Stop() {
	p.t.Helper()
	if !p.running() {
		return
	}
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			p.t.Errorf("samsa did not exit cleanly on SIGTERM: %v", p.err)
		}
	case <-time.After(15 * time.Second):
		p.signal(syscall.SIGKILL)
		<-p.done
		p.t.Errorf("samsa still running 15s after SIGTERM; killed")
	}
}

// Kill sends SIGKILL and waits: a crash, nothing gets flushed.
func (p *proc) Kill() {
	p.t.Helper()
	if !p.running() {
		return
	}
	fmt.Fprintf(p.out, "=== e2e: SIGKILL\n")
	p.signal(syscall.SIGKILL)
	<-p.done
}

// Restart stops the broker if it runs and starts it again on the same data
// directory and ports.
func (p *proc) Restart() {
	p.t.Helper()
	p.Stop()
	p.start()
}

// logBuffer is a goroutine-safe buffer for the child's output.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(b)
}

func (l *logBuffer) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Len()
}

func (l *logBuffer) String() string { return l.Since(0) }

func (l *logBuffer) Since(i int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return string(l.b.Bytes()[i:])
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func renderTOML(cfg map[string]map[string]any) []byte {
	var b bytes.Buffer
	sections := make([]string, 0, len(cfg))
	for s := range cfg {
		sections = append(sections, s)
	}
	sort.Strings(sections) // "" (top level) sorts first
	for _, s := range sections {
		if s != "" {
			fmt.Fprintf(&b, "[%s]\n", s)
		}
		keys := make([]string, 0, len(cfg[s]))
		for k := range cfg[s] {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if v, ok := cfg[s][k].(string); ok {
				fmt.Fprintf(&b, "%s = %q\n", k, v)
			} else {
				fmt.Fprintf(&b, "%s = %v\n", k, cfg[s][k])
			}
		}
	}
	return b.Bytes()
}

// requireTool skips the test when an executable is missing, except on CI
// (CI=true), where a missing tool is a failure.
func requireTool(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required on CI: %v", name, err)
		}
		t.Skipf("skipping: %s not found in PATH (install it to run this test)", name)
	}
	return path
}

// ---- client helpers shared by the tests ----

// newClient returns a franz-go client for the broker, closed at cleanup.
func newClient(t testing.TB, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	opts = append([]kgo.Opt{kgo.SeedBrokers(addr), kgo.MetadataMinAge(100 * time.Millisecond)}, opts...)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// createTopic creates a topic with kadm and fails the test on any error.
func createTopic(t testing.TB, addr, topic string, partitions int32) {
	t.Helper()
	adm := kadm.NewClient(newClient(t, addr))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := adm.CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		t.Fatalf("create topic %s (%d partitions): %v", topic, partitions, err)
	}
}

// endOffsets returns the high watermark of each partition of topic.
func endOffsets(t testing.TB, addr, topic string) map[int32]int64 {
	t.Helper()
	adm := kadm.NewClient(newClient(t, addr))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lo, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = lo.Error()
	}
	if err != nil {
		t.Fatalf("list end offsets of %s: %v", topic, err)
	}
	m := map[int32]int64{}
	lo.Each(func(o kadm.ListedOffset) { m[o.Partition] = o.Offset })
	return m
}

// consumeAll reads every record of topic from the start up to the high
// watermarks returned by endOffsets, failing if that takes over timeout.
// Records come back grouped by partition, in offset order.
func consumeAll(t testing.TB, addr, topic string, timeout time.Duration) map[int32][]*kgo.Record {
	t.Helper()
	got := map[int32][]*kgo.Record{}
	consumeEach(t, addr, topic, timeout, func(r *kgo.Record) { got[r.Partition] = append(got[r.Partition], r) })
	return got
}

// consumeEach is consumeAll without keeping the records: fn sees each one,
// in offset order within a partition.
func consumeEach(t testing.TB, addr, topic string, timeout time.Duration, fn func(*kgo.Record)) {
	t.Helper()
	ends := endOffsets(t, addr, topic)
	parts := map[int32]kgo.Offset{}
	remaining := 0
	for p, end := range ends {
		parts[p] = kgo.NewOffset().AtStart()
		if end > 0 {
			remaining++
		}
	}
	if remaining == 0 {
		return
	}
	cl := newClient(t, addr, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: parts}), kgo.FetchMaxWait(200*time.Millisecond))
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	counts := map[int32]int{}
	for remaining > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consume %s: timed out after %v; got %v records per partition, want up to high watermarks %v", topic, timeout, counts, ends)
		}
		fs.EachError(func(tp string, p int32, err error) {
			t.Errorf("consume %s[%d]: fetch error: %v", tp, p, err)
		})
		if t.Failed() {
			t.FailNow()
		}
		fs.EachRecord(func(r *kgo.Record) {
			end := ends[r.Partition]
			if r.Offset >= end {
				return // produced after we listed offsets
			}
			counts[r.Partition]++
			fn(r)
			if r.Offset == end-1 {
				remaining--
			}
		})
	}
}
