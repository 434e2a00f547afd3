package kafka

import (
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	segkafka "github.com/segmentio/kafka-go"
)

// TestSarama produces and consumes with sarama at its default version
// (flexible Produce v9 / Fetch v12) and at an old pinned one.
func TestSarama(t *testing.T) {
	e := startServer(t)
	for _, tc := range []struct {
		name    string
		version sarama.KafkaVersion
		codec   sarama.CompressionCodec
	}{
		{"default", sarama.NewConfig().Version, sarama.CompressionNone},
		{"2.1-gzip", sarama.V2_1_0_0, sarama.CompressionGZIP},
		{"0.11-snappy", sarama.V0_11_0_0, sarama.CompressionSnappy},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := "sarama-" + tc.name
			cfg := sarama.NewConfig()
			cfg.Version = tc.version
			cfg.Producer.Return.Successes = true
			cfg.Producer.RequiredAcks = sarama.WaitForAll
			cfg.Producer.Compression = tc.codec
			cfg.Consumer.Return.Errors = true
			cfg.Metadata.Retry.Backoff = 50 * time.Millisecond
			prod, err := sarama.NewSyncProducer([]string{e.addr}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()
			const n = 20
			for i := 0; i < n; i++ {
				p, off, err := prod.SendMessage(&sarama.ProducerMessage{Topic: topic, Value: sarama.StringEncoder(fmt.Sprintf("m%d", i))})
				if err != nil {
					t.Fatal(err)
				}
				if p != 0 || off != int64(i) {
					t.Fatalf("message %d at %d/%d", i, p, off)
				}
			}
			cons, err := sarama.NewConsumer([]string{e.addr}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer cons.Close()
			pc, err := cons.ConsumePartition(topic, 0, sarama.OffsetOldest)
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			timeout := time.After(20 * time.Second)
			for i := 0; i < n; i++ {
				select {
				case m := <-pc.Messages():
					if m.Offset != int64(i) || string(m.Value) != fmt.Sprintf("m%d", i) {
						t.Fatalf("got %d %q", m.Offset, m.Value)
					}
				case err := <-pc.Errors():
					t.Fatal(err)
				case <-timeout:
					t.Fatalf("consumed %d of %d", i, n)
				}
			}
		})
	}
}

// TestKafkaGo uses segmentio/kafka-go, which pins old request versions.
func TestKafkaGo(t *testing.T) {
	e := startServer(t)
	ctx := testCtx(t)
	w := &segkafka.Writer{Addr: segkafka.TCP(e.addr), Topic: "kgo-seg", AllowAutoTopicCreation: true, BatchTimeout: 10 * time.Millisecond, RequiredAcks: segkafka.RequireAll}
	defer w.Close()
	var msgs []segkafka.Message
	for i := 0; i < 10; i++ {
		msgs = append(msgs, segkafka.Message{Key: []byte("k"), Value: []byte(fmt.Sprintf("v%d", i))})
	}
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if err = w.WriteMessages(ctx, msgs...); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	r := segkafka.NewReader(segkafka.ReaderConfig{Brokers: []string{e.addr}, Topic: "kgo-seg", Partition: 0, MaxWait: 100 * time.Millisecond})
	defer r.Close()
	for i := 0; i < 10; i++ {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if m.Offset != int64(i) || string(m.Value) != fmt.Sprintf("v%d", i) {
			t.Fatalf("got %d %q", m.Offset, m.Value)
		}
	}
}
