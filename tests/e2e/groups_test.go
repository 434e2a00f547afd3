package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Consumer groups end to end: franz-go (eager and cooperative), sarama,
// kcat (librdkafka's balanced consumer), kafkajs, and committed offsets
// across a crash of the broker. The churn test is in groups_churn_test.go.

// ---- helpers for the group tests ----

// tp is a partition of the topic a test works on.
type tp struct {
	p int32
	o int64
}

// produceSpread produces perPart records to each of parts partitions of
// topic, with values "<tag>-<partition>-<i>" and no compression, and waits for
// the acks. It
// returns the acknowledged records by partition and offset.
func produceSpread(t testing.TB, addr, topic string, parts int32, perPart int, tag string) map[tp]string {
	t.Helper()
	cl := newClient(t, addr, kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ProducerLinger(time.Millisecond),
		kgo.ProducerBatchCompression(kgo.NoCompression())) // kafkajs reads no snappy
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rs []*kgo.Record
	for i := range perPart {
		for p := range parts {
			rs = append(rs, &kgo.Record{Partition: p, Value: fmt.Appendf(nil, "%s-%d-%d", tag, p, i)})
		}
	}
	res := cl.ProduceSync(ctx, rs...)
	if err := res.FirstErr(); err != nil {
		t.Fatalf("produce %d records to %s: %v", len(rs), topic, err)
	}
	out := make(map[tp]string, len(rs))
	for _, r := range res {
		out[tp{r.Record.Partition, r.Record.Offset}] = string(r.Record.Value)
	}
	return out
}

// committed returns the committed offsets of group for topic, by partition
// (partitions without a commit are absent). Any error fails the test.
func committed(t testing.TB, adm *kadm.Client, group, topic string) map[int32]kadm.OffsetResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	os, err := adm.FetchOffsets(ctx, group)
	if err == nil {
		err = os.Error()
	}
	if err != nil {
		t.Fatalf("OffsetFetch group %s: %v", group, err)
	}
	out := map[int32]kadm.OffsetResponse{}
	for p, o := range os[topic] {
		if o.At >= 0 {
			out[p] = o
		}
	}
	return out
}

// committedAt is committed reduced to the offsets.
func committedAt(t testing.TB, adm *kadm.Client, group, topic string) map[int32]int64 {
	t.Helper()
	out := map[int32]int64{}
	for p, o := range committed(t, adm, group, topic) {
		out[p] = o.At
	}
	return out
}

// waitFor polls cond every 20 ms until it returns "" (done), failing the test
// with cond's last answer after timeout. It returns how long it waited.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() string) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		msg := cond()
		if msg == "" {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not done after %v: %s", what, timeout, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitCommitted waits until group's committed offsets for topic equal want.
func waitCommitted(t testing.TB, adm *kadm.Client, group, topic string, want map[int32]int64, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "committed offsets of group "+group, func() string {
		got := committedAt(t, adm, group, topic)
		if maps.Equal(got, want) {
			return ""
		}
		return fmt.Sprintf("OffsetFetch gives %v, want %v", got, want)
	})
}

// describeGroup describes one group with kadm.
func describeGroup(t testing.TB, adm *kadm.Client, group string) kadm.DescribedGroup {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ds, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatalf("DescribeGroups %s: %v", group, err)
	}
	d, ok := ds[group]
	if !ok {
		t.Fatalf("DescribeGroups %s: group missing from the answer %v", group, ds.Names())
	}
	if d.Err != nil {
		t.Fatalf("DescribeGroups %s: %v (%s)", group, d.Err, d.ErrMessage)
	}
	return d
}

// memberPartitions is the consumer assignment of each member of d for
// topic: member id -> sorted partitions.
func memberPartitions(d kadm.DescribedGroup, topic string) map[string][]int32 {
	out := map[string][]int32{}
	for _, m := range d.Members {
		var ps []int32
		if c, ok := m.Assigned.AsConsumer(); ok {
			for _, at := range c.Topics {
				if at.Topic == topic {
					ps = append(ps, at.Partitions...)
				}
			}
		}
		slices.Sort(ps)
		out[m.MemberID] = ps
	}
	return out
}

// partitionSplit checks that the assignments are disjoint, cover partitions
// 0..parts-1, and give each member between lo and hi partitions. It returns
// "" or what is wrong.
func partitionSplit(assigned map[string][]int32, parts int32, lo, hi int) string {
	owner := map[int32]string{}
	for m, ps := range assigned {
		if len(ps) < lo || len(ps) > hi {
			return fmt.Sprintf("member %s holds %d partitions %v, want %d..%d (all: %v)", m, len(ps), ps, lo, hi, assigned)
		}
		for _, p := range ps {
			if prev, dup := owner[p]; dup {
				return fmt.Sprintf("partition %d assigned to both %s and %s (all: %v)", p, prev, m, assigned)
			}
			owner[p] = m
		}
	}
	for p := range parts {
		if _, ok := owner[p]; !ok {
			return fmt.Sprintf("partition %d assigned to no member (all: %v)", p, assigned)
		}
	}
	if len(owner) != int(parts) {
		return fmt.Sprintf("partitions outside 0..%d assigned: %v", parts-1, assigned)
	}
	return ""
}

// ---- 1. franz-go consumer groups, eager and cooperative ----

// groupTracker follows the partitions each franz-go member of a group holds
// (through the OnPartitions* callbacks) and the records each consumed.
type groupTracker struct {
	topic string

	mu         sync.Mutex
	owned      map[string]map[int32]bool // member name -> partitions held
	leaving    map[string]bool           // being closed: excluded from the overlap check
	violations []string
	consumed   map[tp][]string // record -> members that consumed it
	commitErrs int
}

func newGroupTracker(t testing.TB, topic string) *groupTracker {
	return &groupTracker{topic: topic, owned: map[string]map[int32]bool{}, leaving: map[string]bool{}, consumed: map[tp][]string{}}
}

func (g *groupTracker) assigned(name string, m map[string][]int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.owned[name] == nil {
		g.owned[name] = map[int32]bool{}
	}
	for _, p := range m[g.topic] {
		// No two live members may hold a partition at once: eager members
		// revoke everything before they rejoin, cooperative ones revoke
		// before the partition is given away in the next generation.
		for other, ps := range g.owned {
			if other != name && !g.leaving[other] && ps[p] {
				g.violations = append(g.violations, fmt.Sprintf("%s was assigned partition %d while %s still held it", name, p, other))
			}
		}
		g.owned[name][p] = true
	}
}

func (g *groupTracker) revoked(name string, m map[string][]int32) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range m[g.topic] {
		delete(g.owned[name], p)
	}
}

// snapshot returns the partitions of each live member.
func (g *groupTracker) snapshot() map[string][]int32 {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := map[string][]int32{}
	for name, ps := range g.owned {
		if g.leaving[name] {
			continue
		}
		l := slices.Sorted(maps.Keys(ps))
		if l == nil {
			l = []int32{}
		}
		out[name] = l
	}
	return out
}

func (g *groupTracker) consume(name string, r *kgo.Record) {
	g.mu.Lock()
	defer g.mu.Unlock()
	k := tp{r.Partition, r.Offset}
	g.consumed[k] = append(g.consumed[k], name)
}

// groupMember is one franz-go consumer of a group, polling in a goroutine
// and committing after each poll.
type groupMember struct {
	name   string
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
}

func startGroupMember(t testing.TB, g *groupTracker, addr, group, name string, extra ...kgo.Opt) *groupMember {
	t.Helper()
	opts := []kgo.Opt{
		kgo.SeedBrokers(addr),
		kgo.ClientID(name),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(g.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(), // commit before any partition moves
		kgo.SessionTimeout(6 * time.Second),
		kgo.HeartbeatInterval(200 * time.Millisecond),
		kgo.RebalanceTimeout(10 * time.Second),
		kgo.FetchMaxWait(200 * time.Millisecond),
		kgo.MetadataMinAge(100 * time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { g.assigned(name, m) }),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { g.revoked(name, m) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, m map[string][]int32) { g.revoked(name, m) }),
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &groupMember{name: name, cl: cl, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil || fs.IsClientClosed() {
				cl.AllowRebalance()
				return
			}
			fs.EachError(func(topic string, p int32, err error) {
				if !errors.Is(err, context.Canceled) {
					t.Logf("%s: fetch %s[%d]: %v", name, topic, p, err)
				}
			})
			fs.EachRecord(func(r *kgo.Record) { g.consume(name, r) })
			if err := cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
				g.mu.Lock()
				g.commitErrs++
				g.mu.Unlock()
				t.Logf("%s: commit: %v", name, err)
			}
			cl.AllowRebalance()
		}
	}()
	t.Cleanup(func() { m.stop(g) })
	return m
}

// stop ends the poll loop and closes the client, which leaves the group.
func (m *groupMember) stop(g *groupTracker) {
	select {
	case <-m.done:
		return
	default:
	}
	g.mu.Lock()
	g.leaving[m.name] = true
	g.mu.Unlock()
	m.cancel()
	<-m.done
	m.cl.Close()
	g.mu.Lock()
	delete(g.owned, m.name)
	g.mu.Unlock()
}

// TestGroupsFranzGo: three franz-go consumers in one group split a
// 6-partition topic, consume and commit everything; when one leaves, the two
// others take over its partitions and resume at the committed offsets.
func TestGroupsFranzGo(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		balancer kgo.GroupBalancer
		protocol string
	}{
		{"eager-range", kgo.RangeBalancer(), "range"},
		{"cooperative-sticky", kgo.CooperativeStickyBalancer(), "cooperative-sticky"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t)
			const parts, n1, n2 = 6, 100, 20 // records per partition, before and after the leave
			topic, group := "groups-"+tc.name, "g-"+tc.name
			createTopic(t, b.Addr(), topic, parts)
			adm := kadm.NewClient(newClient(t, b.Addr()))
			g := newGroupTracker(t, topic)

			// Three members join at once.
			var members []*groupMember
			for i := range 3 {
				members = append(members, startGroupMember(t, g, b.Addr(), group, fmt.Sprintf("m%d", i), kgo.Balancers(tc.balancer)))
			}
			took := waitFor(t, 15*time.Second, "three members split 6 partitions", func() string {
				s := g.snapshot()
				if len(s) != 3 {
					return fmt.Sprintf("%d members hold assignments: %v", len(s), s)
				}
				return partitionSplit(s, parts, 2, 2)
			})
			t.Logf("%s: initial rebalance of 3 members: %v from the last join to every member holding 2 partitions", tc.name, took)

			// The coordinator describes the same split.
			waitFor(t, 5*time.Second, "DescribeGroups shows the split", func() string {
				d := describeGroup(t, adm, group)
				if d.State != "Stable" || len(d.Members) != 3 || d.ProtocolType != "consumer" || d.Protocol != tc.protocol {
					return fmt.Sprintf("state %q, %d members, protocol type %q, protocol %q; want Stable, 3, consumer, %s", d.State, len(d.Members), d.ProtocolType, d.Protocol, tc.protocol)
				}
				return partitionSplit(memberPartitions(d, topic), parts, 2, 2)
			})

			// Together they consume everything, each record once.
			sent := produceSpread(t, b.Addr(), topic, parts, n1, "a")
			waitFor(t, 15*time.Second, "the group consumes the first records", func() string {
				g.mu.Lock()
				defer g.mu.Unlock()
				missing := 0
				for k := range sent {
					if len(g.consumed[k]) == 0 {
						missing++
					}
				}
				if missing > 0 {
					return fmt.Sprintf("%d of %d records not consumed yet", missing, len(sent))
				}
				return ""
			})
			g.mu.Lock()
			perMember := map[string]int{}
			for k, who := range g.consumed {
				if len(who) != 1 {
					t.Errorf("partition %d offset %d consumed %d times, by %v, in a stable group", k.p, k.o, len(who), who)
				}
				perMember[who[0]]++
			}
			g.mu.Unlock()
			t.Logf("records consumed per member: %v", perMember)
			for _, m := range members {
				if perMember[m.name] != 2*n1 {
					t.Errorf("member %s consumed %d records, want %d (2 partitions of %d)", m.name, perMember[m.name], 2*n1, n1)
				}
			}
			want := map[int32]int64{}
			for p := range int32(parts) {
				want[p] = n1
			}
			waitCommitted(t, adm, group, topic, want, 10*time.Second)
			checkGroupDescribeCLI(t, b.Addr(), group, topic, 3, want, n1)

			// One member leaves; the others take over its partitions.
			gone := members[0]
			g.mu.Lock()
			goneParts := slices.Sorted(maps.Keys(g.owned[gone.name]))
			g.mu.Unlock()
			leftAt := time.Now()
			gone.stop(g)
			closeTook := time.Since(leftAt)
			took = waitFor(t, 10*time.Second, "two members take over the partitions of the one that left", func() string {
				s := g.snapshot()
				if len(s) != 2 {
					return fmt.Sprintf("%d members hold assignments: %v", len(s), s)
				}
				return partitionSplit(s, parts, 3, 3)
			})
			t.Logf("%s: rebalance after %s left (held %v): Close took %v, then %v until the 2 others held 3 partitions each", tc.name, gone.name, goneParts, closeTook, took)

			g.mu.Lock()
			before := len(g.consumed)
			g.mu.Unlock()
			sent2 := produceSpread(t, b.Addr(), topic, parts, n2, "b")
			waitFor(t, 15*time.Second, "the remaining members consume the new records", func() string {
				g.mu.Lock()
				defer g.mu.Unlock()
				missing := 0
				for k := range sent2 {
					if len(g.consumed[k]) == 0 {
						missing++
					}
				}
				if missing > 0 {
					return fmt.Sprintf("%d of %d new records not consumed yet", missing, len(sent2))
				}
				return ""
			})
			g.mu.Lock()
			if len(g.consumed) != before+len(sent2) {
				t.Errorf("%d distinct records consumed, want %d + %d", len(g.consumed), before, len(sent2))
			}
			for k, who := range g.consumed {
				if len(who) != 1 {
					t.Errorf("partition %d offset %d consumed %d times, by %v: the takeover did not resume at the committed offset %d", k.p, k.o, len(who), who, n1)
				}
				if k.o >= n1 && slices.Contains(who, gone.name) {
					t.Errorf("partition %d offset %d consumed by %s after it left", k.p, k.o, gone.name)
				}
			}
			if len(g.violations) > 0 {
				t.Errorf("partition held by two members at once:\n%s", strings.Join(g.violations, "\n"))
			}
			g.mu.Unlock()
			for p := range int32(parts) {
				want[p] = n1 + n2
			}
			waitCommitted(t, adm, group, topic, want, 10*time.Second)

			// Everyone leaves: the group is Empty, still listed, offsets kept.
			for _, m := range members[1:] {
				m.stop(g)
			}
			waitFor(t, 5*time.Second, "the group is Empty after all members left", func() string {
				d := describeGroup(t, adm, group)
				if d.State != "Empty" || len(d.Members) != 0 {
					return fmt.Sprintf("state %q with %d members, want Empty with 0", d.State, len(d.Members))
				}
				return ""
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			lg, err := adm.ListGroups(ctx)
			if err != nil {
				t.Fatalf("ListGroups: %v", err)
			}
			if l, ok := lg[group]; !ok || l.State != "Empty" || l.ProtocolType != "consumer" {
				t.Errorf("ListGroups: %s is %+v (listed: %v), want state Empty, protocol type consumer", group, l, ok)
			}
			if got := committedAt(t, adm, group, topic); !maps.Equal(got, want) {
				t.Errorf("committed offsets after everyone left: %v, want %v", got, want)
			}
			g.mu.Lock()
			if g.commitErrs > 0 {
				t.Logf("%d commits failed (retried by the next commit)", g.commitErrs)
			}
			g.mu.Unlock()
		})
	}
}

// checkGroupDescribeCLI runs `samsa group describe` and checks the state,
// the member count and, per partition, the committed offset, end offset, lag
// 0 and an owning member.
func checkGroupDescribeCLI(t *testing.T, addr, group, topic string, members int, commits map[int32]int64, end int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, samsaBin, "group", "describe", group, "--brokers", addr)
	cmd.Env = append(os.Environ(), "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("samsa group describe %s: %v\n%s", group, err, out)
		return
	}
	text := string(out)
	for _, want := range []string{"state:        Stable", fmt.Sprintf("members:      %d", members), "total lag:    0"} {
		if !strings.Contains(text, want) {
			t.Errorf("samsa group describe %s: no %q in\n%s", group, want, text)
		}
	}
	rows := 0
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) != 6 || f[0] != topic {
			continue
		}
		rows++
		p, _ := strconv.Atoi(f[1])
		if f[2] != strconv.FormatInt(commits[int32(p)], 10) || f[3] != strconv.FormatInt(end, 10) || f[4] != "0" || f[5] == "-" {
			t.Errorf("samsa group describe %s: row %q, want committed %d, end %d, lag 0 and a member", group, strings.TrimSpace(line), commits[int32(p)], end)
		}
	}
	if rows != len(commits) {
		t.Errorf("samsa group describe %s: %d partition rows, want %d:\n%s", group, rows, len(commits), text)
	}
}

// ---- 2. sarama consumer groups ----

type saramaHandler struct {
	mu   sync.Mutex
	got  []tp
	want int
	done chan struct{}
}

func (h *saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *saramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		sess.MarkMessage(msg, "")
		h.mu.Lock()
		h.got = append(h.got, tp{msg.Partition, msg.Offset})
		full := len(h.got) == h.want
		h.mu.Unlock()
		if full {
			sess.Commit() // synchronous: flushes every marked offset
			close(h.done)
		}
	}
	return nil
}

// runSaramaGroup consumes want records with a sarama consumer group, commits
// and closes it. It returns the records consumed.
func runSaramaGroup(t *testing.T, addr, group, topic string, version sarama.KafkaVersion, want int) []tp {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = version
	cfg.ClientID = "samsa-e2e-group"
	cfg.Net.DialTimeout = 5 * time.Second
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.MaxWaitTime = 100 * time.Millisecond
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	cfg.Consumer.Group.Session.Timeout = 6 * time.Second
	cfg.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	cg, err := sarama.NewConsumerGroup([]string{addr}, group, cfg)
	if err != nil {
		t.Fatalf("NewConsumerGroup: %v", err)
	}
	closed := false
	defer func() {
		if !closed {
			cg.Close()
		}
	}()
	go func() {
		for err := range cg.Errors() {
			t.Logf("sarama consumer group error: %v", err)
		}
	}()
	h := &saramaHandler{want: want, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	consumeDone := make(chan error, 1)
	go func() {
		for {
			if err := cg.Consume(ctx, []string{topic}, h); err != nil {
				consumeDone <- err
				return
			}
			if ctx.Err() != nil {
				consumeDone <- nil
				return
			}
		}
	}()
	select {
	case <-h.done:
	case err := <-consumeDone:
		cancel()
		t.Fatalf("sarama Consume returned early: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		h.mu.Lock()
		n := len(h.got)
		h.mu.Unlock()
		t.Fatalf("sarama consumer group consumed %d of %d records in 20s", n, want)
	}
	cancel()
	if err := <-consumeDone; err != nil {
		t.Errorf("sarama Consume: %v", err)
	}
	closed = true
	if err := cg.Close(); err != nil {
		t.Errorf("sarama consumer group Close: %v", err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.got)
}

// TestGroupsSarama: a sarama consumer group consumes everything and commits;
// a second run of the group consumes only what was produced since.
func TestGroupsSarama(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	adm := kadm.NewClient(newClient(t, b.Addr()))
	cases := []struct {
		name    string
		version sarama.KafkaVersion
	}{
		{"v2.8.0", sarama.V2_8_0_0},
		{"v1.0.0", sarama.V1_0_0_0},
		{"v0.10.2", sarama.V0_10_2_0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const parts, n1, n2 = 3, 30, 10
			topic, group := "sarama-group-"+tc.name, "sarama-"+tc.name
			createTopic(t, b.Addr(), topic, parts)

			sent := produceSpread(t, b.Addr(), topic, parts, n1, "a")
			got := runSaramaGroup(t, b.Addr(), group, topic, tc.version, len(sent))
			seen := map[tp]bool{}
			for _, k := range got {
				if seen[k] {
					t.Errorf("first run: partition %d offset %d consumed twice", k.p, k.o)
				}
				seen[k] = true
				if _, ok := sent[k]; !ok {
					t.Errorf("first run: consumed partition %d offset %d, which was not produced", k.p, k.o)
				}
			}
			want := map[int32]int64{0: n1, 1: n1, 2: n1}
			if got := committedAt(t, adm, group, topic); !maps.Equal(got, want) {
				t.Errorf("after the first run, OffsetFetch gives %v, want %v", got, want)
			}

			sent2 := produceSpread(t, b.Addr(), topic, parts, n2, "b")
			got = runSaramaGroup(t, b.Addr(), group, topic, tc.version, len(sent2))
			first := map[int32]int64{}
			for _, k := range got {
				if _, ok := sent2[k]; !ok {
					t.Errorf("second run: consumed partition %d offset %d, want only the %d new records (offsets >= %d)", k.p, k.o, len(sent2), n1)
				}
				if _, ok := first[k.p]; !ok {
					first[k.p] = k.o
				}
			}
			for p := range int32(parts) {
				if first[p] != n1 {
					t.Errorf("second run: partition %d resumed at offset %d, want the committed %d", p, first[p], n1)
				}
			}
			want = map[int32]int64{0: n1 + n2, 1: n1 + n2, 2: n1 + n2}
			if got := committedAt(t, adm, group, topic); !maps.Equal(got, want) {
				t.Errorf("after the second run, OffsetFetch gives %v, want %v", got, want)
			}
		})
	}
}

// ---- 3. kcat -G (librdkafka's balanced consumer) ----

// TestGroupsKcat: two `kcat -G` processes in one group share a 4-partition
// topic, consume every record once between them and commit.
func TestGroupsKcat(t *testing.T) {
	kcat := requireTool(t, "kcat")
	t.Parallel()
	b := startBroker(t)
	const parts, perPart = 4, 50
	topic, group := "kcat-group", "kcat-g"
	createTopic(t, b.Addr(), topic, parts)
	adm := kadm.NewClient(newClient(t, b.Addr()))

	type run struct {
		cmd            *exec.Cmd
		stdout, stderr bytes.Buffer
		done           chan error
	}
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	var runs []*run
	for range 2 {
		r := &run{done: make(chan error, 1)}
		r.cmd = exec.CommandContext(ctx, kcat, "-b", b.Addr(), "-G", group, topic,
			"-c", strconv.Itoa(parts*perPart/2), "-q", "-f", `%p %o %s\n`,
			"-X", "auto.offset.reset=earliest",
			"-X", "auto.commit.interval.ms=200",
			"-X", "session.timeout.ms=6000",
			"-X", "heartbeat.interval.ms=300",
			"-X", "partition.assignment.strategy=range")
		r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
		if err := r.cmd.Start(); err != nil {
			t.Fatalf("start kcat: %v", err)
		}
		go func() { r.done <- r.cmd.Wait() }()
		runs = append(runs, r)
	}
	dump := func() string {
		var s strings.Builder
		for i, r := range runs {
			fmt.Fprintf(&s, "kcat #%d stdout:\n%s\nstderr:\n%s\n", i, head(r.stdout.String(), 2000), head(r.stderr.String(), 2000))
		}
		return s.String()
	}

	// Produce only once both have their share, so each reads exactly its own.
	var d kadm.DescribedGroup
	waitFor(t, 20*time.Second, "two kcat members in a stable group", func() string {
		d = describeGroup(t, adm, group)
		if d.State != "Stable" || len(d.Members) != 2 {
			return fmt.Sprintf("state %q with %d members", d.State, len(d.Members))
		}
		return partitionSplit(memberPartitions(d, topic), parts, 2, 2)
	})
	t.Logf("kcat group: protocol %q, members %v", d.Protocol, memberPartitions(d, topic))
	sent := produceSpread(t, b.Addr(), topic, parts, perPart, "k")

	for i, r := range runs {
		select {
		case err := <-r.done:
			if err != nil {
				t.Fatalf("kcat #%d: %v\n%s", i, err, dump())
			}
		case <-ctx.Done():
			t.Fatalf("kcat #%d did not consume its %d records in time\n%s", i, parts*perPart/2, dump())
		}
	}
	got := map[tp][]int{}
	for i, r := range runs {
		if strings.Contains(r.stderr.String(), "%3|") || strings.Contains(r.stderr.String(), "ERROR") {
			t.Errorf("kcat #%d logged errors:\n%s", i, head(r.stderr.String(), 2000))
		}
		sc := bufio.NewScanner(strings.NewReader(r.stdout.String()))
		lines := 0
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 {
				t.Errorf("kcat #%d: unexpected line %q", i, sc.Text())
				continue
			}
			p, _ := strconv.Atoi(f[0])
			o, _ := strconv.ParseInt(f[1], 10, 64)
			k := tp{int32(p), o}
			if sent[k] != f[2] {
				t.Errorf("kcat #%d: partition %d offset %d has value %q, want %q", i, p, o, f[2], sent[k])
			}
			got[k] = append(got[k], i)
			lines++
		}
		if lines != parts*perPart/2 {
			t.Errorf("kcat #%d printed %d records, want its share of %d", i, lines, parts*perPart/2)
		}
	}
	for k := range sent {
		if len(got[k]) != 1 {
			t.Errorf("partition %d offset %d consumed by kcat processes %v, want exactly one", k.p, k.o, got[k])
		}
	}
	want := map[int32]int64{}
	for p := range int32(parts) {
		want[p] = perPart
	}
	waitCommitted(t, adm, group, topic, want, 5*time.Second)
	waitFor(t, 10*time.Second, "the kcat group is Empty after both exited", func() string {
		d := describeGroup(t, adm, group)
		if d.State != "Empty" {
			return fmt.Sprintf("state %q with %d members", d.State, len(d.Members))
		}
		return ""
	})
}

// ---- 4. kafkajs consumer groups (tests/kafkajs/groups.test.js) ----

// TestGroupsKafkaJS produces records with franz-go and runs
// tests/kafkajs/groups.test.js, where a kafkajs consumer group consumes them
// all and commits, and a second member of the group resumes after them.
func TestGroupsKafkaJS(t *testing.T) {
	node := requireTool(t, "node")
	npm := requireTool(t, "npm")
	t.Parallel()
	dir := filepath.Join(moduleRoot, "tests", "kafkajs")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "kafkajs")); err != nil {
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
	}

	b := startBroker(t)
	const parts, perPart = 3, 40
	topic, group := "kafkajs-group", "kafkajs-g"
	createTopic(t, b.Addr(), topic, parts)
	sent := produceSpread(t, b.Addr(), topic, parts, perPart, "j")

	resultPath := filepath.Join(t.TempDir(), "groups.json")
	script := filepath.Join("tests", "kafkajs", "groups.test.js")
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=spec", script)
	cmd.Dir = moduleRoot
	cmd.Env = append(os.Environ(), "SAMSA_BROKERS="+b.Addr(), "NO_COLOR=1",
		"SAMSA_GROUP_TOPIC="+topic, "SAMSA_GROUP_ID="+group,
		"SAMSA_GROUP_COUNT="+strconv.Itoa(len(sent)), "SAMSA_GROUP_RESULT="+resultPath)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test %s: %v\n%s", script, err, out)
	}
	t.Logf("node --test %s:\n%s", script, out)

	var result struct {
		First []struct {
			Partition int32
			Offset    string
			Value     string
		} `json:"first"`
		Second []struct {
			Partition int32
			Offset    string
			Value     string
		} `json:"second"`
	}
	raw, err := os.ReadFile(resultPath)
	if err != nil {
		t.Fatalf("groups.test.js wrote no result: %v", err)
	}
	if err := json.Unmarshal(raw, &result); err != nil {
		t.Fatalf("result: %v", err)
	}
	seen := map[tp]bool{}
	for _, r := range result.First {
		o, _ := strconv.ParseInt(r.Offset, 10, 64)
		k := tp{r.Partition, o}
		if seen[k] {
			t.Errorf("kafkajs consumed partition %d offset %d twice", k.p, k.o)
		}
		seen[k] = true
		if sent[k] != r.Value {
			t.Errorf("kafkajs: partition %d offset %d has value %q, want %q", k.p, k.o, r.Value, sent[k])
		}
	}
	if len(seen) != len(sent) {
		t.Errorf("kafkajs consumed %d distinct records, franz-go produced %d", len(seen), len(sent))
	}
	if len(result.Second) == 0 {
		t.Errorf("the second kafkajs consumer reported no records")
	}
	// Both kafkajs runs committed up to the end of every partition.
	adm := kadm.NewClient(newClient(t, b.Addr()))
	ends := endOffsets(t, b.Addr(), topic)
	if got := committedAt(t, adm, group, topic); !maps.Equal(got, ends) {
		t.Errorf("committed offsets of %s after kafkajs: %v, want the end offsets %v", group, got, ends)
	}
}

// ---- 5. committed offsets survive a broker crash ----

// TestGroupsOffsetsSurviveCrash: offsets committed by a consumer group member
// and by kadm (with leader epochs and metadata) come back exactly after a
// SIGKILL and restart, and consumers resume from them.
func TestGroupsOffsetsSurviveCrash(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	const parts, perPart = 3, 10
	topic, other := "crash-group", "crash-group-other"
	createTopic(t, b.Addr(), topic, parts)
	createTopic(t, b.Addr(), other, 2)
	sent := produceSpread(t, b.Addr(), topic, parts, perPart, "a")
	adm := kadm.NewClient(newClient(t, b.Addr()))

	// Group "member": a franz-go member consumes everything and commits.
	g := newGroupTracker(t, topic)
	m := startGroupMember(t, g, b.Addr(), "member", "m0")
	waitFor(t, 15*time.Second, "the member consumes everything", func() string {
		g.mu.Lock()
		defer g.mu.Unlock()
		if len(g.consumed) < len(sent) {
			return fmt.Sprintf("%d of %d records", len(g.consumed), len(sent))
		}
		return ""
	})
	want := map[int32]int64{0: perPart, 1: perPart, 2: perPart}
	waitCommitted(t, adm, "member", topic, want, 10*time.Second)
	m.stop(g)
	memberBefore := committed(t, adm, "member", topic)

	// Group "manual": kadm commits chosen offsets, epochs and metadata.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var offs kadm.Offsets
	offs.Add(kadm.Offset{Topic: topic, Partition: 0, At: 4, LeaderEpoch: -1, Metadata: "p0 meta"})
	offs.Add(kadm.Offset{Topic: topic, Partition: 1, At: 0, LeaderEpoch: -1, Metadata: ""})
	offs.Add(kadm.Offset{Topic: topic, Partition: 2, At: 7, LeaderEpoch: -1, Metadata: strings.Repeat("m", 300)})
	offs.Add(kadm.Offset{Topic: other, Partition: 0, At: 12345, LeaderEpoch: 42, Metadata: "ünïcode ✓"})
	offs.Add(kadm.Offset{Topic: other, Partition: 1, At: 1, LeaderEpoch: 0, Metadata: "x"})
	res, err := adm.CommitOffsets(ctx, "manual", offs)
	if err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatalf("OffsetCommit (kadm) group manual: %v", err)
	}
	// A second commit overwrites the first for the partitions it names.
	var again kadm.Offsets
	again.Add(kadm.Offset{Topic: topic, Partition: 1, At: 3, LeaderEpoch: -1, Metadata: "second"})
	if res, err = adm.CommitOffsets(ctx, "manual", again); err == nil {
		err = res.Error()
	}
	if err != nil {
		t.Fatalf("second OffsetCommit (kadm) group manual: %v", err)
	}
	offs.Add(again[topic][1])

	check := func(phase string) {
		t.Helper()
		fetched, err := adm.FetchOffsets(ctx, "manual")
		if err == nil {
			err = fetched.Error()
		}
		if err != nil {
			t.Fatalf("%s: OffsetFetch group manual: %v", phase, err)
		}
		offs.Each(func(o kadm.Offset) {
			f, ok := fetched.Lookup(o.Topic, o.Partition)
			switch {
			case !ok:
				t.Errorf("%s: group manual: no committed offset for %s[%d]", phase, o.Topic, o.Partition)
			case f.At != o.At || f.LeaderEpoch != o.LeaderEpoch || f.Metadata != o.Metadata:
				t.Errorf("%s: group manual %s[%d]: OffsetFetch gives offset %d, epoch %d, metadata %q; committed %d, %d, %q",
					phase, o.Topic, o.Partition, f.At, f.LeaderEpoch, f.Metadata, o.At, o.LeaderEpoch, o.Metadata)
			}
		})
		if n := len(fetched.Sorted()); n != 5 {
			t.Errorf("%s: OffsetFetch group manual returned %d partitions, want the 5 committed: %v", phase, n, fetched.Sorted())
		}
		mem := committed(t, adm, "member", topic)
		for p, o := range memberBefore {
			if f := mem[p]; f.At != o.At || f.LeaderEpoch != o.LeaderEpoch || f.Metadata != o.Metadata {
				t.Errorf("%s: group member %s[%d]: OffsetFetch gives (%d, %d, %q), committed (%d, %d, %q)", phase, topic, p, f.At, f.LeaderEpoch, f.Metadata, o.At, o.LeaderEpoch, o.Metadata)
			}
		}
	}
	check("before the crash")
	b.Kill()
	b.Restart()
	check("after SIGKILL and restart")

	// Consumers in both groups resume from the committed offsets.
	produceSpread(t, b.Addr(), topic, parts, 3, "b")
	for _, gc := range []struct {
		group string
		from  map[int32]int64
	}{
		{"member", map[int32]int64{0: perPart, 1: perPart, 2: perPart}},
		{"manual", map[int32]int64{0: 4, 1: 3, 2: 7}},
	} {
		g := newGroupTracker(t, topic)
		m := startGroupMember(t, g, b.Addr(), gc.group, "resume-"+gc.group)
		wantN := 0
		for p := range int32(parts) {
			wantN += perPart + 3 - int(gc.from[p])
		}
		waitFor(t, 15*time.Second, "group "+gc.group+" resumes after the restart", func() string {
			g.mu.Lock()
			defer g.mu.Unlock()
			if len(g.consumed) < wantN {
				return fmt.Sprintf("%d of %d records", len(g.consumed), wantN)
			}
			return ""
		})
		m.stop(g)
		g.mu.Lock()
		for k := range g.consumed {
			if k.o < gc.from[k.p] {
				t.Errorf("group %s consumed partition %d offset %d, below its committed offset %d", gc.group, k.p, k.o, gc.from[k.p])
			}
		}
		if len(g.consumed) != wantN {
			t.Errorf("group %s consumed %d records after the restart, want %d", gc.group, len(g.consumed), wantN)
		}
		g.mu.Unlock()
	}
}

// ---- extra: the coordinator's answers at the edges, request by request ----

// TestGroupsProtocolEdges drives one member through raw group requests and
// checks the error codes a Kafka coordinator gives: session timeout bounds,
// MEMBER_ID_REQUIRED, stale generations, unknown members, an expired
// session, NON_EMPTY_GROUP, OffsetDelete and DeleteGroups.
func TestGroupsProtocolEdges(t *testing.T) {
	t.Parallel()
	b := startBroker(t, withConfig("groups", "min_session_timeout_ms", 1000), withConfig("groups", "max_session_timeout_ms", 60000))
	topic, group := "edges", "edges-g"
	createTopic(t, b.Addr(), topic, 2)
	cl := newClient(t, b.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	code := func(what string, got, want int16) {
		t.Helper()
		if got != want {
			t.Errorf("%s: error code %d, want %d", what, got, want)
		}
	}

	join := func(member string, session int32) *kmsg.JoinGroupResponse {
		t.Helper()
		req := kmsg.NewPtrJoinGroupRequest()
		req.Group, req.MemberID, req.ProtocolType = group, member, "consumer"
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = session, 5000
		p := kmsg.NewJoinGroupRequestProtocol()
		p.Name, p.Metadata = "range", []byte("subscription-bytes")
		req.Protocols = append(req.Protocols, p)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("JoinGroup: %v", err)
		}
		return resp
	}
	code("JoinGroup with session timeout 500 ms (min 1000)", join("", 500).ErrorCode, 26)
	code("JoinGroup with session timeout 120000 ms (max 60000)", join("", 120000).ErrorCode, 26)
	first := join("", 1000)
	code("JoinGroup v4+ without a member id", first.ErrorCode, 79)
	if first.MemberID == "" {
		t.Fatalf("MEMBER_ID_REQUIRED came without a member id")
	}
	me := first.MemberID
	j := join(me, 1000)
	code("JoinGroup with the assigned member id", j.ErrorCode, 0)
	if j.LeaderID != me || j.MemberID != me || j.Generation < 1 || j.Protocol == nil || *j.Protocol != "range" ||
		len(j.Members) != 1 || j.Members[0].MemberID != me || string(j.Members[0].ProtocolMetadata) != "subscription-bytes" {
		t.Fatalf("JoinGroup answer: leader %q member %q generation %d protocol %v members %+v; want the lone member %q leading generation >= 1 with protocol range and its metadata",
			j.LeaderID, j.MemberID, j.Generation, j.Protocol, j.Members, me)
	}
	gen := j.Generation

	sync := kmsg.NewPtrSyncGroupRequest()
	sync.Group, sync.Generation, sync.MemberID = group, gen, me
	a := kmsg.NewSyncGroupRequestGroupAssignment()
	a.MemberID, a.MemberAssignment = me, []byte("assignment-bytes")
	sync.GroupAssignment = append(sync.GroupAssignment, a)
	sr, err := sync.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("SyncGroup: %v", err)
	}
	code("SyncGroup by the leader", sr.ErrorCode, 0)
	if string(sr.MemberAssignment) != "assignment-bytes" {
		t.Errorf("SyncGroup gave assignment %q, want the leader's %q", sr.MemberAssignment, "assignment-bytes")
	}

	heartbeat := func(member string, generation int32) int16 {
		t.Helper()
		req := kmsg.NewPtrHeartbeatRequest()
		req.Group, req.MemberID, req.Generation = group, member, generation
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("Heartbeat: %v", err)
		}
		return resp.ErrorCode
	}
	code("Heartbeat", heartbeat(me, gen), 0)
	code("Heartbeat with generation+1", heartbeat(me, gen+1), 22)
	code("Heartbeat of an unknown member", heartbeat("nobody", gen), 25)

	commit := func(member string, generation int32, offset int64) int16 {
		t.Helper()
		req := kmsg.NewPtrOffsetCommitRequest()
		req.Group, req.MemberID, req.Generation = group, member, generation
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch = 0, offset, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("OffsetCommit: %v", err)
		}
		if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
			t.Fatalf("OffsetCommit answer has %d topics, want 1 with 1 partition", len(resp.Topics))
		}
		return resp.Topics[0].Partitions[0].ErrorCode
	}
	adm := kadm.NewClient(cl)
	code("OffsetCommit by the member", commit(me, gen, 5), 0)
	code("OffsetCommit with generation+1", commit(me, gen+1, 6), 22)
	code("OffsetCommit by an unknown member", commit("nobody", gen, 7), 25)
	code("simple OffsetCommit (generation -1) while the group has a member", commit("", -1, 8), 25)
	if got := committedAt(t, adm, group, topic); !maps.Equal(got, map[int32]int64{0: 5}) {
		t.Errorf("after the refused commits OffsetFetch gives %v, want {0: 5}", got)
	}

	deleteGroup := func() int16 {
		t.Helper()
		req := kmsg.NewPtrDeleteGroupsRequest()
		req.Groups = []string{group}
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatalf("DeleteGroups: %v", err)
		}
		if len(resp.Groups) != 1 {
			t.Fatalf("DeleteGroups answered %d groups, want 1", len(resp.Groups))
		}
		return resp.Groups[0].ErrorCode
	}
	code("DeleteGroups of a group with a member", deleteGroup(), 68)

	// No heartbeat for longer than the session: the member is gone.
	time.Sleep(1600 * time.Millisecond)
	code("Heartbeat after the session expired", heartbeat(me, gen), 25)
	if c := commit(me, gen, 9); c != 25 && c != 22 {
		t.Errorf("OffsetCommit by the expired member: error code %d, want 25 (UNKNOWN_MEMBER_ID) or 22 (ILLEGAL_GENERATION)", c)
	}
	if d := describeGroup(t, adm, group); d.State != "Empty" || len(d.Members) != 0 {
		t.Errorf("after the session expired: group %s with %d members, want Empty with none", d.State, len(d.Members))
	}
	code("simple OffsetCommit to the empty group", commit("", -1, 10), 0)
	if got := committedAt(t, adm, group, topic); !maps.Equal(got, map[int32]int64{0: 10}) {
		t.Errorf("OffsetFetch gives %v, want {0: 10}", got)
	}

	// OffsetDelete, then DeleteGroups.
	od := kmsg.NewPtrOffsetDeleteRequest()
	od.Group = group
	odt := kmsg.NewOffsetDeleteRequestTopic()
	odt.Topic = topic
	odp := kmsg.NewOffsetDeleteRequestTopicPartition()
	odp.Partition = 0
	odt.Partitions = append(odt.Partitions, odp)
	od.Topics = append(od.Topics, odt)
	odr, err := od.RequestWith(ctx, cl)
	if err != nil {
		t.Fatalf("OffsetDelete: %v", err)
	}
	code("OffsetDelete", odr.ErrorCode, 0)
	if len(odr.Topics) == 1 && len(odr.Topics[0].Partitions) == 1 {
		code("OffsetDelete partition 0", odr.Topics[0].Partitions[0].ErrorCode, 0)
	} else {
		t.Errorf("OffsetDelete answer: %+v, want 1 topic with 1 partition", odr.Topics)
	}
	if got := committedAt(t, adm, group, topic); len(got) != 0 {
		t.Errorf("after OffsetDelete OffsetFetch gives %v, want no offsets", got)
	}
	code("simple OffsetCommit again", commit("", -1, 11), 0)
	code("DeleteGroups of the empty group", deleteGroup(), 0)
	if d := describeGroup(t, adm, group); d.State != "Dead" {
		t.Errorf("DescribeGroups after DeleteGroups: state %q, want Dead", d.State)
	}
	if got := committedAt(t, adm, group, topic); len(got) != 0 {
		t.Errorf("after DeleteGroups OffsetFetch gives %v, want no offsets", got)
	}
	lg, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatalf("ListGroups: %v", err)
	}
	if _, ok := lg[group]; ok {
		t.Errorf("ListGroups still lists %s after DeleteGroups", group)
	}
	code("DeleteGroups of a deleted group", deleteGroup(), 69)
}
