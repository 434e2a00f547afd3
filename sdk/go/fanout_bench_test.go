package samsa

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkFanout measures the fan-out target: one topic (one partition)
// receiving 1,000 records/s of 100 bytes, delivered to N WebSocket
// subscribers (one connection each, binary deliveries, from latest): at
// N=1000 a million deliveries a second. Every record must reach every
// subscriber (missing must be 0); the producer puts time.Now().UnixNano()
// in the first 8 bytes of each value and each subscriber records
// now - sent on receipt, giving the p50/p99/max delivery latency.
//
// The broker is `samsa serve` built from ./cmd/samsa and run as a separate
// process (default config, so flush = "always"), so that its CPU is not
// mixed with the client goroutines'; broker_cpu and client_cpu are the
// cores each process used during the measurement (from /proc, Linux).
//
// It is one measurement (~5 s of producing) whatever b.N is:
//
//	go test -run x -bench Fanout -benchtime 1x ./sdk/go/
func BenchmarkFanout(b *testing.B) {
	if testing.Short() {
		b.Skip("fan-out measurement: not in -short")
	}
	bin := buildSamsa(b)
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			runFanout(b, bin, n, 1000, 100, 5*time.Second)
		})
	}
}

// buildSamsa builds ./cmd/samsa into a temp dir.
func buildSamsa(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "samsa")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/samsa-broker/samsa/cmd/samsa").CombinedOutput()
	if err != nil {
		b.Fatalf("go build ./cmd/samsa: %v\n%s", err, out)
	}
	return bin
}

// freeAddr returns a 127.0.0.1 address with a port that was free a moment
// ago.
func freeAddr(b *testing.B) string {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// brokerProc is a `samsa serve` child process.
type brokerProc struct {
	cmd      *exec.Cmd
	pid      int
	url      string
	httpAddr string
	done     chan struct{} // closed when the process has exited

	mu   sync.Mutex
	tail []string // last lines of its log
}

func (p *brokerProc) logTail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.tail, "\n")
}

// startBroker runs `samsa serve` on a fresh data dir and waits for its
// "serving" line. It is stopped (SIGINT, then SIGKILL) by b's cleanup,
// also when the benchmark fails.
func startBroker(b *testing.B, bin string) *brokerProc {
	b.Helper()
	dir := b.TempDir()
	kafkaAddr, httpAddr := freeAddr(b), freeAddr(b)
	cmd := exec.Command(bin, "serve",
		"--data-dir", filepath.Join(dir, "data"),
		"--kafka-addr", kafkaAddr,
		"--http-addr", httpAddr)
	cmd.Dir = dir // no ./broker.toml: the defaults
	cmd.Stdout = io.Discard
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	p := &brokerProc{cmd: cmd, pid: cmd.Process.Pid, url: "ws://" + httpAddr + "/ws", httpAddr: httpAddr, done: make(chan struct{})}
	serving := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		once := false
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.tail = append(p.tail, line)
			if len(p.tail) > 20 {
				p.tail = p.tail[len(p.tail)-20:]
			}
			p.mu.Unlock()
			if !once && strings.Contains(line, "msg=serving") {
				once = true
				close(serving)
			}
		}
		// Drain (the pipe must never fill) until the process ends.
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	b.Cleanup(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case <-serving:
	case <-p.done:
		b.Fatalf("samsa serve exited before serving:\n%s", p.logTail())
	case <-time.After(30 * time.Second):
		b.Fatalf("samsa serve not serving after 30 s:\n%s", p.logTail())
	}
	return p
}

// profileBroker writes a CPU profile of the broker over d to the file
// named by $SAMSA_FANOUT_CPUPROFILE, if set (from the broker's
// /debug/pprof, open without auth on loopback). The returned channel is
// closed when the profile is written (at once when there is none).
func profileBroker(b *testing.B, br *brokerProc, d time.Duration) <-chan struct{} {
	done := make(chan struct{})
	out := os.Getenv("SAMSA_FANOUT_CPUPROFILE")
	if out == "" {
		close(done)
		return done
	}
	go func() {
		defer close(done)
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", br.httpAddr, int(d/time.Second)))
		if err != nil {
			b.Logf("cpu profile: %v", err)
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(out)
		if err != nil {
			b.Logf("cpu profile: %v", err)
			return
		}
		defer f.Close()
		if _, err := io.Copy(f, resp.Body); err != nil {
			b.Logf("cpu profile: %v", err)
		}
	}()
	return done
}

// procCPU returns the user+system CPU time of a process (pid 0: this one)
// from /proc, or -1 where /proc is not available.
func procCPU(pid int) time.Duration {
	path := "/proc/self/stat"
	if pid != 0 {
		path = "/proc/" + strconv.Itoa(pid) + "/stat"
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return -1
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	// After the command: state(3) ... utime(14) stime(15); f[0] is field 3.
	if len(f) < 13 {
		return -1
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	const clkTck = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / clkTck
}

// fanoutSub is one subscriber's record of what it received.
type fanoutSub struct {
	c    *Client
	sub  *Subscription
	lats []uint32 // delivery latencies, µs
	n    int      // records received
	bad  int      // out of order or duplicated offsets
	next int64    // next expected offset
	last int64    // UnixNano of the last receipt
	err  error    // why its stream ended early, if it did
}

func runFanout(b *testing.B, bin string, nsubs, rate, size int, dur time.Duration) {
	const topic = "fanout"
	br := startBroker(b, bin)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// The producer; its first (synchronous) record creates the topic.
	prod, err := Dial(ctx, br.url, Options{Binary: true, NoReconnect: true})
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	warm := make([]byte, size)
	ack, err := prod.Produce(ctx, topic, Record{Value: warm})
	if err != nil {
		b.Fatal(err)
	}
	first := ack.Offset + 1 // subscribers start from latest: after it

	// The subscribers: one connection each, dialed 32 at a time.
	subs := make([]*fanoutSub, nsubs)
	expected := rate*int(dur/time.Second) + rate // capacity hint
	var (
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 32)
		emu  sync.Mutex
		serr error
	)
	t0 := time.Now()
	for i := range subs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			fs := &fanoutSub{lats: make([]uint32, 0, expected), next: first}
			subs[i] = fs
			dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
			defer dcancel()
			c, err := Dial(dctx, br.url, Options{Binary: true, NoReconnect: true})
			if err == nil {
				fs.c = c
				fs.sub, err = c.Subscribe(dctx, topic, SubscribeOptions{From: Latest(), Credit: 10000, Format: "binary"})
			}
			if err != nil {
				emu.Lock()
				if serr == nil {
					serr = fmt.Errorf("subscriber %d: %w", i, err)
				}
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	defer func() {
		var cw sync.WaitGroup
		for _, fs := range subs {
			if fs != nil && fs.c != nil {
				cw.Add(1)
				go func() { defer cw.Done(); fs.c.Close() }()
			}
		}
		cw.Wait()
	}()
	if serr != nil {
		b.Fatalf("%v\nbroker log:\n%s", serr, br.logTail())
	}
	setup := time.Since(t0)
	for _, fs := range subs {
		if ps := fs.sub.Partitions(); len(ps) != 1 || ps[0].Offset != first {
			b.Fatalf("subscribed at %+v, want offset %d", ps, first)
		}
	}

	// Consumers: one goroutine per subscriber.
	var received atomic.Int64
	var cg sync.WaitGroup
	for _, fs := range subs {
		cg.Add(1)
		go func() {
			defer cg.Done()
			for {
				r, err := fs.sub.Next(ctx)
				if err != nil {
					if ctx.Err() == nil {
						fs.err = err
					}
					return
				}
				now := time.Now().UnixNano()
				if len(r.Value) >= 8 {
					sent := int64(binary.BigEndian.Uint64(r.Value))
					fs.lats = append(fs.lats, uint32(min(max(now-sent, 0)/1000, 1<<32-1)))
				}
				if r.Offset != fs.next {
					fs.bad++
				}
				fs.next = r.Offset + 1
				fs.n++
				fs.last = now
				received.Add(1)
			}
		}()
	}

	// Produce at rate records/s for dur, paced on an absolute schedule.
	var failed atomic.Int64
	cb := func(_ Ack, err error) {
		if err != nil {
			failed.Add(1)
		}
	}
	total := rate * int(dur/time.Second)
	interval := time.Second / time.Duration(rate)
	brCPU0, clCPU0 := procCPU(br.pid), procCPU(0)
	profDone := profileBroker(b, br, dur-time.Second)
	b.ResetTimer()
	start := time.Now()
	for i := range total {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		v := make([]byte, size)
		binary.BigEndian.PutUint64(v, uint64(time.Now().UnixNano()))
		binary.BigEndian.PutUint64(v[8:], uint64(i))
		prod.ProduceAsync(ctx, topic, Record{Value: v}, cb)
	}
	produced := time.Since(start)
	<-profDone
	if err := prod.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	if failed.Load() > 0 {
		b.Fatalf("%d records failed to produce", failed.Load())
	}

	// Wait for every delivery (or give up after 30 s).
	want := int64(total) * int64(nsubs)
	deadline := time.Now().Add(30 * time.Second)
	for received.Load() < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	b.StopTimer()
	brCPU1, clCPU1 := procCPU(br.pid), procCPU(0)
	cancel()
	cg.Wait()

	// Results.
	var (
		got, bad, ended int64
		lastNs          int64
		all             = make([]uint32, 0, want)
		firstErr        error
	)
	for _, fs := range subs {
		got += int64(fs.n)
		bad += int64(fs.bad)
		lastNs = max(lastNs, fs.last)
		all = append(all, fs.lats...)
		if fs.err != nil {
			ended++
			if firstErr == nil {
				firstErr = fs.err
			}
		}
	}
	missing := want - got
	slices.Sort(all)
	pct := func(p float64) float64 {
		if len(all) == 0 {
			return 0
		}
		i := min(int(p*float64(len(all))), len(all)-1)
		return float64(all[i]) / 1000
	}
	p50, p99, p999, mx := pct(0.50), pct(0.99), pct(0.999), pct(1)
	elapsed := time.Duration(lastNs - start.UnixNano())
	if elapsed <= 0 {
		elapsed = produced
	}
	perSec := float64(got) / elapsed.Seconds()
	cpu := func(a, z time.Duration) float64 {
		if a < 0 || z < 0 {
			return -1
		}
		return (z - a).Seconds() / elapsed.Seconds()
	}
	brCores, clCores := cpu(brCPU0, brCPU1), cpu(clCPU0, clCPU1)

	b.ReportMetric(p50, "p50_ms")
	b.ReportMetric(p99, "p99_ms")
	b.ReportMetric(mx, "max_ms")
	b.ReportMetric(perSec, "deliveries/s")
	b.ReportMetric(float64(missing), "missing")
	b.ReportMetric(brCores, "broker_cpu")
	b.ReportMetric(clCores, "client_cpu")
	b.Logf("fanout subs=%d records=%d (%d B, %d/s, produced in %v) deliveries=%d/%d missing=%d out_of_order=%d ended=%d "+
		"latency p50=%.2fms p99=%.2fms p99.9=%.2fms max=%.2fms deliveries/s=%.0f over %v broker_cpu=%.2f client_cpu=%.2f cores (setup %v)",
		nsubs, total, size, rate, produced.Round(time.Millisecond), got, want, missing, bad, ended,
		p50, p99, p999, mx, perSec, elapsed.Round(time.Millisecond), brCores, clCores, setup.Round(time.Millisecond))
	if missing != 0 || bad != 0 || ended != 0 {
		b.Errorf("fan-out incomplete: missing=%d out_of_order=%d ended=%d (first error: %v)\nbroker log:\n%s",
			missing, bad, ended, firstErr, br.logTail())
	}
}
