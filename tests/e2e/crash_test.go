package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestCrashKeepsAcknowledgedRecords: with flush = "always", every record the
// broker acknowledged survives a SIGKILL at a random moment, exactly once and
// in order. Three rounds accumulate on one data directory.
func TestCrashKeepsAcknowledgedRecords(t *testing.T) {
	t.Parallel()
	b := startBroker(t, withConfig("log", "flush", "always"))
	const topic, parts, writers = "crash", 4, 8
	createTopic(t, b.Addr(), topic, parts)

	acked := map[source]*acks{} // over all rounds
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))

	for round := range 3 {
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(b.Addr()),
			kgo.DefaultProduceTopic(topic),
			kgo.RecordPartitioner(kgo.ManualPartitioner()),
			kgo.ProducerLinger(time.Millisecond),
		)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		var inflight, writerWG sync.WaitGroup
		firstAck := make(chan struct{})
		var firstOnce sync.Once
		for w := range writers {
			a := &acks{}
			acked[source{uint8(round), uint8(w)}] = a
			writerWG.Add(1)
			go func() {
				defer writerWG.Done()
				for seq := 0; ctx.Err() == nil; seq++ {
					a.mu.Lock()
					a.offsets = append(a.offsets, -1)
					a.mu.Unlock()
					inflight.Add(1)
					v := recordValue(round, w, seq)
					cl.Produce(ctx, &kgo.Record{Partition: int32(w % parts), Value: v}, func(r *kgo.Record, err error) {
						defer inflight.Done()
						if err == nil {
							firstOnce.Do(func() { close(firstAck) })
							a.mu.Lock()
							a.offsets[seq] = r.Offset
							a.mu.Unlock()
						}
					})
				}
			}()
		}
		// Kill in the middle of producing: after the first ack (a loaded
		// machine may take a while to reconnect), then a random moment.
		select {
		case <-firstAck:
		case <-time.After(30 * time.Second):
			t.Fatalf("round %d: no record acknowledged within 30s", round)
		}
		delay := time.Duration(100+rng.IntN(601)) * time.Millisecond
		time.Sleep(delay)
		b.Kill()
		cancel()
		writerWG.Wait()
		cl.Close() // fails whatever is still buffered or in flight
		waitDone := make(chan struct{})
		go func() { inflight.Wait(); close(waitDone) }()
		select {
		case <-waitDone:
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: produce promises not all called 20s after the kill", round)
		}
		sent, ok := 0, 0
		for src, a := range acked {
			if int(src.round) == round {
				sent += len(a.offsets)
				for _, o := range a.offsets {
					if o >= 0 {
						ok++
					}
				}
			}
		}
		t.Logf("round %d: killed after %v; %d records sent, %d acknowledged", round, delay, sent, ok)
		if ok == 0 {
			t.Fatalf("round %d: no record acknowledged in %v", round, delay)
		}

		b.Restart()
		verifyCrashLog(t, b.Addr(), topic, round, acked)
		if t.Failed() {
			listSegments(t, b.DataDir(), topic, parts)
			t.FailNow()
		}
	}
}

// source is one writer goroutine of one round of the crash test. Writer w
// writes only to partition w%4.
type source struct{ round, writer uint8 }

// acks records, per sequence number of a source, the offset the broker
// acknowledged (-1: not acknowledged), and whether the record was found.
type acks struct {
	mu      sync.Mutex
	offsets []int64
	found   []bool
}

func recordValue(round, writer, seq int) []byte {
	return fmt.Appendf(nil, "r%d-w%d-s%08d", round, writer, seq)
}

// verifyCrashLog consumes the whole topic and checks it against the
// acknowledged records: each present once, where the broker said, in order.
// A duplicate shows up as a sequence number that does not increase.
func verifyCrashLog(t *testing.T, addr, topic string, round int, acked map[source]*acks) {
	t.Helper()
	for _, a := range acked {
		a.found = make([]bool, len(a.offsets))
	}
	last := map[source]int{}
	next := map[int32]int64{}
	errs := 0
	fail := func(format string, args ...any) {
		if errs++; errs <= 10 {
			t.Errorf("round %d: "+format, append([]any{round}, args...)...)
		}
	}
	consumeEach(t, addr, topic, 60*time.Second, func(r *kgo.Record) {
		p := r.Partition
		if r.Offset != next[p] {
			fail("partition %d: offset %d follows %d (gap or reorder)", p, r.Offset, next[p]-1)
		}
		next[p] = r.Offset + 1
		var rr, w, seq int
		n, err := fmt.Sscanf(string(r.Value), "r%d-w%d-s%d", &rr, &w, &seq)
		if n != 3 || err != nil || !bytes.Equal(recordValue(rr, w, seq), r.Value) || rr > round || w >= 8 {
			fail("partition %d offset %d: corrupt value %q", p, r.Offset, r.Value)
			return
		}
		if w%4 != int(p) {
			fail("partition %d offset %d: %s belongs in partition %d", p, r.Offset, r.Value, w%4)
		}
		src := source{uint8(rr), uint8(w)}
		if prev, ok := last[src]; ok && seq <= prev {
			fail("partition %d offset %d: %s after sequence %d (duplicate or out of order)", p, r.Offset, r.Value, prev)
		}
		last[src] = seq
		a := acked[src]
		if seq >= len(a.offsets) {
			fail("partition %d offset %d: %s was never produced", p, r.Offset, r.Value)
			return
		}
		if o := a.offsets[seq]; o >= 0 && o != r.Offset {
			fail("%s acknowledged at offset %d, found at partition %d offset %d", r.Value, o, p, r.Offset)
		}
		a.found[seq] = true
	})
	var missing []string
	total, lost := 0, 0
	for src, a := range acked {
		for seq, o := range a.offsets {
			if o < 0 {
				continue
			}
			total++
			if !a.found[seq] {
				if lost++; len(missing) < 10 {
					missing = append(missing, fmt.Sprintf("%s@%d", recordValue(int(src.round), int(src.writer), seq), o))
				}
			}
		}
	}
	if lost > 0 {
		sort.Strings(missing)
		t.Errorf("round %d: acknowledged records lost after the crash: %d of %d, e.g. (value@offset) %v", round, lost, total, missing)
	}
	if errs > 10 {
		t.Errorf("round %d: %d more errors not shown", round, errs-10)
	}
}

func listSegments(t *testing.T, dataDir, topic string, parts int) {
	for p := range parts {
		dir := filepath.Join(dataDir, fmt.Sprintf("%s-%d", topic, p))
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Logf("%s: %v", dir, err)
			continue
		}
		var b strings.Builder
		for _, e := range ents {
			if fi, err := e.Info(); err == nil {
				fmt.Fprintf(&b, " %s(%d)", e.Name(), fi.Size())
			}
		}
		t.Logf("%s:%s", dir, b.String())
	}
}
