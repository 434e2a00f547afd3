// Package group is the consumer group coordinator: Kafka's classic group
// protocol (JoinGroup, SyncGroup, Heartbeat, LeaveGroup), committed offsets
// (OffsetCommit, OffsetFetch, OffsetDelete) and group administration
// (ListGroups, DescribeGroups, DeleteGroups), independent of any wire
// protocol. Transports pass plain Go values and map the returned sentinel
// errors to their codes (see errors.go).
//
// Group membership lives in memory: after a restart members rejoin, as they
// do when a Kafka coordinator moves. Committed offsets are durable: every
// commit is appended to an internal commit log and fsynced before it is
// acknowledged, and the log is compacted when it holds much more than the
// live offsets.
//
// # Wiring to Kafka
//
//	JoinGroup       Join (blocks; v0 has no rebalance timeout: leave it 0;
//	                v4+ sets RequireKnownMemberID; answer MemberID with
//	                ErrMemberIDRequired)
//	SyncGroup       Sync (blocks until the leader's assignment)
//	Heartbeat       Heartbeat
//	LeaveGroup      Leave (v0-v2: one member by id, top-level error = its error)
//	OffsetCommit    CommitOffsets (v0/v1 without generation: Generation -1)
//	OffsetFetch     FetchOffsets (nil partitions: all)
//	OffsetDelete    DeleteOffsets
//	ListGroups      ListGroups (filter by state on the caller's side)
//	DescribeGroups  DescribeGroups
//	DeleteGroups    DeleteGroups
//
// FindCoordinator answers with the broker itself: a single broker coordinates
// every group. KafkaCode maps the errors to Kafka error codes.
package group

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/samsa-broker/samsa/broker/commitlog"
	"github.com/samsa-broker/samsa/broker/vfs"
)

// Defaults of Options.
const (
	DefaultRebalanceDelay    = 100 * time.Millisecond
	DefaultMinSessionTimeout = 6 * time.Second
	DefaultMaxSessionTimeout = 30 * time.Minute
	DefaultMaxMetadataBytes  = 4096
	DefaultSegmentBytes      = 16 << 20
	DefaultCompactMinBytes   = 1 << 20
	DefaultCompactRatio      = 4
	// DefaultEmptyGroupRetention matches Kafka's offsets retention check
	// interval, after which it drops empty groups without offsets.
	DefaultEmptyGroupRetention = 10 * time.Minute
	// DefaultOffsetsRetention is Kafka's offsets.retention.minutes (7 days).
	DefaultOffsetsRetention = 7 * 24 * time.Hour
	// DefaultOffsetsRetentionCheck is Kafka's
	// offsets.retention.check.interval.ms (10 minutes).
	DefaultOffsetsRetentionCheck = 10 * time.Minute
)

// Options configure a Coordinator.
type Options struct {
	// FS is the filesystem of the offsets log (nil: vfs.Default()).
	FS vfs.FS
	// Dir is the directory of the offsets log; the broker passes
	// <data_dir>/__consumer_offsets.
	Dir string
	// Logger receives the coordinator's messages (nil: discard).
	Logger *slog.Logger
	// RebalanceDelay is group.initial.rebalance.delay.ms: how long the first
	// rebalance of an empty group waits for more members, extended while
	// members keep arriving (up to the rebalance timeout). 0 means
	// DefaultRebalanceDelay; a negative value means no delay. Later
	// rebalances complete as soon as every member has rejoined.
	RebalanceDelay time.Duration
	// MinSessionTimeout and MaxSessionTimeout bound the session timeouts
	// members may ask for (group.min/max.session.timeout.ms; 0 means the
	// default). Outside them a join gets ErrInvalidSessionTimeout.
	MinSessionTimeout time.Duration
	MaxSessionTimeout time.Duration
	// MaxMetadataBytes bounds the metadata of a committed offset
	// (offset.metadata.max.bytes; 0 means DefaultMaxMetadataBytes).
	MaxMetadataBytes int
	// Syncer, when set, is shared with the broker so that offset commits
	// and produces share fsync rounds; otherwise the coordinator runs its
	// own. A shared Syncer must outlive the Coordinator.
	Syncer *commitlog.Syncer
	// SegmentBytes is the segment size of the offsets log (0: default).
	SegmentBytes int64
	// The offsets log is compacted when it is larger than CompactMinBytes
	// and holds more than CompactRatio records per live offset (0: the
	// defaults, 1 MiB and 4).
	CompactMinBytes int64
	CompactRatio    int
	// CheckPartition, when set, is asked about every partition of an
	// offset commit; an error (typically ErrUnknownTopic) refuses that
	// partition's commit with it.
	CheckPartition func(topic string, partition int32) error
	// EmptyGroupRetention is how long a group with no members and no
	// committed offsets is remembered (for ListGroups and DescribeGroups)
	// before it is forgotten (0: DefaultEmptyGroupRetention).
	EmptyGroupRetention time.Duration
	// OffsetsRetention is offsets.retention.minutes: the committed offsets
	// of a group without members expire this long after the later of their
	// commit and the moment the group became empty (KIP-211), so that
	// abandoned groups do not pile up (0: DefaultOffsetsRetention; < 0:
	// never).
	OffsetsRetention time.Duration
	// OffsetsRetentionCheck is how often expired offsets are looked for
	// (0: DefaultOffsetsRetentionCheck).
	OffsetsRetentionCheck time.Duration
	// Now is the clock of commit timestamps (nil: time.Now). Timers use
	// real time.
	Now func() time.Time
}

func (o Options) withDefaults() Options {
	if o.FS == nil {
		o.FS = vfs.Default()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.RebalanceDelay == 0 {
		o.RebalanceDelay = DefaultRebalanceDelay
	} else if o.RebalanceDelay < 0 {
		o.RebalanceDelay = 0
	}
	if o.MinSessionTimeout <= 0 {
		o.MinSessionTimeout = DefaultMinSessionTimeout
	}
	if o.MaxSessionTimeout <= 0 {
		o.MaxSessionTimeout = DefaultMaxSessionTimeout
	}
	if o.MaxMetadataBytes <= 0 {
		o.MaxMetadataBytes = DefaultMaxMetadataBytes
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	if o.CompactMinBytes <= 0 {
		o.CompactMinBytes = DefaultCompactMinBytes
	}
	if o.CompactRatio <= 0 {
		o.CompactRatio = DefaultCompactRatio
	}
	if o.EmptyGroupRetention <= 0 {
		o.EmptyGroupRetention = DefaultEmptyGroupRetention
	}
	if o.OffsetsRetention == 0 {
		o.OffsetsRetention = DefaultOffsetsRetention
	}
	if o.OffsetsRetentionCheck <= 0 {
		o.OffsetsRetentionCheck = DefaultOffsetsRetentionCheck
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Coordinator coordinates every consumer group of the broker. It is safe for
// concurrent use.
type Coordinator struct {
	opts   Options
	logger *slog.Logger
	store  *store

	opened time.Time // groups not in memory count as empty since then

	mu     sync.Mutex
	groups map[string]*group
	closed bool

	stopExpiry chan struct{}
	expiryDone chan struct{}
}

// Open opens the offsets log in opts.Dir, creating it if needed, and loads
// the committed offsets.
func Open(opts Options) (*Coordinator, error) {
	if opts.Dir == "" {
		return nil, fmt.Errorf("group: Options.Dir is required")
	}
	opts = opts.withDefaults()
	st, err := openStore(opts)
	if err != nil {
		return nil, err
	}
	c := &Coordinator{
		opts:       opts,
		logger:     opts.Logger,
		store:      st,
		opened:     opts.Now(),
		groups:     map[string]*group{},
		stopExpiry: make(chan struct{}),
		expiryDone: make(chan struct{}),
	}
	go c.expiryLoop()
	return c, nil
}

// Close stops the coordinator: callers waiting in Join or Sync get
// ErrCoordinatorNotAvailable, timers stop, and the offsets log is closed
// cleanly.
func (c *Coordinator) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	groups := c.groups
	c.groups = map[string]*group{}
	c.mu.Unlock()
	close(c.stopExpiry)
	<-c.expiryDone
	for _, g := range groups {
		g.mu.Lock()
		g.shutdown(fmt.Errorf("%w: coordinator closed", ErrCoordinatorNotAvailable))
		g.mu.Unlock()
	}
	return c.store.close()
}

// acquire returns the group id locked, creating it if create is set. It
// returns nil (and no error) for an unknown group when create is not set.
func (c *Coordinator) acquire(id string, create bool) (*group, error) {
	for {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return nil, fmt.Errorf("%w: coordinator closed", ErrCoordinatorNotAvailable)
		}
		g := c.groups[id]
		if g == nil {
			if !create {
				c.mu.Unlock()
				return nil, nil
			}
			g = newGroup(c, id)
			c.groups[id] = g
		}
		c.mu.Unlock()
		g.mu.Lock()
		if g.state != Dead {
			return g, nil
		}
		g.mu.Unlock()
		c.mu.Lock()
		if c.groups[id] == g {
			delete(c.groups, id)
		}
		c.mu.Unlock()
	}
}

// forget removes g from the map if it is (still) dead.
func (c *Coordinator) forget(g *group) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.groups[g.id] != g {
		return
	}
	g.mu.Lock()
	if g.state == Dead {
		delete(c.groups, g.id)
	}
	g.mu.Unlock()
}

// newMemberID makes a member id as Kafka does: the client id (or, for a
// static member, the instance id), a dash and a random UUID.
func newMemberID(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return prefix + "-" + h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// ListGroups lists every group that has members or committed offsets.
// Groups known only by their offsets are Empty with no protocol type.
func (c *Coordinator) ListGroups() []GroupListing {
	var out []GroupListing
	seen := map[string]bool{}
	for _, g := range c.snapshotGroups() {
		g.mu.Lock()
		if g.state != Dead {
			out = append(out, GroupListing{Group: g.id, ProtocolType: g.protocolType, State: g.state})
			seen[g.id] = true
		}
		g.mu.Unlock()
	}
	for _, id := range c.store.groups() {
		if !seen[id] {
			out = append(out, GroupListing{Group: id, State: Empty})
		}
	}
	slices.SortFunc(out, func(a, b GroupListing) int { return compareStrings(a.Group, b.Group) })
	return out
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func (c *Coordinator) snapshotGroups() []*group {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]*group, 0, len(c.groups))
	for _, g := range c.groups {
		out = append(out, g)
	}
	return out
}

// DescribeGroups describes groups, in order. An unknown group is Dead with
// no error; an invalid (empty) group id has ErrInvalidGroupID.
func (c *Coordinator) DescribeGroups(groups []string) []GroupDescription {
	out := make([]GroupDescription, len(groups))
	for i, id := range groups {
		d := GroupDescription{Group: id, State: Dead}
		if id == "" {
			d.Err = ErrInvalidGroupID
			out[i] = d
			continue
		}
		g, err := c.acquire(id, false)
		switch {
		case err != nil:
			d.Err = err
		case g != nil:
			d = g.describe()
			g.mu.Unlock()
		case c.store.hasOffsets(id):
			d.State = Empty
		}
		out[i] = d
	}
	return out
}

// DeleteGroups deletes groups, in order, returning an error per group:
// ErrGroupIDNotFound for an unknown group, ErrNonEmptyGroup for a group with
// members, ErrInvalidGroupID for "". Deleting a group deletes its committed
// offsets durably.
func (c *Coordinator) DeleteGroups(groups []string) []error {
	errs := make([]error, len(groups))
	for i, id := range groups {
		errs[i] = c.deleteGroup(id)
	}
	return errs
}

func (c *Coordinator) deleteGroup(id string) error {
	if id == "" {
		return ErrInvalidGroupID
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("%w: coordinator closed", ErrCoordinatorNotAvailable)
	}
	g := c.groups[id]
	if g != nil {
		g.mu.Lock()
		if g.state != Empty || len(g.members) > 0 || len(g.pending) > 0 {
			g.mu.Unlock()
			c.mu.Unlock()
			return ErrNonEmptyGroup
		}
		g.shutdown(ErrUnknownMemberID)
		g.mu.Unlock()
		delete(c.groups, id)
	}
	c.mu.Unlock()
	keys := c.store.keys(id)
	if g == nil && len(keys) == 0 {
		return ErrGroupIDNotFound
	}
	entries := make([]entry, len(keys))
	for i, tp := range keys {
		entries[i] = entry{group: id, tp: tp, del: true}
	}
	if err := c.store.write(entries); err != nil {
		return err
	}
	c.logger.Info("group: deleted group", "group", id, "offsets", len(keys))
	return nil
}

// Stats returns every group's state, member count and generation, for
// metrics, sorted by group.
func (c *Coordinator) Stats() []GroupStats {
	var out []GroupStats
	seen := map[string]bool{}
	for _, g := range c.snapshotGroups() {
		g.mu.Lock()
		if g.state != Dead {
			out = append(out, GroupStats{Group: g.id, State: g.state, Members: len(g.members), Generation: g.generation})
			seen[g.id] = true
		}
		g.mu.Unlock()
	}
	for _, id := range c.store.groups() {
		if !seen[id] {
			out = append(out, GroupStats{Group: id, State: Empty})
		}
	}
	slices.SortFunc(out, func(a, b GroupStats) int { return compareStrings(a.Group, b.Group) })
	return out
}

// CommittedOffsets returns the committed offset of every partition of
// group, for lag metrics (lag = high watermark - committed offset).
func (c *Coordinator) CommittedOffsets(group string) map[TopicPartition]int64 {
	fs := c.store.fetch(group, nil)
	out := make(map[TopicPartition]int64, len(fs))
	for _, f := range fs {
		out[f.TopicPartition] = f.Offset.Offset
	}
	return out
}
