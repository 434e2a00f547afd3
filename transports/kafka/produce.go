package kafka

import (
	"context"
	"fmt"
	"time"

	"github.com/samsa-broker/samsa/auth"
	"github.com/samsa-broker/samsa/broker"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// handleProduce appends on the read path, so that appends keep request
// order (idempotent sequences), and waits for durability off it so that the
// next requests are read and appended meanwhile (group commit).
func handleProduce(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)

	type slot struct{ t, p int } // index in resp.Topics / Partitions
	var parts []broker.ProducePartition
	var slots []slot
	badAcks := req.Acks != 0 && req.Acks != 1 && req.Acks != -1
	for _, rt := range req.Topics {
		st := kmsg.NewProduceResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		name, terr := rt.Topic, error(nil)
		if req.Version >= 13 {
			info, err := c.s.b.TopicByID(rt.TopicID)
			name, terr = info.Name, err
			if err == nil && !c.allowed(auth.ProduceTopic, name) {
				terr = topicDenied(auth.ProduceTopic, name)
			}
		} else if !c.allowed(auth.ProduceTopic, name) {
			terr = topicDenied(auth.ProduceTopic, name)
		} else if _, err := c.s.b.Topic(name); err != nil && c.s.b.AutoCreateEnabled() && c.allowed(auth.AutoCreateTopic, name) {
			_, terr = c.s.b.AutoCreate(name)
		}
		for _, rp := range rt.Partitions {
			sp := kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.BaseOffset, sp.LogAppendTime, sp.LogStartOffset = -1, -1, -1
			if badAcks {
				sp.ErrorCode = kerr.InvalidRequiredAcks.Code
				sp.ErrorMessage = ptr(fmt.Sprintf("acks %d: want -1, 0 or 1", req.Acks))
			} else if terr != nil {
				sp.ErrorCode = errorCode(terr, produceCodes...)
				if req.Version >= 13 && sp.ErrorCode == kerr.UnknownTopicOrPartition.Code {
					sp.ErrorCode = kerr.UnknownTopicID.Code
				}
				sp.ErrorMessage = errMessage(terr)
			} else {
				parts = append(parts, broker.ProducePartition{Topic: name, Partition: rp.Partition, Records: rp.Records})
				slots = append(slots, slot{len(resp.Topics), len(st.Partitions)})
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	// v0-2 carry message sets (magic 0/1): the broker refuses them by their
	// magic with ErrUnsupportedFormat, which answers
	// UNSUPPORTED_FOR_MESSAGE_FORMAT per partition.
	if badAcks {
		return reply{resp: resp}
	}
	pending := c.s.b.Produce(req.Acks, parts)
	if req.Acks == 0 {
		// No response; the broker makes the records durable on its own.
		return reply{}
	}
	timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
	return reply{later: func(ctx context.Context) kmsg.Response {
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		results := pending.Wait(ctx)
		for i, res := range results {
			sp := &resp.Topics[slots[i].t].Partitions[slots[i].p]
			sp.BaseOffset = res.BaseOffset
			sp.LogAppendTime = res.LogAppendTime
			sp.LogStartOffset = res.LogStartOffset
			if res.Err != nil {
				sp.ErrorCode = errorCode(res.Err, produceCodes...)
				sp.ErrorMessage = errMessage(res.Err)
				if sp.ErrorCode == kerr.KafkaStorageError.Code || sp.ErrorCode == kerr.UnknownServerError.Code {
					c.s.log.Warn("produce failed", "remote", c.remote, "err", res.Err)
				}
			}
		}
		return resp
	}}
}
