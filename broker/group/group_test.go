package group

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/samsa-broker/samsa/broker/vfs"
)

const testDir = "/data/__consumer_offsets"

func testOptions(fs vfs.FS) Options {
	return Options{
		FS:                fs,
		Dir:               testDir,
		RebalanceDelay:    20 * time.Millisecond,
		MinSessionTimeout: 10 * time.Millisecond,
		SegmentBytes:      256 << 10, // little preallocation to copy at each MemFS sync
	}
}

func openT(t testing.TB, opts Options) *Coordinator {
	t.Helper()
	c, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func newT(t testing.TB) *Coordinator {
	c := openT(t, testOptions(vfs.NewStrictMem()))
	t.Cleanup(func() { c.Close() })
	return c
}

// client is a test member that follows the protocol as a Kafka client does.
type client struct {
	c          *Coordinator
	group      string
	instance   string
	session    time.Duration
	rebalance  time.Duration
	protocols  []Protocol
	requireID  bool
	id         string
	gen        int32
	leader     bool
	members    int // members the leader saw
	assignment []byte
}

func newClient(c *Coordinator, group string) *client {
	return &client{
		c:         c,
		group:     group,
		session:   10 * time.Second,
		rebalance: 5 * time.Second,
		protocols: []Protocol{{Name: "range", Metadata: subscription("t")}},
	}
}

// subscription encodes a ConsumerProtocolSubscription v0.
func subscription(topics ...string) []byte {
	b := []byte{0, 0, 0, 0, 0, byte(len(topics))}
	for _, t := range topics {
		b = append(b, 0, byte(len(t)))
		b = append(b, t...)
	}
	return b
}

func (cl *client) joinRequest() JoinRequest {
	return JoinRequest{
		Group:                cl.group,
		MemberID:             cl.id,
		InstanceID:           cl.instance,
		ClientID:             "test-client",
		ClientHost:           "/127.0.0.1",
		ProtocolType:         "consumer",
		Protocols:            cl.protocols,
		SessionTimeout:       cl.session,
		RebalanceTimeout:     cl.rebalance,
		RequireKnownMemberID: cl.requireID,
	}
}

// joinSync joins and syncs until the member has an assignment.
func (cl *client) joinSync(ctx context.Context) error {
	for {
		r := cl.c.Join(ctx, cl.joinRequest())
		switch {
		case errors.Is(r.Err, ErrMemberIDRequired):
			cl.id = r.MemberID
			continue
		case errors.Is(r.Err, ErrUnknownMemberID):
			cl.id = ""
			continue
		case r.Err != nil:
			return r.Err
		}
		cl.id, cl.gen = r.MemberID, r.Generation
		cl.leader = r.LeaderID == r.MemberID
		var as []MemberAssignment
		if cl.leader {
			cl.members = len(r.Members)
			for _, m := range r.Members {
				as = append(as, MemberAssignment{MemberID: m.MemberID, Assignment: []byte("assigned:" + m.MemberID)})
			}
		}
		a, err := cl.c.Sync(ctx, SyncRequest{Group: cl.group, Generation: r.Generation, MemberID: r.MemberID,
			InstanceID: cl.instance, ProtocolType: "consumer", ProtocolName: r.ProtocolName, Assignments: as})
		if errors.Is(err, ErrRebalanceInProgress) {
			continue
		}
		if err != nil {
			return err
		}
		cl.assignment = a
		return nil
	}
}

func (cl *client) heartbeat() error {
	return cl.c.Heartbeat(cl.group, cl.gen, cl.id, cl.instance)
}

// joinAll runs joinSync for every client concurrently.
func joinAll(t testing.TB, cls ...*client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := make([]error, len(cls))
	var wg sync.WaitGroup
	for i, cl := range cls {
		wg.Go(func() { errs[i] = cl.joinSync(ctx) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
	}
}

// checkStable checks that cls form one stable generation with the leader's
// assignments relayed.
func checkStable(t testing.TB, cls ...*client) {
	t.Helper()
	leaders := 0
	for _, cl := range cls {
		if cl.gen != cls[0].gen {
			t.Fatalf("generations differ: %d and %d", cl.gen, cls[0].gen)
		}
		if want := "assigned:" + cl.id; string(cl.assignment) != want {
			t.Fatalf("assignment %q, want %q", cl.assignment, want)
		}
		if cl.leader {
			leaders++
			if cl.members != len(cls) {
				t.Fatalf("leader saw %d members, want %d", cl.members, len(cls))
			}
		}
	}
	if leaders != 1 {
		t.Fatalf("%d leaders", leaders)
	}
	d := cls[0].c.DescribeGroups([]string{cls[0].group})[0]
	if d.State != Stable || len(d.Members) != len(cls) || d.Protocol != "range" || d.ProtocolType != "consumer" {
		t.Fatalf("describe: %+v", d)
	}
	for _, m := range d.Members {
		if string(m.Assignment) != "assigned:"+m.MemberID || string(m.Metadata) != string(subscription("t")) {
			t.Fatalf("describe member: %+v", m)
		}
	}
}

func clients(c *Coordinator, group string, n int) []*client {
	cls := make([]*client, n)
	for i := range cls {
		cls[i] = newClient(c, group)
	}
	return cls
}

func TestJoinSync(t *testing.T) {
	for _, tc := range []struct {
		name    string
		members int
		require bool
	}{
		{"one", 1, false},
		{"three", 3, false},
		{"three member id required", 3, true},
		{"eight", 8, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newT(t)
			cls := clients(c, "g", tc.members)
			for _, cl := range cls {
				cl.requireID = tc.require
			}
			joinAll(t, cls...)
			checkStable(t, cls...)
			for _, cl := range cls {
				if err := cl.heartbeat(); err != nil {
					t.Fatalf("heartbeat: %v", err)
				}
			}
		})
	}
}

func TestStableWithinOneSecond(t *testing.T) {
	c := openT(t, Options{FS: vfs.NewStrictMem(), Dir: testDir}) // default delay
	defer c.Close()
	cls := clients(c, "g", 3)
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var lastJoin time.Time
	errs := make([]error, 3)
	for i, cl := range cls {
		wg.Go(func() {
			time.Sleep(time.Duration(i) * 30 * time.Millisecond)
			mu.Lock()
			lastJoin = time.Now()
			mu.Unlock()
			errs[i] = cl.joinSync(ctx)
		})
	}
	wg.Wait()
	elapsed := time.Since(lastJoin)
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	checkStable(t, cls...)
	t.Logf("3 members stable %v after the last join (generation %d)", elapsed, cls[0].gen)
	if elapsed > 3*time.Second {
		t.Fatalf("took %v to become stable", elapsed)
	}

	// A rebalance of a running group completes as soon as all rejoin:
	// the leader's rejoin starts it, the others learn from Heartbeat.
	start := time.Now()
	rebalance(t, cls...)
	checkStable(t, cls...)
	t.Logf("rebalance of 3 members took %v", time.Since(start))
	if d := time.Since(start); d > 3*time.Second {
		t.Fatalf("rebalance took %v", d)
	}
}

// waitRebalance polls Heartbeat (as clients do) until it reports a
// rebalance.
func waitRebalance(t testing.TB, cl *client) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := cl.heartbeat()
		if errors.Is(err, ErrRebalanceInProgress) {
			return
		}
		if err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("no rebalance signalled")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNewMemberTriggersRebalance(t *testing.T) {
	c := newT(t)
	cls := clients(c, "g", 2)
	joinAll(t, cls...)
	gen := cls[0].gen
	late := newClient(c, "g")
	done := make(chan error, 1)
	go func() { done <- late.joinSync(context.Background()) }()
	for _, cl := range cls {
		waitRebalance(t, cl)
	}
	if d := c.DescribeGroups([]string{"g"})[0]; d.State != PreparingRebalance {
		t.Fatalf("state %s", d.State)
	}
	joinAll(t, cls...)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	all := append(cls, late)
	checkStable(t, all...)
	if late.gen != gen+1 {
		t.Fatalf("generation %d, want %d", late.gen, gen+1)
	}
}

func TestSessionTimeout(t *testing.T) {
	c := newT(t)
	cls := clients(c, "g", 2)
	for _, cl := range cls {
		cl.session = 200 * time.Millisecond
	}
	joinAll(t, cls...)
	alive, silent := cls[0], cls[1]
	start := time.Now()
	waitRebalance(t, alive) // heartbeats every 10 ms; silent never does
	t.Logf("silent member expired after %v", time.Since(start))
	joinAll(t, alive)
	checkStable(t, alive)
	if err := silent.heartbeat(); !errors.Is(err, ErrUnknownMemberID) {
		t.Fatalf("silent member's heartbeat: %v", err)
	}
	// The survivor stays as long as it heartbeats.
	for range 30 {
		time.Sleep(20 * time.Millisecond)
		if err := alive.heartbeat(); err != nil {
			t.Fatalf("heartbeat: %v", err)
		}
	}
	// Then expires too, leaving the group empty.
	time.Sleep(400 * time.Millisecond)
	if d := c.DescribeGroups([]string{"g"})[0]; d.State != Empty || len(d.Members) != 0 {
		t.Fatalf("after every session expired: %+v", d)
	}
}

func TestRebalanceTimeoutRemovesMembers(t *testing.T) {
	c := newT(t)
	cls := clients(c, "g", 2)
	for _, cl := range cls {
		cl.rebalance = 300 * time.Millisecond
	}
	joinAll(t, cls...)
	leader, follower := cls[0], cls[1]
	if !leader.leader {
		leader, follower = follower, leader
	}
	start := time.Now()
	joinAll(t, leader) // the leader's rejoin rebalances; the follower never rejoins
	if d := time.Since(start); d < 250*time.Millisecond {
		t.Fatalf("rebalance completed after %v, before the rebalance timeout", d)
	}
	checkStable(t, leader)
	if err := follower.heartbeat(); !errors.Is(err, ErrUnknownMemberID) {
		t.Fatalf("removed follower's heartbeat: %v", err)
	}
}

func TestLeave(t *testing.T) {
	c := newT(t)
	cls := clients(c, "g", 3)
	joinAll(t, cls...)
	errs, err := c.Leave("g", []LeaveMember{{MemberID: cls[2].id}, {MemberID: "nobody"}})
	if err != nil || errs[0] != nil || !errors.Is(errs[1], ErrUnknownMemberID) {
		t.Fatalf("leave: %v %v", errs, err)
	}
	waitRebalance(t, cls[0])
	joinAll(t, cls[0], cls[1])
	checkStable(t, cls[0], cls[1])
	if err := cls[2].heartbeat(); !errors.Is(err, ErrUnknownMemberID) {
		t.Fatalf("heartbeat after leave: %v", err)
	}
	if errs, _ := c.Leave("other", []LeaveMember{{MemberID: "x"}}); !errors.Is(errs[0], ErrUnknownMemberID) {
		t.Fatalf("leave of unknown group: %v", errs)
	}
	// Everyone leaving empties the group.
	if errs, _ := c.Leave("g", []LeaveMember{{MemberID: cls[0].id}, {MemberID: cls[1].id}}); errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	if d := c.DescribeGroups([]string{"g"})[0]; d.State != Empty {
		t.Fatalf("state %s", d.State)
	}
}

func TestMemberIDRequired(t *testing.T) {
	c := newT(t)
	req := newClient(c, "g").joinRequest()
	req.RequireKnownMemberID = true
	r := c.Join(context.Background(), req)
	if !errors.Is(r.Err, ErrMemberIDRequired) || r.MemberID == "" {
		t.Fatalf("first join: %+v", r)
	}
	req.MemberID = r.MemberID
	r2 := c.Join(context.Background(), req)
	if r2.Err != nil || r2.MemberID != r.MemberID || r2.LeaderID != r.MemberID || r2.Generation != 1 {
		t.Fatalf("second join: %+v", r2)
	}
	// A member id that was never handed out is unknown.
	req.MemberID = "made-up"
	if r := c.Join(context.Background(), req); !errors.Is(r.Err, ErrUnknownMemberID) {
		t.Fatalf("made-up member id: %+v", r)
	}
	// A pending member id expires after the session timeout.
	req.MemberID = ""
	req.SessionTimeout = 50 * time.Millisecond
	r3 := c.Join(context.Background(), req)
	if !errors.Is(r3.Err, ErrMemberIDRequired) {
		t.Fatal(r3.Err)
	}
	time.Sleep(150 * time.Millisecond)
	req.MemberID = r3.MemberID
	if r := c.Join(context.Background(), req); !errors.Is(r.Err, ErrUnknownMemberID) {
		t.Fatalf("expired pending member: %+v", r)
	}
}

func TestStaticMembership(t *testing.T) {
	c := newT(t)
	cls := clients(c, "g", 2)
	for i, cl := range cls {
		cl.instance = fmt.Sprintf("instance-%d", i)
	}
	joinAll(t, cls...)
	checkStable(t, cls...)
	gen := cls[0].gen

	for _, cl := range cls { // follower first, then the leader
		if cl.leader {
			continue
		}
		testStaticRestart(t, c, cl, cls, gen)
	}
	for _, cl := range cls {
		if cl.leader {
			testStaticRestart(t, c, cl, cls, gen)
		}
	}
	// A static member can leave by instance id.
	errs, _ := c.Leave("g", []LeaveMember{{InstanceID: cls[0].instance}, {InstanceID: "unknown"}, {MemberID: "wrong", InstanceID: cls[1].instance}})
	if errs[0] != nil || !errors.Is(errs[1], ErrUnknownMemberID) || !errors.Is(errs[2], ErrFencedInstanceID) {
		t.Fatalf("leave: %v", errs)
	}
}

// testStaticRestart restarts a static member (a new member id for its
// instance id) and checks that the old id is fenced and nothing rebalances.
func testStaticRestart(t *testing.T, c *Coordinator, cl *client, all []*client, gen int32) {
	t.Helper()
	oldID, oldAssignment := cl.id, string(cl.assignment)
	req := cl.joinRequest()
	req.MemberID = ""
	r := c.Join(context.Background(), req)
	if r.Err != nil || r.MemberID == oldID || r.Generation != gen || len(r.Members) != 0 || r.LeaderID == r.MemberID {
		t.Fatalf("static rejoin: %+v", r)
	}
	if err := c.Heartbeat("g", gen, oldID, cl.instance); !errors.Is(err, ErrFencedInstanceID) {
		t.Fatalf("old member id: %v", err)
	}
	cl.id = r.MemberID
	a, err := c.Sync(context.Background(), SyncRequest{Group: "g", Generation: gen, MemberID: cl.id, InstanceID: cl.instance})
	if err != nil || string(a) != oldAssignment {
		t.Fatalf("sync after static rejoin: %q %v", a, err)
	}
	for _, o := range all {
		if err := o.heartbeat(); err != nil {
			t.Fatalf("heartbeat after static rejoin: %v (no rebalance expected)", err)
		}
	}
	errs := c.CommitOffsets(CommitRequest{Group: "g", Generation: gen, MemberID: oldID, InstanceID: cl.instance,
		Offsets: []OffsetCommit{{Topic: "t", Partition: 0, Offset: 1}}})
	if !errors.Is(errs[0], ErrFencedInstanceID) {
		t.Fatalf("commit with the fenced id: %v", errs[0])
	}
}

func TestStaticRejoinWithNewProtocolRebalances(t *testing.T) {
	c := newT(t)
	cls := clients(c, "g", 2)
	for i, cl := range cls {
		cl.instance = fmt.Sprintf("i%d", i)
		cl.protocols = []Protocol{{Name: "sticky", Metadata: subscription("t")}, {Name: "range", Metadata: subscription("t")}}
	}
	joinAll(t, cls...)
	if d := c.DescribeGroups([]string{"g"})[0]; d.Protocol != "sticky" {
		t.Fatalf("protocol %q", d.Protocol)
	}
	gen := cls[0].gen
	// The restarted member only knows range now: the group must switch.
	cl := cls[1]
	if cl.leader {
		cl = cls[0]
	}
	cl.protocols = []Protocol{{Name: "range", Metadata: subscription("t")}}
	cl.id = ""
	done := make(chan error, 1)
	go func() { done <- cl.joinSync(context.Background()) }()
	other := cls[0]
	if other == cl {
		other = cls[1]
	}
	waitRebalance(t, other)
	joinAll(t, other)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if cl.gen != gen+1 || other.gen != gen+1 {
		t.Fatalf("generations %d %d, want %d", other.gen, cl.gen, gen+1)
	}
	if d := c.DescribeGroups([]string{"g"})[0]; d.Protocol != "range" {
		t.Fatalf("protocol %q", d.Protocol)
	}
}

func TestProtocolChecks(t *testing.T) {
	c := newT(t)
	cls := clients(c, "g", 1)
	joinAll(t, cls...)
	for _, tc := range []struct {
		name string
		mod  func(*JoinRequest)
		want error
	}{
		{"no common protocol", func(r *JoinRequest) { r.Protocols = []Protocol{{Name: "other"}} }, ErrInconsistentProtocol},
		{"other protocol type", func(r *JoinRequest) { r.ProtocolType = "connect" }, ErrInconsistentProtocol},
		{"no protocols", func(r *JoinRequest) { r.Protocols = nil }, ErrInconsistentProtocol},
		{"session too short", func(r *JoinRequest) { r.SessionTimeout = time.Millisecond }, ErrInvalidSessionTimeout},
		{"session too long", func(r *JoinRequest) { r.SessionTimeout = time.Hour }, ErrInvalidSessionTimeout},
		{"no group", func(r *JoinRequest) { r.Group = "" }, ErrInvalidGroupID},
		{"unknown member", func(r *JoinRequest) { r.MemberID = "nope" }, ErrUnknownMemberID},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := newClient(c, "g").joinRequest()
			tc.mod(&req)
			if r := c.Join(context.Background(), req); !errors.Is(r.Err, tc.want) {
				t.Fatalf("got %v, want %v", r.Err, tc.want)
			}
		})
	}
	if err := cls[0].heartbeat(); err != nil {
		t.Fatalf("refused joins disturbed the group: %v", err)
	}
	// Sync and heartbeat checks.
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"sync stale generation", syncErr(c, SyncRequest{Group: "g", Generation: cls[0].gen - 1, MemberID: cls[0].id}), ErrIllegalGeneration},
		{"sync unknown member", syncErr(c, SyncRequest{Group: "g", Generation: cls[0].gen, MemberID: "x"}), ErrUnknownMemberID},
		{"sync unknown group", syncErr(c, SyncRequest{Group: "h", Generation: 1, MemberID: "x"}), ErrUnknownMemberID},
		{"sync wrong protocol", syncErr(c, SyncRequest{Group: "g", Generation: cls[0].gen, MemberID: cls[0].id, ProtocolName: "x"}), ErrInconsistentProtocol},
		{"heartbeat stale generation", c.Heartbeat("g", cls[0].gen-1, cls[0].id, ""), ErrIllegalGeneration},
		{"heartbeat unknown member", c.Heartbeat("g", cls[0].gen, "x", ""), ErrUnknownMemberID},
		{"heartbeat unknown group", c.Heartbeat("h", 1, "x", ""), ErrUnknownMemberID},
		{"heartbeat no group", c.Heartbeat("", 1, "x", ""), ErrInvalidGroupID},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.err, tc.want)
		}
	}
}

func syncErr(c *Coordinator, req SyncRequest) error {
	_, err := c.Sync(context.Background(), req)
	return err
}

func TestSyncWaitsForLeaderAndRestarts(t *testing.T) {
	c := newT(t)
	a, b := newClient(c, "g"), newClient(c, "g")
	joinAll(t, a, b)
	// Both rejoin; the follower syncs and waits; a third member joins
	// before the leader syncs: the follower's sync must be told to rejoin.
	ctx := context.Background()
	leader, other := a, b
	if !leader.leader {
		leader, other = b, a
	}
	results := make(chan JoinResult, 2)
	go func() { results <- c.Join(ctx, leader.joinRequest()) }()
	waitRebalance(t, other)
	go func() { results <- c.Join(ctx, other.joinRequest()) }()
	r1, r2 := <-results, <-results
	if r1.Err != nil || r2.Err != nil {
		t.Fatal(r1.Err, r2.Err)
	}
	follower := r1
	if r1.LeaderID == r1.MemberID {
		follower = r2
	}
	syncDone := make(chan error, 1)
	go func() {
		_, err := c.Sync(ctx, SyncRequest{Group: "g", Generation: follower.Generation, MemberID: follower.MemberID})
		syncDone <- err
	}()
	time.Sleep(50 * time.Millisecond)
	select {
	case err := <-syncDone:
		t.Fatalf("follower's sync returned before the leader's: %v", err)
	default:
	}
	late := newClient(c, "g")
	go late.joinSync(ctx)
	if err := <-syncDone; !errors.Is(err, ErrRebalanceInProgress) {
		t.Fatalf("follower's sync: %v", err)
	}
}

func TestListDescribeStats(t *testing.T) {
	c := newT(t)
	joinAll(t, clients(c, "a", 2)...)
	if errs := c.CommitOffsets(CommitRequest{Group: "offsets-only", Generation: -1,
		Offsets: []OffsetCommit{{Topic: "t", Partition: 0, Offset: 5}}}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	l := c.ListGroups()
	want := []GroupListing{{"a", "consumer", Stable}, {"offsets-only", "", Empty}}
	if fmt.Sprint(l) != fmt.Sprint(want) {
		t.Fatalf("ListGroups: %v, want %v", l, want)
	}
	ds := c.DescribeGroups([]string{"a", "offsets-only", "nope", ""})
	if ds[0].State != Stable || len(ds[0].Members) != 2 || ds[0].Members[0].ClientID != "test-client" ||
		ds[1].State != Empty || ds[2].State != Dead || ds[2].Err != nil || !errors.Is(ds[3].Err, ErrInvalidGroupID) {
		t.Fatalf("DescribeGroups: %+v", ds)
	}
	st := c.Stats()
	if len(st) != 2 || st[0] != (GroupStats{"a", Stable, 2, 1}) || st[1] != (GroupStats{"offsets-only", Empty, 0, 0}) {
		t.Fatalf("Stats: %+v", st)
	}
	if m := c.CommittedOffsets("offsets-only"); len(m) != 1 || m[TopicPartition{"t", 0}] != 5 {
		t.Fatalf("CommittedOffsets: %v", m)
	}
}

func TestKafkaCode(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int16
	}{
		{nil, 0},
		{ErrUnknownTopic, 3},
		{ErrCoordinatorNotAvailable, 15},
		{fmt.Errorf("%w: detail", ErrCoordinatorNotAvailable), 15},
		{ErrIllegalGeneration, 22},
		{ErrInconsistentProtocol, 23},
		{ErrInvalidGroupID, 24},
		{ErrUnknownMemberID, 25},
		{ErrInvalidSessionTimeout, 26},
		{ErrRebalanceInProgress, 27},
		{ErrNonEmptyGroup, 68},
		{ErrGroupIDNotFound, 69},
		{ErrMemberIDRequired, 79},
		{ErrFencedInstanceID, 82},
		{errors.New("other"), -1},
	} {
		if got := KafkaCode(tc.err); got != tc.code {
			t.Errorf("KafkaCode(%v) = %d, want %d", tc.err, got, tc.code)
		}
	}
}

func TestCloseReleasesWaiters(t *testing.T) {
	c := openT(t, testOptions(vfs.NewStrictMem()))
	a := newClient(c, "g")
	a.rebalance = time.Minute
	joinAll(t, a)
	b := newClient(c, "g") // its join waits for a to rejoin
	done := make(chan error, 1)
	go func() { done <- b.joinSync(context.Background()) }()
	time.Sleep(50 * time.Millisecond)
	c.Close()
	if err := <-done; !errors.Is(err, ErrCoordinatorNotAvailable) {
		t.Fatalf("waiting join after Close: %v", err)
	}
	if r := c.Join(context.Background(), a.joinRequest()); !errors.Is(r.Err, ErrCoordinatorNotAvailable) {
		t.Fatalf("join after Close: %v", r.Err)
	}
}

// rebalance makes the leader of cls rejoin, which starts a rebalance, and
// the followers rejoin once Heartbeat tells them to.
func rebalance(t testing.TB, cls ...*client) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(cls))
	for i, cl := range cls {
		wg.Go(func() {
			if !cl.leader {
				for {
					err := cl.heartbeat()
					if errors.Is(err, ErrRebalanceInProgress) {
						break
					}
					if err != nil {
						errs[i] = err
						return
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			errs[i] = cl.joinSync(context.Background())
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// BenchmarkRebalance3 measures a full rebalance of a stable group of three:
// the leader rejoins, the followers learn it from Heartbeat, everyone joins
// and syncs.
func BenchmarkRebalance3(b *testing.B) {
	c := newT(b)
	cls := clients(c, "g", 3)
	joinAll(b, cls...)
	ctx := context.Background()
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		var wg sync.WaitGroup
		errs := make([]error, len(cls))
		for i, cl := range cls {
			wg.Go(func() {
				if !cl.leader {
					for {
						err := cl.heartbeat()
						if errors.Is(err, ErrRebalanceInProgress) {
							break
						}
						if err != nil {
							errs[i] = err
							return
						}
						runtime.Gosched()
					}
				}
				errs[i] = cl.joinSync(ctx)
			})
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "rebalances/s")
	checkStable(b, cls...)
}

func TestEmptyGroupsExpire(t *testing.T) {
	opts := testOptions(vfs.NewStrictMem())
	opts.EmptyGroupRetention = 50 * time.Millisecond
	c := openT(t, opts)
	defer c.Close()
	for _, g := range []string{"with-offsets", "without"} {
		cls := clients(c, g, 1)
		joinAll(t, cls...)
		if g == "with-offsets" {
			if errs := commit(c, g, cls[0].gen, cls[0].id, OffsetCommit{Topic: "t", Offset: 1}); errs[0] != nil {
				t.Fatal(errs[0])
			}
		}
		c.Leave(g, []LeaveMember{{MemberID: cls[0].id}})
	}
	want := []GroupListing{{"with-offsets", "consumer", Empty}, {"without", "consumer", Empty}}
	if l := c.ListGroups(); fmt.Sprint(l) != fmt.Sprint(want) {
		t.Fatalf("ListGroups: %v", l)
	}
	time.Sleep(200 * time.Millisecond)
	want = want[:1]
	if l := c.ListGroups(); fmt.Sprint(l) != fmt.Sprint(want) {
		t.Fatalf("ListGroups after the retention: %v", l)
	}
	c.mu.Lock()
	n := len(c.groups)
	c.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d group objects kept", n)
	}
	// A forgotten group can be joined again.
	joinAll(t, clients(c, "without", 1)...)
}
