package samsa

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkFanout measures the fan-out target: one topic (one partition)
// receiving 1,000 records/s of 100 bytes, delivered to N WebSocket
// subscribers (one connection each, binary deliveries, from latest): at
// N=1000 a million deliveries a second. It runs `samsa bench ws fanout`
// (this SDK; every record must reach every subscriber once, and the
// latency is from the producer's clock in each value to receipt) against
// `samsa serve`, both built from ./cmd/samsa and run as separate
// processes (the broker on its defaults, so flush = "always");
// broker_cpu and client_cpu are the cores each process used (from /proc,
// Linux). $SAMSA_FANOUT_CPUPROFILE names a file for the broker's CPU
// profile.
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
			runFanout(b, bin, n, 1000, 5*time.Second)
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

// fanoutResult is what `samsa bench ws fanout --json` reports (the fields
// used here).
type fanoutResult struct {
	Deliveries         int64   `json:"deliveries"`
	ExpectedDeliveries int64   `json:"expected_deliveries"`
	Missing            int64   `json:"missing"`
	Duplicates         int64   `json:"duplicates"`
	EndedSubscribers   int     `json:"ended_subscribers"`
	DeliveriesPerSec   float64 `json:"deliveries_per_sec"`
	ElapsedSec         float64 `json:"elapsed_sec"`
	SetupSec           float64 `json:"setup_sec"`
	DeliveryLatency    struct {
		P50  float64 `json:"p50"`
		P99  float64 `json:"p99"`
		P999 float64 `json:"p99_9"`
		Max  float64 `json:"max"`
	} `json:"delivery_latency_ms"`
}

// runFanout runs `samsa bench ws fanout` (this SDK, one connection per
// subscriber) against a broker process, both built from this tree, and
// reports its figures with the CPU each process used.
func runFanout(b *testing.B, bin string, nsubs, rate int, dur time.Duration) {
	br := startBroker(b, bin)
	cmd := exec.Command(bin, "bench", "ws", "fanout", "--json", "--url", br.url,
		"--subscribers", strconv.Itoa(nsubs), "--rate", strconv.Itoa(rate), "--duration", dur.String())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	brCPU0 := procCPU(br.pid)
	b.ResetTimer()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	profDone := profileBroker(b, br, dur-time.Second)
	// The client's CPU is read just before it exits: poll its /proc entry.
	var clCPU time.Duration
	waitErr := make(chan error, 1)
	go func() { waitErr <- cmd.Wait() }()
	var err error
poll:
	for {
		select {
		case err = <-waitErr:
			break poll
		case <-time.After(50 * time.Millisecond):
			if c := procCPU(cmd.Process.Pid); c >= 0 {
				clCPU = c
			}
		}
	}
	b.StopTimer()
	brCPU := procCPU(br.pid) - brCPU0
	<-profDone
	var res fanoutResult
	if jerr := json.Unmarshal(stdout.Bytes(), &res); jerr != nil {
		b.Fatalf("samsa bench ws fanout: %v (%v)\n%s\nbroker log:\n%s", err, jerr, stderr.Bytes(), br.logTail())
	}
	lat := res.DeliveryLatency
	cores := func(d time.Duration) float64 { return d.Seconds() / res.ElapsedSec }
	b.ReportMetric(lat.P50, "p50_ms")
	b.ReportMetric(lat.P99, "p99_ms")
	b.ReportMetric(lat.Max, "max_ms")
	b.ReportMetric(res.DeliveriesPerSec, "deliveries/s")
	b.ReportMetric(float64(res.Missing), "missing")
	b.ReportMetric(cores(brCPU), "broker_cpu")
	b.ReportMetric(cores(clCPU), "client_cpu")
	b.Logf("fanout subs=%d rate=%d/s for %v: deliveries=%d/%d missing=%d duplicates=%d ended=%d "+
		"latency p50=%.2fms p99=%.2fms p99.9=%.2fms max=%.2fms deliveries/s=%.0f broker_cpu=%.2f client_cpu=%.2f cores (setup %.3fs)",
		nsubs, rate, dur, res.Deliveries, res.ExpectedDeliveries, res.Missing, res.Duplicates, res.EndedSubscribers,
		lat.P50, lat.P99, lat.P999, lat.Max, res.DeliveriesPerSec, cores(brCPU), cores(clCPU), res.SetupSec)
	if err != nil || res.Missing != 0 || res.Duplicates != 0 || res.EndedSubscribers != 0 {
		b.Errorf("fan-out incomplete (%v): %s\nbroker log:\n%s", err, stderr.Bytes(), br.logTail())
	}
}
