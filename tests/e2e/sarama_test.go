package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// TestSarama: a SyncProducer and a partition consumer at a recent and at old
// protocol versions, and the ClusterAdmin topic calls.
func TestSarama(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	cases := []struct {
		name        string
		version     sarama.KafkaVersion
		compression sarama.CompressionCodec
	}{
		{"v2.8.0", sarama.V2_8_0_0, sarama.CompressionNone},
		{"v2.8.0-gzip", sarama.V2_8_0_0, sarama.CompressionGZIP},
		{"v1.0.0", sarama.V1_0_0_0, sarama.CompressionNone},
		{"v0.11.0-gzip", sarama.V0_11_0_0, sarama.CompressionGZIP},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := sarama.NewConfig()
			cfg.Version = tc.version
			cfg.ClientID = "samsa-e2e"
			cfg.Net.DialTimeout = 5 * time.Second
			cfg.Producer.RequiredAcks = sarama.WaitForAll
			cfg.Producer.Return.Successes = true
			cfg.Producer.Compression = tc.compression
			cfg.Producer.Partitioner = sarama.NewManualPartitioner
			cfg.Consumer.Return.Errors = true
			cfg.Consumer.MaxWaitTime = 100 * time.Millisecond
			addrs := []string{b.Addr()}
			topic := "sarama-" + tc.name

			admin, err := sarama.NewClusterAdmin(addrs, cfg)
			if err != nil {
				t.Fatalf("NewClusterAdmin: %v", err)
			}
			defer admin.Close()
			retention := "3600000"
			err = admin.CreateTopic(topic, &sarama.TopicDetail{
				NumPartitions:     2,
				ReplicationFactor: 1,
				ConfigEntries:     map[string]*string{"retention.ms": &retention},
			}, false)
			if err != nil {
				t.Fatalf("CreateTopic %s: %v", topic, err)
			}
			err = admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false)
			if !errors.Is(err, sarama.ErrTopicAlreadyExists) {
				t.Errorf("CreateTopic of an existing topic: err %v, want %v", err, sarama.ErrTopicAlreadyExists)
			}

			topics, err := admin.ListTopics()
			if err != nil {
				t.Fatalf("ListTopics: %v", err)
			}
			d, ok := topics[topic]
			switch {
			case !ok:
				t.Errorf("ListTopics: %s missing from %v", topic, keys(topics))
			case d.NumPartitions != 2:
				t.Errorf("ListTopics: %s has %d partitions, want 2", topic, d.NumPartitions)
			case d.ConfigEntries["retention.ms"] == nil || *d.ConfigEntries["retention.ms"] != retention:
				t.Errorf("ListTopics: %s retention.ms = %v, want %s", topic, strp(d.ConfigEntries["retention.ms"]), retention)
			}

			entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
			if err != nil {
				t.Fatalf("DescribeConfig: %v", err)
			}
			found := false
			for _, e := range entries {
				if e.Name == "retention.ms" {
					found = true
					if e.Value != retention || e.Default {
						t.Errorf("DescribeConfig retention.ms = %+v, want value %s, not default", e, retention)
					}
				}
			}
			if !found {
				t.Errorf("DescribeConfig: no retention.ms among %d entries", len(entries))
			}

			// Produce 2 x 50 records, in 5 batches.
			prod, err := sarama.NewSyncProducer(addrs, cfg)
			if err != nil {
				t.Fatalf("NewSyncProducer: %v", err)
			}
			closeProd := closeOnce(t, prod.Close)
			ts := time.Now().Truncate(time.Millisecond)
			var sent [2][]*sarama.ProducerMessage
			for batch := range 5 {
				var msgs []*sarama.ProducerMessage
				for i := range 20 {
					n := batch*20 + i
					m := &sarama.ProducerMessage{
						Topic:     topic,
						Partition: int32(n % 2),
						Key:       sarama.StringEncoder(fmt.Sprintf("k%d", n)),
						Value:     sarama.ByteEncoder(bytes.Repeat([]byte{byte('a' + n%26)}, 10+n)),
						Headers:   []sarama.RecordHeader{{Key: []byte("n"), Value: fmt.Appendf(nil, "%d", n)}},
						Timestamp: ts.Add(time.Duration(n) * time.Millisecond),
					}
					msgs = append(msgs, m)
					sent[n%2] = append(sent[n%2], m)
				}
				if err := prod.SendMessages(msgs); err != nil {
					t.Fatalf("SendMessages batch %d: %v", batch, err)
				}
			}
			for p := range sent {
				for i, m := range sent[p] {
					if m.Partition != int32(p) || m.Offset != int64(i) {
						t.Fatalf("message %d to partition %d acknowledged at partition %d offset %d, want offset %d", i, p, m.Partition, m.Offset, i)
					}
				}
			}

			cons, err := sarama.NewConsumer(addrs, cfg)
			if err != nil {
				t.Fatalf("NewConsumer: %v", err)
			}
			closeCons := closeOnce(t, cons.Close)
			for p := range sent {
				pc, err := cons.ConsumePartition(topic, int32(p), sarama.OffsetOldest)
				if err != nil {
					t.Fatalf("ConsumePartition %d: %v", p, err)
				}
				for i, want := range sent[p] {
					var got *sarama.ConsumerMessage
					select {
					case got = <-pc.Messages():
					case err := <-pc.Errors():
						t.Fatalf("partition %d: consumer error: %v", p, err)
					case <-time.After(10 * time.Second):
						t.Fatalf("partition %d: timed out waiting for message %d of %d", p, i, len(sent[p]))
					}
					wk, _ := want.Key.Encode()
					wv, _ := want.Value.Encode()
					switch {
					case got.Offset != int64(i):
						t.Fatalf("partition %d: message %d has offset %d", p, i, got.Offset)
					case string(got.Key) != string(wk) || !bytes.Equal(got.Value, wv):
						t.Fatalf("partition %d offset %d: key %q value %q, want %q %q", p, i, got.Key, got.Value, wk, wv)
					case len(got.Headers) != 1 || string(got.Headers[0].Key) != "n" || !bytes.Equal(got.Headers[0].Value, want.Headers[0].Value):
						t.Fatalf("partition %d offset %d: headers %v, want n=%s", p, i, got.Headers, want.Headers[0].Value)
					case !got.Timestamp.Equal(want.Timestamp):
						t.Fatalf("partition %d offset %d: timestamp %v, want %v", p, i, got.Timestamp, want.Timestamp)
					}
				}
				if hw := pc.HighWaterMarkOffset(); hw != int64(len(sent[p])) {
					t.Errorf("partition %d: high watermark %d, want %d", p, hw, len(sent[p]))
				}
				pc.Close()
			}

			// Close the clients first: their metadata refreshes could auto-create
			// the topic again.
			closeCons()
			closeProd()
			if err := admin.DeleteTopic(topic); err != nil {
				t.Fatalf("DeleteTopic: %v", err)
			}
			deadline := time.Now().Add(5 * time.Second)
			for {
				topics, err := admin.ListTopics()
				if err != nil {
					t.Fatalf("ListTopics after delete: %v", err)
				}
				if _, ok := topics[topic]; !ok {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("topic %s still listed 5s after DeleteTopic", topic)
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err := admin.DeleteTopic(topic); !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
				t.Errorf("DeleteTopic of a deleted topic: err %v, want %v", err, sarama.ErrUnknownTopicOrPartition)
			}
		})
	}
}

// closeOnce returns a function that calls c once; cleanup calls it too.
func closeOnce(t testing.TB, c func() error) func() {
	var once sync.Once
	f := func() {
		once.Do(func() {
			if err := c(); err != nil {
				t.Logf("close: %v", err)
			}
		})
	}
	t.Cleanup(f)
	return f
}

func keys[V any](m map[string]V) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func strp(s *string) string {
	if s == nil {
		return "<nil>"
	}
	return *s
}
