package main

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// offsetsOf is a group's committed offsets: topic → partition → offset.
type offsetsOf map[string]map[int32]int64

// testAdmin returns an admin client for brokers, closed with the test.
func testAdmin(t *testing.T, brokers string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(strings.Split(brokers, ",")...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// commitOffsets commits offsets for group as a standalone (memberless)
// commit.
func commitOffsets(t *testing.T, ctx context.Context, adm *kadm.Client, group string, offs offsetsOf) {
	t.Helper()
	var ko kadm.Offsets
	for topic, ps := range offs {
		for p, at := range ps {
			ko.Add(kadm.Offset{Topic: topic, Partition: p, At: at, LeaderEpoch: -1})
		}
	}
	if err := adm.CommitAllOffsets(ctx, group, ko); err != nil {
		t.Fatalf("committing %v for group %s: %v", offs, group, err)
	}
}

// committed returns what group has committed.
func committed(t *testing.T, ctx context.Context, adm *kadm.Client, group string) offsetsOf {
	t.Helper()
	rs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetching offsets of group %s: %v", group, err)
	}
	out := offsetsOf{}
	rs.Each(func(r kadm.OffsetResponse) {
		if r.Err != nil {
			t.Fatalf("fetching offset of group %s, %s/%d: %v", group, r.Topic, r.Partition, r.Err)
		}
		if out[r.Topic] == nil {
			out[r.Topic] = map[int32]int64{}
		}
		out[r.Topic][r.Partition] = r.At
	})
	return out
}

func (o offsetsOf) String() string {
	var b strings.Builder
	for _, t := range sortedKeys(o) {
		for p := int32(0); p < 64; p++ {
			if at, ok := o[t][p]; ok {
				fmt.Fprintf(&b, "%s/%d=%d ", t, p, at)
			}
		}
	}
	return strings.TrimSpace(b.String())
}

func sortedKeys(o offsetsOf) []string {
	ks := make([]string, 0, len(o))
	for k := range o {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// lines returns n newline-terminated records.
func lines(n int) string { return strings.Repeat("x\n", n) }

func TestGroupOffsets(t *testing.T) {
	brokers := startTestCluster(t)
	ctx := testContext(t)
	adm := testAdmin(t, brokers)
	a, b := testTopic(t)+"-a", testTopic(t)+"-b"
	group := testTopic(t) + "-g"
	fresh := testTopic(t) + "-fresh"
	missing := testTopic(t) + "-missing"

	// a: partition 0 gets offsets 0-4, then (after mid) 5-6; partition 1
	// gets 0-2. b: 0-3.
	mustRun(t, ctx, brokers, "", "topic", "create", a, "--partitions", "2")
	mustRun(t, ctx, brokers, "", "topic", "create", b)
	mustRun(t, ctx, brokers, lines(5), "produce", a, "--partition", "0")
	mustRun(t, ctx, brokers, lines(3), "produce", a, "--partition", "1")
	mustRun(t, ctx, brokers, lines(4), "produce", b)
	time.Sleep(50 * time.Millisecond)
	mid := time.Now()
	time.Sleep(50 * time.Millisecond)
	mustRun(t, ctx, brokers, lines(2), "produce", a, "--partition", "0")
	commitOffsets(t, ctx, adm, group, offsetsOf{a: {0: 2, 1: 3}, b: {0: 1}})

	q := regexp.QuoteMeta
	steps := []struct {
		desc    string
		args    []string
		wantErr string    // substring of the error; "" means success
		errIs   error     // if set, the error must wrap it
		want    []string  // regexps stdout must match
		notWant []string  // regexps stdout must not match
		group   offsetsOf // if set, what group must have committed afterwards
	}{
		{
			desc: "list",
			args: []string{"group", "list"},
			want: []string{`(?m)^GROUP\s+STATE\s+PROTOCOL TYPE\s+MEMBERS\s*$`, `(?m)^` + q(group) + `\s+Empty\s+\S+\s+0\s*$`},
		},
		{
			desc: "describe shows lag",
			args: []string{"group", "describe", group},
			want: []string{
				`(?m)^group:\s+` + q(group) + `$`,
				`(?m)^state:\s+Empty$`,
				`(?m)^members:\s+0$`,
				`(?m)^TOPIC\s+PARTITION\s+COMMITTED\s+END\s+LAG`,
				`(?m)^` + q(a) + `\s+0\s+2\s+7\s+5\s+-\s*$`,
				`(?m)^` + q(a) + `\s+1\s+3\s+3\s+0\s+-\s*$`,
				`(?m)^` + q(b) + `\s+0\s+1\s+4\s+3\s+-\s*$`,
				`(?m)^total lag:\s+8$`,
			},
			notWant: []string{`MEMBER ID`, `lag unknown`},
		},
		{
			desc:    "describe unknown group",
			args:    []string{"group", "describe", missing},
			wantErr: `group "` + missing + `" does not exist`,
			errIs:   kerr.GroupIDNotFound,
		},
		{
			desc:  "dry run changes nothing",
			args:  []string{"group", "reset-offsets", group, "--topic", a, "--to-earliest", "--dry-run"},
			want:  []string{`(?m)^TOPIC\s+PARTITION\s+OLD\s+NEW\s*$`, `(?m)^` + q(a) + `\s+0\s+2\s+0\s*$`, `(?m)^` + q(a) + `\s+1\s+3\s+0\s*$`, `dry run: 2 offsets`},
			group: offsetsOf{a: {0: 2, 1: 3}, b: {0: 1}},
		},
		{
			desc:    "earliest, one partition",
			args:    []string{"group", "reset-offsets", group, "--to-earliest", "--topic", a, "--partition", "0"},
			want:    []string{`(?m)^` + q(a) + `\s+0\s+2\s+0\s*$`, `committed 1 offset for group`},
			notWant: []string{`(?m)^` + q(a) + `\s+1\s`},
			group:   offsetsOf{a: {0: 0, 1: 3}, b: {0: 1}},
		},
		{
			desc:  "latest, all committed topics",
			args:  []string{"group", "reset-offsets", group, "--to-latest"},
			want:  []string{`(?m)^` + q(a) + `\s+0\s+0\s+7\s*$`, `(?m)^` + q(a) + `\s+1\s+3\s+3\s*$`, `(?m)^` + q(b) + `\s+0\s+1\s+4\s*$`, `committed 3 offsets`},
			group: offsetsOf{a: {0: 7, 1: 3}, b: {0: 4}},
		},
		{
			desc:  "offset",
			args:  []string{"group", "reset-offsets", group, "--topic", a, "--to-offset", "1"},
			want:  []string{`(?m)^` + q(a) + `\s+0\s+7\s+1\s*$`, `(?m)^` + q(a) + `\s+1\s+3\s+1\s*$`},
			group: offsetsOf{a: {0: 1, 1: 1}, b: {0: 4}},
		},
		{
			desc:  "offset past the end is clamped",
			args:  []string{"group", "reset-offsets", group, "--topic", a, "--topic", b, "--to-offset", "100"},
			want:  []string{`(?m)^` + q(a) + `\s+0\s+1\s+7\s*$`, `(?m)^` + q(a) + `\s+1\s+1\s+3\s*$`, `(?m)^` + q(b) + `\s+0\s+4\s+4\s*$`},
			group: offsetsOf{a: {0: 7, 1: 3}, b: {0: 4}},
		},
		{
			desc:  "time",
			args:  []string{"group", "reset-offsets", group, "--topic", a, "--to-time", mid.UTC().Format(time.RFC3339Nano)},
			want:  []string{`(?m)^` + q(a) + `\s+0\s+7\s+5\s*$`, `(?m)^` + q(a) + `\s+1\s+3\s+3\s*$`},
			group: offsetsOf{a: {0: 5, 1: 3}, b: {0: 4}},
		},
		{
			desc:  "time as a duration ago",
			args:  []string{"group", "reset-offsets", group, "--topic", b, "--to-time", "-1h"},
			want:  []string{`(?m)^` + q(b) + `\s+0\s+4\s+0\s*$`},
			group: offsetsOf{a: {0: 5, 1: 3}, b: {0: 0}},
		},
		{
			desc: "describe after resets",
			args: []string{"group", "describe", group},
			want: []string{`(?m)^` + q(a) + `\s+0\s+5\s+7\s+2\s`, `(?m)^` + q(b) + `\s+0\s+0\s+4\s+4\s`, `(?m)^total lag:\s+6$`},
		},
		{
			desc:  "reset of a new group creates it",
			args:  []string{"group", "reset-offsets", fresh, "--topic", b, "--to-latest"},
			want:  []string{`(?m)^` + q(b) + `\s+0\s+-\s+4\s*$`},
			group: nil, // checked below
		},
		{
			desc: "new group is described",
			args: []string{"group", "describe", fresh},
			want: []string{`(?m)^` + q(b) + `\s+0\s+4\s+4\s+0\s`, `(?m)^total lag:\s+0$`},
		},
		{
			desc:    "new group without --topic",
			args:    []string{"group", "reset-offsets", missing, "--to-earliest"},
			wantErr: `group "` + missing + `" does not exist`,
		},
		{
			desc: "delete",
			args: []string{"group", "delete", fresh},
			want: []string{`deleted group "` + q(fresh) + `"`},
		},
		{
			desc:    "describe deleted",
			args:    []string{"group", "describe", fresh},
			wantErr: `group "` + fresh + `" does not exist`,
		},
		{
			desc:    "delete deleted",
			args:    []string{"group", "delete", fresh},
			wantErr: `group "` + fresh + `" does not exist`,
			errIs:   kerr.GroupIDNotFound,
		},
		{
			desc:    "list no longer shows it",
			args:    []string{"group", "list"},
			want:    []string{q(group)},
			notWant: []string{q(fresh)},
		},
		{desc: "no mode", args: []string{"group", "reset-offsets", group}, wantErr: "say where to move"},
		{desc: "two modes", args: []string{"group", "reset-offsets", group, "--to-earliest", "--to-latest"}, wantErr: "--to-earliest and --to-latest cannot be combined"},
		{desc: "bad offset", args: []string{"group", "reset-offsets", group, "--to-offset", "-3"}, wantErr: "invalid --to-offset"},
		{desc: "bad time", args: []string{"group", "reset-offsets", group, "--to-time", "yesterday"}, wantErr: "invalid --to-time"},
		{desc: "partition without topic", args: []string{"group", "reset-offsets", group, "--to-earliest", "--partition", "0"}, wantErr: "--partition needs --topic"},
		{desc: "no such partition", args: []string{"group", "reset-offsets", group, "--to-earliest", "--topic", a, "--partition", "9"}, wantErr: "has no partition 9"},
		{desc: "no such topic", args: []string{"group", "reset-offsets", group, "--to-earliest", "--topic", missing}, wantErr: `topic "` + missing + `" does not exist`, errIs: kerr.UnknownTopicOrPartition},
		{desc: "no subcommand", args: []string{"group"}, wantErr: "no command"},
		{desc: "bad subcommand", args: []string{"group", "frob"}, wantErr: `unknown command "frob"`},
		{desc: "describe without name", args: []string{"group", "describe"}, wantErr: "missing group name"},
		{desc: "describe two names", args: []string{"group", "describe", "x", "y"}, wantErr: "want one group name"},
		{desc: "delete without name", args: []string{"group", "delete"}, wantErr: "missing group name"},
		{desc: "list with arguments", args: []string{"group", "list", "x"}, wantErr: "unexpected arguments"},
	}
	for _, st := range steps {
		r := runCLI(t, ctx, brokers, "", st.args...)
		t.Logf("%s: samsa %s\n%s%s(error: %v)", st.desc, strings.Join(st.args, " "), r.stdout, r.stderr, r.err)
		if st.wantErr != "" {
			if r.err == nil || !strings.Contains(r.err.Error(), st.wantErr) {
				t.Fatalf("%s: got error %v, want one containing %q\nstdout: %s", st.desc, r.err, st.wantErr, r.stdout)
			}
			if st.errIs != nil && !errors.Is(r.err, st.errIs) {
				t.Errorf("%s: error %v does not wrap %v", st.desc, r.err, st.errIs)
			}
			continue
		}
		if r.err != nil {
			t.Fatalf("%s: %v\nstdout: %s\nstderr: %s", st.desc, r.err, r.stdout, r.stderr)
		}
		for _, re := range st.want {
			if !regexp.MustCompile(re).MatchString(r.stdout) {
				t.Errorf("%s: stdout does not match %s:\n%s", st.desc, re, r.stdout)
			}
		}
		for _, re := range st.notWant {
			if regexp.MustCompile(re).MatchString(r.stdout) {
				t.Errorf("%s: stdout matches %s but should not:\n%s", st.desc, re, r.stdout)
			}
		}
		if st.group != nil {
			if got := committed(t, ctx, adm, group); got.String() != st.group.String() {
				t.Errorf("%s: group committed %v, want %v", st.desc, got, st.group)
			}
		}
	}
}

// startMember joins group as a consumer of topic, consumes until it has n
// records, commits them, and returns the client (still a member).
func startMember(t *testing.T, ctx context.Context, brokers, group, topic string, n int) *kgo.Client {
	t.Helper()
	assigned := make(chan struct{}, 1)
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(strings.Split(brokers, ",")...),
		kgo.ClientID("group-test-member"),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(func(context.Context, *kgo.Client, map[string][]int32) {
			select {
			case assigned <- struct{}{}:
			default:
			}
		}),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	got := 0
	for got < n {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("consumed %d of %d records: %v", got, n, err)
		}
		fs.EachError(func(t2 string, p int32, err error) { t.Logf("fetch %s/%d: %v", t2, p, err) })
		got += fs.NumRecords()
	}
	<-assigned
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatalf("committing as a member: %v", err)
	}
	return cl
}

// waitGroupState waits until group is in state.
func waitGroupState(t *testing.T, ctx context.Context, adm *kadm.Client, group, state string) {
	t.Helper()
	var last string
	for {
		ds, err := adm.DescribeGroups(ctx, group)
		if err == nil {
			last = ds[group].State
			if last == state {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("group %s is %q, want %q (err %v)", group, last, state, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestGroupWithActiveMember(t *testing.T) {
	brokers := startTestCluster(t)
	ctx := testContext(t)
	adm := testAdmin(t, brokers)
	topic := testTopic(t)
	group := testTopic(t) + "-g"
	q := regexp.QuoteMeta

	mustRun(t, ctx, brokers, "", "topic", "create", topic, "--partitions", "2")
	mustRun(t, ctx, brokers, lines(3), "produce", topic, "--partition", "0")
	mustRun(t, ctx, brokers, lines(2), "produce", topic, "--partition", "1")
	member := startMember(t, ctx, brokers, group, topic, 5)
	mustRun(t, ctx, brokers, lines(2), "produce", topic, "--partition", "0")
	waitGroupState(t, ctx, adm, group, "Stable")

	steps := []struct {
		desc    string
		args    []string
		wantErr string
		errIs   error
		want    []string
		stderr  string
	}{
		{
			desc: "list",
			args: []string{"group", "list"},
			want: []string{`(?m)^` + q(group) + `\s+Stable\s+consumer\s+1\s*$`},
		},
		{
			desc: "describe",
			args: []string{"group", "describe", group},
			want: []string{
				`(?m)^state:\s+Stable$`,
				`(?m)^protocol:\s+consumer \(\S+\)$`,
				`(?m)^members:\s+1$`,
				`(?m)^MEMBER ID\s+INSTANCE ID\s+CLIENT ID\s+HOST\s+ASSIGNMENT\s*$`,
				`(?m)^\S+\s+-\s+group-test-member\s+\S+\s+` + q(topic) + `\[0,1\]\s*$`,
				`(?m)^` + q(topic) + `\s+0\s+3\s+5\s+2\s+\S+\s*$`,
				`(?m)^` + q(topic) + `\s+1\s+2\s+2\s+0\s+\S+\s*$`,
				`(?m)^total lag:\s+2$`,
			},
		},
		{
			desc:    "delete refuses",
			args:    []string{"group", "delete", group},
			wantErr: `group "` + group + `" has active members; stop them first (NON_EMPTY_GROUP)`,
			errIs:   kerr.NonEmptyGroup,
		},
		{
			desc:    "reset refuses",
			args:    []string{"group", "reset-offsets", group, "--to-earliest"},
			wantErr: `group "` + group + `" has active members (1); stop them first`,
		},
		{
			desc:   "dry run warns",
			args:   []string{"group", "reset-offsets", group, "--to-earliest", "--dry-run"},
			want:   []string{`(?m)^` + q(topic) + `\s+0\s+3\s+0\s*$`, `dry run`},
			stderr: "has 1 active member;",
		},
	}
	for _, st := range steps {
		r := runCLI(t, ctx, brokers, "", st.args...)
		t.Logf("%s: samsa %s\n%s%s(error: %v)", st.desc, strings.Join(st.args, " "), r.stdout, r.stderr, r.err)
		if st.wantErr != "" {
			if r.err == nil || !strings.Contains(r.err.Error(), st.wantErr) {
				t.Fatalf("%s: got error %v, want one containing %q\nstdout: %s", st.desc, r.err, st.wantErr, r.stdout)
			}
			if st.errIs != nil && !errors.Is(r.err, st.errIs) {
				t.Errorf("%s: error %v does not wrap %v", st.desc, r.err, st.errIs)
			}
			continue
		}
		if r.err != nil {
			t.Fatalf("%s: %v\nstderr: %s", st.desc, r.err, r.stderr)
		}
		for _, re := range st.want {
			if !regexp.MustCompile(re).MatchString(r.stdout) {
				t.Errorf("%s: stdout does not match %s:\n%s", st.desc, re, r.stdout)
			}
		}
		if !strings.Contains(r.stderr, st.stderr) {
			t.Errorf("%s: stderr %q does not contain %q", st.desc, r.stderr, st.stderr)
		}
	}
	if got, want := committed(t, ctx, adm, group).String(), (offsetsOf{topic: {0: 3, 1: 2}}).String(); got != want {
		t.Errorf("after refused resets the group committed %s, want %s", got, want)
	}

	// A standalone commit racing with a member is refused by the broker;
	// the CLI explains that the same way.
	var ko kadm.Offsets
	ko.Add(kadm.Offset{Topic: topic, Partition: 0, At: 0, LeaderEpoch: -1})
	rs, err := adm.CommitOffsets(ctx, group, ko)
	if err == nil {
		err = rs.Error()
	}
	if err == nil {
		t.Errorf("standalone commit while the group has a member succeeded")
	} else if e := commitErr(group, err); !strings.Contains(e.Error(), "has active members; stop them first") {
		t.Errorf("broker refused the standalone commit with %v, which commitErr explains as %q", err, e)
	} else {
		t.Logf("standalone commit refused: %v", err)
	}

	// Once the member leaves, the group is Empty and can be reset and
	// deleted.
	member.Close()
	waitGroupState(t, ctx, adm, group, "Empty")
	mustRun(t, ctx, brokers, "", "group", "reset-offsets", group, "--to-earliest")
	if got, want := committed(t, ctx, adm, group).String(), (offsetsOf{topic: {0: 0, 1: 0}}).String(); got != want {
		t.Errorf("after reset the group committed %s, want %s", got, want)
	}
	r := mustRun(t, ctx, brokers, "", "group", "delete", group)
	if !strings.Contains(r.stdout, `deleted group "`+group+`"`) {
		t.Errorf("delete printed %q", r.stdout)
	}
	r = runCLI(t, ctx, brokers, "", "group", "describe", group)
	if !errors.Is(r.err, kerr.GroupIDNotFound) {
		t.Errorf("describe after delete: %v, want group does not exist", r.err)
	}
}

func TestCommitErr(t *testing.T) {
	tests := []struct {
		err    error
		active bool
	}{
		{kerr.UnknownMemberID, true},
		{kerr.IllegalGeneration, true},
		{kerr.RebalanceInProgress, true},
		{fmt.Errorf("x: %w", kerr.NonEmptyGroup), true},
		{kerr.GroupAuthorizationFailed, false},
		{kerr.UnknownTopicOrPartition, false},
	}
	for _, tt := range tests {
		e := commitErr("g", tt.err)
		var ae *groupActiveError
		if errors.As(e, &ae) != tt.active || !errors.Is(e, tt.err) {
			t.Errorf("commitErr(%v) = %v; active %v, want %v (and wrapping the cause)", tt.err, e, errors.As(e, &ae), tt.active)
		}
	}
}

// Offsets committed for a topic that was deleted since must not break
// describe or reset-offsets (Kafka drops such offsets; other brokers keep
// them).
func TestGroupWithDeletedTopic(t *testing.T) {
	brokers := startTestCluster(t)
	ctx := testContext(t)
	adm := testAdmin(t, brokers)
	kept, gone := testTopic(t)+"-kept", testTopic(t)+"-gone"
	group := testTopic(t) + "-g"
	q := regexp.QuoteMeta
	for _, topic := range []string{kept, gone} {
		mustRun(t, ctx, brokers, "", "topic", "create", topic)
		mustRun(t, ctx, brokers, lines(2), "produce", topic)
	}
	commitOffsets(t, ctx, adm, group, offsetsOf{kept: {0: 1}, gone: {0: 1}})
	mustRun(t, ctx, brokers, "", "topic", "delete", gone)

	r := mustRun(t, ctx, brokers, "", "group", "describe", group)
	t.Logf("describe:\n%s", r.stdout)
	for _, re := range []string{`(?m)^` + q(kept) + `\s+0\s+1\s+2\s+1\s`, `(?m)^total lag:\s+1$`} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("describe does not match %s:\n%s", re, r.stdout)
		}
	}
	if regexp.MustCompile(`(?m)^` + q(gone) + `\s+(-1|0\s+\S+\s+\d)`).MatchString(r.stdout) {
		t.Errorf("describe shows a partition -1 or an end offset for the deleted topic:\n%s", r.stdout)
	}

	r = mustRun(t, ctx, brokers, "", "group", "reset-offsets", group, "--to-earliest")
	t.Logf("reset:\n%s%s", r.stdout, r.stderr)
	if got, want := committed(t, ctx, adm, group)[kept][0], int64(0); got != want {
		t.Errorf("%s/0 committed %d after reset, want %d", kept, got, want)
	}
	if regexp.MustCompile(`(?m)^` + q(gone)).MatchString(r.stdout) {
		t.Errorf("reset-offsets reset the deleted topic:\n%s", r.stdout)
	}
}
