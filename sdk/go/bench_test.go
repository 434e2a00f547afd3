package samsa

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/samsa-broker/samsa/broker"
)

// BenchmarkProduce measures one producer (ProduceAsync in a loop, every
// record acknowledged) of 100-byte values against an in-process broker on
// the same machine: records/s is the figure.
//
//	go test -run XXX -bench Produce -benchtime 3000000x ./sdk/go/
func BenchmarkProduce(b *testing.B) {
	for _, bc := range []struct {
		name   string
		binary bool
		flush  broker.FlushPolicy
	}{
		{"binary/flush=os", true, broker.FlushOS},
		{"binary/flush=always", true, broker.FlushAlways},
		{"json/flush=os", false, broker.FlushOS},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ts := startServer(b, func(c *serverConfig) { c.flush = bc.flush })
			c := dial(b, ts.url, Options{Binary: bc.binary})
			ctx := context.Background()
			value := make([]byte, 100)
			for i := range value {
				value[i] = 'a' + byte(i%26)
			}
			rec := Record{Value: value}
			var failed atomic.Int64
			var last atomic.Int64
			cb := func(a Ack, err error) {
				if err != nil {
					failed.Add(1)
					return
				}
				last.Store(a.Offset)
			}
			// Warm up (creates the topic).
			if _, err := c.Produce(ctx, "bench", rec); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(value)))
			b.ReportAllocs()
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				c.ProduceAsync(ctx, "bench", rec, cb)
			}
			if err := c.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			el := time.Since(start)
			b.StopTimer()
			if failed.Load() > 0 {
				b.Fatalf("%d failed", failed.Load())
			}
			if last.Load() != int64(b.N) {
				b.Fatalf("last offset %d, want %d", last.Load(), b.N)
			}
			b.ReportMetric(float64(b.N)/el.Seconds(), "records/s")
			b.ReportMetric(float64(c.prod.opsSent.Load()), "requests")
		})
	}
}
