package kafka

import (
	"errors"

	"github.com/samsa-broker/samsa/auth"
	"github.com/samsa-broker/samsa/broker"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// noLeaderEpoch is the leader epoch samsa reports everywhere: it keeps no
// epochs (one broker, no elections).
const noLeaderEpoch = -1

// handleMetadata answers with this node as the only broker, the controller
// and the leader of every partition. Unknown topics are created before
// answering when the request and the broker allow it, so the answer is
// ready (never LEADER_NOT_AVAILABLE).
func handleMetadata(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.MetadataRequest)
	resp := req.ResponseKind().(*kmsg.MetadataResponse)
	b := c.s.b
	node := b.NodeID()

	host, port := c.advertised()
	br := kmsg.NewMetadataResponseBroker()
	br.NodeID, br.Host, br.Port = node, host, port
	resp.Brokers = []kmsg.MetadataResponseBroker{br}
	resp.ClusterID = ptr(b.ClusterID())
	resp.ControllerID = node

	allowCreate := (req.Version < 4 || req.AllowAutoTopicCreation) && b.AutoCreateEnabled()
	// A principal sees the topics it may describe; it is told
	// TOPIC_AUTHORIZATION_FAILED for the others it names, whether they
	// exist or not, as Kafka does.
	denied := func(name *string) {
		t := kmsg.NewMetadataResponseTopic()
		t.Topic, t.ErrorCode = name, codeTopicAuth
		resp.Topics = append(resp.Topics, t)
	}
	addTopic := func(info broker.TopicInfo, err error, name *string, id [16]byte) {
		t := kmsg.NewMetadataResponseTopic()
		t.Topic, t.TopicID = name, id
		if err != nil {
			t.ErrorCode = errorCode(err, kerr.UnknownTopicOrPartition.Code, kerr.InvalidTopicException.Code, kerr.UnknownTopicID.Code)
			resp.Topics = append(resp.Topics, t)
			return
		}
		t.Topic = ptr(info.Name)
		t.TopicID = info.ID
		for i := int32(0); i < info.Partitions; i++ {
			p := kmsg.NewMetadataResponseTopicPartition()
			p.Partition = i
			p.Leader = node
			p.LeaderEpoch = noLeaderEpoch
			p.Replicas = []int32{node}
			p.ISR = []int32{node}
			p.OfflineReplicas = []int32{}
			t.Partitions = append(t.Partitions, p)
		}
		resp.Topics = append(resp.Topics, t)
	}

	if req.Topics == nil || (req.Version == 0 && len(req.Topics) == 0) {
		for _, info := range b.Topics() {
			if c.allowed(auth.DescribeTopic, info.Name) {
				addTopic(info, nil, nil, [16]byte{})
			}
		}
		// Filtered views are topics to clients (read-only).
		for _, info := range b.Views() {
			if c.allowed(auth.DescribeTopic, info.Name) {
				addTopic(info, nil, nil, [16]byte{})
			}
		}
		return reply{resp: resp}
	}
	for _, rt := range req.Topics {
		if rt.Topic == nil {
			info, err := b.TopicByID(rt.TopicID)
			if err != nil {
				info, err = b.ViewByID(rt.TopicID)
			}
			if err != nil {
				err = errUnknownTopicID
			} else if !c.allowed(auth.DescribeTopic, info.Name) {
				denied(nil)
				continue
			}
			addTopic(info, err, nil, rt.TopicID)
			continue
		}
		name := *rt.Topic
		if !c.allowed(auth.DescribeTopic, name) {
			denied(rt.Topic)
			continue
		}
		info, err := b.Topic(name)
		if err != nil && errors.Is(err, broker.ErrUnknownTopic) {
			if vi, verr := b.View(name); verr == nil {
				info, err = vi, nil
			}
		}
		if err != nil && errors.Is(err, broker.ErrUnknownTopic) {
			if verr := broker.ValidTopicName(name); verr != nil {
				err = verr
			} else if allowCreate && c.allowed(auth.AutoCreateTopic, name) {
				info, err = b.AutoCreate(name)
				if errors.Is(err, broker.ErrTopicExists) {
					info, err = b.Topic(name)
				}
			}
		}
		addTopic(info, err, rt.Topic, [16]byte{})
	}
	return reply{resp: resp}
}

// errUnknownTopicID marks a lookup by topic id that found nothing.
var errUnknownTopicID = errors.New("unknown topic id")

// handleDescribeCluster describes the one-node cluster.
func handleDescribeCluster(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.DescribeClusterRequest)
	resp := req.ResponseKind().(*kmsg.DescribeClusterResponse)
	b := c.s.b
	resp.EndpointType = req.EndpointType
	if req.Version >= 1 && req.EndpointType != 1 {
		resp.ErrorCode = kerr.UnsupportedEndpointType.Code
		resp.ErrorMessage = ptr("samsa has no separate controller endpoints; use endpoint type 1 (brokers)")
		return reply{resp: resp}
	}
	resp.ClusterID = b.ClusterID()
	resp.ControllerID = b.NodeID()
	host, port := c.advertised()
	br := kmsg.NewDescribeClusterResponseBroker()
	br.NodeID, br.Host, br.Port = b.NodeID(), host, port
	resp.Brokers = []kmsg.DescribeClusterResponseBroker{br}
	return reply{resp: resp}
}

// handleInitProducerID gives idempotent producers an id. Transactional ids
// are refused with TRANSACTIONAL_ID_AUTHORIZATION_FAILED (non-retriable;
// the response has no error message, so the reason goes to the log).
func handleInitProducerID(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.InitProducerIDRequest)
	resp := req.ResponseKind().(*kmsg.InitProducerIDResponse)
	txn := ""
	if req.TransactionalID != nil {
		txn = *req.TransactionalID
	}
	id, epoch, err := c.s.b.InitProducerID(txn)
	resp.ProducerID, resp.ProducerEpoch = id, epoch
	if err != nil {
		resp.ProducerID, resp.ProducerEpoch = -1, -1
		resp.ErrorCode = errorCode(err, kerr.TransactionalIDAuthorizationFailed.Code)
		c.s.log.Warn("InitProducerId refused", "remote", c.remote, "err", err)
	}
	return reply{resp: resp}
}

// handleListOffsets answers latest (-1), earliest (-2, and -4 earliest
// local) and by timestamp. v0 answers in OldStyleOffsets.
func handleListOffsets(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.ListOffsetsRequest)
	resp := req.ResponseKind().(*kmsg.ListOffsetsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewListOffsetsResponseTopic()
		st.Topic = rt.Topic
		denied := !c.allowed(auth.DescribeTopic, rt.Topic)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewListOffsetsResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LeaderEpoch = noLeaderEpoch
			sp.Offset, sp.Timestamp = -1, -1
			if denied {
				sp.ErrorCode = codeTopicAuth
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			ts := rp.Timestamp
			if ts == -4 { // earliest local: all of the log is local
				ts = broker.EarliestTimestamp
			}
			if ts < 0 && ts != broker.LatestTimestamp && ts != broker.EarliestTimestamp && !(ts == broker.MaxTimestamp && req.Version >= 7) {
				// -5 (latest tiered) and newer specials are not
				// supported; -3 (max timestamp) exists from v7.
				sp.ErrorCode = kerr.UnsupportedVersion.Code
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			off, ots, err := c.s.b.ListOffset(rt.Topic, rp.Partition, ts)
			if err != nil {
				sp.ErrorCode = errorCode(err, listOffsetsCodes...)
			} else {
				sp.Offset, sp.Timestamp = off, ots
				if req.Version == 0 && off >= 0 {
					sp.OldStyleOffsets = []int64{off}
				}
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return reply{resp: resp}
}

// handleOffsetForEpoch answers every epoch with leader epoch -1 and the
// high watermark as end offset: samsa keeps no leader epochs, and its log
// is never truncated by an election.
func handleOffsetForEpoch(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.OffsetForLeaderEpochRequest)
	resp := req.ResponseKind().(*kmsg.OffsetForLeaderEpochResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewOffsetForLeaderEpochResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewOffsetForLeaderEpochResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.LeaderEpoch = noLeaderEpoch
			sp.EndOffset = -1
			if !c.allowed(auth.DescribeTopic, rt.Topic) {
				sp.ErrorCode = codeTopicAuth
			} else if _, hwm, err := c.s.b.Offsets(rt.Topic, rp.Partition); err != nil {
				sp.ErrorCode = errorCode(err, partitionCodes...)
			} else {
				sp.EndOffset = hwm
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return reply{resp: resp}
}

// handleDeleteRecords moves log start offsets forward.
func handleDeleteRecords(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.DeleteRecordsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteRecordsResponse)
	for _, rt := range req.Topics {
		st := kmsg.NewDeleteRecordsResponseTopic()
		st.Topic = rt.Topic
		for _, rp := range rt.Partitions {
			sp := kmsg.NewDeleteRecordsResponseTopicPartition()
			sp.Partition = rp.Partition
			if !c.allowed(auth.AlterTopic, rt.Topic) {
				sp.LowWatermark, sp.ErrorCode = -1, codeTopicAuth
				st.Partitions = append(st.Partitions, sp)
				continue
			}
			low, err := c.s.b.DeleteRecords(rt.Topic, rp.Partition, rp.Offset)
			sp.LowWatermark = low
			if err != nil {
				sp.LowWatermark = -1
				sp.ErrorCode = errorCode(err, partitionCodes...)
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return reply{resp: resp}
}
