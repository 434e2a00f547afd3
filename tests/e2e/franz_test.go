package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestFranzGoProduceConsumeRestart: 10,000 records through an idempotent
// acks=all producer into 3 partitions come back identical, before and after a
// clean restart.
func TestFranzGoProduceConsumeRestart(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	const topic, n = "franz", 10000
	createTopic(t, b.Addr(), topic, 3)

	cl := newClient(t, b.Addr(),
		kgo.RequiredAcks(kgo.AllISRAcks()), // the default, spelled out
		kgo.DefaultProduceTopic(topic),
		kgo.ProducerLinger(5*time.Millisecond),
	)
	type pos struct {
		p int32
		o int64
	}
	sent := map[pos]*kgo.Record{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Now().Truncate(time.Millisecond)
	for i := range n {
		val := make([]byte, 20+rng.IntN(300))
		for j := range val {
			val[j] = byte(rng.IntN(256))
		}
		r := &kgo.Record{
			Key:       fmt.Appendf(nil, "key-%05d", i),
			Value:     val,
			Timestamp: base.Add(time.Duration(i) * time.Millisecond),
			Headers: []kgo.RecordHeader{
				{Key: "seq", Value: fmt.Appendf(nil, "%d", i)},
				{Key: "empty", Value: nil},
				{Key: "bin", Value: val[:8]},
			},
		}
		if i%97 == 0 {
			r.Key = nil // some records without a key
		}
		if i%89 == 0 {
			r.Value = nil // and some with a null value
		}
		wg.Add(1)
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				t.Errorf("produce record %d: %v", i, err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			k := pos{r.Partition, r.Offset}
			if prev, dup := sent[k]; dup {
				t.Errorf("two records acknowledged at partition %d offset %d (headers %v and %v)", k.p, k.o, prev.Headers[0], r.Headers[0])
			}
			sent[k] = r
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// Acknowledged offsets are dense per partition: 0..count-1.
	perPart := map[int32]int64{}
	for k := range sent {
		perPart[k.p]++
	}
	for p, c := range perPart {
		for o := range c {
			if _, ok := sent[pos{p, o}]; !ok {
				t.Fatalf("partition %d: %d records acknowledged but no record at offset %d", p, c, o)
			}
		}
	}
	if len(perPart) != 3 {
		t.Errorf("records went to partitions %v, want all 3 partitions used", perPart)
	}

	check := func(phase string) {
		t.Helper()
		ends := endOffsets(t, b.Addr(), topic)
		for p := int32(0); p < 3; p++ {
			if ends[p] != perPart[p] {
				t.Errorf("%s: partition %d high watermark %d, want %d", phase, p, ends[p], perPart[p])
			}
		}
		got := consumeAll(t, b.Addr(), topic, 30*time.Second)
		total := 0
		for p, rs := range got {
			total += len(rs)
			for i, r := range rs {
				if r.Offset != int64(i) {
					t.Fatalf("%s: partition %d: record #%d has offset %d, want %d", phase, p, i, r.Offset, i)
				}
				want := sent[pos{p, r.Offset}]
				if err := sameRecord(want, r); err != nil {
					t.Fatalf("%s: partition %d offset %d: %v", phase, p, r.Offset, err)
				}
			}
		}
		if total != n {
			t.Fatalf("%s: consumed %d records, want %d", phase, total, n)
		}
		t.Logf("%s: consumed %d records; high watermarks %v", phase, total, ends)
	}
	check("before restart")
	b.Restart()
	check("after restart")
}

// sameRecord compares what a consumer got with what the producer sent.
func sameRecord(want, got *kgo.Record) error {
	switch {
	case !bytes.Equal(want.Key, got.Key) || (want.Key == nil) != (got.Key == nil):
		return fmt.Errorf("key %q, want %q", got.Key, want.Key)
	case !bytes.Equal(want.Value, got.Value) || (want.Value == nil) != (got.Value == nil):
		return fmt.Errorf("value %q (%d bytes), want %q (%d bytes)", trunc(got.Value), len(got.Value), trunc(want.Value), len(want.Value))
	case !want.Timestamp.Equal(got.Timestamp):
		return fmt.Errorf("timestamp %v, want %v", got.Timestamp, want.Timestamp)
	case len(want.Headers) != len(got.Headers):
		return fmt.Errorf("headers %v, want %v", got.Headers, want.Headers)
	}
	for i := range want.Headers {
		w, g := want.Headers[i], got.Headers[i]
		if w.Key != g.Key || !bytes.Equal(w.Value, g.Value) {
			return fmt.Errorf("header %d: %q=%q, want %q=%q", i, g.Key, g.Value, w.Key, w.Value)
		}
	}
	return nil
}

func trunc(b []byte) []byte {
	if len(b) > 32 {
		return b[:32]
	}
	return b
}
