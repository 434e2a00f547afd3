package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestRecoveryTruncatesTornTail: after a crash, bytes appended past the last
// good batch of the active segment (a torn batch, or garbage) are cut off at
// restart; every record stays readable and offsets continue from the end.
func TestRecoveryTruncatesTornTail(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		tail func(batch []byte) []byte // what to append, given a whole valid batch
	}{
		{"torn-batch", func(batch []byte) []byte { return batch[:len(batch)*40/100] }},
		{"garbage", func([]byte) []byte {
			g := make([]byte, 300)
			for i := range g {
				g[i] = byte(rand.IntN(256))
			}
			return g
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, withConfig("log", "segment_bytes", 16384))
			const topic, n = "trunc", 500
			createTopic(t, b.Addr(), topic, 1)
			cl := newClient(t, b.Addr(), kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.NoCompression()))
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			value := func(i int) []byte {
				return fmt.Appendf(nil, "record %04d %s", i, strings.Repeat(fmt.Sprintf("%x", i*7919), 20+i%20))
			}
			for i := 0; i < n; i += 10 {
				var rs []*kgo.Record
				for j := i; j < i+10; j++ {
					rs = append(rs, &kgo.Record{Key: fmt.Appendf(nil, "%d", j), Value: value(j)})
				}
				if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
					t.Fatalf("produce records %d..%d: %v", i, i+9, err)
				}
			}
			cl.Close()
			b.Kill()

			dir := filepath.Join(b.DataDir(), topic+"-0")
			logs := segmentFiles(t, dir)
			if len(logs) < 2 {
				t.Errorf("%d segments in %s with segment_bytes 16384 after ~80 KB; want several", len(logs), dir)
			}
			active := logs[len(logs)-1]
			before, err := os.ReadFile(active)
			if err != nil {
				t.Fatal(err)
			}
			// S: where the last whole batch ends. The file itself may be
			// longer: space preallocated past the writes reads as zeros.
			size := batchesEnd(before)
			if tail := before[size:]; !allZero(tail) {
				t.Fatalf("%s: %d bytes after the last whole batch (at %d) and they are not zeros", filepath.Base(active), len(tail), size)
			}
			// A whole valid batch: the first of the active segment (or of the
			// one before, if the active one is empty).
			src := before
			if size == 0 && len(logs) > 1 {
				if src, err = os.ReadFile(logs[len(logs)-2]); err != nil {
					t.Fatal(err)
				}
			}
			if batchesEnd(src) == 0 {
				t.Fatalf("no whole record batch at the start of the active segment or the one before")
			}
			batch := src[:12+binary.BigEndian.Uint32(src[8:12])]
			tail := tc.tail(batch)
			// Write the tail right after the last whole batch: an append, or
			// over preallocated zeros, as a torn write would.
			f, err := os.OpenFile(active, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(tail, size); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %d bytes at %d in %s (file was %d bytes)", len(tail), size, filepath.Base(active), len(before))

			b.Restart()
			got := consumeAll(t, b.Addr(), topic, 20*time.Second)[0]
			if len(got) != n {
				t.Fatalf("consumed %d records after recovery, want %d", len(got), n)
			}
			for i, r := range got {
				if r.Offset != int64(i) || string(r.Key) != fmt.Sprint(i) || string(r.Value) != string(value(i)) {
					t.Fatalf("record #%d: offset %d key %q value %q; want offset %d key %q value %q", i, r.Offset, r.Key, trunc(r.Value), i, fmt.Sprint(i), trunc(value(i)))
				}
			}
			// The tail is cut off: the file is back to S bytes (or, if the
			// broker preallocates again, S bytes of batches and then zeros).
			after, err := os.ReadFile(active)
			switch {
			case err != nil:
				t.Errorf("active segment after recovery: %v", err)
			case len(after) < int(size) || !bytes.Equal(after[:size], before[:size]):
				t.Errorf("%s: the %d bytes of whole batches changed in recovery (now %d bytes)", filepath.Base(active), size, len(after))
			case len(after) != int(size) && !allZero(after[size:]):
				t.Errorf("%s is %d bytes after recovery, want %d: the %d bytes written at %d were not cut off", filepath.Base(active), len(after), size, len(tail), size)
			}

			cl = newClient(t, b.Addr(), kgo.DefaultProduceTopic(topic))
			r, err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("after recovery")}).First()
			if err != nil {
				t.Fatalf("produce after recovery: %v", err)
			}
			if r.Offset != n {
				t.Errorf("produce after recovery got offset %d, want %d", r.Offset, n)
			}
			if end := endOffsets(t, b.Addr(), topic)[0]; end != n+1 {
				t.Errorf("high watermark %d after one more record, want %d", end, n+1)
			}
		})
	}
}

// segmentFiles returns the .log files of a partition directory, oldest first.
func segmentFiles(t *testing.T, dir string) []string {
	t.Helper()
	logs, err := filepath.Glob(filepath.Join(dir, "*.log"))
	if err != nil || len(logs) == 0 {
		ents, _ := os.ReadDir(dir)
		t.Fatalf("no .log segment in %s (%v); entries: %v", dir, err, ents)
	}
	sort.Strings(logs) // 20-digit zero-padded base offsets sort as numbers
	return logs
}

// batchesEnd walks the RecordBatch v2 headers of a segment and returns where
// the last whole batch ends. Only lengths and magic are checked: the broker
// wrote these bytes.
func batchesEnd(data []byte) int64 {
	pos := 0
	for len(data)-pos >= 61 {
		total := 12 + int(binary.BigEndian.Uint32(data[pos+8:pos+12]))
		if total < 61 || pos+total > len(data) || data[pos+16] != 2 {
			break
		}
		pos += total
	}
	return int64(pos)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
