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

// handleFetch long-polls off the read path. Fetch sessions are not kept:
// every response carries session id 0, which tells clients to send full
// fetches. The isolation level is ignored: with no transactions the last
// stable offset is the high watermark. The batches the broker returns go
// into the response as they are.
func handleFetch(c *conn, kreq kmsg.Request) reply {
	req := kreq.(*kmsg.FetchRequest)
	resp := req.ResponseKind().(*kmsg.FetchResponse)
	if req.Version >= 7 && req.SessionID != 0 {
		// We never hand out session ids.
		resp.ErrorCode = kerr.FetchSessionIDNotFound.Code
		return reply{resp: resp}
	}

	type slot struct{ t, p int }
	freq := broker.FetchRequest{
		MaxWait:  time.Duration(max(req.MaxWaitMillis, 0)) * time.Millisecond,
		MinBytes: req.MinBytes,
		MaxBytes: req.MaxBytes,
	}
	if req.Version < 3 {
		freq.MaxBytes = 0 // no response limit before v3
	}
	var slots []slot
	for _, rt := range req.Topics {
		st := kmsg.NewFetchResponseTopic()
		st.Topic, st.TopicID = rt.Topic, rt.TopicID
		name := rt.Topic
		var terr error
		if req.Version >= 13 {
			info, err := c.s.b.TopicByID(rt.TopicID)
			if err != nil {
				info, err = c.s.b.ViewByID(rt.TopicID)
			}
			name, terr = info.Name, err
		}
		// Views are consumed by their own name.
		denied := terr == nil && !c.allowed(auth.ConsumeTopic, name)
		for _, rp := range rt.Partitions {
			sp := kmsg.NewFetchResponseTopicPartition()
			sp.Partition = rp.Partition
			sp.HighWatermark, sp.LastStableOffset, sp.LogStartOffset = -1, -1, -1
			sp.PreferredReadReplica = -1
			// A null record set (size -1) breaks librdkafka ("invalid
			// MessageSetSize -1"): an empty partition sends an empty one.
			sp.RecordBatches = []byte{}
			if terr != nil {
				sp.ErrorCode = kerr.UnknownTopicID.Code
			} else if denied {
				sp.ErrorCode = codeTopicAuth
			} else {
				freq.Partitions = append(freq.Partitions, broker.FetchPartition{
					Topic: name, Partition: rp.Partition, Offset: rp.FetchOffset, MaxBytes: rp.PartitionMaxBytes,
				})
				slots = append(slots, slot{len(resp.Topics), len(st.Partitions)})
			}
			st.Partitions = append(st.Partitions, sp)
		}
		resp.Topics = append(resp.Topics, st)
	}
	if len(freq.Partitions) == 0 {
		return reply{resp: resp}
	}
	var results []broker.FetchResult
	return reply{later: func(ctx context.Context) kmsg.Response {
		results = c.s.b.Fetch(ctx, freq)
		for i, res := range results {
			sp := &resp.Topics[slots[i].t].Partitions[slots[i].p]
			sp.HighWatermark = res.HighWatermark
			sp.LastStableOffset = res.LastStableOffset
			sp.LogStartOffset = res.LogStartOffset
			if len(res.Records) > 0 {
				sp.RecordBatches = res.Records
			}
			if res.Err != nil {
				sp.ErrorCode = errorCode(res.Err, fetchCodes...)
				if sp.ErrorCode == kerr.KafkaStorageError.Code || sp.ErrorCode == kerr.UnknownServerError.Code {
					c.s.log.Warn("fetch failed", "remote", c.remote, "partition", fmt.Sprintf("%s-%d", freq.Partitions[i].Topic, freq.Partitions[i].Partition), "err", res.Err)
				}
			}
		}
		return resp
	}, encoded: func() { c.s.b.ReleaseFetch(results) }}
}
