package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestProduceConsume(t *testing.T) {
	brokers := startTestCluster(t)
	ctx := testContext(t)
	topic := testTopic(t)
	mustRun(t, ctx, brokers, "", "topic", "create", topic)

	// Flags after the topic; a line without the separator has no key; an
	// empty line is an empty record; the last line has no newline.
	r := mustRun(t, ctx, brokers, "a:1\nb:2:x\nnokey\n\r\nc:3", "produce", topic, "--key-sep", ":")
	if !strings.Contains(r.stderr, "5 records produced") {
		t.Fatalf("produce summary = %q, want it to say 5 records produced", r.stderr)
	}
	time.Sleep(30 * time.Millisecond)
	mid := time.Now()
	time.Sleep(30 * time.Millisecond)
	mustRun(t, ctx, brokers, "d:4\ne:5\n", "produce", "--key-sep", ":", topic, "--acks", "1")

	tests := []struct {
		desc string
		args []string
		want string
	}{
		{
			desc: "beginning with -n and a format",
			args: []string{"--from", "beginning", "-n", "3", "--format", `%k=%v@%o/%p\n`},
			want: "a=1@0/0\nb=2:x@1/0\n=nokey@2/0\n",
		},
		{
			desc: "default format, exit at end",
			args: []string{"--from", "beginning", "-e"},
			want: "1\n2:x\nnokey\n\n3\n4\n5\n",
		},
		{
			desc: "from an offset",
			args: []string{"--from", "5", "--exit", "-f", `%o %k %v %K %S\t%%\n`},
			want: "5 d 4 1 1\t%\n6 e 5 1 1\t%\n",
		},
		{
			desc: "negative offset is relative to the end",
			args: []string{"--from", "-1", "-e"},
			want: "5\n",
		},
		{
			desc: "from a time",
			args: []string{"--from", mid.Format(time.RFC3339Nano), "-e", "--format", `%k,`},
			want: "d,e,",
		},
		{
			desc: "from a duration ago covers everything",
			args: []string{"--from", "-1h", "-e", "--format", `%o,`},
			want: "0,1,2,3,4,5,6,",
		},
		{
			desc: "from end with exit returns nothing",
			args: []string{"--from", "end", "-e"},
			want: "",
		},
		{
			desc: "offset past the end is clamped to the end",
			args: []string{"--from", "1000", "-e"},
			want: "",
		},
		{
			desc: "-n larger than the topic with -e",
			args: []string{"--from", "beginning", "-e", "-n", "100", "--format", `%v|`},
			want: "1|2:x|nokey||3|4|5|",
		},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			r := mustRun(t, ctx, brokers, "", append([]string{"consume", topic}, tt.args...)...)
			if r.stdout != tt.want {
				t.Errorf("stdout = %q, want %q", r.stdout, tt.want)
			}
		})
	}

	// Timestamps: %t is RFC3339Nano, %T unix millis, and both are recent.
	r = mustRun(t, ctx, brokers, "", "consume", topic, "--from", "beginning", "-n", "1", "--format", `%t|%T`)
	ts, ms, _ := strings.Cut(r.stdout, "|")
	parsed, err := time.Parse(time.RFC3339Nano, ts)
	if err != nil {
		t.Fatalf("%%t = %q: %v", ts, err)
	}
	if d := time.Since(parsed); d < 0 || d > time.Minute {
		t.Errorf("timestamp %s is not recent", parsed)
	}
	if want := (parsed.UnixMilli()); ms != itoa(want) {
		t.Errorf("%%T = %q, want %d", ms, want)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestProduceFileAndPartitions(t *testing.T) {
	brokers := startTestCluster(t)
	ctx := testContext(t)
	topic := testTopic(t)
	mustRun(t, ctx, brokers, "", "topic", "create", topic, "--partitions", "3")

	path := filepath.Join(t.TempDir(), "in.txt")
	var sb strings.Builder
	for i := 0; i < 1000; i++ {
		sb.WriteString("k" + itoa(int64(i)) + "=v" + itoa(int64(i)) + "\n")
	}
	if err := os.WriteFile(path, []byte(sb.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	r := mustRun(t, ctx, brokers, "", "produce", topic, "--file", path, "--partition", "2", "--key-sep", "=",
		"--compression", "zstd", "--header", "src=test", "--max-buffered", "16")
	if !strings.Contains(r.stderr, "1000 records produced") {
		t.Fatalf("summary %q", r.stderr)
	}
	r = mustRun(t, ctx, brokers, "", "consume", topic, "--partition", "2", "--from", "beginning", "-e", "--format", `%p %k %v %h\n`)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != 1000 {
		t.Fatalf("consumed %d lines from partition 2, want 1000", len(lines))
	}
	if lines[0] != "2 k0 v0 src=test" || lines[999] != "2 k999 v999 src=test" {
		t.Errorf("first/last lines = %q / %q", lines[0], lines[999])
	}
	for _, p := range []string{"0", "1"} {
		r = mustRun(t, ctx, brokers, "", "consume", topic, "--partition", p, "--from", "beginning", "-e")
		if r.stdout != "" {
			t.Errorf("partition %s is not empty: %q", p, r.stdout)
		}
	}
	if !regexp.MustCompile(`0 records consumed`).MatchString(r.stderr) {
		t.Errorf("consume summary = %q", r.stderr)
	}
}

func TestProduceConsumeErrors(t *testing.T) {
	brokers := startTestCluster(t)
	ctx := testContext(t)
	topic := testTopic(t)
	mustRun(t, ctx, brokers, "", "topic", "create", topic, "--partitions", "2")

	tests := []struct {
		args []string
		want string
	}{
		{[]string{"produce", "no-such-topic"}, `topic "no-such-topic" does not exist`},
		{[]string{"produce", topic, "--partition", "7"}, `has no partition 7`},
		{[]string{"produce", topic, "--acks", "2"}, `invalid --acks "2"`},
		{[]string{"produce", topic, "--compression", "brotli"}, `invalid --compression`},
		{[]string{"produce"}, `want exactly one topic`},
		{[]string{"produce", topic, "--file", "/does/not/exist"}, `no such file`},
		{[]string{"consume", "no-such-topic", "-e"}, `topic "no-such-topic" does not exist`},
		{[]string{"consume", topic, "--partition", "9"}, `has no partition 9`},
		{[]string{"consume", topic, "--from", "yesterday"}, `invalid --from "yesterday"`},
		{[]string{"consume", topic, "--format", "%q"}, `unknown verb %q`},
		{[]string{"consume", topic, "--format", `\x`}, `unknown escape`},
		{[]string{"consume", topic, "-n", "-1"}, `must not be negative`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := runCLI(t, ctx, brokers, "x\n", tt.args...)
			if r.err == nil || !strings.Contains(r.err.Error(), tt.want) {
				t.Errorf("got error %v, want one containing %q", r.err, tt.want)
			}
		})
	}
}

func TestProduceFailureIsAnError(t *testing.T) {
	brokers := startTestCluster(t)
	ctx := testContext(t)
	topic := testTopic(t)
	mustRun(t, ctx, brokers, "", "topic", "create", topic, "--config", "max.message.bytes=200")
	big := strings.Repeat("x", 5000)
	r := runCLI(t, ctx, brokers, "small\n"+big+"\n", "produce", topic, "--linger", "0")
	if r.err == nil {
		t.Fatalf("producing a record over max.message.bytes succeeded; stderr %q", r.stderr)
	}
	if !strings.Contains(r.err.Error(), "failed") || !strings.Contains(r.stderr, "failed") {
		t.Errorf("error %v / stderr %q should say records failed", r.err, r.stderr)
	}
}

func TestConsumeStopsOnCancel(t *testing.T) {
	brokers := startTestCluster(t)
	topic := testTopic(t)
	mustRun(t, testContext(t), brokers, "", "topic", "create", topic)
	ctx, cancel := context.WithCancel(testContext(t))
	done := make(chan cliResult, 1)
	go func() { done <- runCLI(t, ctx, brokers, "", "consume", topic) }()
	time.Sleep(300 * time.Millisecond)
	mustRun(t, testContext(t), brokers, "late\n", "produce", topic)
	time.Sleep(700 * time.Millisecond)
	cancel()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("consume returned %v after cancel, want nil", r.err)
		}
		if r.stdout != "late\n" {
			t.Errorf("stdout = %q, want the record produced while consuming", r.stdout)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("consume did not stop after the context was cancelled")
	}
}

func TestParseFrom(t *testing.T) {
	now := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want startPos
		err  bool
	}{
		{"end", startPos{kind: fromEnd}, false},
		{"beginning", startPos{kind: fromBeginning}, false},
		{"42", startPos{kind: fromOffset, offset: 42}, false},
		{"-3", startPos{kind: fromOffset, offset: -3}, false},
		{"2025-01-02T03:00:00Z", startPos{kind: fromTimeMillis, millis: time.Date(2025, 1, 2, 3, 0, 0, 0, time.UTC).UnixMilli()}, false},
		{"2025-01-02T03:00:00.5+01:00", startPos{kind: fromTimeMillis, millis: time.Date(2025, 1, 2, 2, 0, 0, 5e8, time.UTC).UnixMilli()}, false},
		{"-90s", startPos{kind: fromTimeMillis, millis: now.Add(-90 * time.Second).UnixMilli()}, false},
		{"soon", startPos{}, true},
	}
	for _, tt := range tests {
		got, err := parseFrom(tt.in, now)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("parseFrom(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestFormatRecord(t *testing.T) {
	rec := &kgo.Record{
		Key: []byte("k"), Value: []byte("value"), Offset: 12, Partition: 3,
		Timestamp: time.Date(2025, 6, 7, 8, 9, 10, 123456789, time.UTC),
		Headers:   []kgo.RecordHeader{{Key: "a", Value: []byte("1")}, {Key: "b", Value: []byte("2")}},
	}
	tests := []struct{ format, want string }{
		{`%v\n`, "value\n"},
		{`%k %v %o %p`, "k value 12 3"},
		{`%t`, "2025-06-07T08:09:10.123456789Z"},
		{`%T`, "1749283750123"},
		{`[%h]`, "[a=1,b=2]"},
		{`%K/%S 100%%\t\\`, "1/5 100%\t\\"},
		{`plain`, "plain"},
	}
	for _, tt := range tests {
		f, err := parseFormat(tt.format)
		if err != nil {
			t.Fatalf("%q: %v", tt.format, err)
		}
		if got := string(f.append(nil, rec)); got != tt.want {
			t.Errorf("format %q = %q, want %q", tt.format, got, tt.want)
		}
	}
	for _, bad := range []string{`%`, `\`, `%z`, `\q`} {
		if _, err := parseFormat(bad); err == nil {
			t.Errorf("parseFormat(%q) succeeded, want an error", bad)
		}
	}
}

// lineGen yields n numbered lines without holding them all in memory.
type lineGen struct {
	i, n int
	buf  []byte
}

func (g *lineGen) Read(p []byte) (int, error) {
	for len(g.buf) < len(p) && g.i < g.n {
		g.buf = strconv.AppendInt(g.buf, int64(g.i), 10)
		g.buf = append(g.buf, '\n')
		g.i++
	}
	if len(g.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, g.buf)
	g.buf = g.buf[n:]
	return n, nil
}

func TestProduceStreamsLargeInput(t *testing.T) {
	brokers := startTestCluster(t)
	ctx := testContext(t)
	topic := testTopic(t)
	mustRun(t, ctx, brokers, "", "topic", "create", topic, "--partitions", "2")
	const n = 200000
	var out, errb bytes.Buffer
	env := &cliEnv{stdin: &lineGen{n: n}, stdout: &out, stderr: &errb, getenv: func(string) string { return "" }}
	if err := run(ctx, env, []string{"produce", topic, "--brokers", brokers, "--max-buffered", "1000"}); err != nil {
		t.Fatalf("produce: %v (%s)", err, errb.String())
	}
	if !strings.Contains(errb.String(), "200000 records produced") {
		t.Fatalf("summary = %q", errb.String())
	}
	r := mustRun(t, ctx, brokers, "", "consume", topic, "--from", "beginning", "-e", "--format", `%v\n`)
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\n"), "\n")
	if len(lines) != n {
		t.Fatalf("consumed %d records, want %d", len(lines), n)
	}
	seen := make([]bool, n)
	for _, l := range lines {
		i, err := strconv.Atoi(l)
		if err != nil || i < 0 || i >= n || seen[i] {
			t.Fatalf("bad or duplicate line %q", l)
		}
		seen[i] = true
	}
	r = mustRun(t, ctx, brokers, "", "consume", topic, "--from", "beginning", "-n", "10", "--format", `.`)
	if r.stdout != ".........." {
		t.Errorf("-n 10 printed %q", r.stdout)
	}
}
