package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/samsa-broker/samsa/broker"
	"github.com/samsa-broker/samsa/transports/kafka"
	"github.com/twmb/franz-go/pkg/kfake"
)

// startTestCluster starts a samsa broker (the broker and its Kafka listener,
// in-process, on a loopback port) for a test and returns its address. Set
// SAMSA_TEST_BROKERS to run the tests against a running broker instead;
// tests use their own topic names, so they do not need an empty broker.
func startTestCluster(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("SAMSA_TEST_BROKERS"); b != "" {
		return b
	}
	b, err := broker.Open(broker.Options{DataDir: t.TempDir(), AutoCreateTopics: true, DefaultPartitions: 1})
	if err != nil {
		t.Fatalf("open broker: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Close()
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	srv := kafka.NewServer(b, kafka.Options{AdvertisedHost: "127.0.0.1", AdvertisedPort: int32(addr.Port)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ctx, ln)
	}()
	t.Cleanup(func() {
		cancel()
		srv.Close()
		<-done
		b.Close()
	})
	return addr.String()
}

var topicSeq atomic.Int64

// testTopic returns a topic name unique to this test run.
func testTopic(t *testing.T) string {
	name := strings.NewReplacer("/", "-", " ", "-").Replace(t.Name())
	return fmt.Sprintf("%s-%d-%d", name, time.Now().UnixNano()%1e6, topicSeq.Add(1))
}

// cliResult is what one in-process run of the binary produced.
type cliResult struct {
	stdout, stderr string
	err            error
}

// runCLI runs `samsa args...` in-process against brokers (passed through
// SAMSA_BROKERS, which also tests that the variable is honoured).
func runCLI(t *testing.T, ctx context.Context, brokers, stdin string, args ...string) cliResult {
	t.Helper()
	var out, errb bytes.Buffer
	env := &cliEnv{
		stdin:  strings.NewReader(stdin),
		stdout: &out,
		stderr: &errb,
		getenv: func(k string) string {
			if k == "SAMSA_BROKERS" {
				return brokers
			}
			return ""
		},
	}
	err := run(ctx, env, args)
	return cliResult{out.String(), errb.String(), err}
}

// mustRun runs the CLI and fails the test on an error.
func mustRun(t *testing.T, ctx context.Context, brokers, stdin string, args ...string) cliResult {
	t.Helper()
	r := runCLI(t, ctx, brokers, stdin, args...)
	if r.err != nil {
		t.Fatalf("samsa %s: %v\nstderr: %s", strings.Join(args, " "), r.err, r.stderr)
	}
	return r
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestParseFlagsInterspersed(t *testing.T) {
	tests := []struct {
		args    []string
		wantPos []string
		wantSep string
		wantN   int
		wantE   bool
		wantErr bool
	}{
		{args: []string{"topic", "--key-sep", ":"}, wantPos: []string{"topic"}, wantSep: ":"},
		{args: []string{"--key-sep=:", "topic"}, wantPos: []string{"topic"}, wantSep: ":"},
		{args: []string{"-e", "topic", "-n", "5"}, wantPos: []string{"topic"}, wantN: 5, wantE: true},
		{args: []string{"a", "-e", "b"}, wantPos: []string{"a", "b"}, wantE: true},
		{args: []string{"--key-sep", "--", "t"}, wantPos: []string{"t"}, wantSep: "--"},
		{args: []string{"-n", "1", "--", "-e"}, wantPos: []string{"-e"}, wantN: 1},
		{args: []string{"t", "--nope"}, wantErr: true},
		{args: []string{"t", "-n", "x"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			fs := flag.NewFlagSet("x", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			sep := fs.String("key-sep", "", "")
			n := fs.Int("n", 0, "")
			e := fs.Bool("e", false, "")
			pos, err := parseFlags(fs, tt.args)
			if tt.wantErr {
				if err == nil {
					t.Fatalf("want an error, got positional %q", pos)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(pos, tt.wantPos) || *sep != tt.wantSep || *n != tt.wantN || *e != tt.wantE {
				t.Errorf("got pos %q sep %q n %d e %v; want %q %q %d %v", pos, *sep, *n, *e, tt.wantPos, tt.wantSep, tt.wantN, tt.wantE)
			}
		})
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"1048576", 1 << 20, false},
		{"1MiB", 1 << 20, false},
		{"512k", 512 << 10, false},
		{"2MB", 2e6, false},
		{"x", 0, true},
		{"-1", 0, true},
	}
	for _, tt := range tests {
		got, err := parseByteSize(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestClientFlagsErrors(t *testing.T) {
	tests := []struct {
		cf   clientFlags
		want string
	}{
		{clientFlags{brokers: " , "}, "no brokers"},
		{clientFlags{brokers: "x:1", sasl: "kerberos"}, "unknown --sasl"},
		{clientFlags{brokers: "x:1", sasl: "oauthbearer"}, "needs --token"},
		{clientFlags{brokers: "x:1", tlsCA: "/does/not/exist"}, "--tls-ca"},
	}
	for _, tt := range tests {
		_, err := tt.cf.opts()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: got error %v, want one containing %q", tt.cf, err, tt.want)
		}
	}
	ok := clientFlags{brokers: "a:1, b:2", sasl: "scram-sha-256", user: "u", password: "p", tls: true}
	if _, err := ok.opts(); err != nil {
		t.Errorf("valid flags: %v", err)
	}
	if s, _ := ok.seeds(); !reflect.DeepEqual(s, []string{"a:1", "b:2"}) {
		t.Errorf("seeds = %q", s)
	}
}

func TestUnreachableBrokerFailsWithinTimeout(t *testing.T) {
	start := time.Now()
	r := runCLI(t, testContext(t), "127.0.0.1:1", "", "topic", "list", "--timeout", "1s")
	if r.err == nil {
		t.Fatalf("topic list against a closed port succeeded: %s", r.stdout)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("took %s to fail, want about --timeout", d)
	}
}

func TestSASLAndSecretsFromEnv(t *testing.T) {
	if os.Getenv("SAMSA_TEST_BROKERS") != "" {
		t.Skip("needs its own SASL-enabled kfake cluster")
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(),
		kfake.Superuser("PLAIN", "admin", "s3cret"),
		kfake.Superuser("SCRAM-SHA-256", "admin", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := strings.Join(c.ListenAddrs(), ",")
	ctx := testContext(t)

	runEnv := func(vars map[string]string, args ...string) cliResult {
		var out, errb bytes.Buffer
		env := &cliEnv{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return vars[k] }}
		err := run(ctx, env, args)
		return cliResult{out.String(), errb.String(), err}
	}
	tests := []struct {
		desc string
		vars map[string]string
		args []string
		ok   bool
	}{
		{"plain from env", map[string]string{"SAMSA_BROKERS": brokers, "SAMSA_SASL_MECHANISM": "plain", "SAMSA_USER": "admin", "SAMSA_PASSWORD": "s3cret"}, []string{"topic", "list"}, true},
		{"scram from flags", map[string]string{"SAMSA_BROKERS": brokers}, []string{"topic", "list", "--sasl", "scram-sha-256", "--user", "admin", "--password", "s3cret"}, true},
		{"wrong password", map[string]string{"SAMSA_BROKERS": brokers}, []string{"topic", "list", "--sasl", "plain", "--user", "admin", "--password", "nope", "--timeout", "3s"}, false},
	}
	for _, tt := range tests {
		r := runEnv(tt.vars, tt.args...)
		if (r.err == nil) != tt.ok {
			t.Errorf("%s: err = %v, want success %v", tt.desc, r.err, tt.ok)
		}
		if tt.ok && !strings.Contains(r.stdout, "TOPIC") {
			t.Errorf("%s: stdout = %q", tt.desc, r.stdout)
		}
	}

	// Usage output must not print secrets taken from the environment.
	r := runEnv(map[string]string{"SAMSA_PASSWORD": "s3cret", "SAMSA_TOKEN": "jwt-secret"}, "topic", "list", "-h")
	if !errors.Is(r.err, flag.ErrHelp) {
		t.Fatalf("-h returned %v", r.err)
	}
	if strings.Contains(r.stderr, "s3cret") || strings.Contains(r.stderr, "jwt-secret") || !strings.Contains(r.stderr, "-brokers") {
		t.Errorf("usage output leaks a secret or lacks flags:\n%s", r.stderr)
	}
}
