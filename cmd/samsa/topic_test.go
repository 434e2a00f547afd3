package main

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
)

func TestTopicLifecycle(t *testing.T) {
	brokers := startTestCluster(t)
	ctx := testContext(t)
	name := testTopic(t)

	steps := []struct {
		desc    string
		args    []string
		wantErr string   // substring of the error; "" means success
		want    []string // regexps stdout must match
		notWant []string // regexps stdout must not match
	}{
		{
			desc: "create",
			args: []string{"topic", "create", name, "--partitions", "3", "--config", "retention.ms=86400000"},
			want: []string{`created topic "` + regexp.QuoteMeta(name) + `" with 3 partitions`},
		},
		{
			desc:    "create again",
			args:    []string{"topic", "create", name},
			wantErr: `topic "` + name + `" already exists`,
		},
		{
			desc: "list",
			args: []string{"topic", "list"},
			want: []string{`(?m)^TOPIC\s+PARTITIONS`, `(?m)^` + regexp.QuoteMeta(name) + `\s+3\s+1\s*$`},
		},
		{
			desc: "describe",
			args: []string{"topic", "describe", name},
			want: []string{
				`partitions:\s+3`,
				`(?m)^0\s+\d+\s+\[\d+\]\s+0\s+0\s+0`,
				`(?m)^2\s+\d+\s+\[\d+\]\s+0\s+0\s+0`,
				`(?m)^\s+retention\.ms\s+86400000$`,
			},
			notWant: []string{`(?m)^3\s+`, `segment\.bytes`},
		},
		{
			desc: "alter configs",
			args: []string{"topic", "alter", name, "--config", "retention.bytes=104857600", "--delete-config", "retention.ms"},
			want: []string{`set retention.bytes=104857600`, `deleted retention.ms`},
		},
		{
			desc:    "describe after alter",
			args:    []string{"topic", "describe", name},
			want:    []string{`(?m)^\s+retention\.bytes\s+104857600$`},
			notWant: []string{`retention\.ms\s`},
		},
		{
			desc: "grow partitions",
			args: []string{"topic", "alter", name, "--partitions", "5"},
			want: []string{`now has 5 partitions \(was 3\)`},
		},
		{
			desc: "describe after growth",
			args: []string{"topic", "describe", name},
			want: []string{`partitions:\s+5`, `(?m)^4\s+`},
		},
		{
			desc:    "shrink partitions",
			args:    []string{"topic", "alter", name, "--partitions", "2"},
			wantErr: "cannot be removed",
		},
		{
			desc:    "alter nothing",
			args:    []string{"topic", "alter", name},
			wantErr: "nothing to change",
		},
		{
			desc: "delete",
			args: []string{"topic", "delete", name},
			want: []string{`deleted topic "` + regexp.QuoteMeta(name) + `"`},
		},
		{
			desc:    "describe deleted",
			args:    []string{"topic", "describe", name},
			wantErr: `topic "` + name + `" does not exist`,
		},
		{
			desc:    "delete deleted",
			args:    []string{"topic", "delete", name},
			wantErr: `topic "` + name + `" does not exist`,
		},
		{
			desc:    "list no longer shows it",
			args:    []string{"topic", "list"},
			notWant: []string{regexp.QuoteMeta(name)},
		},
		{
			desc:    "alter missing topic",
			args:    []string{"topic", "alter", name, "--config", "a=b"},
			wantErr: `topic "` + name + `" does not exist`,
		},
		{desc: "no subcommand", args: []string{"topic"}, wantErr: "no command"},
		{desc: "bad subcommand", args: []string{"topic", "frob"}, wantErr: `unknown command "frob"`},
		{desc: "create without name", args: []string{"topic", "create"}, wantErr: "missing topic name"},
		{desc: "create two names", args: []string{"topic", "create", "a", "b"}, wantErr: "want one topic name"},
		{desc: "bad config", args: []string{"topic", "create", "x", "--config", "novalue"}, wantErr: "key=value"},
		{desc: "zero partitions", args: []string{"topic", "create", "x", "--partitions", "0"}, wantErr: "at least 1"},
	}
	for _, st := range steps {
		r := runCLI(t, ctx, brokers, "", st.args...)
		if st.wantErr != "" {
			if r.err == nil || !strings.Contains(r.err.Error(), st.wantErr) {
				t.Fatalf("%s: got error %v, want one containing %q\nstdout: %s", st.desc, r.err, st.wantErr, r.stdout)
			}
			continue
		}
		if r.err != nil {
			t.Fatalf("%s: %v\nstderr: %s", st.desc, r.err, r.stderr)
		}
		for _, re := range st.want {
			if !regexp.MustCompile(re).MatchString(r.stdout) {
				t.Errorf("%s: stdout does not match %s:\n%s", st.desc, re, r.stdout)
			}
		}
		for _, re := range st.notWant {
			if regexp.MustCompile(re).MatchString(r.stdout) {
				t.Errorf("%s: stdout matches %s but should not:\n%s", st.desc, re, r.stdout)
			}
		}
	}
}

func TestTopicNotFoundErrorUnwraps(t *testing.T) {
	brokers := startTestCluster(t)
	r := runCLI(t, testContext(t), brokers, "", "topic", "describe", "missing-topic")
	if !errors.Is(r.err, kerr.UnknownTopicOrPartition) {
		t.Fatalf("got %v, want an error wrapping UNKNOWN_TOPIC_OR_PARTITION", r.err)
	}
	if got, want := r.err.Error(), `topic "missing-topic" does not exist`; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

func TestTopicDescribeShowsOffsets(t *testing.T) {
	brokers := startTestCluster(t)
	ctx := testContext(t)
	name := testTopic(t)
	mustRun(t, ctx, brokers, "", "topic", "create", name, "--partitions", "2")
	mustRun(t, ctx, brokers, "a\nb\nc\n", "produce", name, "--partition", "1")
	r := mustRun(t, ctx, brokers, "", "topic", "describe", name, "--all-configs")
	for _, re := range []string{
		`(?m)^0\s+\d+\s+\[\d+\]\s+0\s+0\s+0\s*$`,
		`(?m)^1\s+\d+\s+\[\d+\]\s+0\s+3\s+3\s*$`,
		`records:\s+3`,
		`\((default|broker|topic)\)`,
	} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Errorf("describe output does not match %s:\n%s", re, r.stdout)
		}
	}
}
