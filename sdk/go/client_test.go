package samsa

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestProduceSubscribeRoundTrip(t *testing.T) {
	ts := startServer(t)
	for _, mode := range []string{"json", "binary"} {
		t.Run(mode, func(t *testing.T) {
			c := dial(t, ts.url, Options{Binary: mode == "binary"})
			ctx := ctxT(t, 20*time.Second)
			topic := "rt-" + mode
			recs := []Record{
				{Key: []byte("pump-7"), Value: []byte(`{"speed": 3}`)}, // spacing must survive
				{Key: nil, Value: []byte("hello"), Headers: []Header{{Key: "src", Value: []byte("ui")}, {Key: "n", Value: nil}, {Key: "bin", Value: []byte{0, 1, 0xff}}}},
				{Key: []byte{0, 1, 2, 0xfe}, Value: []byte{0xde, 0xad, 0xbe, 0xef}},
				{Value: nil},
				{Key: []byte(""), Value: []byte("")},
				{Value: []byte("quote \" backslash \\ newline \n tab \t ctrl \x01 unicode é ✓")},
			}
			for i, r := range recs {
				ack, err := c.Produce(ctx, topic, r)
				if err != nil {
					t.Fatalf("produce %d: %v", i, err)
				}
				if ack.Offset != int64(i) || ack.Partition != 0 || ack.Topic != topic {
					t.Fatalf("ack %d: %+v", i, ack)
				}
			}
			// A record with a timestamp (sent as JSON even in binary mode).
			ts0 := time.UnixMilli(1767225600123)
			if ack, err := c.Produce(ctx, topic, Record{Value: []byte("stamped"), Timestamp: ts0}); err != nil || ack.Offset != int64(len(recs)) {
				t.Fatalf("stamped: %v %+v", err, ack)
			}
			for _, format := range []string{"json", "binary"} {
				sub, err := c.Subscribe(ctx, topic, SubscribeOptions{From: Earliest(), Format: format})
				if err != nil {
					t.Fatal(err)
				}
				if p := sub.Partitions(); len(p) != 1 || p[0].Offset != 0 || p[0].HighWatermark != int64(len(recs)+1) {
					t.Fatalf("partitions %+v", p)
				}
				for i, want := range recs {
					got, err := sub.Next(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if got.Offset != int64(i) || got.Topic != topic {
						t.Fatalf("%s: record %d: offset %d topic %q", format, i, got.Offset, got.Topic)
					}
					if !sameBytes(got.Key, want.Key) || !sameBytes(got.Value, want.Value) {
						t.Fatalf("%s: record %d: got key %q value %q, want %q %q", format, i, got.Key, got.Value, want.Key, want.Value)
					}
					if len(got.Headers) != len(want.Headers) {
						t.Fatalf("%s: record %d: headers %v", format, i, got.Headers)
					}
					for j := range want.Headers {
						if got.Headers[j].Key != want.Headers[j].Key || !sameBytes(got.Headers[j].Value, want.Headers[j].Value) {
							t.Fatalf("%s: record %d: header %d: %+v", format, i, j, got.Headers[j])
						}
					}
				}
				got, err := sub.Next(ctx)
				if err != nil || string(got.Value) != "stamped" || !got.Timestamp.Equal(ts0) {
					t.Fatalf("%s: stamped: %v %+v", format, err, got)
				}
				if err := sub.Close(); err != nil {
					t.Fatal(err)
				}
				if _, err := sub.Next(ctx); !errors.Is(err, ErrSubscriptionClosed) {
					t.Fatalf("Next after Close: %v", err)
				}
			}
		})
	}
}

// sameBytes compares with nil (Kafka null) distinct from empty.
func sameBytes(a, b []byte) bool {
	return (a == nil) == (b == nil) && bytes.Equal(a, b)
}

func TestConcurrentProduceIsBatched(t *testing.T) {
	ts := startServer(t, func(c *serverConfig) { c.partitions = 3 })
	for _, binary := range []bool{false, true} {
		c := dial(t, ts.url, Options{Binary: binary})
		ctx := ctxT(t, 30*time.Second)
		topic := fmt.Sprintf("batched-%v", binary)
		const G, N = 32, 300
		var mu sync.Mutex
		seen := map[[2]int64]string{}
		var wg sync.WaitGroup
		for g := range G {
			wg.Go(func() {
				for i := range N {
					v := fmt.Sprintf("g%d-%d", g, i)
					ack, err := c.Produce(ctx, topic, Record{Key: []byte(fmt.Sprint(g)), Value: []byte(v)})
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					k := [2]int64{int64(ack.Partition), ack.Offset}
					if prev, dup := seen[k]; dup {
						t.Errorf("offset %v acked twice: %s and %s", k, prev, v)
					}
					seen[k] = v
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(seen) != G*N {
			t.Fatalf("%d acks, want %d", len(seen), G*N)
		}
		// Same key, same partition (Kafka's partitioner), per-key order.
		sub, err := c.Subscribe(ctx, topic, SubscribeOptions{From: Earliest()})
		if err != nil {
			t.Fatal(err)
		}
		last := map[int]int{}
		for range G * N {
			r, err := sub.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if seen[[2]int64{int64(r.Partition), r.Offset}] != string(r.Value) {
				t.Fatalf("record %d/%d is %q", r.Partition, r.Offset, r.Value)
			}
			var g, i int
			fmt.Sscanf(string(r.Value), "g%d-%d", &g, &i)
			if prev, ok := last[g]; ok && i != prev+1 {
				t.Fatalf("key %d: %d after %d", g, i, prev)
			}
			last[g] = i
		}
		if ops := c.prod.opsSent.Load(); ops >= G*N/4 {
			t.Errorf("binary=%v: %d produce requests for %d records: not batched", binary, ops, G*N)
		} else {
			t.Logf("binary=%v: %d records in %d produce requests", binary, G*N, ops)
		}
	}
}

func TestErrors(t *testing.T) {
	ts := startServer(t, func(c *serverConfig) { c.autoCreate = false })
	for _, binary := range []bool{false, true} {
		c := dial(t, ts.url, Options{Binary: binary})
		ctx := ctxT(t, 10*time.Second)
		_, err := c.Produce(ctx, "nope", Record{Value: []byte("x")})
		var e *Error
		if !errors.Is(err, ErrUnknownTopic) || !errors.As(err, &e) || e.Message == "" {
			t.Fatalf("binary=%v: produce to unknown topic: %v", binary, err)
		}
		if _, err := c.Subscribe(ctx, "nope", SubscribeOptions{}); !errors.Is(err, ErrUnknownTopic) {
			t.Fatalf("subscribe to unknown topic: %v", err)
		}
		if IsRetriable(err) {
			t.Fatal("unknown_topic is not retriable")
		}
	}
	// A record over max_frame_bytes fails locally without killing the
	// connection; the next record goes through.
	ts2 := startServer(t)
	c := dial(t, ts2.url, Options{Binary: true})
	ctx := ctxT(t, 10*time.Second)
	_, err := c.Produce(ctx, "big", Record{Value: make([]byte, 2<<20)})
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("2 MiB record: %v", err)
	}
	if _, err := c.Produce(ctx, "big", Record{Value: []byte("small")}); err != nil {
		t.Fatal(err)
	}
	if c.Connections() != 1 {
		t.Fatalf("%d connections", c.Connections())
	}
	if _, err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestCreditFlowControl(t *testing.T) {
	ts := startServer(t)
	c := dial(t, ts.url, Options{})
	ctx := ctxT(t, 20*time.Second)
	const N = 2000
	for i := range N {
		c.ProduceAsync(ctx, "credit", Record{Value: fmt.Appendf(nil, "%d", i)}, nil)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	sub, err := c.Subscribe(ctx, "credit", SubscribeOptions{From: Earliest(), Credit: 10})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	sub.mu.Lock()
	buffered := len(sub.q) - sub.head
	sub.mu.Unlock()
	if buffered > 10 {
		t.Fatalf("%d records buffered with a credit of 10", buffered)
	}
	i := 0
	for r := range sub.C() {
		if r.Offset != int64(i) {
			t.Fatalf("offset %d, want %d", r.Offset, i)
		}
		if i++; i == N {
			break
		}
	}
}

func TestGroupCommit(t *testing.T) {
	ts := startServer(t, func(c *serverConfig) { c.partitions = 2 })
	c := dial(t, ts.url, Options{})
	ctx := ctxT(t, 30*time.Second)
	for i := range 20 {
		if _, err := c.Produce(ctx, "g", Record{Value: fmt.Appendf(nil, "%d", i), Partition: int32(i % 2), UsePartition: true}); err != nil {
			t.Fatal(err)
		}
	}
	assigned := make(chan []PartitionOffset, 4)
	sub, err := c.Subscribe(ctx, "g", SubscribeOptions{Group: "dash", From: Earliest(), OnAssigned: func(_ int32, p []PartitionOffset) { assigned <- p }})
	if err != nil {
		t.Fatal(err)
	}
	if p := <-assigned; len(p) != 2 {
		t.Fatalf("assigned %+v", p)
	}
	for range 12 {
		if _, err := sub.Next(ctx); err != nil {
			t.Fatal(err)
		}
	}
	for {
		err := sub.Commit(ctx)
		if err == nil {
			break
		}
		if !IsRetriable(err) {
			t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	sub.Close()
	// A new member starts from the commit: the 8 records not consumed.
	sub2, err := c.Subscribe(ctx, "g", SubscribeOptions{Group: "dash", From: Earliest()})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for n < 8 {
		if _, err := sub2.Next(ctx); err != nil {
			t.Fatal(err)
		}
		n++
	}
	short, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if r, err := sub2.Next(short); err == nil {
		t.Fatalf("record %d/%d after the 8 uncommitted ones", r.Partition, r.Offset)
	}
	// The standalone commit is refused while the group has a member.
	err = c.CommitOffsets(ctx, "dash", "g", map[int32]int64{0: 1})
	t.Logf("standalone commit with a member: %v", err)
	if err := c.CommitOffsets(ctx, "other", "g", map[int32]int64{0: 3, 1: 4}); err != nil {
		t.Fatal(err)
	}
}

// TestResumeAfterRandomKills cuts the producer's and the subscribers'
// connections at random points while records flow, and checks that every
// subscriber sees every offset of the log exactly once, in order, with
// every acknowledged record at its acknowledged offset.
func TestResumeAfterRandomKills(t *testing.T) {
	const P = 3
	ts := startServer(t, func(c *serverConfig) { c.partitions = P })
	ctx := ctxT(t, 90*time.Second)
	var pk, sk killer
	fast := Options{MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond}
	popts := fast
	popts.Dialer = pk.dialer()
	popts.Binary = true
	prod := dial(t, ts.url, popts)
	type consumer struct {
		name string
		c    *Client
		sub  *Subscription
	}
	var consumers []consumer
	for _, format := range []string{"json", "binary"} {
		o := fast
		o.Dialer = sk.dialer()
		c := dial(t, ts.url, o)
		sub, err := c.Subscribe(ctx, "kills", SubscribeOptions{From: Earliest(), Format: format, Credit: 64})
		if err != nil {
			t.Fatal(err)
		}
		consumers = append(consumers, consumer{format, c, sub})
	}

	stop := make(chan struct{})
	killerDone := make(chan struct{})
	go func() {
		defer close(killerDone)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Duration(5+rand.IntN(40)) * time.Millisecond):
			}
			if rand.IntN(3) == 0 {
				pk.killOne()
			} else {
				sk.killOne()
			}
		}
	}()

	// Produce: acked[value] = position; failures are allowed (ambiguous).
	const N = 30000
	var amu sync.Mutex
	acked := map[string][2]int64{}
	var failed atomic.Int64
	for i := range N {
		v := fmt.Sprintf("r%06d", i)
		rec := Record{Value: []byte(v)}
		if i%5 == 0 {
			rec.Key = []byte(v) // some keyed, most round robin
		}
		prod.ProduceAsync(ctx, "kills", rec, func(a Ack, err error) {
			if err != nil {
				if !IsRetriable(err) {
					t.Errorf("produce %s: %v", v, err)
				}
				failed.Add(1)
				return
			}
			amu.Lock()
			acked[v] = [2]int64{int64(a.Partition), a.Offset}
			amu.Unlock()
		})
		if i%1000 == 0 {
			time.Sleep(5 * time.Millisecond)
		}
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	// Keep killing the subscribers a little longer, then stop.
	time.Sleep(300 * time.Millisecond)
	close(stop)
	<-killerDone
	// One sentinel per partition marks the end of the log.
	end := map[int32]int64{}
	for p := range int32(P) {
		for {
			a, err := prod.Produce(ctx, "kills", Record{Value: []byte("end"), Partition: p, UsePartition: true})
			if err == nil {
				end[p] = a.Offset
				break
			}
			if !IsRetriable(err) {
				t.Fatal(err)
			}
		}
	}
	t.Logf("%d acked, %d failed (connection cut), %d producer kills, %d subscriber kills, log end %v",
		len(acked), failed.Load(), pk.kills, sk.kills, end)
	if pk.kills == 0 || sk.kills < 5 {
		t.Fatalf("too few kills: %d %d", pk.kills, sk.kills)
	}
	if len(acked) < N/10 {
		t.Fatalf("only %d of %d records acked", len(acked), N)
	}

	for _, cs := range consumers {
		next := map[int32]int64{}
		byValue := map[string][2]int64{}
		done := 0
		for done < P {
			r, err := cs.sub.Next(ctx)
			if err != nil {
				t.Fatalf("%s: after %v: %v", cs.name, next, err)
			}
			if r.Offset != next[r.Partition] {
				t.Fatalf("%s: partition %d: offset %d, want %d (duplicate or gap)", cs.name, r.Partition, r.Offset, next[r.Partition])
			}
			next[r.Partition] = r.Offset + 1
			if string(r.Value) == "end" {
				if r.Offset != end[r.Partition] {
					t.Fatalf("%s: end of partition %d at %d, want %d", cs.name, r.Partition, r.Offset, end[r.Partition])
				}
				done++
				continue
			}
			if _, dup := byValue[string(r.Value)]; dup {
				t.Fatalf("%s: value %s twice", cs.name, r.Value)
			}
			byValue[string(r.Value)] = [2]int64{int64(r.Partition), r.Offset}
		}
		for v, pos := range acked {
			if byValue[v] != pos {
				t.Fatalf("%s: acked %s at %v, delivered at %v", cs.name, v, pos, byValue[v])
			}
		}
		// Delivered records that were not acked are those whose produce
		// failed with the connection cut.
		if extra := len(byValue) - len(acked); extra < 0 || int64(extra) > failed.Load() {
			t.Fatalf("%s: %d delivered, %d acked, %d failed", cs.name, len(byValue), len(acked), failed.Load())
		}
		t.Logf("%s: %d records, exactly once, %d connections", cs.name, len(byValue), cs.c.Connections())
	}
}

// TestResumeAcrossBrokerRestart closes the whole server (1012) and starts
// it again on the same data dir and address.
func TestResumeAcrossBrokerRestart(t *testing.T) {
	dir := t.TempDir()
	ts := startServer(t, func(c *serverConfig) { c.dir = dir })
	addr := ts.hs.Listener.Addr().String()
	ctx := ctxT(t, 30*time.Second)
	c := dial(t, ts.url, Options{MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	sub, err := c.Subscribe(ctx, "restart", SubscribeOptions{From: Earliest()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		c.ProduceAsync(ctx, "restart", Record{Value: fmt.Appendf(nil, "%d", i)}, nil)
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for i := range 50 {
		if r, err := sub.Next(ctx); err != nil || r.Offset != int64(i) {
			t.Fatalf("%d: %v %+v", i, err, r)
		}
	}
	ts.close()
	// Same address, same data.
	ts2 := restartOn(t, dir, addr)
	_ = ts2
	for i := 100; i < 150; i++ {
		for {
			_, err := c.Produce(ctx, "restart", Record{Value: fmt.Appendf(nil, "%d", i)})
			if err == nil {
				break
			}
			if !IsRetriable(err) {
				t.Fatal(err)
			}
		}
	}
	var got []int64
	for len(got) < 100 {
		r, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, r.Offset)
	}
	want := make([]int64, 100)
	for i := range want {
		want[i] = int64(50 + i)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("offsets after restart: %v", got)
	}
	if c.Connections() < 2 {
		t.Fatalf("%d connections", c.Connections())
	}
}

func TestCloseFailsPending(t *testing.T) {
	ts := startServer(t)
	c := dial(t, ts.url, Options{})
	ctx := ctxT(t, 10*time.Second)
	sub, err := c.Subscribe(ctx, "close", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() { _, err := sub.Next(ctx); errc <- err }()
	c.Close()
	if err := <-errc; !errors.Is(err, ErrClosed) {
		t.Fatalf("Next after Close: %v", err)
	}
	if _, err := c.Produce(ctx, "close", Record{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Produce after Close: %v", err)
	}
}
