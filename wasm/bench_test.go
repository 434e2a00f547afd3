package wasm

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func benchRecords(n int) []Record {
	recs := make([]Record, n)
	for i := range recs {
		v := make([]byte, 100)
		for j := range v {
			v[j] = 'a' + byte((i+j)%26)
		}
		recs[i] = Record{Offset: int64(i), Timestamp: 1700000000000 + int64(i), Key: []byte(fmt.Sprintf("key-%08d", i)), Value: v}
	}
	return recs
}

// benchRun runs a 1,000-record batch of 100-byte values through a guest
// and reports, besides ns/op, the time spent inside the guest calls
// (guest-ns/op) and the rest, the host's overhead (host-ns/op): encoding
// into guest memory, the calls' entry and exit, bounds checks, decoding.
func benchRun(b *testing.B, name string, into bool) {
	h := newHost(b, Options{})
	p := deployPool(b, h, name, nil, Limits{Timeout: time.Second})
	recs := benchRecords(1000)
	ctx := context.Background()
	var dst []Decision
	run := func() {
		ds, _, err := p.RunInto(ctx, ProducePath, "bench-topic", 0, recs, dst)
		if err != nil {
			b.Fatal(err)
		}
		if into {
			dst = ds
		}
	}
	run() // warm: instance created
	g0 := p.Stats().GuestTime
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		run()
	}
	total := time.Since(start)
	b.StopTimer()
	guest := p.Stats().GuestTime - g0
	b.ReportMetric(float64(guest.Nanoseconds())/float64(b.N), "guest-ns/op")
	b.ReportMetric(float64((total-guest).Nanoseconds())/float64(b.N), "host-ns/op")
}

func BenchmarkRunKeep1000(b *testing.B)      { benchRun(b, "keepall", false) }
func BenchmarkRunKeep1000Into(b *testing.B)  { benchRun(b, "keepall", true) }
func BenchmarkRunUpper1000(b *testing.B)     { benchRun(b, "upper", false) }
func BenchmarkRunUpper1000Into(b *testing.B) { benchRun(b, "upper", true) }

// The host's codec alone: encode a batch, decode 1,000 keeps.
func BenchmarkCodecKeep1000(b *testing.B) {
	recs := benchRecords(1000)
	n, _ := inputSize("bench-topic", recs)
	buf := make([]byte, n)
	out := AppendOutput(nil, make([]Decision, 1000))
	var d outputDecoder
	var dst []Decision
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		encodeInput(buf, "bench-topic", 0, recs)
		dst, _ = d.decode(out, 1000, ProducePath, dst)
	}
}
