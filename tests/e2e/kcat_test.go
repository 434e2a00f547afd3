package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestKcat: librdkafka through kcat: produce with every codec, consume, query
// offsets by time, list metadata.
func TestKcat(t *testing.T) {
	kcat := requireTool(t, "kcat")
	t.Parallel()
	b := startBroker(t)

	// runE runs kcat; a non-zero exit, a timeout or an error on stderr is an error.
	runE := func(stdin string, args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, kcat, args...)
		cmd.Stdin = strings.NewReader(stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if err == nil && (strings.Contains(stderr.String(), "ERROR") || strings.Contains(stderr.String(), "failed") ||
			strings.Contains(stderr.String(), "%3|")) { // librdkafka's level-3 (error) logs
			err = fmt.Errorf("errors on stderr")
		}
		if err != nil {
			return stdout.String(), fmt.Errorf("kcat %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, head(stdout.String(), 2000), head(stderr.String(), 2000))
		}
		return stdout.String(), nil
	}
	run := func(t *testing.T, stdin string, args ...string) string {
		t.Helper()
		out, err := runE(stdin, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}

	cases := []struct {
		codec string
		keyed bool
	}{
		{"gzip", false},
		{"snappy", false},
		{"lz4", false},
		{"zstd", false},
		{"lz4", true},
	}
	var topics []string
	t.Run("codecs", func(t *testing.T) {
		for _, tc := range cases {
			name := tc.codec
			if tc.keyed {
				name += "-keys"
			}
			topic := "kcat-" + name
			topics = append(topics, topic)
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				createTopic(t, b.Addr(), topic, 1)
				// Two produce runs of 30 lines; rows are "key value offset".
				var want [][3]string
				input := func(run int) string {
					var in strings.Builder
					for i := range 30 {
						n := run*30 + i
						val := fmt.Sprintf("%s line %d %s", name, n, strings.Repeat("z", n))
						key := ""
						if tc.keyed {
							key = fmt.Sprintf("key%d", n)
							if n%10 == 3 {
								key = "" // an empty key
							}
							in.WriteString(key + ":")
						}
						in.WriteString(val + "\n")
						want = append(want, [3]string{key, val, strconv.Itoa(n)})
					}
					return in.String()
				}
				produce := []string{"-P", "-b", b.Addr(), "-t", topic, "-z", tc.codec}
				if tc.keyed {
					produce = append(produce, "-K:")
				}
				run(t, input(0), produce...)
				time.Sleep(3 * time.Millisecond)
				mid := time.Now().UnixMilli() + 1 // after every record of run 0
				time.Sleep(3 * time.Millisecond)
				run(t, input(1), produce...)

				got, err := runE("", "-C", "-u", "-b", b.Addr(), "-t", topic, "-o", "beginning", "-e", "-f", "%k %s %o\n")
				var wantOut strings.Builder
				for _, w := range want {
					fmt.Fprintf(&wantOut, "%s %s %s\n", w[0], w[1], w[2])
				}
				if err != nil {
					t.Error(err)
				} else if got != wantOut.String() {
					t.Errorf("kcat -C output:\n%s\nwant:\n%s", got, wantOut.String())
				}

				query := func(ts int64) string {
					return run(t, "", "-Q", "-b", b.Addr(), "-t", fmt.Sprintf("%s:0:%d", topic, ts))
				}
				for _, q := range []struct {
					ts   int64
					want int64
				}{
					{mid, 30}, // first record of the second run
					{1, 0},    // before everything
					{time.Now().Add(time.Hour).UnixMilli(), -1}, // after everything: no offset
					{-1, 60}, // latest
					{-2, 0},  // earliest
				} {
					if got, want := query(q.ts), fmt.Sprintf("%s [0] offset %d\n", topic, q.want); got != want {
						t.Errorf("kcat -Q %s:0:%d = %q, want %q", topic, q.ts, got, want)
					}
				}
			})
		}
	})

	// auto_create is on by default: producing to an unknown topic creates it
	// (1 partition) and the first produce succeeds.
	topics = append(topics, "kcat-auto")
	t.Run("auto-create", func(t *testing.T) {
		run(t, "one\ntwo\nthree\n", "-P", "-b", b.Addr(), "-t", "kcat-auto")
		got := run(t, "", "-C", "-u", "-b", b.Addr(), "-t", "kcat-auto", "-o", "beginning", "-e", "-f", "%s %o\n")
		if want := "one 0\ntwo 1\nthree 2\n"; got != want {
			t.Errorf("kcat -C output after producing to a new topic:\n%s\nwant:\n%s", got, want)
		}
	})

	t.Run("metadata", func(t *testing.T) {
		var md struct {
			Originating struct {
				ID   int32  `json:"id"`
				Name string `json:"name"`
			} `json:"originating_broker"`
			ControllerID int32 `json:"controllerid"`
			Brokers      []struct {
				ID   int32  `json:"id"`
				Name string `json:"name"`
			} `json:"brokers"`
			Topics []struct {
				Topic      string `json:"topic"`
				Error      string `json:"error"`
				Partitions []struct {
					Partition int32  `json:"partition"`
					Leader    int32  `json:"leader"`
					Error     string `json:"error"`
					Replicas  []struct {
						ID int32 `json:"id"`
					} `json:"replicas"`
					ISRs []struct {
						ID int32 `json:"id"`
					} `json:"isrs"`
				} `json:"partitions"`
			} `json:"topics"`
		}
		out := run(t, "", "-L", "-b", b.Addr(), "-J")
		if err := json.Unmarshal([]byte(out), &md); err != nil {
			t.Fatalf("kcat -L -J output is not JSON: %v\n%s", err, out)
		}
		if len(md.Brokers) != 1 || md.Brokers[0].Name != b.Addr() || md.Brokers[0].ID != md.ControllerID || md.ControllerID < 0 {
			t.Errorf("kcat -L: brokers %+v, controller %d; want one broker named %s that is the controller", md.Brokers, md.ControllerID, b.Addr())
		}
		if md.Originating.ID != md.ControllerID || md.Originating.Name != fmt.Sprintf("%s/%d", b.Addr(), md.ControllerID) {
			t.Errorf("kcat -L: originating broker %+v", md.Originating)
		}
		var names []string
		for _, tp := range md.Topics {
			if !strings.HasPrefix(tp.Topic, "kcat-") {
				continue
			}
			names = append(names, tp.Topic)
			if tp.Error != "" || len(tp.Partitions) != 1 {
				t.Errorf("kcat -L: topic %s: error %q, %d partitions; want no error, 1 partition", tp.Topic, tp.Error, len(tp.Partitions))
				continue
			}
			p := tp.Partitions[0]
			if p.Partition != 0 || p.Leader != md.ControllerID || p.Error != "" ||
				len(p.Replicas) != 1 || p.Replicas[0].ID != p.Leader || len(p.ISRs) != 1 || p.ISRs[0].ID != p.Leader {
				t.Errorf("kcat -L: topic %s partition %+v; want partition 0 led by %d, which is its only replica and in sync", tp.Topic, p, md.ControllerID)
			}
		}
		sort.Strings(names)
		sort.Strings(topics)
		if strings.Join(names, ",") != strings.Join(topics, ",") {
			t.Errorf("kcat -L: topics %v, want %v", names, topics)
		}
	})
}

// head returns at most n bytes of s.
func head(s string, n int) string {
	if len(s) > n {
		return s[:n] + "\n[...]"
	}
	return s
}
