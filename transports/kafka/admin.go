package kafka

import (
	"fmt"
	"strconv"

	"github.com/samsa-broker/samsa/auth"
	"github.com/samsa-broker/samsa/broker"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// codeError is an error this package decides itself, with its Kafka code.
type codeError struct {
	code int16
	msg  string
}

func (e *codeError) Error() string { return e.msg }

func codeErrorf(code int16, format string, args ...any) error {
	return &codeError{code: code, msg: fmt.Sprintf(format, args...)}
}

// checkReplicas accepts a replica list only if it is exactly this node.
func checkReplicas(node int32, replicas []int32) error {
	if len(replicas) != 1 || replicas[0] != node {
		return codeErrorf(kerr.InvalidReplicaAssignment.Code, "replicas %v: samsa is one broker; the only valid assignment is [%d]", replicas, node)
	}
	return nil
}

func countNames[T any](items []T, name func(T) string) map[string]int {
	m := make(map[string]int, len(items))
	for _, it := range items {
		m[name(it)]++
	}
	return m
}

func handleCreateTopics(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.CreateTopicsRequest)
	resp := req.ResponseKind().(*kmsg.CreateTopicsResponse)
	b := c.s.b
	seen := countNames(req.Topics, func(t kmsg.CreateTopicsRequestTopic) string { return t.Topic })
	for _, rt := range req.Topics {
		st := kmsg.NewCreateTopicsResponseTopic()
		st.Topic = rt.Topic
		st.NumPartitions, st.ReplicationFactor = -1, -1
		info, err := func() (broker.TopicInfo, error) {
			if !c.allowed(auth.CreateTopic, rt.Topic) {
				return broker.TopicInfo{}, topicDenied(auth.CreateTopic, rt.Topic)
			}
			if seen[rt.Topic] > 1 {
				return broker.TopicInfo{}, codeErrorf(kerr.InvalidRequest.Code, "topic %q appears more than once in the request", rt.Topic)
			}
			if rt.ReplicationFactor != -1 && rt.ReplicationFactor != 1 {
				return broker.TopicInfo{}, codeErrorf(kerr.InvalidReplicationFactor.Code, "replication factor %d: samsa is one broker; use 1 or -1", rt.ReplicationFactor)
			}
			partitions := rt.NumPartitions
			if len(rt.ReplicaAssignment) > 0 {
				if partitions != -1 {
					return broker.TopicInfo{}, codeErrorf(kerr.InvalidRequest.Code, "both a partition count and a replica assignment are set")
				}
				for _, a := range rt.ReplicaAssignment {
					if err := checkReplicas(b.NodeID(), a.Replicas); err != nil {
						return broker.TopicInfo{}, err
					}
				}
				partitions = int32(len(rt.ReplicaAssignment))
			}
			overrides := make(map[string]string, len(rt.Configs))
			for _, cfg := range rt.Configs {
				if cfg.Value != nil {
					overrides[cfg.Name] = *cfg.Value
				}
			}
			return b.CreateTopic(rt.Topic, partitions, overrides, req.ValidateOnly)
		}()
		if err != nil {
			st.ErrorCode = errorCode(err, topicAdminCodes...)
			st.ErrorMessage = errMessage(err)
			resp.Topics = append(resp.Topics, st)
			continue
		}
		st.NumPartitions, st.ReplicationFactor = info.Partitions, 1
		if !req.ValidateOnly {
			st.TopicID = info.ID
			entries, err := b.DescribeTopicConfig(info.Name)
			if err == nil {
				for _, e := range entries {
					rc := kmsg.NewCreateTopicsResponseTopicConfig()
					rc.Name, rc.Value = e.Name, ptr(e.Value)
					rc.Source = int8(configSource(e))
					st.Configs = append(st.Configs, rc)
				}
			}
		} else {
			for k, v := range info.Overrides {
				rc := kmsg.NewCreateTopicsResponseTopicConfig()
				rc.Name, rc.Value = k, ptr(v)
				rc.Source = int8(kmsg.ConfigSourceDynamicTopicConfig)
				st.Configs = append(st.Configs, rc)
			}
		}
		resp.Topics = append(resp.Topics, st)
	}
	return reply{resp: resp}
}

func handleDeleteTopics(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.DeleteTopicsRequest)
	resp := req.ResponseKind().(*kmsg.DeleteTopicsResponse)
	b := c.s.b
	topics := req.Topics
	if req.Version < 6 {
		topics = nil
		for _, n := range req.TopicNames {
			t := kmsg.NewDeleteTopicsRequestTopic()
			t.Topic = ptr(n)
			topics = append(topics, t)
		}
	}
	for _, rt := range topics {
		st := kmsg.NewDeleteTopicsResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		var err error
		if rt.Topic == nil {
			var info broker.TopicInfo
			if info, err = b.TopicByID(rt.TopicID); err != nil {
				err = fmt.Errorf("%w %x", errUnknownTopicID, rt.TopicID)
			} else {
				st.Topic = ptr(info.Name)
			}
		} else if info, terr := b.Topic(*rt.Topic); terr == nil {
			st.TopicID = info.ID
		}
		if err == nil && !c.allowed(auth.DeleteTopic, *st.Topic) {
			err = topicDenied(auth.DeleteTopic, *st.Topic)
		}
		if err == nil {
			err = b.DeleteTopic(*st.Topic)
		}
		if err != nil {
			st.ErrorCode = errorCode(err, topicAdminCodes...)
			st.ErrorMessage = errMessage(err)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return reply{resp: resp}
}

func handleCreatePartitions(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.CreatePartitionsRequest)
	resp := req.ResponseKind().(*kmsg.CreatePartitionsResponse)
	b := c.s.b
	seen := countNames(req.Topics, func(t kmsg.CreatePartitionsRequestTopic) string { return t.Topic })
	for _, rt := range req.Topics {
		st := kmsg.NewCreatePartitionsResponseTopic()
		st.Topic = rt.Topic
		err := func() error {
			if !c.allowed(auth.AlterTopic, rt.Topic) {
				return topicDenied(auth.AlterTopic, rt.Topic)
			}
			if seen[rt.Topic] > 1 {
				return codeErrorf(kerr.InvalidRequest.Code, "topic %q appears more than once in the request", rt.Topic)
			}
			for _, a := range rt.Assignment {
				if err := checkReplicas(b.NodeID(), a.Replicas); err != nil {
					return err
				}
			}
			return b.CreatePartitions(rt.Topic, rt.Count, req.ValidateOnly)
		}()
		if err != nil {
			st.ErrorCode = errorCode(err, topicAdminCodes...)
			st.ErrorMessage = errMessage(err)
		}
		resp.Topics = append(resp.Topics, st)
	}
	return reply{resp: resp}
}

// configTypes are the Kafka types of the topic config keys (DescribeConfigs
// v3+); unlisted keys are strings.
var configTypes = map[string]kmsg.ConfigType{
	"retention.ms":               kmsg.ConfigTypeLong,
	"retention.bytes":            kmsg.ConfigTypeLong,
	"segment.bytes":              kmsg.ConfigTypeLong,
	"segment.ms":                 kmsg.ConfigTypeLong,
	"flush.ms":                   kmsg.ConfigTypeLong,
	"max.message.bytes":          kmsg.ConfigTypeInt,
	"cleanup.policy":             kmsg.ConfigTypeList,
	"broker.id":                  kmsg.ConfigTypeInt,
	"num.partitions":             kmsg.ConfigTypeInt,
	"auto.create.topics.enable":  kmsg.ConfigTypeBoolean,
	"default.replication.factor": kmsg.ConfigTypeShort,
}

func configSource(e broker.ConfigEntry) kmsg.ConfigSource {
	if e.IsDefault {
		return kmsg.ConfigSourceDefaultConfig
	}
	return kmsg.ConfigSourceDynamicTopicConfig
}

// brokerConfigs is the small, read-only set of broker configs described.
func brokerConfigs(b *broker.Broker) []broker.ConfigEntry {
	return []broker.ConfigEntry{
		{Name: "auto.create.topics.enable", Value: strconv.FormatBool(b.AutoCreateEnabled()), Doc: "create unknown topics on metadata and produce"},
		{Name: "broker.id", Value: strconv.Itoa(int(b.NodeID())), Doc: "this broker's node id"},
		{Name: "default.replication.factor", Value: "1", Doc: "samsa is one broker"},
		{Name: "num.partitions", Value: strconv.Itoa(int(b.DefaultPartitions())), Doc: "partitions of auto-created topics"},
	}
}

func handleDescribeConfigs(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.DescribeConfigsRequest)
	resp := req.ResponseKind().(*kmsg.DescribeConfigsResponse)
	b := c.s.b
	for _, rr := range req.Resources {
		sr := kmsg.NewDescribeConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		var entries []broker.ConfigEntry
		var err error
		source := func(e broker.ConfigEntry) kmsg.ConfigSource { return configSource(e) }
		readOnly := false
		switch rr.ResourceType {
		case kmsg.ConfigResourceTypeTopic:
			if !c.allowed(auth.DescribeTopic, rr.ResourceName) {
				err = topicDenied(auth.DescribeTopic, rr.ResourceName)
				break
			}
			entries, err = b.DescribeTopicConfig(rr.ResourceName)
		case kmsg.ConfigResourceTypeBroker:
			if !c.allowed(auth.ClusterAdmin, "") {
				err = clusterDenied("describe broker configs")
				break
			}
			entries = brokerConfigs(b)
			source = func(broker.ConfigEntry) kmsg.ConfigSource { return kmsg.ConfigSourceStaticBrokerConfig }
			readOnly = true
		default:
			err = codeErrorf(kerr.InvalidRequest.Code, "config resource type %v is not supported; samsa describes topics and brokers", rr.ResourceType)
		}
		if err != nil {
			sr.ErrorCode = errorCode(err, topicAdminCodes...)
			sr.ErrorMessage = errMessage(err)
			resp.Resources = append(resp.Resources, sr)
			continue
		}
		var want map[string]bool
		if rr.ConfigNames != nil {
			want = make(map[string]bool, len(rr.ConfigNames))
			for _, n := range rr.ConfigNames {
				want[n] = true
			}
		}
		for _, e := range entries {
			if want != nil && !want[e.Name] {
				continue
			}
			rc := kmsg.NewDescribeConfigsResponseResourceConfig()
			rc.Name, rc.Value = e.Name, ptr(e.Value)
			rc.ReadOnly = readOnly
			rc.IsDefault = e.IsDefault
			rc.Source = source(e)
			if req.IncludeSynonyms {
				syn := kmsg.NewDescribeConfigsResponseResourceConfigConfigSynonym()
				syn.Name, syn.Value, syn.Source = e.Name, ptr(e.Value), rc.Source
				rc.ConfigSynonyms = append(rc.ConfigSynonyms, syn)
			}
			rc.ConfigType = kmsg.ConfigTypeString
			if t, ok := configTypes[e.Name]; ok {
				rc.ConfigType = t
			}
			if req.IncludeDocumentation && e.Doc != "" {
				rc.Documentation = ptr(e.Doc)
			}
			sr.Configs = append(sr.Configs, rc)
		}
		resp.Resources = append(resp.Resources, sr)
	}
	return reply{resp: resp}
}

var errBrokerConfigStatic = codeErrorf(kerr.InvalidRequest.Code, "broker configs are static in samsa: set them in broker.toml")

// handleAlterConfigs replaces a topic's whole set of overrides (the
// non-incremental AlterConfigs semantics).
func handleAlterConfigs(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.AlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.AlterConfigsResponse)
	b := c.s.b
	for _, rr := range req.Resources {
		sr := kmsg.NewAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		sr.ErrorCode, sr.ErrorMessage = alterResource(c, rr.ResourceType, rr.ResourceName, req.ValidateOnly, func() ([]broker.ConfigOp, error) {
			info, err := b.Topic(rr.ResourceName)
			if err != nil {
				return nil, err
			}
			set := make(map[string]bool, len(rr.Configs))
			var ops []broker.ConfigOp
			for _, cfg := range rr.Configs {
				if cfg.Value == nil {
					continue
				}
				set[cfg.Name] = true
				ops = append(ops, broker.ConfigOp{Name: cfg.Name, Op: broker.ConfigSet, Value: *cfg.Value})
			}
			for k := range info.Overrides {
				if !set[k] {
					ops = append(ops, broker.ConfigOp{Name: k, Op: broker.ConfigDelete})
				}
			}
			return ops, nil
		})
		resp.Resources = append(resp.Resources, sr)
	}
	return reply{resp: resp}
}

func handleIncrementalAlter(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.IncrementalAlterConfigsRequest)
	resp := req.ResponseKind().(*kmsg.IncrementalAlterConfigsResponse)
	for _, rr := range req.Resources {
		sr := kmsg.NewIncrementalAlterConfigsResponseResource()
		sr.ResourceType, sr.ResourceName = rr.ResourceType, rr.ResourceName
		sr.ErrorCode, sr.ErrorMessage = alterResource(c, rr.ResourceType, rr.ResourceName, req.ValidateOnly, func() ([]broker.ConfigOp, error) {
			ops := make([]broker.ConfigOp, 0, len(rr.Configs))
			for _, cfg := range rr.Configs {
				op := broker.ConfigOp{Name: cfg.Name, Op: broker.ConfigOpType(cfg.Op)}
				if cfg.Value != nil {
					op.Value = *cfg.Value
				} else if op.Op == broker.ConfigSet {
					return nil, codeErrorf(kerr.InvalidRequest.Code, "set %q without a value", cfg.Name)
				}
				ops = append(ops, op)
			}
			return ops, nil
		})
		resp.Resources = append(resp.Resources, sr)
	}
	return reply{resp: resp}
}

// alterResource alters the configs of one resource of an AlterConfigs or
// IncrementalAlterConfigs request: a topic with the operations topicOps
// returns (asked only when the principal may alter it), a broker never
// (its configs are static). It returns the resource's error code and
// message.
func alterResource(c *conn, typ kmsg.ConfigResourceType, name string, validateOnly bool, topicOps func() ([]broker.ConfigOp, error)) (int16, *string) {
	var err error
	switch typ {
	case kmsg.ConfigResourceTypeTopic:
		if !c.allowed(auth.AlterTopic, name) {
			err = topicDenied(auth.AlterTopic, name)
			break
		}
		var ops []broker.ConfigOp
		if ops, err = topicOps(); err == nil {
			err = c.s.b.AlterTopicConfig(name, ops, validateOnly)
		}
	case kmsg.ConfigResourceTypeBroker:
		if !c.allowed(auth.ClusterAdmin, "") {
			err = clusterDenied("alter broker configs")
			break
		}
		err = errBrokerConfigStatic
	default:
		err = codeErrorf(kerr.InvalidRequest.Code, "config resource type %v is not supported", typ)
	}
	if err == nil {
		return 0, nil
	}
	return errorCode(err, topicAdminCodes...), errMessage(err)
}
