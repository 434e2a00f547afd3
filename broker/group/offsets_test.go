package group

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/samsa-broker/samsa/broker/record"
	"github.com/samsa-broker/samsa/broker/vfs"
)

func commit(c *Coordinator, group string, gen int32, member string, offs ...OffsetCommit) []error {
	return c.CommitOffsets(CommitRequest{Group: group, Generation: gen, MemberID: member, Offsets: offs})
}

func TestCommitFencing(t *testing.T) {
	c := newT(t)
	c.opts.CheckPartition = func(topic string, partition int32) error {
		if topic == "missing" {
			return ErrUnknownTopic
		}
		return nil
	}
	cls := clients(c, "g", 2)
	joinAll(t, cls...)
	m, gen := cls[0], cls[0].gen
	off := OffsetCommit{Topic: "t", Partition: 0, Offset: 10, LeaderEpoch: -1}
	for _, tc := range []struct {
		name  string
		req   CommitRequest
		wants []error
	}{
		{"current member", CommitRequest{Group: "g", Generation: gen, MemberID: m.id, Offsets: []OffsetCommit{off}}, []error{nil}},
		{"stale generation", CommitRequest{Group: "g", Generation: gen - 1, MemberID: m.id, Offsets: []OffsetCommit{off}}, []error{ErrIllegalGeneration}},
		{"future generation", CommitRequest{Group: "g", Generation: gen + 1, MemberID: m.id, Offsets: []OffsetCommit{off}}, []error{ErrIllegalGeneration}},
		{"unknown member", CommitRequest{Group: "g", Generation: gen, MemberID: "x", Offsets: []OffsetCommit{off}}, []error{ErrUnknownMemberID}},
		{"simple commit to a group with members", CommitRequest{Group: "g", Generation: -1, Offsets: []OffsetCommit{off}}, []error{ErrUnknownMemberID}},
		{"simple commit to an unknown group", CommitRequest{Group: "simple", Generation: -1, Offsets: []OffsetCommit{off}}, []error{nil}},
		{"generation for an unknown group", CommitRequest{Group: "unknown", Generation: 3, MemberID: "x", Offsets: []OffsetCommit{off}}, []error{ErrIllegalGeneration}},
		{"no group id", CommitRequest{Generation: -1, Offsets: []OffsetCommit{off, off}}, []error{ErrInvalidGroupID, ErrInvalidGroupID}},
		{"per partition errors", CommitRequest{Group: "g", Generation: gen, MemberID: m.id, Offsets: []OffsetCommit{
			off,
			{Topic: "t", Partition: 1, Offset: 1, Metadata: string(make([]byte, 5000))},
			{Topic: "missing", Partition: 0, Offset: 1},
		}}, []error{nil, ErrOffsetMetadataTooLarge, ErrUnknownTopic}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errs := c.CommitOffsets(tc.req)
			if len(errs) != len(tc.wants) {
				t.Fatalf("%d errors for %d partitions", len(errs), len(tc.wants))
			}
			for i, want := range tc.wants {
				if !errors.Is(errs[i], want) || (want == nil && errs[i] != nil) {
					t.Fatalf("partition %d: got %v, want %v", i, errs[i], want)
				}
			}
		})
	}

	// During CompletingRebalance commits wait for the assignment; during
	// PreparingRebalance they are accepted (members commit before
	// rejoining).
	late := newClient(c, "g")
	go late.joinSync(t.Context())
	waitRebalance(t, cls[0])
	if errs := commit(c, "g", gen, cls[1].id, off); errs[0] != nil {
		t.Fatalf("commit while preparing a rebalance: %v", errs[0])
	}
	results := make(chan JoinResult, 2)
	for _, cl := range cls {
		go func() { results <- c.Join(t.Context(), cl.joinRequest()) }()
	}
	r := <-results
	<-results
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if errs := commit(c, "g", r.Generation, r.MemberID, off); !errors.Is(errs[0], ErrRebalanceInProgress) {
		t.Fatalf("commit while completing a rebalance: %v", errs[0])
	}
}

func TestOffsetsExact(t *testing.T) {
	c := newT(t)
	offs := []OffsetCommit{
		{Topic: "a", Partition: 0, Offset: 0, LeaderEpoch: -1, Metadata: ""},
		{Topic: "a", Partition: 1, Offset: 1 << 40, LeaderEpoch: 7, Metadata: "some metadata ✓"},
		{Topic: "b", Partition: 3, Offset: 42, LeaderEpoch: 0, Metadata: string([]byte{0, 1, 2, 255})},
	}
	if errs := commit(c, "g", -1, "", offs...); errs[0] != nil || errs[1] != nil || errs[2] != nil {
		t.Fatal(errs)
	}
	want := func(o OffsetCommit) FetchedOffset {
		return FetchedOffset{TopicPartition{o.Topic, o.Partition}, Offset{o.Offset, o.LeaderEpoch, o.Metadata}}
	}
	got, err := c.FetchOffsets("g", []TopicPartition{{"b", 3}, {"a", 1}, {"nope", 0}})
	if err != nil {
		t.Fatal(err)
	}
	exp := []FetchedOffset{want(offs[2]), want(offs[1]), {TopicPartition{"nope", 0}, Offset{-1, -1, ""}}}
	if !reflect.DeepEqual(got, exp) {
		t.Fatalf("fetch:\n got %+v\nwant %+v", got, exp)
	}
	all, _ := c.FetchOffsets("g", nil)
	if !reflect.DeepEqual(all, []FetchedOffset{want(offs[0]), want(offs[1]), want(offs[2])}) {
		t.Fatalf("fetch all: %+v", all)
	}
	if none, err := c.FetchOffsets("other", nil); err != nil || len(none) != 0 {
		t.Fatalf("unknown group: %v %v", none, err)
	}
	// A later commit replaces the earlier one.
	commit(c, "g", -1, "", OffsetCommit{Topic: "a", Partition: 1, Offset: 5, LeaderEpoch: 8})
	got, _ = c.FetchOffsets("g", []TopicPartition{{"a", 1}})
	if got[0].Offset != (Offset{5, 8, ""}) {
		t.Fatalf("after a second commit: %+v", got[0])
	}
}

// allOffsets returns every committed offset of every group.
func allOffsets(c *Coordinator) map[string][]FetchedOffset {
	out := map[string][]FetchedOffset{}
	for _, l := range c.ListGroups() {
		fs, _ := c.FetchOffsets(l.Group, nil)
		if len(fs) > 0 {
			out[l.Group] = fs
		}
	}
	return out
}

func TestOffsetsSurviveReopen(t *testing.T) {
	fs := vfs.NewStrictMem()
	c := openT(t, testOptions(fs))
	for i := range 50 {
		commit(c, fmt.Sprintf("g%d", i%5), -1, "", OffsetCommit{Topic: "t", Partition: int32(i % 7), Offset: int64(i), LeaderEpoch: int32(i), Metadata: fmt.Sprint("m", i)})
	}
	want := allOffsets(c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	fs.Crash() // a clean close left everything durable
	c = openT(t, testOptions(fs))
	defer c.Close()
	if got := allOffsets(c); !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen:\n got %v\nwant %v", got, want)
	}
}

// crashFS wraps a MemFS so that a coordinator left running at the simulated
// power loss can no longer touch the files afterwards.
func crashFS(mem *vfs.MemFS) (vfs.FS, func()) {
	var dead atomic.Bool
	fs := vfs.NewErrorFS(mem, func(op vfs.Op, path string) error {
		if dead.Load() {
			return errors.New("powered off")
		}
		return nil
	})
	return fs, func() { dead.Store(true); mem.Crash() }
}

func TestOffsetsSurvivePowerLoss(t *testing.T) {
	for _, tc := range []struct {
		name    string
		compact bool
	}{{"plain", false}, {"while compacting", true}} {
		t.Run(tc.name, func(t *testing.T) {
			mem := vfs.NewStrictMem()
			fs, crash := crashFS(mem)
			opts := testOptions(fs)
			if tc.compact {
				opts.CompactMinBytes = 4 << 10
				opts.SegmentBytes = 16 << 10
			}
			c := openT(t, opts)
			// Writers commit concurrently; each remembers what was
			// acknowledged. The power goes off while they run.
			var mu sync.Mutex
			acked := map[gp]int64{} // highest acknowledged offset
			var wg sync.WaitGroup
			stop := make(chan struct{})
			for w := range 8 {
				wg.Go(func() {
					group := fmt.Sprintf("g%d", w)
					for i := int64(0); ; i++ {
						select {
						case <-stop:
							return
						default:
						}
						p := int32(i % 3)
						errs := commit(c, group, -1, "", OffsetCommit{Topic: "t", Partition: p, Offset: i, LeaderEpoch: -1, Metadata: "x"})
						if errs[0] == nil {
							mu.Lock()
							acked[gp{group, p}] = i
							mu.Unlock()
						}
					}
				})
			}
			time.Sleep(300 * time.Millisecond)
			mu.Lock()
			crash() // acknowledged commits from here on would not count
			snapshot := maps(acked)
			mu.Unlock()
			close(stop)
			wg.Wait()
			c2 := openT(t, testOptions(mem))
			defer c2.Close()
			n := 0
			for k, want := range snapshot {
				got, _ := c2.FetchOffsets(k.group, []TopicPartition{{"t", k.partition}})
				// A commit that was not acknowledged may be there too,
				// so the offset is at least the acknowledged one.
				if got[0].Offset.Offset < want {
					t.Fatalf("%v: offset %d after the crash, %d was acknowledged", k, got[0].Offset.Offset, want)
				}
				n++
			}
			c.store.mu.Lock()
			compactions := c.store.compactions
			c.store.mu.Unlock()
			t.Logf("%d partitions checked after the power loss (compactions before it: %d)", n, compactions)
			if n == 0 {
				t.Fatal("nothing was committed")
			}
		})
	}
}

type gp struct {
	group     string
	partition int32
}

func maps(m map[gp]int64) map[gp]int64 {
	out := make(map[gp]int64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func TestCompaction(t *testing.T) {
	fs := vfs.NewStrictMem()
	opts := testOptions(fs)
	opts.CompactMinBytes = 32 << 10
	opts.SegmentBytes = 16 << 10
	c := openT(t, opts)
	rng := rand.New(rand.NewPCG(1, 2))
	var maxSize int64
	for i := range 3000 {
		g := fmt.Sprintf("g%d", rng.IntN(4))
		offs := make([]OffsetCommit, 1+rng.IntN(5))
		for j := range offs {
			offs[j] = OffsetCommit{Topic: fmt.Sprint("t", rng.IntN(3)), Partition: int32(rng.IntN(4)), Offset: int64(i), LeaderEpoch: int32(j), Metadata: "meta"}
		}
		for _, err := range commit(c, g, -1, "", offs...) {
			if err != nil {
				t.Fatal(err)
			}
		}
		if i == 1500 {
			if errs := c.DeleteGroups([]string{"g3"}); errs[0] != nil {
				t.Fatal(errs[0])
			}
		}
		// The background loop compacts when it gets to run; do what it
		// would do now, so that the bound below does not depend on the
		// scheduler.
		c.store.mu.Lock()
		if c.store.shouldCompactLocked() {
			if err := c.store.compactLocked(); err != nil {
				c.store.mu.Unlock()
				t.Fatal(err)
			}
		}
		maxSize = max(maxSize, c.store.log.Size())
		c.store.mu.Unlock()
	}
	c.store.mu.Lock()
	compactions, size, recs, end := c.store.compactions, c.store.log.Size(), c.store.log.EndOffset()-c.store.log.StartOffset(), c.store.log.EndOffset()
	c.store.mu.Unlock()
	t.Logf("compactions %d, log %d bytes (max %d), %d records, end offset %d", compactions, size, maxSize, recs, end)
	if compactions == 0 {
		t.Fatal("no compaction")
	}
	if maxSize > 256<<10 {
		t.Fatalf("log grew to %d bytes", maxSize)
	}
	want := allOffsets(c)
	if len(want) != 4 {
		t.Fatalf("groups %v", want)
	}
	c.Close()
	c = openT(t, opts)
	defer c.Close()
	if got := allOffsets(c); !reflect.DeepEqual(got, want) {
		t.Fatalf("after compaction and reopen:\n got %v\nwant %v", got, want)
	}
}

func TestDeleteGroupsAndOffsets(t *testing.T) {
	mem := vfs.NewStrictMem()
	fs, crash := crashFS(mem)
	c := openT(t, testOptions(fs))
	cls := clients(c, "active", 1)
	joinAll(t, cls...)
	commit(c, "active", cls[0].gen, cls[0].id, OffsetCommit{Topic: "t", Offset: 1}, OffsetCommit{Topic: "u", Offset: 2})
	commit(c, "idle", -1, "", OffsetCommit{Topic: "t", Offset: 3}, OffsetCommit{Topic: "t", Partition: 1, Offset: 4})
	commit(c, "idle2", -1, "", OffsetCommit{Topic: "t", Offset: 5})

	errs := c.DeleteGroups([]string{"active", "idle", "nope", ""})
	for i, want := range []error{ErrNonEmptyGroup, nil, ErrGroupIDNotFound, ErrInvalidGroupID} {
		if !errors.Is(errs[i], want) || (want == nil && errs[i] != nil) {
			t.Fatalf("DeleteGroups[%d]: %v, want %v", i, errs[i], want)
		}
	}
	if d := c.DescribeGroups([]string{"idle"})[0]; d.State != Dead {
		t.Fatalf("deleted group: %+v", d)
	}

	// OffsetDelete: a consumer group with members keeps the offsets of
	// the topics it subscribes to ("t").
	perr, err := c.DeleteOffsets("active", []TopicPartition{{"t", 0}, {"u", 0}})
	if err != nil || !errors.Is(perr[0], ErrGroupSubscribedToTopic) || perr[1] != nil {
		t.Fatalf("DeleteOffsets: %v %v", perr, err)
	}
	if _, err := c.DeleteOffsets("nope", []TopicPartition{{"t", 0}}); !errors.Is(err, ErrGroupIDNotFound) {
		t.Fatalf("DeleteOffsets of an unknown group: %v", err)
	}
	if perr, err := c.DeleteOffsets("idle2", []TopicPartition{{"t", 0}}); err != nil || perr[0] != nil {
		t.Fatal(perr, err)
	}
	want := map[string][]FetchedOffset{"active": {{TopicPartition{"t", 0}, Offset{1, 0, ""}}}}
	if got := allOffsets(c); !reflect.DeepEqual(got, want) {
		t.Fatalf("offsets: %v", got)
	}
	// An empty group can be deleted once its members are gone.
	c.Leave("active", []LeaveMember{{MemberID: cls[0].id}})
	if errs := c.DeleteGroups([]string{"active"}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	crash()
	c2 := openT(t, testOptions(mem))
	defer c2.Close()
	if got := allOffsets(c2); len(got) != 0 {
		t.Fatalf("deleted offsets came back after a power loss: %v", got)
	}
	if l := c2.ListGroups(); len(l) != 0 {
		t.Fatalf("groups after deletion: %v", l)
	}
}

func TestStorageFailureRecovers(t *testing.T) {
	mem := vfs.NewStrictMem()
	var failSync atomic.Bool
	fs := vfs.NewErrorFS(mem, func(op vfs.Op, path string) error {
		if op == vfs.OpSync && failSync.Load() {
			return errors.New("injected fsync failure")
		}
		return nil
	})
	c := openT(t, testOptions(fs))
	defer c.Close()
	if errs := commit(c, "g", -1, "", OffsetCommit{Topic: "t", Offset: 1}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	failSync.Store(true)
	errs := commit(c, "g", -1, "", OffsetCommit{Topic: "t", Offset: 2})
	if !errors.Is(errs[0], ErrCoordinatorNotAvailable) {
		t.Fatalf("commit with a failing fsync: %v", errs[0])
	}
	failSync.Store(false)
	if errs := commit(c, "g", -1, "", OffsetCommit{Topic: "t", Offset: 3}); errs[0] != nil {
		t.Fatalf("commit after the disk recovered: %v", errs[0])
	}
	got, _ := c.FetchOffsets("g", []TopicPartition{{"t", 0}})
	if got[0].Offset.Offset != 3 {
		t.Fatalf("offset %d", got[0].Offset.Offset)
	}
}

func TestEncodeDecodeEntry(t *testing.T) {
	for _, e := range []entry{
		{group: "g", tp: TopicPartition{"t", 0}, off: Offset{0, -1, ""}, at: 1},
		{group: "", tp: TopicPartition{"", -5}, off: Offset{-1, 0, "x"}, at: 1},
		{group: "group.with.dots", tp: TopicPartition{"topic", 1 << 30}, off: Offset{1 << 62, 1 << 30, string(make([]byte, 4096))}, at: 1764000000000},
		{group: "g", tp: TopicPartition{"t", 3}, del: true},
	} {
		b, err := encodeEntries(nil, []entry{e}, 1) // at 0 would be stamped 1
		if err != nil {
			t.Fatal(err)
		}
		var got entry
		var ok bool
		if err := decodeAll(b, func(k, v []byte) error {
			var derr error
			got, ok, derr = decodeEntry(k, v)
			return derr
		}); err != nil || !ok {
			t.Fatal(err, ok)
		}
		if !reflect.DeepEqual(got, e) {
			t.Fatalf("got %+v, want %+v", got, e)
		}
	}
	if _, _, err := decodeEntry([]byte{9}, nil); err == nil {
		t.Fatal("unknown kind decoded")
	}
	if _, ok, err := decodeEntry([]byte{kindMarker}, nil); ok || err != nil {
		t.Fatal("marker")
	}
}

func decodeAll(b []byte, fn func(k, v []byte) error) error {
	return record.DecodeBatches(b, 0, func(batch record.Batch) error {
		for _, r := range batch.Records {
			if err := fn(r.Key, r.Value); err != nil {
				return err
			}
		}
		return nil
	})
}

func BenchmarkCommitOffsets(b *testing.B) {
	for _, parallel := range []int{1, 16} {
		b.Run(fmt.Sprintf("os/writers=%d", parallel), func(b *testing.B) {
			c := openT(b, Options{Dir: b.TempDir() + "/__consumer_offsets"})
			defer c.Close()
			offs := make([]OffsetCommit, 4)
			for i := range offs {
				offs[i] = OffsetCommit{Topic: "topic", Partition: int32(i), Offset: 1, LeaderEpoch: -1}
			}
			var n atomic.Int64
			b.ResetTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for w := range parallel {
				wg.Go(func() {
					for n.Add(1) <= int64(b.N) {
						if errs := commit(c, fmt.Sprint("g", w), -1, "", offs...); errs[0] != nil {
							b.Error(errs[0])
							return
						}
					}
				})
			}
			wg.Wait()
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "commits/s")
		})
	}
}

// TestOffsetsExpire: offsets of a group without members expire
// OffsetsRetention after the later of their commit and the moment the
// group became empty (the coordinator's start for groups not in memory);
// a group with members keeps them; commit times survive compaction and a
// restart.
func TestOffsetsExpire(t *testing.T) {
	fs := vfs.NewStrictMem()
	var now atomic.Int64
	t0 := time.Now()
	now.Store(t0.UnixNano())
	advance := func(d time.Duration) { now.Add(int64(d)) }
	opts := testOptions(fs)
	opts.Now = func() time.Time { return time.Unix(0, now.Load()) }
	opts.OffsetsRetention = time.Hour
	oc := func(off int64) OffsetCommit {
		return OffsetCommit{Topic: "t", Partition: 0, Offset: off, LeaderEpoch: -1}
	}
	groupsWithOffsets := func(c *Coordinator) []string {
		var out []string
		for _, g := range []string{"active", "old", "recent"} {
			if fo, _ := c.FetchOffsets(g, nil); len(fo) > 0 {
				out = append(out, g)
			}
		}
		return out
	}
	expire := func(c *Coordinator, want int) {
		t.Helper()
		n, err := c.ExpireOffsets()
		if err != nil || n != want {
			t.Fatalf("ExpireOffsets = %d, %v; want %d", n, err, want)
		}
	}

	c := openT(t, opts)
	cl := newClient(c, "active")
	joinAll(t, cl)
	for _, err := range commit(c, "active", cl.gen, cl.id, oc(1)) {
		if err != nil {
			t.Fatal(err)
		}
	}
	commit(c, "old", -1, "", oc(2))
	advance(30 * time.Minute)
	commit(c, "recent", -1, "", oc(3))
	advance(45 * time.Minute) // old: 75 min, recent: 45 min, active: has a member
	expire(c, 1)
	if got := groupsWithOffsets(c); fmt.Sprint(got) != "[active recent]" {
		t.Fatalf("after the first expiry: %v", got)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	// After a restart (at t0+75m) no group is in memory: they count as
	// empty since the start, so nothing expires for an hour.
	c = openT(t, opts)
	defer c.Close()
	expire(c, 0)
	advance(25 * time.Minute)
	// Compaction rewrites the offsets; their commit times must stay.
	c.store.mu.Lock()
	if err := c.store.compactLocked(); err != nil {
		c.store.mu.Unlock()
		t.Fatal(err)
	}
	c.store.mu.Unlock()
	advance(30 * time.Minute) // t0+130m: 55 min since the start
	expire(c, 0)
	advance(6 * time.Minute) // 61 min since the start; compaction was 36 min ago
	expire(c, 2)
	if got := groupsWithOffsets(c); len(got) != 0 {
		t.Fatalf("after the second expiry: %v", got)
	}

	// Commit times are kept by compaction and read back at a restart.
	commit(c, "old", -1, "", oc(4))
	advance(time.Minute)
	commit(c, "recent", -1, "", oc(5))
	advance(time.Minute)
	commitTimes := func(c *Coordinator) map[string]int64 {
		c.store.mu.Lock()
		defer c.store.mu.Unlock()
		out := map[string]int64{}
		for g, m := range c.store.offsets {
			for _, o := range m {
				out[g] = o.at
			}
		}
		return out
	}
	before := commitTimes(c)
	c.store.mu.Lock()
	err := c.store.compactLocked()
	c.store.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	c = openT(t, opts)
	defer c.Close()
	if after := commitTimes(c); !reflect.DeepEqual(after, before) || len(after) != 2 {
		t.Fatalf("commit times after compaction and restart %v, want %v", after, before)
	}
}
