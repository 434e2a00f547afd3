package e2e

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// crashDialer hands a kgo client its connections and can cut them all at
// once and refuse new ones: the client then looks, to the broker, like a
// process that died without leaving its group.
type crashDialer struct {
	mu    sync.Mutex
	dead  bool
	conns []net.Conn
}

var errCrashed = errors.New("e2e: simulated crash")

func (d *crashDialer) dial(ctx context.Context, network, host string) (net.Conn, error) {
	c, err := (&net.Dialer{Timeout: 2 * time.Second}).DialContext(ctx, network, host)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.dead {
		c.Close()
		return nil, errCrashed
	}
	d.conns = append(d.conns, c)
	return c, nil
}

// crash resets every connection and refuses new ones.
func (d *crashDialer) crash() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.dead = true
	for _, c := range d.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST, as when a process dies
		}
		_ = c.Close()
	}
	d.conns = nil
}

// TestGroupsChurn: while a producer writes sequence-numbered records to a
// 4-partition topic, franz-go consumers join, leave and crash at random for
// about 10 s, each committing after it processes a poll. Every acknowledged
// record must be consumed at least once (a final consumer drains what is
// left), and no partition's committed offset may ever move backwards.
// SAMSA_E2E_SEED=n replays a run's random choices.
func TestGroupsChurn(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		balancer kgo.GroupBalancer
	}{
		{"eager-range", kgo.RangeBalancer()},
		{"cooperative-sticky", kgo.CooperativeStickyBalancer()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			seed := uint64(time.Now().UnixNano())
			if s, err := strconv.ParseUint(os.Getenv("SAMSA_E2E_SEED"), 10, 64); err == nil {
				seed = s
			}
			t.Logf("seed %d (SAMSA_E2E_SEED=%d replays the choices)", seed, seed)
			rng := rand.New(rand.NewPCG(seed, 0x5a75a))
			churnRun(t, tc.balancer, rng)
		})
	}
}

func churnRun(t *testing.T, balancer kgo.GroupBalancer, rng *rand.Rand) {
	b := startBroker(t,
		withConfig("groups", "min_session_timeout_ms", 1000),
		withConfig("groups", "initial_rebalance_delay_ms", 100))
	const parts = 4
	const churnFor = 10 * time.Second
	topic, group := "churn", "churn-g"
	createTopic(t, b.Addr(), topic, parts)
	adm := kadm.NewClient(newClient(t, b.Addr()))

	// The producer: sequence numbers in values, acks recorded by position.
	var (
		ackMu sync.Mutex
		acked = map[tp]string{}
	)
	prodCl := newClient(t, b.Addr(), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()), kgo.ProducerLinger(2*time.Millisecond))
	prodCtx, stopProducing := context.WithCancel(context.Background())
	var prodWG sync.WaitGroup
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		for seq := 0; prodCtx.Err() == nil; seq++ {
			prodWG.Add(1)
			val := fmt.Sprintf("seq-%d", seq)
			prodCl.Produce(context.Background(), &kgo.Record{Value: []byte(val)}, func(r *kgo.Record, err error) {
				defer prodWG.Done()
				if err != nil {
					t.Errorf("produce %s: %v", val, err)
					return
				}
				ackMu.Lock()
				acked[tp{r.Partition, r.Offset}] = val
				ackMu.Unlock()
			})
			time.Sleep(time.Millisecond)
		}
		prodWG.Wait()
	}()
	defer func() { stopProducing(); <-prodDone }() // before the test ends, on any path

	// Committed offsets must never go backwards.
	var (
		monoMu     sync.Mutex
		lastCommit = map[int32]int64{}
		backwards  []string
		polls      int
	)
	monoCtx, stopMono := context.WithCancel(context.Background())
	monoDone := make(chan struct{})
	checkMono := func() {
		ctx, cancel := context.WithTimeout(monoCtx, 5*time.Second)
		defer cancel()
		os, err := adm.FetchOffsets(ctx, group)
		if err == nil {
			err = os.Error()
		}
		if err != nil {
			if monoCtx.Err() == nil {
				t.Errorf("OffsetFetch during the churn: %v", err)
			}
			return
		}
		monoMu.Lock()
		defer monoMu.Unlock()
		polls++
		for p := range int32(parts) {
			o, ok := os.Lookup(topic, p)
			at := int64(-1)
			if ok {
				at = o.At
			}
			prev, seen := lastCommit[p]
			if seen && at < prev {
				backwards = append(backwards, fmt.Sprintf("partition %d: committed offset went from %d to %d", p, prev, at))
			}
			if !seen || at > prev {
				lastCommit[p] = at
			}
		}
	}
	go func() {
		defer close(monoDone)
		for monoCtx.Err() == nil {
			checkMono()
			time.Sleep(25 * time.Millisecond)
		}
	}()
	defer func() { stopMono(); <-monoDone }()

	// The consumers.
	start := time.Now()
	var (
		conMu    sync.Mutex
		consumed = map[tp]int{} // times each record was consumed
		values   = map[tp]string{}
		errCount atomic.Int64
	)
	type churner struct {
		name     string
		cl       *kgo.Client
		dialer   *crashDialer
		crashReq atomic.Bool // crash after processing a poll, before its commit
		cancel   context.CancelFunc
		done     chan struct{}
	}
	newChurner := func(name string) *churner {
		d := &crashDialer{}
		cl, err := kgo.NewClient(
			kgo.SeedBrokers(b.Addr()),
			kgo.ClientID(name),
			kgo.Dialer(d.dial),
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics(topic),
			kgo.Balancers(balancer),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.DisableAutoCommit(),
			kgo.BlockRebalanceOnPoll(),
			kgo.SessionTimeout(2*time.Second),
			kgo.HeartbeatInterval(200*time.Millisecond),
			kgo.RebalanceTimeout(5*time.Second),
			kgo.FetchMaxWait(200*time.Millisecond),
			kgo.MetadataMinAge(100*time.Millisecond),
			kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }),
		)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		c := &churner{name: name, cl: cl, dialer: d, cancel: cancel, done: make(chan struct{})}
		go func() {
			defer close(c.done)
			defer cl.AllowRebalance()
			for {
				fs := cl.PollFetches(ctx)
				if ctx.Err() != nil || fs.IsClientClosed() {
					return
				}
				fs.EachError(func(_ string, p int32, err error) {
					if !errors.Is(err, context.Canceled) {
						errCount.Add(1)
					}
				})
				conMu.Lock()
				fs.EachRecord(func(r *kgo.Record) {
					k := tp{r.Partition, r.Offset}
					consumed[k]++
					values[k] = string(r.Value)
				})
				conMu.Unlock()
				if c.crashReq.Load() {
					d.crash() // processed but never committed: redelivered to another member
					return
				}
				if err := cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
					errCount.Add(1)
				}
				cl.AllowRebalance()
			}
		}()
		return c
	}

	var live, crashedClients []*churner
	joins, leaves, crashes := 0, 0, 0
	var closeWG sync.WaitGroup
	defer func() {
		for _, c := range append(live, crashedClients...) {
			c.cancel()
			<-c.done
			c.cl.Close()
		}
	}()
	for i := 0; time.Since(start) < churnFor; i++ {
		switch r := rng.IntN(10); {
		case len(live) == 0 || (r < 4 && len(live) < 4): // join
			live = append(live, newChurner(fmt.Sprintf("c%d", i)))
			t.Logf("%v join c%d", time.Since(start).Round(time.Millisecond), i)
			joins++
		case r < 7: // leave: finish the poll (and its commit), then Close
			j := rng.IntN(len(live))
			c := live[j]
			live = append(live[:j], live[j+1:]...)
			c.cancel()
			<-c.done
			closeWG.Add(1)
			go func() { defer closeWG.Done(); c.cl.Close() }()
			leaves++
			t.Logf("%v leave %s", time.Since(start).Round(time.Millisecond), c.name)
		default: // crash mid-poll: records processed, no commit, no leave
			j := rng.IntN(len(live))
			c := live[j]
			live = append(live[:j], live[j+1:]...)
			c.crashReq.Store(true)
			select {
			case <-c.done:
			case <-time.After(time.Second): // no records came: crash while polling
				c.cancel()
				<-c.done
			}
			c.dialer.crash()
			crashedClients = append(crashedClients, c)
			crashes++
			t.Logf("%v crash %s", time.Since(start).Round(time.Millisecond), c.name)
		}
		time.Sleep(time.Duration(200+rng.IntN(800)) * time.Millisecond)
	}
	stopProducing()
	<-prodDone
	for _, c := range live {
		c.cancel()
		<-c.done
		c.cl.Close()
	}
	live = nil
	closeWG.Wait()
	if t.Failed() {
		t.FailNow()
	}

	// Drain: a last member (joining once the crashed members' sessions
	// expire) consumes whatever was not committed.
	ends := endOffsets(t, b.Addr(), topic)
	ackMu.Lock()
	nAcked := len(acked)
	ackMu.Unlock()
	drainStart := time.Now()
	final := newChurner("final")
	// It gets every partition once the crashed members' sessions expire.
	waitFor(t, 15*time.Second, "the final consumer holds every partition", func() string {
		d := describeGroup(t, adm, group)
		if d.State != "Stable" || len(d.Members) != 1 {
			return fmt.Sprintf("group %s is %s with %d members", group, d.State, len(d.Members))
		}
		return partitionSplit(memberPartitions(d, topic), parts, parts, parts)
	})
	waitFor(t, 30*time.Second, "the final consumer drains the topic", func() string {
		got := committedAt(t, adm, group, topic)
		for p, end := range ends {
			if got[p] != end {
				return fmt.Sprintf("committed %v, end offsets %v", got, ends)
			}
		}
		return ""
	})
	final.cancel()
	<-final.done
	final.cl.Close()
	drainTook := time.Since(drainStart)
	stopMono()
	<-monoDone
	checkMono()

	conMu.Lock()
	defer conMu.Unlock()
	ackMu.Lock()
	defer ackMu.Unlock()
	var missing []string
	dups := 0
	for k, v := range acked {
		switch n := consumed[k]; {
		case n == 0:
			missing = append(missing, fmt.Sprintf("%d/%d(%s)", k.p, k.o, v))
		case values[k] != v:
			t.Errorf("partition %d offset %d: consumed %q, produced %q", k.p, k.o, values[k], v)
		default:
			dups += n - 1
		}
	}
	if len(missing) > 0 {
		if len(missing) > 20 {
			missing = append(missing[:20], "...")
		}
		t.Errorf("%d of %d acknowledged records never consumed: %s", len(missing), nAcked, strings.Join(missing, " "))
	}
	monoMu.Lock()
	defer monoMu.Unlock()
	if len(backwards) > 0 {
		t.Errorf("committed offsets moved backwards (%d OffsetFetch polls):\n%s", polls, strings.Join(backwards, "\n"))
	}
	t.Logf("%d records produced, %d consumed more than once; %d joins, %d leaves, %d crashes; %d OffsetFetch polls; %d fetch/commit errors seen by clients; drain took %v",
		nAcked, dups, joins, leaves, crashes, polls, errCount.Load(), drainTook)
}
