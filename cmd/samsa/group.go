package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

const groupUsage = `usage: samsa group <command> [flags]

commands:
  list
  describe GROUP
  delete GROUP [GROUP ...]
  reset-offsets GROUP [--topic T ...] [--partition N]
                (--to-earliest | --to-latest | --to-offset N | --to-time TIME) [--dry-run]

run 'samsa group <command> -h' for a command's flags
`

// runGroup is `samsa group`: consumer group administration over the Kafka
// protocol.
func runGroup(ctx context.Context, env *cliEnv, args []string) error {
	return runSubcommand(ctx, env, "group", groupUsage, subcommands{
		"list":          groupList,
		"ls":            groupList,
		"describe":      groupDescribe,
		"desc":          groupDescribe,
		"delete":        groupDelete,
		"rm":            groupDelete,
		"reset-offsets": groupResetOffsets,
		"reset":         groupResetOffsets,
	}, args)
}

// groupNotFoundError says a group does not exist. It unwraps to
// kerr.GroupIDNotFound.
type groupNotFoundError struct{ group string }

func (e *groupNotFoundError) Error() string { return fmt.Sprintf("group %q does not exist", e.group) }
func (e *groupNotFoundError) Unwrap() error { return kerr.GroupIDNotFound }

// groupActiveError says an operation needs a group without members. It
// unwraps to the broker's error (NON_EMPTY_GROUP, UNKNOWN_MEMBER_ID, ...), or
// to kerr.NonEmptyGroup when the CLI refused on its own.
type groupActiveError struct {
	group   string
	members int // 0 if unknown
	err     error
}

func (e *groupActiveError) Error() string {
	n := ""
	if e.members > 0 {
		n = fmt.Sprintf(" (%d)", e.members)
	}
	msg := fmt.Sprintf("group %q has active members%s; stop them first", e.group, n)
	var ke *kerr.Error
	if errors.As(e.err, &ke) {
		msg += " (" + ke.Message + ")"
	}
	return msg
}

func (e *groupActiveError) Unwrap() error {
	if e.err == nil {
		return kerr.NonEmptyGroup
	}
	return e.err
}

func groupList(ctx context.Context, env *cliEnv, args []string) error {
	fs, cf := newClientFlagSet(env, "group list", "group list [flags]")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs("group list", pos); err != nil {
		return err
	}
	s, err := cf.admin(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	listed, err := s.adm.ListGroups(s.ctx)
	if err != nil {
		return fmt.Errorf("listing groups: %w", cf.brokerErr(err))
	}
	// ListGroups has no member counts; DescribeGroups has. A group that
	// cannot be described (for example a KIP-848 group on a broker that
	// only describes classic groups) shows "-".
	var described kadm.DescribedGroups
	if names := listed.Groups(); len(names) > 0 {
		described, err = s.adm.DescribeGroups(s.ctx, names...)
		if err != nil && described == nil {
			return fmt.Errorf("describing groups: %w", cf.brokerErr(err))
		}
	}
	tw := newTable(env.stdout)
	fmt.Fprintln(tw, "GROUP\tSTATE\tPROTOCOL TYPE\tMEMBERS")
	for _, lg := range listed.Sorted() {
		state, ptype, members := lg.State, lg.ProtocolType, "-"
		if d, ok := described[lg.Group]; ok && d.Err == nil {
			members = strconv.Itoa(len(d.Members))
			if state == "" {
				state = d.State
			}
			if ptype == "" {
				ptype = d.ProtocolType
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", lg.Group, dash(state), dash(ptype), members)
	}
	return tw.Flush()
}

// describeGroup describes one group and fetches its committed offsets. It
// returns a *groupNotFoundError for a group the broker does not know: Dead
// (or GROUP_ID_NOT_FOUND) and without committed offsets.
func describeGroup(ctx context.Context, cf *clientFlags, adm *kadm.Client, group string) (kadm.DescribedGroup, kadm.OffsetResponses, error) {
	ds, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return kadm.DescribedGroup{}, nil, fmt.Errorf("describing group %q: %w", group, cf.brokerErr(err))
	}
	d, ok := ds[group]
	if !ok {
		return kadm.DescribedGroup{}, nil, fmt.Errorf("describing group %q: the broker's answer does not mention the group", group)
	}
	dead := d.State == "Dead" || errors.Is(d.Err, kerr.GroupIDNotFound)
	if d.Err != nil && !dead {
		return d, nil, fmt.Errorf("describing group %q: %w", group, withMessage(d.Err, d.ErrMessage))
	}
	offs, err := adm.FetchOffsets(ctx, group)
	switch {
	case errors.Is(err, kerr.GroupIDNotFound):
		offs = kadm.OffsetResponses{}
	case err != nil:
		return d, nil, fmt.Errorf("fetching committed offsets of group %q: %w", group, cf.brokerErr(err))
	}
	if dead {
		if len(offs.Offsets()) == 0 {
			return d, offs, &groupNotFoundError{group}
		}
		d.Err, d.ErrMessage = nil, ""
	}
	return d, offs, nil
}

func groupDescribe(ctx context.Context, env *cliEnv, args []string) error {
	fs, cf := newClientFlagSet(env, "group describe", "group describe GROUP [flags]")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	group, err := oneArg("group describe", "group name", pos)
	if err != nil {
		return err
	}
	s, err := cf.admin(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	d, offs, err := describeGroup(s.ctx, cf, s.adm, group)
	if err != nil {
		return err
	}

	// Start and end offsets of every topic the group is assigned, wants,
	// or has committed to; then kadm works out the lag per partition.
	topicSet := d.AssignedPartitions()
	topicSet.MergeTopics(d.JoinTopics())
	topicSet.Merge(offs.Partitions())
	var starts, ends kadm.ListedOffsets
	if topics := topicSet.Topics(); len(topics) > 0 {
		if starts, err = s.adm.ListStartOffsets(s.ctx, topics...); err != nil && starts == nil {
			return fmt.Errorf("listing start offsets: %w", cf.brokerErr(err))
		}
		if ends, err = s.adm.ListEndOffsets(s.ctx, topics...); err != nil && ends == nil {
			return fmt.Errorf("listing end offsets: %w", cf.brokerErr(err))
		}
		missingTopics(starts, topicSet)
		missingTopics(ends, topicSet)
	}
	lag := kadm.CalculateGroupLagWithStartOffsets(d, offs, starts, ends)

	w := env.stdout
	fmt.Fprintf(w, "group:        %s\n", group)
	fmt.Fprintf(w, "state:        %s\n", dash(d.State))
	proto := dash(d.ProtocolType)
	if d.Protocol != "" {
		proto += " (" + d.Protocol + ")"
	}
	fmt.Fprintf(w, "protocol:     %s\n", proto)
	if d.Coordinator.Host != "" {
		fmt.Fprintf(w, "coordinator:  %d (%s:%d)\n", d.Coordinator.NodeID, d.Coordinator.Host, d.Coordinator.Port)
	}
	fmt.Fprintf(w, "members:      %d\n", len(d.Members))
	if len(d.Members) > 0 {
		fmt.Fprintln(w)
		tw := newTable(w)
		fmt.Fprintln(tw, "MEMBER ID\tINSTANCE ID\tCLIENT ID\tHOST\tASSIGNMENT")
		for _, m := range d.Members {
			inst := "-"
			if m.InstanceID != nil {
				inst = *m.InstanceID
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.MemberID, inst, dash(m.ClientID), dash(m.ClientHost), assignment(m))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}

	fmt.Fprintln(w)
	rows := lag.Sorted()
	if len(rows) == 0 {
		fmt.Fprintln(w, "offsets:      (none committed and no partitions assigned)")
		return nil
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tCOMMITTED\tEND\tLAG\tMEMBER")
	var problems []string
	for _, r := range rows {
		committed, end, l, member := "-", "-", "-", "-"
		if r.Commit.At >= 0 {
			committed = strconv.FormatInt(r.Commit.At, 10)
		}
		if r.End.Err == nil && r.End.Offset >= 0 {
			end = strconv.FormatInt(r.End.Offset, 10)
		}
		if r.Err == nil && r.Lag >= 0 {
			l = strconv.FormatInt(r.Lag, 10)
		} else if r.Err != nil {
			why := r.Err.Error()
			if errors.Is(r.Err, kerr.UnknownTopicOrPartition) {
				why = "the topic or partition no longer exists"
			}
			problems = append(problems, fmt.Sprintf("  %s %d: %s", r.Topic, r.Partition, why))
		}
		if r.Member != nil {
			member = r.Member.MemberID
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", r.Topic, r.Partition, committed, end, l, member)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\ntotal lag:    %d\n", lag.Total())
	if len(problems) > 0 {
		fmt.Fprintln(w, "\nlag unknown for:")
		fmt.Fprintln(w, strings.Join(problems, "\n"))
	}
	return nil
}

// missingTopics replaces the lone partition -1 that kadm lists for a topic
// that does not exist with an UNKNOWN_TOPIC_OR_PARTITION entry for each
// partition of want, as kadm.Lag does, so that lag shows the real partitions.
func missingTopics(listed kadm.ListedOffsets, want kadm.TopicsSet) {
	for t, ps := range listed {
		if _, ok := ps[-1]; !ok || len(ps) != 1 {
			continue
		}
		delete(ps, -1)
		for p := range want[t] {
			ps[p] = kadm.ListedOffset{Topic: t, Partition: p, Offset: -1, Err: kerr.UnknownTopicOrPartition}
		}
	}
}

// assignment formats what a member was assigned, e.g. "a[0,1] b[2]".
func assignment(m kadm.DescribedGroupMember) string {
	c, ok := m.Assigned.AsConsumer()
	if !ok {
		if raw, ok := m.Assigned.Raw(); ok && len(raw) > 0 {
			return fmt.Sprintf("(%d bytes, not a consumer assignment)", len(raw))
		}
		return "-"
	}
	var parts []string
	topics := append(c.Topics[:0:0], c.Topics...)
	sort.Slice(topics, func(i, j int) bool { return topics[i].Topic < topics[j].Topic })
	for _, t := range topics {
		ps := append([]int32(nil), t.Partitions...)
		sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
		parts = append(parts, t.Topic+int32List(ps))
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, " ")
}

func groupDelete(ctx context.Context, env *cliEnv, args []string) error {
	fs, cf := newClientFlagSet(env, "group delete", "group delete GROUP [GROUP ...] [flags]")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return errors.New("group delete: missing group name")
	}
	s, err := cf.admin(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	rs, err := s.adm.DeleteGroups(s.ctx, pos...)
	if err != nil && rs == nil {
		return fmt.Errorf("deleting groups: %w", cf.brokerErr(err))
	}
	var errs []error
	for _, g := range pos {
		r, ok := rs[g]
		switch {
		case !ok:
			e := fmt.Errorf("deleting group %q: no answer from the broker", g)
			if err != nil {
				e = fmt.Errorf("deleting group %q: %w", g, cf.brokerErr(err))
			}
			errs = append(errs, e)
		case errors.Is(r.Err, kerr.GroupIDNotFound):
			errs = append(errs, &groupNotFoundError{g})
		case errors.Is(r.Err, kerr.NonEmptyGroup):
			errs = append(errs, &groupActiveError{group: g, err: r.Err})
		case r.Err != nil:
			errs = append(errs, fmt.Errorf("deleting group %q: %w", g, withMessage(r.Err, r.ErrMessage)))
		default:
			fmt.Fprintf(env.stdout, "deleted group %q\n", g)
		}
	}
	return errors.Join(errs...)
}

// resetMode is where reset-offsets moves the offsets to.
type resetMode struct {
	name string
	pos  startPos
}

func groupResetOffsets(ctx context.Context, env *cliEnv, args []string) error {
	fs, cf := newClientFlagSet(env, "group reset-offsets", "group reset-offsets GROUP [--topic T ...] [--partition N] (--to-earliest | --to-latest | --to-offset N | --to-time TIME) [--dry-run] [flags]")
	var topics stringList
	fs.Var(&topics, "topic", "reset offsets of `TOPIC` (repeatable; default: every topic the group has committed offsets for)")
	partition := fs.Int("partition", -1, "reset only partition `N` of each --topic (-1: all partitions)")
	earliest := fs.Bool("to-earliest", false, "move to the oldest offset still in the log")
	latest := fs.Bool("to-latest", false, "move to the end of the log (skip everything not yet consumed)")
	toOffset := fs.String("to-offset", "", "move to `OFFSET`, clamped into [start, end] of each partition")
	toTime := fs.String("to-time", "", "move to the first record at or after `TIME` (RFC3339, or a negative duration such as -1h)")
	dryRun := fs.Bool("dry-run", false, "print the new offsets without committing them")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	group, err := oneArg("group reset-offsets", "group name", pos)
	if err != nil {
		return err
	}
	var modes []resetMode
	if *earliest {
		modes = append(modes, resetMode{"--to-earliest", startPos{kind: fromBeginning}})
	}
	if *latest {
		modes = append(modes, resetMode{"--to-latest", startPos{kind: fromEnd}})
	}
	if *toOffset != "" {
		n, err := strconv.ParseInt(strings.TrimSpace(*toOffset), 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("group reset-offsets: invalid --to-offset %q (want an offset >= 0)", *toOffset)
		}
		modes = append(modes, resetMode{"--to-offset", startPos{kind: fromOffset, offset: n}})
	}
	if *toTime != "" {
		sp, err := parseFrom(*toTime, time.Now())
		if err != nil || sp.kind != fromTimeMillis {
			return fmt.Errorf("group reset-offsets: invalid --to-time %q (want an RFC3339 time such as 2024-05-01T12:00:00Z, or a negative duration such as -1h)", *toTime)
		}
		modes = append(modes, resetMode{"--to-time", sp})
	}
	switch len(modes) {
	case 0:
		return errors.New("group reset-offsets: say where to move the offsets: --to-earliest, --to-latest, --to-offset N or --to-time TIME")
	case 1:
	default:
		names := make([]string, len(modes))
		for i, m := range modes {
			names[i] = m.name
		}
		return fmt.Errorf("group reset-offsets: %s cannot be combined; give one", strings.Join(names, " and "))
	}
	mode := modes[0]
	if *partition >= 0 && len(topics) == 0 {
		return errors.New("group reset-offsets: --partition needs --topic")
	}

	s, err := cf.admin(ctx)
	if err != nil {
		return err
	}
	defer s.close()

	d, offs, err := describeGroup(s.ctx, cf, s.adm, group)
	var nf *groupNotFoundError
	switch {
	case errors.As(err, &nf) && len(topics) > 0:
		// Committing offsets for a new group creates it, as in Kafka.
	case err != nil:
		return err
	}
	if len(d.Members) > 0 {
		if !*dryRun {
			return &groupActiveError{group: group, members: len(d.Members)}
		}
		fmt.Fprintf(env.stderr, "warning: group %q has %d active member%s; stop them before resetting its offsets\n", group, len(d.Members), plural(len(d.Members)))
	}

	implicit := len(topics) == 0
	if implicit {
		topics = offs.Partitions().Topics()
		sort.Strings(topics)
		if len(topics) == 0 {
			return fmt.Errorf("group %q has no committed offsets; name the topics to reset with --topic", group)
		}
	} else {
		topics = dedup(topics)
	}

	var newOffs kadm.Offsets
	for _, t := range topics {
		starts, _, err := resolveStart(s.ctx, s.adm, t, *partition, mode.pos)
		var tnf *topicNotFoundError
		if errors.As(err, &tnf) && implicit {
			fmt.Fprintf(env.stderr, "warning: group %q has offsets for topic %q, which no longer exists; skipped\n", group, t)
			continue
		}
		if err != nil {
			return fmt.Errorf("group reset-offsets: %w", cf.brokerErr(err))
		}
		for p, at := range starts {
			newOffs.Add(kadm.Offset{Topic: t, Partition: p, At: at, LeaderEpoch: -1})
		}
	}

	tw := newTable(env.stdout)
	fmt.Fprintln(tw, "TOPIC\tPARTITION\tOLD\tNEW")
	for _, o := range newOffs.Sorted() {
		old := "-"
		if c, ok := offs.Lookup(o.Topic, o.Partition); ok && c.Err == nil && c.At >= 0 {
			old = strconv.FormatInt(c.At, 10)
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\n", o.Topic, o.Partition, old, o.At)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	n := len(newOffs.Sorted())
	if *dryRun {
		fmt.Fprintf(env.stdout, "\ndry run: %d offset%s of group %q not committed\n", n, plural(n), group)
		return nil
	}

	rs, err := s.adm.CommitOffsets(s.ctx, group, newOffs)
	if err != nil {
		return commitErr(group, cf.brokerErr(err))
	}
	var errs []error
	for _, r := range rs.Sorted() {
		if r.Err != nil {
			if e := commitErr(group, r.Err); errors.As(e, new(*groupActiveError)) {
				return e
			}
			errs = append(errs, fmt.Errorf("committing offset %d for %s partition %d: %w", r.At, r.Topic, r.Partition, r.Err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("committing offsets of group %q: %w", group, errors.Join(errs...))
	}
	fmt.Fprintf(env.stdout, "\ncommitted %d offset%s for group %q\n", n, plural(n), group)
	return nil
}

// commitErr explains an offset commit error. A standalone commit (no member
// id, generation -1) is refused with one of these while the group has
// members.
func commitErr(group string, err error) error {
	switch {
	case errors.Is(err, kerr.UnknownMemberID), errors.Is(err, kerr.IllegalGeneration),
		errors.Is(err, kerr.RebalanceInProgress), errors.Is(err, kerr.NonEmptyGroup),
		errors.Is(err, kerr.FencedInstanceID), errors.Is(err, kerr.StaleMemberEpoch):
		return &groupActiveError{group: group, err: err}
	}
	return fmt.Errorf("committing offsets of group %q: %w", group, err)
}

// withMessage adds the broker's error message to err, if it sent one.
func withMessage(err error, msg string) error {
	if msg == "" {
		return err
	}
	return fmt.Errorf("%s: %w", msg, err)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func dedup(xs []string) []string {
	seen := make(map[string]bool, len(xs))
	out := xs[:0:0]
	for _, x := range xs {
		if x = strings.TrimSpace(x); x != "" && !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
