package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	nethttp "net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/samsa-broker/samsa/broker"
	samsahttp "github.com/samsa-broker/samsa/transports/http"
	"github.com/samsa-broker/samsa/transports/kafka"
	"github.com/samsa-broker/samsa/wasm"
)

func TestParseTestRecord(t *testing.T) {
	now := time.UnixMilli(1700000000000)
	tests := []struct {
		line    string
		want    wasm.Record
		wantErr string
	}{
		{line: `{"key":"k1","value":"plain text"}`,
			want: wasm.Record{Offset: 3, Timestamp: now.UnixMilli(), Key: []byte("k1"), Value: []byte("plain text")}},
		{line: `{"value":{"email": "a@b.c", "n": [1, 2]}}`,
			want: wasm.Record{Offset: 3, Timestamp: now.UnixMilli(), Value: []byte(`{"email":"a@b.c","n":[1,2]}`)}},
		{line: `{"value":"{\"already\":\"json text\"}"}`,
			want: wasm.Record{Offset: 3, Timestamp: now.UnixMilli(), Value: []byte(`{"already":"json text"}`)}},
		{line: `{"value":42,"key":null,"timestamp":1234}`,
			want: wasm.Record{Offset: 3, Timestamp: 1234, Value: []byte(`42`)}},
		{line: `{"value":true,"timestamp":"2026-01-02T03:04:05Z","offset":99}`,
			want: wasm.Record{Offset: 99, Timestamp: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli(), Value: []byte(`true`)}},
		{line: `{"value":"v","headers":{"z":"1","a":{"x":1},"n":null}}`,
			want: wasm.Record{Offset: 3, Timestamp: now.UnixMilli(), Value: []byte("v"),
				Headers: []wasm.Header{{Key: "z", Value: []byte("1")}, {Key: "a", Value: []byte(`{"x":1}`)}, {Key: "n"}}}},
		{line: `{}`, want: wasm.Record{Offset: 3, Timestamp: now.UnixMilli()}},
		{line: `{"vaule":"typo"}`, wantErr: `unknown field "vaule"`},
		{line: `not json`, wantErr: "want a JSON object"},
		{line: `{"value":"x"} {"value":"y"}`, wantErr: "more than one JSON value"},
		{line: `{"value":"x","timestamp":"yesterday"}`, wantErr: "timestamp"},
		{line: `{"value":"x","headers":["a","b"]}`, wantErr: "headers"},
	}
	for _, tt := range tests {
		got, err := parseTestRecord([]byte(tt.line), 3, now)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want one containing %q", tt.line, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.line, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s:\n got %+v\nwant %+v", tt.line, got, tt.want)
		}
	}
}

func TestDescribeDecision(t *testing.T) {
	tests := []struct {
		d    wasm.Decision
		want string
	}{
		{wasm.Decision{Action: wasm.Keep}, "keep"},
		{wasm.Decision{Action: wasm.Drop}, "drop"},
		{wasm.Decision{Action: wasm.Rewrite, Rewritten: true, Value: []byte(`{"a":1}`)}, `rewrite → value={"a":1}`},
		{wasm.Decision{Action: wasm.Rewrite, Rewritten: true, Key: []byte("k"), Value: []byte{0xff, 0}, Headers: []wasm.Header{{Key: "h", Value: []byte("v")}}},
			"rewrite → key=k value=base64:/wA= headers=h=v"},
		{wasm.Decision{Action: wasm.Route, Topics: []string{"a", "b"}}, "route → a,b"},
		{wasm.Decision{Action: wasm.Route, Topics: []string{"a"}, Rewritten: true, Value: []byte("x")}, "route → a (rewritten: value=x)"},
		{wasm.Decision{Action: wasm.Reject, Message: "no e-mail"}, "reject: no e-mail"},
	}
	for _, tt := range tests {
		if got := describeDecision(tt.d); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

func TestParseOnError(t *testing.T) {
	for _, ok := range []string{"", "reject", "drop", "pass", "dead-letter:orders.dlq"} {
		if _, err := parseOnError(ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"dead-letter:", "ignore", "Reject"} {
		if _, err := parseOnError(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestFilterKind(t *testing.T) {
	dir := t.TempDir()
	mk := func(name, files string) string {
		d := filepath.Join(dir, name)
		os.MkdirAll(d, 0o755)
		for _, f := range strings.Fields(files) {
			body := "{}"
			if f == "package.json" {
				body = `{"devDependencies":{"assemblyscript":"~0.28"}}`
			}
			os.WriteFile(filepath.Join(d, f), []byte(body), 0o644)
		}
		return d
	}
	tests := []struct {
		dir, want string
	}{
		{mk("go", "main.go filter.go"), "go"},
		{mk("gotests", "x_test.go"), ""},
		{mk("as", "package.json"), "assemblyscript"},
		{mk("asconfig", "asconfig.json main.go"), "assemblyscript"},
		{mk("empty", ""), ""},
	}
	for _, tt := range tests {
		got, err := filterKind(tt.dir)
		if got != tt.want || (tt.want == "") != (err != nil) {
			t.Errorf("%s: %q, %v; want %q", filepath.Base(tt.dir), got, err, tt.want)
		}
	}
	if got := asArgs(mk("asc", "asconfig.json"), "/o.wasm"); !reflect.DeepEqual(got, []string{"asc", "assembly/index.ts", "--optimize", "--outFile", "/o.wasm"}) {
		t.Errorf("asArgs: %q", got)
	}
	d := mk("ascscript", "")
	os.WriteFile(filepath.Join(d, "package.json"), []byte(`{"scripts":{"build":"asc assembly/index.ts --target release -o x.wasm"}}`), 0o644)
	if got := asArgs(d, "/o.wasm"); !reflect.DeepEqual(got, []string{"asc", "assembly/index.ts", "--target", "release", "--outFile", "/o.wasm"}) {
		t.Errorf("asArgs with a build script: %q", got)
	}
}

// runFilterCLI runs `samsa filter args...` with SAMSA_ADMIN set to admin.
func runFilterCLI(t *testing.T, ctx context.Context, admin, brokers, stdin string, args ...string) cliResult {
	t.Helper()
	if raceEnabled && len(args) > 0 && args[0] == "test" {
		// Compiling a Go guest under the race detector takes minutes.
		args = append(args, "--interpreter")
	}
	var out, errb bytes.Buffer
	env := &cliEnv{
		stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb,
		getenv: func(k string) string {
			switch k {
			case "SAMSA_ADMIN":
				return admin
			case "SAMSA_BROKERS":
				return brokers
			}
			return ""
		},
	}
	err := run(ctx, env, append([]string{"filter"}, args...))
	return cliResult{out.String(), errb.String(), err}
}

// The CLI shows the admin API's error messages, and says where it tried
// when nothing answers.
func TestFilterCLIErrors(t *testing.T) {
	ctx := testContext(t)
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == "POST" && strings.HasPrefix(r.URL.Path, "/api/v1/filters/"):
			if r.Header.Get("Content-Type") != "application/wasm" {
				w.WriteHeader(415)
				return
			}
			w.WriteHeader(400)
			w.Write([]byte(`{"error":"invalid module: missing export samsa_filter","code":"invalid_module"}`))
		case r.Method == "DELETE":
			w.WriteHeader(409)
			w.Write([]byte(`{"error":"filter \"redact\" is in use by binding b1","code":"filter_in_use"}`))
		case r.Method == "POST" && r.URL.Path == "/api/v1/bindings":
			var spec map[string]any
			json.NewDecoder(r.Body).Decode(&spec)
			w.WriteHeader(201)
			spec["id"] = "b7"
			json.NewEncoder(w).Encode(spec)
		default:
			w.WriteHeader(503)
			w.Write([]byte(`{"error":"filters are disabled","code":"filters_disabled"}`))
		}
	}))
	defer srv.Close()
	mod := filepath.Join(t.TempDir(), "m.wasm")
	os.WriteFile(mod, []byte("\x00asm"), 0o644)

	r := runFilterCLI(t, ctx, srv.URL, "", "", "deploy", "redact", mod)
	if r.err == nil || !strings.Contains(r.err.Error(), "missing export samsa_filter") || !strings.Contains(r.err.Error(), "HTTP 400") {
		t.Errorf("deploy: %v", r.err)
	}
	r = runFilterCLI(t, ctx, srv.URL, "", "", "remove", "redact")
	if r.err == nil || !strings.Contains(r.err.Error(), "in use by binding b1") {
		t.Errorf("remove: %v", r.err)
	}
	r = runFilterCLI(t, ctx, srv.URL, "", "", "list")
	if r.err == nil || !strings.Contains(r.err.Error(), "filters are disabled") {
		t.Errorf("list: %v", r.err)
	}
	// bind sends the spec the flags describe.
	r = runFilterCLI(t, ctx, "", "", "", "bind", "redact", "--admin", srv.URL, "--produce", "orders", "--on-error", "dead-letter:dlq",
		"--params", `{ "a" : 1 }`, "--memory-pages", "32", "--timeout", "250ms", "--version", "2", "--json")
	if r.err != nil {
		t.Fatalf("bind: %v", r.err)
	}
	var spec map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &spec); err != nil {
		t.Fatalf("bind output %q: %v", r.stdout, err)
	}
	want := map[string]any{"id": "b7", "filter": "redact", "produce": "orders", "on_error": "dead-letter:dlq",
		"params": map[string]any{"a": 1.0}, "memory_pages": 32.0, "timeout_ms": 250.0, "version": 2.0, "created": "0001-01-01T00:00:00Z"}
	if !reflect.DeepEqual(spec, want) {
		t.Errorf("bind sent %v\nwant %v", spec, want)
	}
	for _, bad := range [][]string{
		{"bind", "redact"},
		{"bind", "redact", "--view", "v"},
		{"bind", "redact", "--produce", "t", "--view", "v"},
		{"bind", "redact", "--produce", "t", "--params", "{nope"},
		{"bind", "redact", "--produce", "t", "--on-error", "explode"},
		{"deploy", "redact"},
		{"describe"},
		{"frobnicate"},
	} {
		if r := runFilterCLI(t, ctx, srv.URL, "", "", bad...); r.err == nil {
			t.Errorf("samsa filter %s: no error", strings.Join(bad, " "))
		}
	}

	// Nothing listening.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	r = runFilterCLI(t, ctx, dead, "", "", "bindings")
	if r.err == nil || !strings.Contains(r.err.Error(), dead) || !strings.Contains(r.err.Error(), "SAMSA_ADMIN") {
		t.Errorf("bindings with nothing listening: %v", r.err)
	}
}

// buildTestFilter builds testdata/testfilter with `samsa filter build`.
func buildTestFilter(t *testing.T, ctx context.Context) string {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go not in PATH")
	}
	out := filepath.Join(t.TempDir(), "testfilter.wasm")
	r := runFilterCLI(t, ctx, "", "", "", "build", "testdata/testfilter", "-o", out)
	if r.err != nil {
		t.Fatalf("filter build: %v\n%s", r.err, r.stderr)
	}
	if !strings.Contains(r.stdout, "built") || !strings.Contains(r.stderr, "GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared") {
		t.Errorf("build output: %q / %q", r.stdout, r.stderr)
	}
	return out
}

func TestFilterBuildAndTest(t *testing.T) {
	ctx := testContext(t)
	mod := buildTestFilter(t, ctx)
	dir := t.TempDir()
	input := filepath.Join(dir, "records.jsonl")
	os.WriteFile(input, []byte(strings.Join([]string{
		`{"key":"k1","value":"hello"}`,
		``,
		`{"key":"k2","value":"please drop me"}`,
		`{"key":"k3","value":"upper:shout","headers":{"src":"t"}}`,
		`{"value":"route this"}`,
		`{"value":"reject this"}`,
		`{"value":{"json":"drop"}}`,
	}, "\n")), 0o644)

	r := runFilterCLI(t, ctx, "", "", "", "test", mod, "--input", input, "--topic", "orders")
	if r.err != nil {
		t.Fatalf("filter test: %v\nstderr: %s", r.err, r.stderr)
	}
	want := strings.Join([]string{
		"line 1: keep",
		"line 3: drop",
		"line 4: rewrite → key=k3 value=SHOUT headers=src=t,seen=yes",
		"line 5: route → orders.routed,orders",
		"line 6: reject: value says reject",
		"line 7: drop",
	}, "\n") + "\n"
	if r.stdout != want {
		t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, want)
	}
	for _, s := range []string{"[stderr] batch of 6 records on orders", "[stdout] rewriting upper:shout", "6 records: 2 drop, 1 keep, 1 reject, 1 rewrite, 1 route"} {
		if !strings.Contains(r.stderr, s) {
			t.Errorf("stderr lacks %q:\n%s", s, r.stderr)
		}
	}

	// Params reach samsa_init; --batch splits the calls; stdin works.
	r = runFilterCLI(t, ctx, "", "", "{\"value\":\"hello\"}\n{\"value\":\"please drop me\"}\n", "test", mod, "--input", "-", "--params", `{"drop":"hello"}`, "--batch", "1")
	if r.err != nil || r.stdout != "line 1: drop\nline 2: keep\n" || strings.Count(r.stderr, "batch of 1 records") != 2 {
		t.Errorf("with params: %v\nstdout %q\nstderr %q", r.err, r.stdout, r.stderr)
	}

	// The consume path allows no reject: a failure, non-zero exit.
	r = runFilterCLI(t, ctx, "", "", `{"value":"reject"}`, "test", mod, "--input", "-", "--path", "consume")
	if r.err == nil || !errors.Is(r.err, wasm.ErrFilterFailed) {
		t.Errorf("reject on the consume path: %v", r.err)
	}
	// A trap fails, with the logs written before it.
	r = runFilterCLI(t, ctx, "", "", "{\"value\":\"ok\"}\n{\"value\":\"trap\"}\n", "test", mod, "--input", "-")
	if r.err == nil || !errors.Is(r.err, wasm.ErrFilterFailed) || !strings.Contains(r.err.Error(), "lines 1 to 2") {
		t.Errorf("trap: %v", r.err)
	}
	// Bad parameters fail samsa_init.
	r = runFilterCLI(t, ctx, "", "", `{"value":"ok"}`, "test", mod, "--input", "-", "--params", `[1]`)
	if r.err == nil {
		t.Errorf("bad params: no error; stdout %q", r.stdout)
	}
	// A bad input line fails before the module runs, naming the line.
	r = runFilterCLI(t, ctx, "", "", "{\"value\":\"ok\"}\n{\"value\":\n", "test", mod, "--input", "-")
	if r.err == nil || !strings.Contains(r.err.Error(), "line 2") {
		t.Errorf("bad line: %v", r.err)
	}
	// Not a module.
	os.WriteFile(filepath.Join(dir, "junk.wasm"), []byte("junk"), 0o644)
	r = runFilterCLI(t, ctx, "", "", `{"value":"ok"}`, "test", filepath.Join(dir, "junk.wasm"), "--input", "-")
	if r.err == nil || !errors.Is(r.err, wasm.ErrInvalidModule) {
		t.Errorf("junk module: %v", r.err)
	}
}

// startFilterBroker runs a broker with filters on, its Kafka listener and
// its HTTP listener, in-process. It returns the Kafka address and the admin
// URL.
func startFilterBroker(t *testing.T) (string, string) {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	host, err := wasm.NewHost(ctx, wasm.Options{Dir: filepath.Join(dir, "filters"), Interpreter: raceEnabled})
	if err != nil {
		t.Fatal(err)
	}
	b, err := broker.Open(broker.Options{DataDir: dir, AutoCreateTopics: true, DefaultPartitions: 1, Filters: host})
	if err != nil {
		host.Close(ctx)
		t.Fatalf("open broker: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().(*net.TCPAddr)
	srv := kafka.NewServer(b, kafka.Options{AdvertisedHost: "127.0.0.1", AdvertisedPort: int32(addr.Port)})
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(sctx, ln)
	}()
	hs := httptest.NewServer(samsahttp.Handler(b, nil))
	t.Cleanup(func() {
		hs.Close()
		cancel()
		srv.Close()
		<-done
		b.Close()
		host.Close(ctx)
	})
	return addr.String(), hs.URL
}

func TestFilterAdminFlow(t *testing.T) {
	ctx := testContext(t)
	mod := buildTestFilter(t, ctx)
	brokers, admin := startFilterBroker(t)
	cli := func(args ...string) cliResult {
		t.Helper()
		r := runFilterCLI(t, ctx, admin, brokers, "", args...)
		if r.err != nil {
			t.Fatalf("samsa filter %s: %v\nstderr: %s", strings.Join(args, " "), r.err, r.stderr)
		}
		return r
	}
	r := cli("deploy", "tf", mod)
	if !strings.HasPrefix(r.stdout, "deployed tf version 1 (") {
		t.Errorf("deploy: %q", r.stdout)
	}
	if r = cli("deploy", "tf", mod); !strings.HasPrefix(r.stdout, "deployed tf version 2 (") {
		t.Errorf("deploy again: %q", r.stdout)
	}
	if r = cli("list"); !strings.Contains(r.stdout, "NAME") || !regexpMatch(`(?m)^tf\s+2\s+\d+`, r.stdout) {
		t.Errorf("list:\n%s", r.stdout)
	}

	mustRun(t, ctx, brokers, "", "topic", "create", "orders")
	r = cli("bind", "tf", "--produce", "orders", "--on-error", "reject")
	id := strings.TrimSpace(r.stdout[strings.LastIndex(r.stdout, " ")+1:])
	if !strings.HasPrefix(r.stdout, "bound tf (version latest) to produce orders: binding ") || id == "" {
		t.Fatalf("bind: %q", r.stdout)
	}
	if r = cli("bindings"); !strings.Contains(r.stdout, id) || !strings.Contains(r.stdout, "produce orders") {
		t.Errorf("bindings:\n%s", r.stdout)
	}
	if r = cli("describe", "tf"); !strings.Contains(r.stdout, "versions:") || !strings.Contains(r.stdout, id) {
		t.Errorf("describe:\n%s", r.stdout)
	}
	if r := runFilterCLI(t, ctx, admin, brokers, "", "remove", "tf"); r.err == nil || !strings.Contains(r.err.Error(), "409") {
		t.Errorf("remove while bound: %v", r.err)
	}

	// Produce through the filter: "upper:" values are rewritten, a reject
	// fails with POLICY_VIOLATION.
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers), kgo.DefaultProduceTopic("orders"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("upper:abc")}).FirstErr(); err != nil {
		t.Fatalf("produce: %v", err)
	}
	// (franz-go reports the error code; the message is in the response.)
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("reject me")}).FirstErr(); !errors.Is(err, kerr.PolicyViolation) {
		t.Errorf("produce of a rejected record: %v", err)
	}
	out := mustRun(t, ctx, brokers, "", "consume", "orders", "--from", "beginning", "-e", "--quiet")
	if out.stdout != "ABC\n" {
		t.Errorf("consumed %q, want ABC", out.stdout)
	}

	// The module's lines reach the log topic.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r = cli("logs", "tf")
		if strings.Contains(r.stdout, "stdout rewriting upper:abc") && strings.Contains(r.stdout, "stderr batch of 1 records on orders") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("logs:\n%s", r.stdout)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// -f follows until interrupted.
	fctx, fcancel := context.WithCancel(ctx)
	resc := make(chan cliResult, 1)
	go func() { resc <- runFilterCLI(t, fctx, admin, brokers, "", "logs", "tf", "-f", "--from", "end") }()
	time.Sleep(time.Second)
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("upper:followed")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	fcancel()
	fr := <-resc
	if fr.err != nil || !strings.Contains(fr.stdout, "rewriting upper:followed") || strings.Contains(fr.stdout, "upper:abc") {
		t.Errorf("logs -f --from end: %v\n%s", fr.err, fr.stdout)
	}

	cli("unbind", id)
	if r = cli("bindings"); strings.Contains(r.stdout, id) {
		t.Errorf("binding %s still listed:\n%s", id, r.stdout)
	}
	cli("remove", "tf")
	if r := runFilterCLI(t, ctx, admin, brokers, "", "describe", "tf"); r.err == nil || !strings.Contains(r.err.Error(), "404") {
		t.Errorf("describe after remove: %v", r.err)
	}
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }
