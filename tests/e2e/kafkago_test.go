package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// TestKafkaGo: segmentio/kafka-go's Conn admin calls, Writer, partition
// Reader and Client.ListOffsets.
func TestKafkaGo(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	cases := []struct {
		name  string
		codec kafka.Compression
	}{
		{"plain", 0},
		{"lz4", kafka.Lz4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			topic := "kafkago-" + tc.name
			const parts, n = 2, 200

			// Admin over Conn: create on the controller, then read partitions.
			conn, err := kafka.DialContext(ctx, "tcp", b.Addr())
			if err != nil {
				t.Fatalf("Dial: %v", err)
			}
			defer conn.Close()
			ctrl, err := conn.Controller()
			if err != nil {
				t.Fatalf("Controller: %v", err)
			}
			ctrlAddr := net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port))
			if ctrlAddr != b.Addr() {
				t.Fatalf("Controller: %+v, want the broker itself at %s", ctrl, b.Addr())
			}
			cconn, err := kafka.DialContext(ctx, "tcp", ctrlAddr)
			if err != nil {
				t.Fatalf("Dial controller: %v", err)
			}
			defer cconn.Close()
			if err := cconn.CreateTopics(kafka.TopicConfig{Topic: topic, NumPartitions: parts, ReplicationFactor: 1}); err != nil {
				t.Fatalf("CreateTopics: %v", err)
			}
			// A Transport of its own for the Client and Writer: the shared
			// default one caches metadata from before the topic existed.
			tr := &kafka.Transport{MetadataTTL: time.Second}
			defer tr.CloseIdleConnections()
			// Conn.CreateTopics hides TOPIC_ALREADY_EXISTS; Client.CreateTopics does not.
			cl := &kafka.Client{Addr: kafka.TCP(b.Addr()), Timeout: 10 * time.Second, Transport: tr}
			cres, err := cl.CreateTopics(ctx, &kafka.CreateTopicsRequest{
				Topics: []kafka.TopicConfig{{Topic: topic, NumPartitions: parts, ReplicationFactor: 1}},
			})
			if err != nil {
				t.Fatalf("Client.CreateTopics: %v", err)
			}
			if err := cres.Errors[topic]; !errors.Is(err, kafka.TopicAlreadyExists) {
				t.Errorf("CreateTopics of an existing topic: err %v, want %v", err, kafka.TopicAlreadyExists)
			}
			ps, err := conn.ReadPartitions(topic)
			if err != nil {
				t.Fatalf("ReadPartitions: %v", err)
			}
			sort.Slice(ps, func(i, j int) bool { return ps[i].ID < ps[j].ID })
			if len(ps) != parts {
				t.Fatalf("ReadPartitions: %d partitions %+v, want %d", len(ps), ps, parts)
			}
			for i, p := range ps {
				leader := net.JoinHostPort(p.Leader.Host, strconv.Itoa(p.Leader.Port))
				if p.Topic != topic || p.ID != i || leader != b.Addr() || p.Leader.ID != ctrl.ID || len(p.Replicas) != 1 || len(p.Isr) != 1 {
					t.Errorf("ReadPartitions[%d] = %+v, want topic %s id %d led by %s (id %d), 1 replica, 1 in sync", i, p, topic, i, b.Addr(), ctrl.ID)
				}
			}

			// Write: 4 calls of 50 messages, each message to partition key%2.
			var mu sync.Mutex
			acked := map[string]kafka.Message{}
			w := &kafka.Writer{
				Transport:    tr,
				Addr:         kafka.TCP(b.Addr()),
				Topic:        topic,
				RequiredAcks: kafka.RequireAll,
				Compression:  tc.codec,
				BatchTimeout: 5 * time.Millisecond,
				Balancer: kafka.BalancerFunc(func(m kafka.Message, partitions ...int) int {
					i, _ := strconv.Atoi(string(m.Key[1:]))
					return partitions[i%len(partitions)]
				}),
				Completion: func(ms []kafka.Message, err error) {
					mu.Lock()
					defer mu.Unlock()
					for _, m := range ms {
						if err == nil {
							acked[string(m.Key)] = m
						}
					}
				},
			}
			defer w.Close()
			var want [parts][]kafka.Message
			tsBase := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
			for call := range 4 {
				var ms []kafka.Message
				for i := range n / 4 {
					k := call*(n/4) + i
					m := kafka.Message{
						Key:     fmt.Appendf(nil, "k%d", k),
						Value:   bytes.Repeat(fmt.Appendf(nil, "value-%d;", k), 1+k%7),
						Headers: []kafka.Header{{Key: "k", Value: fmt.Appendf(nil, "%d", k)}},
						Time:    tsBase.Add(time.Duration(k) * time.Second),
					}
					ms = append(ms, m)
					want[k%parts] = append(want[k%parts], m)
				}
				if err := w.WriteMessages(ctx, ms...); err != nil {
					t.Fatalf("WriteMessages call %d: %v", call, err)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatalf("Writer.Close: %v", err)
			}
			for p := range want {
				for i, m := range want[p] {
					a, ok := acked[string(m.Key)]
					if !ok || a.Partition != p || a.Offset != int64(i) {
						t.Fatalf("message %s: acknowledged at partition %d offset %d (found %v), want partition %d offset %d", m.Key, a.Partition, a.Offset, ok, p, i)
					}
				}
			}

			// Read each partition back with a plain partition reader.
			for p := range want {
				r := kafka.NewReader(kafka.ReaderConfig{
					Brokers:   []string{b.Addr()},
					Topic:     topic,
					Partition: p,
					MinBytes:  1,
					MaxBytes:  1 << 20,
					MaxWait:   100 * time.Millisecond,
				})
				if err := r.SetOffset(kafka.FirstOffset); err != nil {
					t.Fatal(err)
				}
				for i, wm := range want[p] {
					m, err := r.ReadMessage(ctx)
					if err != nil {
						r.Close()
						t.Fatalf("partition %d: ReadMessage %d: %v", p, i, err)
					}
					switch {
					case m.Partition != p || m.Offset != int64(i):
						t.Fatalf("partition %d: message %d at partition %d offset %d", p, i, m.Partition, m.Offset)
					case !bytes.Equal(m.Key, wm.Key) || !bytes.Equal(m.Value, wm.Value):
						t.Fatalf("partition %d offset %d: key %q value %q, want %q %q", p, i, m.Key, m.Value, wm.Key, wm.Value)
					case len(m.Headers) != 1 || m.Headers[0].Key != "k" || !bytes.Equal(m.Headers[0].Value, wm.Headers[0].Value):
						t.Fatalf("partition %d offset %d: headers %v, want %v", p, i, m.Headers, wm.Headers)
					case !m.Time.Equal(wm.Time):
						t.Fatalf("partition %d offset %d: time %v, want %v", p, i, m.Time, wm.Time)
					case m.HighWaterMark != int64(len(want[p])):
						t.Fatalf("partition %d offset %d: high watermark %d, want %d", p, i, m.HighWaterMark, len(want[p]))
					}
				}
				r.Close()
			}

			// ListOffsets: first, last, and by time (one request per kind).
			list := func(what string, req func(p int) kafka.OffsetRequest) map[int]kafka.PartitionOffsets {
				t.Helper()
				rq := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {req(0), req(1)}}}
				res, err := cl.ListOffsets(ctx, rq)
				if err != nil {
					t.Fatalf("ListOffsets %s: %v", what, err)
				}
				out := map[int]kafka.PartitionOffsets{}
				for _, po := range res.Topics[topic] {
					if po.Error != nil {
						t.Errorf("ListOffsets %s: partition %d: %v", what, po.Partition, po.Error)
					}
					out[po.Partition] = po
				}
				if len(out) != parts {
					t.Fatalf("ListOffsets %s: got %+v, want %d partitions", what, res.Topics, parts)
				}
				return out
			}
			first := list("first", kafka.FirstOffsetOf)
			last := list("last", kafka.LastOffsetOf)
			// Message k has time tsBase+k s and sits in partition k%2 at offset
			// k/2. The first at or after +100.5 s: k=102 (partition 0, offset 51)
			// and k=101 (partition 1, offset 50), both inside a batch.
			at := tsBase.Add(100*time.Second + 500*time.Millisecond)
			byTime := list("by time", func(p int) kafka.OffsetRequest { return kafka.TimeOffsetOf(p, at) })
			for p := range parts {
				if first[p].FirstOffset != 0 {
					t.Errorf("partition %d: first offset %d, want 0", p, first[p].FirstOffset)
				}
				if last[p].LastOffset != int64(len(want[p])) {
					t.Errorf("partition %d: last offset %d, want %d", p, last[p].LastOffset, len(want[p]))
				}
				wantOff := int64(51)
				if p == 1 {
					wantOff = 50
				}
				if _, ok := byTime[p].Offsets[wantOff]; !ok || len(byTime[p].Offsets) != 1 {
					t.Errorf("partition %d: offsets for time %v = %v, want offset %d", p, at, byTime[p].Offsets, wantOff)
				}
			}
		})
	}
}
