package kafka

import (
	"context"
	"errors"
	"time"

	"github.com/samsa-broker/samsa/auth"
	"github.com/samsa-broker/samsa/broker/group"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// The consumer group APIs call the broker's group coordinator. Join, Sync
// and OffsetCommit block (for the other members, and for the fsync of the
// commit), so they run off the read path; responses stay in request order.

// groupCode maps a coordinator error to its Kafka code.
func groupCode(err error) int16 {
	if err == nil {
		return 0
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return kerr.CoordinatorNotAvailable.Code
	}
	return group.KafkaCode(err)
}

func strOrEmpty(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func strPtrOrNil(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// handleFindCoordinator answers with this broker for every group (and for
// transactional ids, which then fail at InitProducerId).
func handleFindCoordinator(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.FindCoordinatorRequest)
	resp := req.ResponseKind().(*kmsg.FindCoordinatorResponse)
	host, port := c.advertised()
	node := c.s.b.NodeID()
	answer := func(key string, keyType int8) (int16, *string) {
		if keyType != 0 && keyType != 1 {
			msg := "unknown coordinator type"
			return kerr.InvalidRequest.Code, &msg
		}
		if key == "" && keyType == 0 {
			msg := "empty group id"
			return kerr.InvalidGroupID.Code, &msg
		}
		if keyType == 0 && !c.allowed(auth.DescribeGroup, key) {
			msg := "not authorized to use group " + key
			return codeGroupAuth, &msg
		}
		return 0, nil
	}
	if req.Version >= 4 {
		for _, key := range req.CoordinatorKeys {
			co := kmsg.NewFindCoordinatorResponseCoordinator()
			co.Key, co.NodeID, co.Host, co.Port = key, node, host, port
			co.ErrorCode, co.ErrorMessage = answer(key, req.CoordinatorType)
			resp.Coordinators = append(resp.Coordinators, co)
		}
		return reply{resp: resp}
	}
	resp.ErrorCode, resp.ErrorMessage = answer(req.CoordinatorKey, req.CoordinatorType)
	resp.NodeID, resp.Host, resp.Port = node, host, port
	return reply{resp: resp}
}

func handleJoinGroup(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.JoinGroupRequest)
	resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
	if !c.allowed(auth.JoinGroup, req.Group) {
		resp.ErrorCode, resp.Generation, resp.MemberID = codeGroupAuth, -1, req.MemberID
		return reply{resp: resp}
	}
	jr := group.JoinRequest{
		Group:                req.Group,
		MemberID:             req.MemberID,
		InstanceID:           strOrEmpty(req.InstanceID),
		ClientID:             c.clientID,
		ClientHost:           c.remoteHost(),
		ProtocolType:         req.ProtocolType,
		SessionTimeout:       time.Duration(req.SessionTimeoutMillis) * time.Millisecond,
		RequireKnownMemberID: req.Version >= 4,
	}
	if req.Version >= 1 {
		jr.RebalanceTimeout = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
	}
	for _, p := range req.Protocols {
		jr.Protocols = append(jr.Protocols, group.Protocol{Name: p.Name, Metadata: p.Metadata})
	}
	return reply{later: func(ctx context.Context) kmsg.Response {
		res := c.s.b.Groups().Join(ctx, jr)
		resp.MemberID = res.MemberID
		if res.Err != nil {
			resp.ErrorCode = groupCode(res.Err)
			resp.Generation = -1
			if resp.MemberID == "" {
				resp.MemberID = req.MemberID
			}
			return resp
		}
		resp.Generation = res.Generation
		resp.ProtocolType = strPtrOrNil(res.ProtocolType)
		resp.Protocol = &res.ProtocolName
		resp.LeaderID = res.LeaderID
		for _, m := range res.Members {
			rm := kmsg.NewJoinGroupResponseMember()
			rm.MemberID, rm.InstanceID, rm.ProtocolMetadata = m.MemberID, strPtrOrNil(m.InstanceID), m.Metadata
			resp.Members = append(resp.Members, rm)
		}
		return resp
	}}
}

func handleSyncGroup(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.SyncGroupRequest)
	resp := req.ResponseKind().(*kmsg.SyncGroupResponse)
	if !c.allowed(auth.JoinGroup, req.Group) {
		resp.ErrorCode, resp.MemberAssignment = codeGroupAuth, []byte{}
		return reply{resp: resp}
	}
	sr := group.SyncRequest{
		Group:        req.Group,
		Generation:   req.Generation,
		MemberID:     req.MemberID,
		InstanceID:   strOrEmpty(req.InstanceID),
		ProtocolType: strOrEmpty(req.ProtocolType),
		ProtocolName: strOrEmpty(req.Protocol),
	}
	for _, a := range req.GroupAssignment {
		sr.Assignments = append(sr.Assignments, group.MemberAssignment{MemberID: a.MemberID, Assignment: a.MemberAssignment})
	}
	return reply{later: func(ctx context.Context) kmsg.Response {
		assignment, err := c.s.b.Groups().Sync(ctx, sr)
		resp.ErrorCode = groupCode(err)
		if err == nil {
			resp.MemberAssignment = assignment
			if req.Version >= 5 {
				resp.ProtocolType, resp.Protocol = req.ProtocolType, req.Protocol
			}
		}
		if resp.MemberAssignment == nil {
			resp.MemberAssignment = []byte{}
		}
		return resp
	}}
}

func handleHeartbeat(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.HeartbeatRequest)
	resp := req.ResponseKind().(*kmsg.HeartbeatResponse)
	if !c.allowed(auth.JoinGroup, req.Group) {
		resp.ErrorCode = codeGroupAuth
		return reply{resp: resp}
	}
	resp.ErrorCode = groupCode(c.s.b.Groups().Heartbeat(req.Group, req.Generation, req.MemberID, strOrEmpty(req.InstanceID)))
	return reply{resp: resp}
}

func handleLeaveGroup(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.LeaveGroupRequest)
	resp := req.ResponseKind().(*kmsg.LeaveGroupResponse)
	if !c.allowed(auth.JoinGroup, req.Group) {
		resp.ErrorCode = codeGroupAuth
		return reply{resp: resp}
	}
	var members []group.LeaveMember
	if req.Version < 3 {
		members = []group.LeaveMember{{MemberID: req.MemberID}}
	} else {
		for _, m := range req.Members {
			members = append(members, group.LeaveMember{MemberID: m.MemberID, InstanceID: strOrEmpty(m.InstanceID)})
		}
	}
	errs, err := c.s.b.Groups().Leave(req.Group, members)
	resp.ErrorCode = groupCode(err)
	if req.Version < 3 {
		if err == nil && len(errs) == 1 {
			resp.ErrorCode = groupCode(errs[0])
		}
		return reply{resp: resp}
	}
	for i, m := range members {
		rm := kmsg.NewLeaveGroupResponseMember()
		rm.MemberID, rm.InstanceID = m.MemberID, strPtrOrNil(m.InstanceID)
		if i < len(errs) {
			rm.ErrorCode = groupCode(errs[i])
		}
		resp.Members = append(resp.Members, rm)
	}
	return reply{resp: resp}
}

func handleOffsetCommit(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.OffsetCommitRequest)
	resp := req.ResponseKind().(*kmsg.OffsetCommitResponse)
	cr := group.CommitRequest{Group: req.Group, Generation: -1, MemberID: req.MemberID, InstanceID: strOrEmpty(req.InstanceID)}
	if req.Version >= 1 {
		cr.Generation = req.Generation
	}
	// denied holds the code of each partition refused before committing
	// (by request order); the others are committed.
	groupOK := c.allowed(auth.JoinGroup, req.Group)
	var denied []int16
	for _, t := range req.Topics {
		topicOK := c.allowed(auth.ConsumeTopic, t.Topic)
		for _, p := range t.Partitions {
			switch {
			case !groupOK:
				denied = append(denied, codeGroupAuth)
				continue
			case !topicOK:
				denied = append(denied, codeTopicAuth)
				continue
			}
			denied = append(denied, 0)
			epoch := int32(-1)
			if req.Version >= 6 {
				epoch = p.LeaderEpoch
			}
			cr.Offsets = append(cr.Offsets, group.OffsetCommit{
				Topic: t.Topic, Partition: p.Partition, Offset: p.Offset, LeaderEpoch: epoch, Metadata: strOrEmpty(p.Metadata),
			})
		}
	}
	return reply{later: func(ctx context.Context) kmsg.Response {
		var errs []error
		if len(cr.Offsets) > 0 || groupOK {
			errs = c.s.b.Groups().CommitOffsets(cr)
		}
		i, k := 0, 0
		for _, t := range req.Topics {
			rt := kmsg.NewOffsetCommitResponseTopic()
			rt.Topic = t.Topic
			for _, p := range t.Partitions {
				rp := kmsg.NewOffsetCommitResponseTopicPartition()
				rp.Partition = p.Partition
				if code := denied[k]; code != 0 {
					rp.ErrorCode = code
				} else {
					if i < len(errs) {
						rp.ErrorCode = groupCode(errs[i])
					}
					i++
				}
				k++
				rt.Partitions = append(rt.Partitions, rp)
			}
			resp.Topics = append(resp.Topics, rt)
		}
		return resp
	}}
}

// fetchGroupOffsets answers one group of an OffsetFetch: the requested
// partitions, or every committed one when all. Topics the principal may
// not describe are left out of all; requested, they come back with offset
// -1 and are named in denied (TOPIC_AUTHORIZATION_FAILED).
func (c *conn) fetchGroupOffsets(groupID string, topics map[string][]int32, order []string, all bool) (offs []group.FetchedOffset, denied map[string]bool, err error) {
	var tps []group.TopicPartition
	var refused []group.FetchedOffset
	if !all {
		tps = []group.TopicPartition{}
		for _, t := range order {
			ok := c.allowed(auth.DescribeTopic, t)
			for _, p := range topics[t] {
				tp := group.TopicPartition{Topic: t, Partition: p}
				if ok {
					tps = append(tps, tp)
					continue
				}
				if denied == nil {
					denied = map[string]bool{}
				}
				denied[t] = true
				refused = append(refused, group.FetchedOffset{TopicPartition: tp, Offset: group.Offset{Offset: -1, LeaderEpoch: -1}})
			}
		}
	}
	offs, err = c.s.b.Groups().FetchOffsets(groupID, tps)
	if err != nil {
		return offs, nil, err
	}
	if all && c.s.authOn() {
		kept := offs[:0]
		for _, o := range offs {
			if c.allowed(auth.DescribeTopic, o.Topic) {
				kept = append(kept, o)
			}
		}
		offs = kept
	}
	return append(offs, refused...), denied, nil
}

func handleOffsetFetch(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.OffsetFetchRequest)
	resp := req.ResponseKind().(*kmsg.OffsetFetchResponse)
	if req.Version >= 8 {
		for _, g := range req.Groups {
			topics, order := map[string][]int32{}, []string{}
			for _, t := range g.Topics {
				topics[t.Topic] = append(topics[t.Topic], t.Partitions...)
				order = append(order, t.Topic)
			}
			rg := kmsg.NewOffsetFetchResponseGroup()
			rg.Group = g.Group
			if !c.allowed(auth.DescribeGroup, g.Group) {
				rg.ErrorCode = codeGroupAuth
				resp.Groups = append(resp.Groups, rg)
				continue
			}
			offs, denied, err := c.fetchGroupOffsets(g.Group, topics, order, g.Topics == nil)
			rg.ErrorCode = groupCode(err)
			byTopic := map[string]int{}
			for _, o := range offs {
				j, ok := byTopic[o.Topic]
				if !ok {
					j = len(rg.Topics)
					byTopic[o.Topic] = j
					rt := kmsg.NewOffsetFetchResponseGroupTopic()
					rt.Topic = o.Topic
					rg.Topics = append(rg.Topics, rt)
				}
				rp := kmsg.NewOffsetFetchResponseGroupTopicPartition()
				rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = o.Partition, o.Offset.Offset, o.LeaderEpoch, &o.Metadata
				if denied[o.Topic] {
					rp.ErrorCode = codeTopicAuth
				}
				rg.Topics[j].Partitions = append(rg.Topics[j].Partitions, rp)
			}
			resp.Groups = append(resp.Groups, rg)
		}
		return reply{resp: resp}
	}
	topics, order := map[string][]int32{}, []string{}
	for _, t := range req.Topics {
		topics[t.Topic] = append(topics[t.Topic], t.Partitions...)
		order = append(order, t.Topic)
	}
	var offs []group.FetchedOffset
	var denied map[string]bool
	var code int16
	if c.allowed(auth.DescribeGroup, req.Group) {
		var err error
		offs, denied, err = c.fetchGroupOffsets(req.Group, topics, order, req.Topics == nil && req.Version >= 2)
		code = groupCode(err)
	} else {
		code = codeGroupAuth
		if req.Version < 2 {
			// The error goes in every requested partition.
			for _, t := range order {
				for _, p := range topics[t] {
					offs = append(offs, group.FetchedOffset{TopicPartition: group.TopicPartition{Topic: t, Partition: p}, Offset: group.Offset{Offset: -1, LeaderEpoch: -1}})
				}
			}
		}
	}
	if req.Version >= 2 {
		resp.ErrorCode = code
	}
	byTopic := map[string]int{}
	for _, o := range offs {
		j, ok := byTopic[o.Topic]
		if !ok {
			j = len(resp.Topics)
			byTopic[o.Topic] = j
			rt := kmsg.NewOffsetFetchResponseTopic()
			rt.Topic = o.Topic
			resp.Topics = append(resp.Topics, rt)
		}
		rp := kmsg.NewOffsetFetchResponseTopicPartition()
		rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = o.Partition, o.Offset.Offset, o.LeaderEpoch, &o.Metadata
		if req.Version < 2 {
			rp.ErrorCode = code
		}
		if denied[o.Topic] {
			rp.ErrorCode = codeTopicAuth
		}
		resp.Topics[j].Partitions = append(resp.Topics[j].Partitions, rp)
	}
	return reply{resp: resp}
}

func handleOffsetDelete(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.OffsetDeleteRequest)
	resp := req.ResponseKind().(*kmsg.OffsetDeleteResponse)
	if !c.allowed(auth.DeleteGroup, req.Group) {
		resp.ErrorCode = codeGroupAuth
		return reply{resp: resp}
	}
	var tps []group.TopicPartition
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			tps = append(tps, group.TopicPartition{Topic: t.Topic, Partition: p.Partition})
		}
	}
	errs, err := c.s.b.Groups().DeleteOffsets(req.Group, tps)
	resp.ErrorCode = groupCode(err)
	if err != nil {
		return reply{resp: resp}
	}
	i := 0
	for _, t := range req.Topics {
		rt := kmsg.NewOffsetDeleteResponseTopic()
		rt.Topic = t.Topic
		for _, p := range t.Partitions {
			rp := kmsg.NewOffsetDeleteResponseTopicPartition()
			rp.Partition = p.Partition
			if i < len(errs) {
				rp.ErrorCode = groupCode(errs[i])
			}
			i++
			rt.Partitions = append(rt.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, rt)
	}
	return reply{resp: resp}
}

func handleListGroups(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.ListGroupsRequest)
	resp := req.ResponseKind().(*kmsg.ListGroupsResponse)
	for _, g := range c.s.b.Groups().ListGroups() {
		if !c.allowed(auth.DescribeGroup, g.Group) {
			continue
		}
		if len(req.StatesFilter) > 0 && !containsFold(req.StatesFilter, string(g.State)) {
			continue
		}
		if len(req.TypesFilter) > 0 && !containsFold(req.TypesFilter, "classic") {
			continue
		}
		rg := kmsg.NewListGroupsResponseGroup()
		rg.Group, rg.ProtocolType, rg.GroupState, rg.GroupType = g.Group, g.ProtocolType, string(g.State), "classic"
		resp.Groups = append(resp.Groups, rg)
	}
	return reply{resp: resp}
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if len(x) == len(s) && (x == s || equalFold(x, s)) {
			return true
		}
	}
	return false
}

func equalFold(a, b string) bool {
	for i := 0; i < len(a); i++ {
		ca, cb := a[i], b[i]
		if 'A' <= ca && ca <= 'Z' {
			ca += 'a' - 'A'
		}
		if 'A' <= cb && cb <= 'Z' {
			cb += 'a' - 'A'
		}
		if ca != cb {
			return false
		}
	}
	return true
}

func handleDescribeGroups(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.DescribeGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeGroupsResponse)
	var groups []string
	for _, g := range req.Groups {
		if c.allowed(auth.DescribeGroup, g) {
			groups = append(groups, g)
		}
	}
	described := c.s.b.Groups().DescribeGroups(groups)
	for _, g := range req.Groups {
		if !c.allowed(auth.DescribeGroup, g) {
			rg := kmsg.NewDescribeGroupsResponseGroup()
			rg.Group, rg.ErrorCode = g, codeGroupAuth
			rg.AuthorizedOperations = -2147483648
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		d := described[0]
		described = described[1:]
		rg := kmsg.NewDescribeGroupsResponseGroup()
		rg.Group, rg.State, rg.ProtocolType, rg.Protocol = d.Group, string(d.State), d.ProtocolType, d.Protocol
		rg.ErrorCode = groupCode(d.Err)
		rg.AuthorizedOperations = -2147483648 // not requested / not computed
		for _, m := range d.Members {
			rm := kmsg.NewDescribeGroupsResponseGroupMember()
			rm.MemberID, rm.InstanceID, rm.ClientID, rm.ClientHost = m.MemberID, strPtrOrNil(m.InstanceID), m.ClientID, m.ClientHost
			rm.ProtocolMetadata, rm.MemberAssignment = m.Metadata, m.Assignment
			if rm.ProtocolMetadata == nil {
				rm.ProtocolMetadata = []byte{}
			}
			if rm.MemberAssignment == nil {
				rm.MemberAssignment = []byte{}
			}
			rg.Members = append(rg.Members, rm)
		}
		resp.Groups = append(resp.Groups, rg)
	}
	return reply{resp: resp}
}

func handleDeleteGroups(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.DeleteGroupsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteGroupsResponse)
	var groups []string
	for _, g := range req.Groups {
		if c.allowed(auth.DeleteGroup, g) {
			groups = append(groups, g)
		}
	}
	errs := c.s.b.Groups().DeleteGroups(groups)
	i := 0
	for _, g := range req.Groups {
		rg := kmsg.NewDeleteGroupsResponseGroup()
		rg.Group = g
		if !c.allowed(auth.DeleteGroup, g) {
			rg.ErrorCode = codeGroupAuth
			resp.Groups = append(resp.Groups, rg)
			continue
		}
		if i < len(errs) {
			rg.ErrorCode = groupCode(errs[i])
		}
		i++
		resp.Groups = append(resp.Groups, rg)
	}
	return reply{resp: resp}
}
