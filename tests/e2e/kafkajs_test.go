package e2e

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestKafkaJS runs tests/kafkajs (node:test) against a broker, then reads
// what kafkajs produced back with franz-go and compares it with the manifest
// the node tests wrote.
func TestKafkaJS(t *testing.T) {
	node := requireTool(t, "node")
	npm := requireTool(t, "npm")
	t.Parallel()
	dir := filepath.Join(moduleRoot, "tests", "kafkajs")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	if _, err := os.Stat(filepath.Join(dir, "node_modules", "kafkajs")); err != nil {
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
	}

	b := startBroker(t)
	manifestPath := filepath.Join(t.TempDir(), "manifest.json")
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=spec", filepath.Join("tests", "kafkajs", "kafkajs.test.js"))
	cmd.Dir = moduleRoot
	cmd.Env = append(os.Environ(), "SAMSA_BROKERS="+b.Addr(), "SAMSA_MANIFEST="+manifestPath, "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test tests/kafkajs/kafkajs.test.js: %v\n%s", err, out)
	}
	t.Logf("node --test tests/kafkajs/kafkajs.test.js:\n%s", out)

	type jsRecord struct {
		Partition int32             `json:"partition"`
		Offset    int64             `json:"offset"`
		Key       *string           `json:"key"`
		Value     *string           `json:"value"`
		Headers   map[string]string `json:"headers"`
		Timestamp int64             `json:"timestamp"`
	}
	raw, err := os.ReadFile(manifestPath)
	if err != nil {
		t.Fatalf("the node tests wrote no manifest: %v", err)
	}
	var manifest map[string][]jsRecord
	if err := json.Unmarshal(raw, &manifest); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	for _, topic := range []string{"kafkajs-plain", "kafkajs-gzip"} {
		want := manifest[topic]
		if len(want) == 0 {
			t.Errorf("manifest has no records for %s", topic)
			continue
		}
		got := consumeAll(t, b.Addr(), topic, 20*time.Second)
		total := 0
		for _, rs := range got {
			total += len(rs)
		}
		if total != len(want) {
			t.Errorf("%s: consumed %d records, kafkajs produced %d", topic, total, len(want))
		}
		for _, w := range want {
			rs := got[w.Partition]
			if w.Offset >= int64(len(rs)) || rs[w.Offset].Offset != w.Offset {
				t.Errorf("%s[%d]: no record at offset %d", topic, w.Partition, w.Offset)
				continue
			}
			r := rs[w.Offset]
			exp := &kgo.Record{Timestamp: time.UnixMilli(w.Timestamp)}
			if w.Key != nil {
				exp.Key = []byte(*w.Key)
			}
			if w.Value != nil {
				exp.Value = []byte(*w.Value)
			}
			// kafkajs writes headers in object order: seq, kind.
			for _, k := range []string{"seq", "kind"} {
				exp.Headers = append(exp.Headers, kgo.RecordHeader{Key: k, Value: []byte(w.Headers[k])})
			}
			if err := sameRecord(exp, r); err != nil {
				t.Errorf("%s[%d] offset %d: %v", topic, w.Partition, w.Offset, err)
			}
		}
	}
}
