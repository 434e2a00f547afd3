package group

import (
	"encoding/binary"
	"fmt"
	"time"
)

// CommitOffsets handles an OffsetCommit and returns an error per partition,
// in the order of req.Offsets. The partitions that pass the checks are
// appended as one batch and fsynced (sharing the fsync with concurrent
// commits) before CommitOffsets returns: an acknowledged commit survives a
// crash.
//
// A commit with Generation < 0 (a simple commit, from a consumer that
// assigns partitions itself) is accepted while the group has no members.
// Otherwise MemberID must be a current member and Generation the current
// generation (ErrUnknownMemberID, ErrIllegalGeneration,
// ErrFencedInstanceID), and the group must not be waiting for the leader's
// assignment (ErrRebalanceInProgress); commits are accepted while the group
// prepares a rebalance, so that members can commit before they rejoin.
func (c *Coordinator) CommitOffsets(req CommitRequest) []error {
	errs := make([]error, len(req.Offsets))
	fail := func(err error) []error {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	if req.Group == "" {
		return fail(ErrInvalidGroupID)
	}
	g, err := c.acquire(req.Group, false)
	if err != nil {
		return fail(err)
	}
	if g != nil {
		err = g.checkCommit(req)
		g.mu.Unlock()
	} else if req.Generation >= 0 {
		// No such group: a member of a generation this coordinator
		// does not know (it restarted, or the group was deleted).
		err = ErrIllegalGeneration
	}
	if err != nil {
		return fail(err)
	}
	entries := make([]entry, 0, len(req.Offsets))
	idx := make([]int, 0, len(req.Offsets))
	for i, o := range req.Offsets {
		if len(o.Metadata) > c.opts.MaxMetadataBytes {
			errs[i] = ErrOffsetMetadataTooLarge
			continue
		}
		if c.opts.CheckPartition != nil {
			if err := c.opts.CheckPartition(o.Topic, o.Partition); err != nil {
				errs[i] = err
				continue
			}
		}
		entries = append(entries, entry{
			group: req.Group,
			tp:    TopicPartition{Topic: o.Topic, Partition: o.Partition},
			off:   Offset{Offset: o.Offset, LeaderEpoch: o.LeaderEpoch, Metadata: o.Metadata},
		})
		idx = append(idx, i)
	}
	if err := c.store.write(entries); err != nil {
		for _, i := range idx {
			errs[i] = err
		}
	}
	return errs
}

// checkCommit applies the generation and member fencing of a commit.
func (g *group) checkCommit(req CommitRequest) error {
	if req.Generation < 0 && len(g.members) == 0 {
		return nil
	}
	if g.fenced(req.MemberID, req.InstanceID) {
		return ErrFencedInstanceID
	}
	m := g.members[req.MemberID]
	if m == nil {
		return ErrUnknownMemberID
	}
	if req.Generation != g.generation {
		return ErrIllegalGeneration
	}
	if g.state == CompletingRebalance {
		return ErrRebalanceInProgress
	}
	g.touch(m)
	return nil
}

// FetchOffsets handles an OffsetFetch: the committed offsets of tps in
// order, each exactly as committed (Offset -1, LeaderEpoch -1, Metadata ""
// when nothing is), or with nil tps every committed partition of the group,
// sorted. An unknown group has no committed offsets, and no error.
func (c *Coordinator) FetchOffsets(group string, tps []TopicPartition) ([]FetchedOffset, error) {
	if group == "" {
		return nil, ErrInvalidGroupID
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("%w: coordinator closed", ErrCoordinatorNotAvailable)
	}
	return c.store.fetch(group, tps), nil
}

// DeleteOffsets handles an OffsetDelete: it deletes the committed offsets
// of tps durably and returns an error per partition, in order. The
// group-level error is ErrGroupIDNotFound for an unknown group and
// ErrNonEmptyGroup for a group with members that is not a consumer group; in
// a consumer group with members, the partitions of topics it subscribes to
// get ErrGroupSubscribedToTopic.
func (c *Coordinator) DeleteOffsets(group string, tps []TopicPartition) ([]error, error) {
	if group == "" {
		return nil, ErrInvalidGroupID
	}
	g, err := c.acquire(group, false)
	if err != nil {
		return nil, err
	}
	errs := make([]error, len(tps))
	if g != nil {
		if len(g.members) > 0 {
			if g.protocolType != "consumer" {
				g.mu.Unlock()
				return nil, ErrNonEmptyGroup
			}
			subscribed := g.subscribedTopics()
			for i, tp := range tps {
				if subscribed[tp.Topic] {
					errs[i] = ErrGroupSubscribedToTopic
				}
			}
		}
		g.mu.Unlock()
	} else if !c.store.hasOffsets(group) {
		return nil, ErrGroupIDNotFound
	}
	var entries []entry
	var idx []int
	for i, tp := range tps {
		if errs[i] == nil {
			entries = append(entries, entry{group: group, tp: tp, del: true})
			idx = append(idx, i)
		}
	}
	if err := c.store.write(entries); err != nil {
		for _, i := range idx {
			errs[i] = err
		}
	}
	return errs, nil
}

// expiryLoop expires committed offsets every OffsetsRetentionCheck.
func (c *Coordinator) expiryLoop() {
	defer close(c.expiryDone)
	if c.opts.OffsetsRetention < 0 {
		return
	}
	t := time.NewTicker(c.opts.OffsetsRetentionCheck)
	defer t.Stop()
	for {
		select {
		case <-c.stopExpiry:
			return
		case <-t.C:
			if n, err := c.ExpireOffsets(); err != nil {
				c.logger.Warn("group: expiring committed offsets", "err", err)
			} else if n > 0 {
				c.logger.Info("group: expired committed offsets", "offsets", n, "retention", c.opts.OffsetsRetention)
			}
		}
	}
}

// ExpireOffsets deletes, durably, the committed offsets that have expired
// (Options.OffsetsRetention) and returns how many. Offsets of a group with
// members never expire; those of an empty group expire OffsetsRetention
// after the later of their commit and the moment the group became empty
// (for a group not in memory, the coordinator's start).
func (c *Coordinator) ExpireOffsets() (int, error) {
	if c.opts.OffsetsRetention < 0 {
		return 0, nil
	}
	now := c.opts.Now()
	var entries []entry
	for _, id := range c.store.groups() {
		emptySince := c.opened
		c.mu.Lock()
		g := c.groups[id]
		c.mu.Unlock()
		if g != nil {
			g.mu.Lock()
			busy := len(g.members) > 0 || g.state != Empty
			since := g.emptySince
			g.mu.Unlock()
			if busy {
				continue
			}
			emptySince = since
		}
		if now.Sub(emptySince) < c.opts.OffsetsRetention {
			continue
		}
		for _, tp := range c.store.expiredBefore(id, now.Add(-c.opts.OffsetsRetention).UnixMilli()) {
			entries = append(entries, entry{group: id, tp: tp, del: true})
		}
	}
	if len(entries) == 0 {
		return 0, nil
	}
	if err := c.store.write(entries); err != nil {
		return 0, err
	}
	return len(entries), nil
}

// DeleteTopicOffsets deletes, durably, every group's committed offsets of
// topic: what Kafka does when a topic is deleted, so that a topic created
// again under the same name starts without stale positions.
func (c *Coordinator) DeleteTopicOffsets(topic string) error {
	var entries []entry
	for _, g := range c.store.groups() {
		for _, tp := range c.store.keys(g) {
			if tp.Topic == topic {
				entries = append(entries, entry{group: g, tp: tp, del: true})
			}
		}
	}
	if len(entries) == 0 {
		return nil
	}
	return c.store.write(entries)
}

// subscribedTopics returns the topics the members of a consumer group
// subscribe to, read from their ConsumerProtocolSubscription metadata for
// the group's protocol (or their first protocol, before one is chosen).
// Metadata it cannot read counts as subscribing to nothing.
func (g *group) subscribedTopics() map[string]bool {
	out := map[string]bool{}
	for _, m := range g.members {
		meta := m.metadata(g.protocol)
		if meta == nil && len(m.protocols) > 0 {
			meta = m.protocols[0].Metadata
		}
		for _, t := range parseSubscriptionTopics(meta) {
			out[t] = true
		}
	}
	return out
}

// parseSubscriptionTopics reads the topics of a ConsumerProtocolSubscription
// (any version: int16 version, then an array of int16-length strings).
func parseSubscriptionTopics(b []byte) []string {
	if len(b) < 6 {
		return nil
	}
	n := int32(binary.BigEndian.Uint32(b[2:]))
	b = b[6:]
	var out []string
	for i := int32(0); i < n; i++ {
		if len(b) < 2 {
			return out
		}
		l := int(int16(binary.BigEndian.Uint16(b)))
		if l < 0 || len(b) < 2+l {
			return out
		}
		out = append(out, string(b[2:2+l]))
		b = b[2+l:]
	}
	return out
}
