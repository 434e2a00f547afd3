package group

import "time"

// State is the state of a group, named as Kafka's DescribeGroups and
// ListGroups report it.
type State string

// Group states of Kafka's classic group protocol.
const (
	// Empty: no members; the group may hold committed offsets.
	Empty State = "Empty"
	// PreparingRebalance: waiting for the members to (re)join.
	PreparingRebalance State = "PreparingRebalance"
	// CompletingRebalance: joined; waiting for the leader's assignment
	// (SyncGroup).
	CompletingRebalance State = "CompletingRebalance"
	// Stable: every member has its assignment.
	Stable State = "Stable"
	// Dead: the group does not exist (DescribeGroups of an unknown group).
	Dead State = "Dead"
)

// Protocol is one group protocol a member supports (for consumers, an
// assignor such as "range" or "cooperative-sticky") with the member's
// metadata for it (for consumers, its subscription).
type Protocol struct {
	Name     string
	Metadata []byte
}

// JoinRequest is a JoinGroup request.
type JoinRequest struct {
	Group      string
	MemberID   string // "" for a new member
	InstanceID string // group.instance.id: static membership when not ""
	ClientID   string
	ClientHost string
	// ProtocolType is the kind of group: "consumer" for Kafka consumers,
	// "connect" for Kafka Connect, and so on.
	ProtocolType string
	// Protocols are the member's protocols in its order of preference.
	Protocols []Protocol
	// SessionTimeout removes the member when it sends no heartbeat (or
	// join, sync or commit) for this long.
	SessionTimeout time.Duration
	// RebalanceTimeout bounds how long a rebalance waits for the member to
	// rejoin. Zero means SessionTimeout (JoinGroup v0).
	RebalanceTimeout time.Duration
	// RequireKnownMemberID (JoinGroup v4+): a new dynamic member first gets
	// ErrMemberIDRequired with its assigned MemberID, and joins again with
	// it.
	RequireKnownMemberID bool
}

// JoinMember describes a member to the leader in its JoinResult.
type JoinMember struct {
	MemberID   string
	InstanceID string
	Metadata   []byte // the member's metadata for the chosen protocol
}

// JoinResult is the answer to a JoinRequest. When Err is not nil only
// MemberID may be set: with ErrMemberIDRequired it is the member id to join
// with next.
type JoinResult struct {
	Generation   int32
	ProtocolType string
	ProtocolName string
	LeaderID     string
	MemberID     string
	// Members is filled for the leader only, which computes the
	// assignment from it.
	Members []JoinMember
	Err     error
}

// MemberAssignment is the assignment of one member, sent by the leader.
type MemberAssignment struct {
	MemberID   string
	Assignment []byte
}

// SyncRequest is a SyncGroup request.
type SyncRequest struct {
	Group      string
	Generation int32
	MemberID   string
	InstanceID string
	// ProtocolType and ProtocolName (SyncGroup v5+) are checked against
	// the group's when not "".
	ProtocolType string
	ProtocolName string
	// Assignments is sent by the leader only.
	Assignments []MemberAssignment
}

// LeaveMember identifies a member leaving a group: by MemberID, or by
// InstanceID for a static member (LeaveGroup v3+).
type LeaveMember struct {
	MemberID   string
	InstanceID string
}

// TopicPartition names a partition.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// OffsetCommit is one partition of an OffsetCommit request.
type OffsetCommit struct {
	Topic       string
	Partition   int32
	Offset      int64
	LeaderEpoch int32 // -1 when unknown
	Metadata    string
}

// CommitRequest is an OffsetCommit request. Generation -1 with an empty
// MemberID is a simple (standalone) commit, accepted while the group has no
// members; otherwise the member and generation must be current.
type CommitRequest struct {
	Group      string
	Generation int32
	MemberID   string
	InstanceID string
	Offsets    []OffsetCommit
}

// Offset is a committed offset as OffsetFetch returns it: exactly what was
// committed, or Offset -1, LeaderEpoch -1 and Metadata "" when nothing was.
type Offset struct {
	Offset      int64
	LeaderEpoch int32
	Metadata    string
}

// FetchedOffset is one partition of an OffsetFetch answer.
type FetchedOffset struct {
	TopicPartition
	Offset
}

// GroupListing is one group of ListGroups.
type GroupListing struct {
	Group        string
	ProtocolType string
	State        State
}

// MemberDescription is one member of DescribeGroups.
type MemberDescription struct {
	MemberID   string
	InstanceID string
	ClientID   string
	ClientHost string
	Metadata   []byte // for the group's protocol; only when Stable
	Assignment []byte // only when Stable
}

// GroupDescription is one group of DescribeGroups. An unknown group is
// described with State Dead and no error, as Kafka does.
type GroupDescription struct {
	Group        string
	State        State
	ProtocolType string
	Protocol     string // only when Stable
	Members      []MemberDescription
	Err          error
}

// GroupStats are a group's numbers for metrics.
type GroupStats struct {
	Group      string
	State      State
	Members    int
	Generation int32
}
