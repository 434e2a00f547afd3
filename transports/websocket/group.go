package websocket

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/samsa-broker/samsa/auth"
	"github.com/samsa-broker/samsa/broker/group"
)

// member is a subscription's membership of a consumer group; its fields
// are guarded by the subscription's mu.
type member struct {
	group          string
	sessionTimeout time.Duration
	id             string
	generation     int32 // -1 while not assigned
}

const rangeProtocol = "range"

// runGroup keeps the subscription a member of its group: it joins, syncs
// (computing the range assignment when it leads), assigns the partitions to
// the subscription, heartbeats, and rejoins on rebalances. It leaves the
// group when the subscription ends.
func (s *subscription) runGroup() {
	coord := s.c.s.b.Groups()
	m := s.grp
	s.mu.Lock()
	m.generation = -1
	s.mu.Unlock()
	memberID := ""
	defer func() {
		if memberID != "" {
			_, _ = coord.Leave(m.group, []group.LeaveMember{{MemberID: memberID}})
		}
	}()
	meta := (&kmsg.ConsumerMemberMetadata{Version: 0, Topics: []string{s.topic}}).AppendTo(nil)
	retry := func(d time.Duration) bool {
		select {
		case <-time.After(d):
			return true
		case <-s.ctx.Done():
			return false
		}
	}
	for s.ctx.Err() == nil {
		jr := coord.Join(s.ctx, group.JoinRequest{
			Group: m.group, MemberID: memberID,
			ClientID: "samsa-ws-" + s.c.session, ClientHost: s.c.ip,
			ProtocolType:   "consumer",
			Protocols:      []group.Protocol{{Name: rangeProtocol, Metadata: meta}},
			SessionTimeout: m.sessionTimeout, RebalanceTimeout: m.sessionTimeout,
		})
		if s.ctx.Err() != nil {
			if jr.MemberID != "" {
				memberID = jr.MemberID
			}
			return
		}
		if jr.Err != nil {
			switch {
			case errors.Is(jr.Err, group.ErrMemberIDRequired):
				memberID = jr.MemberID
			case errors.Is(jr.Err, group.ErrUnknownMemberID), errors.Is(jr.Err, group.ErrFencedInstanceID):
				memberID = ""
			case errors.Is(jr.Err, group.ErrRebalanceInProgress), errors.Is(jr.Err, group.ErrCoordinatorNotAvailable):
				if !retry(200 * time.Millisecond) {
					return
				}
			default:
				s.endWithError(toProto(jr.Err))
				return
			}
			continue
		}
		memberID = jr.MemberID
		var assignments []group.MemberAssignment
		if jr.LeaderID == memberID {
			assignments = s.rangeAssign(jr.Members)
		}
		raw, err := coord.Sync(s.ctx, group.SyncRequest{
			Group: m.group, Generation: jr.Generation, MemberID: memberID,
			ProtocolType: "consumer", ProtocolName: jr.ProtocolName, Assignments: assignments,
		})
		if s.ctx.Err() != nil {
			return
		}
		if err != nil {
			if errors.Is(err, group.ErrUnknownMemberID) {
				memberID = ""
			}
			continue
		}
		var asg kmsg.ConsumerMemberAssignment
		var mine []int32
		if len(raw) > 0 {
			if err := asg.ReadFrom(raw); err != nil {
				s.endWithError(errf(codeInternal, "group %q: bad assignment: %v", m.group, err))
				return
			}
			for _, t := range asg.Topics {
				if t.Topic == s.topic {
					mine = append(mine, t.Partitions...)
				}
			}
		}
		slices.Sort(mine)
		mine = slices.Compact(mine)
		if err := s.assign(memberID, jr.Generation, mine); err != nil {
			if s.ctx.Err() != nil {
				return
			}
			s.endWithError(toProto(err))
			return
		}
		// Heartbeat until the group rebalances.
		t := time.NewTicker(s.c.s.opts.HeartbeatInterval)
		for {
			select {
			case <-s.ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			err := coord.Heartbeat(m.group, jr.Generation, memberID, "")
			if err == nil {
				continue
			}
			if errors.Is(err, group.ErrUnknownMemberID) || errors.Is(err, group.ErrFencedInstanceID) {
				memberID = ""
			}
			break
		}
		t.Stop()
		s.revoke()
	}
}

// rangeAssign computes Kafka's range assignment for the members.
func (s *subscription) rangeAssign(members []group.JoinMember) []group.MemberAssignment {
	byTopic := map[string][]string{}
	for _, jm := range members {
		var md kmsg.ConsumerMemberMetadata
		if err := md.ReadFrom(jm.Metadata); err != nil {
			continue
		}
		for _, t := range md.Topics {
			byTopic[t] = append(byTopic[t], jm.MemberID)
		}
	}
	out := map[string]map[string][]int32{} // member -> topic -> partitions
	for topic, ms := range byTopic {
		n := s.partitionCount(topic)
		if n <= 0 {
			continue
		}
		slices.Sort(ms)
		ms = slices.Compact(ms)
		per, extra := n/int32(len(ms)), n%int32(len(ms))
		for i, id := range ms {
			i := int32(i)
			start := i*per + min(i, extra)
			cnt := per
			if i < extra {
				cnt++
			}
			if cnt == 0 {
				continue
			}
			if out[id] == nil {
				out[id] = map[string][]int32{}
			}
			for p := start; p < start+cnt; p++ {
				out[id][topic] = append(out[id][topic], p)
			}
		}
	}
	res := make([]group.MemberAssignment, 0, len(members))
	for _, jm := range members {
		a := kmsg.ConsumerMemberAssignment{Version: 0}
		topics := make([]string, 0, len(out[jm.MemberID]))
		for t := range out[jm.MemberID] {
			topics = append(topics, t)
		}
		slices.Sort(topics)
		for _, t := range topics {
			a.Topics = append(a.Topics, kmsg.ConsumerMemberAssignmentTopic{Topic: t, Partitions: out[jm.MemberID][t]})
		}
		res = append(res, group.MemberAssignment{MemberID: jm.MemberID, Assignment: a.AppendTo(nil)})
	}
	return res
}

func (s *subscription) partitionCount(topic string) int32 {
	b := s.c.s.b
	if info, err := b.Topic(topic); err == nil {
		return info.Partitions
	}
	if info, err := b.View(topic); err == nil {
		return info.Partitions
	}
	return 0
}

// assign starts delivery of the assigned partitions from the committed
// offsets (or the subscription's from) and tells the client.
func (s *subscription) assign(memberID string, generation int32, parts []int32) error {
	m := s.grp
	tps := make([]group.TopicPartition, len(parts))
	for i, p := range parts {
		tps[i] = group.TopicPartition{Topic: s.topic, Partition: p}
	}
	committed := map[int32]int64{}
	if len(tps) > 0 {
		fo, err := s.c.s.b.Groups().FetchOffsets(m.group, tps)
		if err != nil {
			return err
		}
		for _, o := range fo {
			if o.Offset.Offset >= 0 {
				committed[o.Partition] = o.Offset.Offset
			}
		}
	}
	states := make([]partState, 0, len(parts))
	for _, p := range parts {
		c, ok := committed[p]
		if !ok {
			c = -1
		}
		next, hwm, err := s.c.s.startOffset(s.offTopic, p, s.from, c)
		if err != nil {
			return err
		}
		states = append(states, partState{p: p, next: next, hwm: hwm})
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return context.Canceled
	}
	m.id, m.generation = memberID, generation
	s.parts = states
	s.gen++
	s.c.sendText(s.partsReply("assigned", nil, states, func(b []byte) []byte {
		b = append(b, `,"group":`...)
		b = appendString(b, m.group)
		b = append(b, `,"member":`...)
		b = appendString(b, memberID)
		b = append(b, `,"generation":`...)
		return strconv.AppendInt(b, int64(generation), 10)
	}))
	s.wakeUp()
	return nil
}

// revoke stops delivery of every assigned partition and tells the client;
// no record of them is queued after the revoked message.
func (s *subscription) revoke() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	old := s.parts
	s.parts = nil
	s.gen++
	s.grp.generation = -1
	if s.fetchCancel != nil {
		s.fetchCancel()
	}
	b := make([]byte, 0, 64+16*len(old))
	b = append(b, `{"type":"revoked","sub":`...)
	b = appendString(b, s.name)
	b = append(b, `,"partitions":[`...)
	for i, ps := range old {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"partition":`...)
		b = strconv.AppendInt(b, int64(ps.p), 10)
		b = append(b, '}')
	}
	s.c.sendText(append(b, "]}"...))
}

// commit commits offsets as a group member or standalone.
func (c *conn) commit(req *request) *protoError {
	var offs []struct {
		Partition *int32 `json:"partition"`
		Offset    *int64 `json:"offset"`
		Metadata  string `json:"metadata"`
	}
	if len(req.Offsets) == 0 {
		return errf(codeBadRequest, "commit: offsets are required")
	}
	if err := json.Unmarshal(req.Offsets, &offs); err != nil {
		return errf(codeBadRequest, "commit: offsets: %v", err)
	}
	cr := group.CommitRequest{Generation: -1}
	topic := req.Topic
	if req.Sub != "" {
		c.mu.Lock()
		s, ok := c.subs[req.Sub]
		c.mu.Unlock()
		if !ok {
			return errf(codeNotFound, "commit: no subscription %q", req.Sub)
		}
		topic = s.topic
		if s.grp != nil {
			s.mu.Lock()
			cr.Group, cr.MemberID, cr.Generation = s.grp.group, s.grp.id, s.grp.generation
			s.mu.Unlock()
			if cr.Generation < 0 {
				return errf(codeUnavailable, "commit: group %q is rebalancing; commit again after the next assigned", cr.Group)
			}
		} else if req.Group == "" {
			return errf(codeBadRequest, "commit: subscription %q has no group; name one with \"group\"", req.Sub)
		}
	}
	if cr.Group == "" {
		cr.Group = req.Group
		if cr.Group == "" {
			return errf(codeBadRequest, "commit: sub (of a group subscription) or group is required")
		}
		if topic == "" {
			return errf(codeBadRequest, "commit: topic is required")
		}
		cr.Generation, cr.MemberID = -1, ""
	}
	if perr := c.allow(auth.JoinGroup, cr.Group); perr != nil {
		return perr
	}
	if perr := c.allow(auth.ConsumeTopic, topic); perr != nil {
		return perr
	}
	for i, o := range offs {
		if o.Partition == nil || o.Offset == nil || *o.Partition < 0 || *o.Offset < 0 {
			return errf(codeBadRequest, "commit: offsets[%d]: partition and offset (>= 0) are required", i)
		}
		cr.Offsets = append(cr.Offsets, group.OffsetCommit{Topic: topic, Partition: *o.Partition, Offset: *o.Offset, LeaderEpoch: -1, Metadata: o.Metadata})
	}
	for _, err := range c.s.b.Groups().CommitOffsets(cr) {
		if err != nil {
			if errors.Is(err, group.ErrUnknownMemberID) && cr.Generation < 0 {
				return errf(codeBadRequest, "commit: group %q has members; a standalone commit needs an empty group", cr.Group)
			}
			return toProto(err)
		}
	}
	c.sendText(simpleReply("committed", req.ID, ""))
	return nil
}
