package main

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"testing"
	"time"
)

func TestBench(t *testing.T) {
	brokers := startTestCluster(t)
	ctx := testContext(t)
	topic := testTopic(t)

	tests := []struct {
		mode       string
		args       []string
		records    int64
		partitions int
		latency    bool
		produceLat bool
	}{
		{mode: "produce", args: []string{"--records", "3000", "--record-size", "64", "--producers", "2", "--partitions", "2", "--linger", "1ms", "--batch-bytes", "64KiB"}, records: 3000, partitions: 2, latency: true},
		{mode: "produce", args: []string{"--records", "500", "--acks", "1", "--compression", "lz4"}, records: 500, partitions: 2, latency: true},
		{mode: "e2e", args: []string{"--records", "800", "--record-size", "16", "--rate", "20000"}, records: 800, partitions: 2, latency: true, produceLat: true},
		// The topic holds 4300 records by now; 5000 makes the consume bench
		// produce the missing 700 first.
		{mode: "consume", args: []string{"--records", "5000"}, records: 5000, partitions: 2},
	}
	for _, tt := range tests {
		t.Run(tt.mode+" "+strings.Join(tt.args, " "), func(t *testing.T) {
			args := append([]string{"bench", tt.mode, "--topic", topic, "--json"}, tt.args...)
			r := mustRun(t, ctx, brokers, "", args...)
			var res benchResult
			if err := json.Unmarshal([]byte(r.stdout), &res); err != nil {
				t.Fatalf("output is not one JSON object: %v\n%s", err, r.stdout)
			}
			if res.Mode != tt.mode || res.Topic != topic || res.Partitions != tt.partitions {
				t.Errorf("mode/topic/partitions = %s/%s/%d", res.Mode, res.Topic, res.Partitions)
			}
			if res.Records != tt.records || res.Failed != 0 {
				t.Errorf("records %d failed %d, want %d and 0", res.Records, res.Failed, tt.records)
			}
			if res.RecordsPerSec <= 0 || res.MiBPerSec <= 0 || res.ElapsedSec <= 0 {
				t.Errorf("throughput not reported: %+v", res)
			}
			if res.Machine.NumCPU < 1 || res.Machine.GOOS == "" || res.Machine.GOARCH == "" {
				t.Errorf("machine not reported: %+v", res.Machine)
			}
			checkLat := func(name string, l *latencySummary, want bool) {
				if !want {
					if l != nil {
						t.Errorf("%s reported for %s: %+v", name, tt.mode, l)
					}
					return
				}
				if l == nil {
					t.Fatalf("%s missing", name)
				}
				if l.Count != tt.records || l.P50 <= 0 || l.P50 > l.P95 || l.P95 > l.P99 || l.P99 > l.P999 || l.P999 > l.Max {
					t.Errorf("%s not sane: %+v", name, l)
				}
			}
			checkLat("latency", res.Latency, tt.latency)
			checkLat("produce latency", res.ProduceLatency, tt.produceLat)
			if tt.mode == "e2e" {
				// 800 records at 20000/s take at least 40ms.
				if res.ElapsedSec < 0.035 {
					t.Errorf("--rate not honoured: %d records in %.3fs", res.Records, res.ElapsedSec)
				}
			}
		})
	}

	// The text output names the throughput, the percentiles and the machine.
	r := mustRun(t, ctx, brokers, "", "bench", "produce", "--topic", topic, "--records", "100", "--partitions", "2")
	for _, want := range []string{"records/s", "MiB/s", "p50", "p99.9", "max", "CPUs", "bench produce"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("text output lacks %q:\n%s", want, r.stdout)
		}
	}
	if r.stderr != "" {
		t.Errorf("stderr is not a terminal, so no progress should be drawn; got %q", r.stderr)
	}
}

func TestBenchFlagErrors(t *testing.T) {
	ctx := testContext(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"bench"}, "no mode"},
		{[]string{"bench", "frob"}, `unknown mode "frob"`},
		{[]string{"bench", "e2e", "--record-size", "4"}, "at least 8"},
		{[]string{"bench", "produce", "--records", "0"}, "--records"},
		{[]string{"bench", "produce", "--acks", "x"}, "--acks"},
		{[]string{"bench", "produce", "--compression", "x"}, "--compression"},
		{[]string{"bench", "produce", "--batch-bytes", "lots"}, "invalid size"},
		{[]string{"bench", "produce", "--producers", "0"}, "--producers"},
	}
	for _, tt := range tests {
		r := runCLI(t, ctx, "127.0.0.1:1", "", tt.args...)
		if r.err == nil || !strings.Contains(r.err.Error(), tt.want) {
			t.Errorf("%q: got %v, want an error containing %q", tt.args, r.err, tt.want)
		}
	}
}

func TestLatencyHistQuantiles(t *testing.T) {
	h := newLatencyHist()
	rng := rand.New(rand.NewPCG(3, 4))
	vals := make([]float64, 100000)
	for i := range vals {
		v := int64(rng.ExpFloat64() * float64(2*time.Millisecond))
		vals[i] = float64(v)
		h.record(v)
	}
	sort.Float64s(vals)
	qs := []float64{0.5, 0.95, 0.99, 0.999}
	got := h.quantiles(qs...)
	for i, q := range qs {
		want := vals[int(math.Ceil(q*float64(len(vals))))-1]
		if rel := math.Abs(got[i]-want) / want; rel > 0.02 {
			t.Errorf("q%.3f = %.0f, want %.0f (error %.2f%%)", q, got[i], want, rel*100)
		}
	}
	s := h.summary()
	if s.Max != vals[len(vals)-1]/float64(time.Millisecond) || s.Count != int64(len(vals)) {
		t.Errorf("summary max/count = %v/%d", s.Max, s.Count)
	}
	// Small values are exact; index and value are inverse.
	for _, v := range []uint64{0, 1, 127, 128, 1000, 1 << 40, math.MaxInt64} {
		i := histIndex(v)
		if i < 0 || i >= histBuckets {
			t.Fatalf("histIndex(%d) = %d out of range", v, i)
		}
		if mid := histValue(i); math.Abs(mid-float64(v)) > float64(v)/60+1 {
			t.Errorf("histValue(histIndex(%d)) = %.0f", v, mid)
		}
	}
	if newLatencyHist().summary() != nil {
		t.Error("an empty histogram should have no summary")
	}
}

func TestProgressLine(t *testing.T) {
	p := &progress{label: "produce", total: 200}
	got := p.line(50, time.Second)
	if !strings.Contains(got, " 25.0% 50/200 50 rec/s") || !strings.Contains(got, "[=======") {
		t.Errorf("progress line = %q", got)
	}
	if startProgress(&strings.Builder{}, "x", 1, nil) != nil {
		t.Error("progress drawn on a non-terminal")
	}
	var nilp *progress
	nilp.finish() // must not panic
}
