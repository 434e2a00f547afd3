package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/samsa-broker/samsa/broker/record"
)

// filterEnv runs the samsa binary's filter commands against one broker.
type filterEnv struct {
	t     *testing.T
	b     *proc
	admin string
	dir   string // scratch directory for modules and inputs
}

// with returns fe reporting to t (a subtest).
func (fe *filterEnv) with(t *testing.T) *filterEnv {
	c := *fe
	c.t = t
	return &c
}

func (fe *filterEnv) samsaE(stdin string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, samsaBin, args...)
	cmd.Dir = fe.dir
	cmd.Env = append(os.Environ(), "SAMSA_ADMIN="+fe.admin, "SAMSA_BROKERS="+fe.b.Addr())
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// samsa runs the binary and fails the test on a non-zero exit.
func (fe *filterEnv) samsa(args ...string) string {
	fe.t.Helper()
	out, errOut, err := fe.samsaE("", args...)
	if err != nil {
		fe.t.Fatalf("samsa %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// kcat runs kcat against the broker; stdin feeds -P.
func (fe *filterEnv) kcat(stdin string, args ...string) string {
	fe.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kcat", append([]string{"-b", fe.b.Addr()}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		fe.t.Fatalf("kcat %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// build builds an example filter with `samsa filter build`.
func (fe *filterEnv) build(example string) string {
	fe.t.Helper()
	src := filepath.Join(moduleRoot, "examples", "filters", example)
	if _, err := os.Stat(src); err != nil {
		fe.t.Fatalf("example %s: %v", example, err)
	}
	out := filepath.Join(fe.dir, example+".wasm")
	fe.samsa("filter", "build", src, "-o", out)
	return out
}

var bindingIDRe = regexp.MustCompile(`binding (\S+)\s*$`)

// bind runs `samsa filter bind` and returns the binding's id.
func (fe *filterEnv) bind(args ...string) string {
	fe.t.Helper()
	out := fe.samsa(append([]string{"filter", "bind"}, args...)...)
	m := bindingIDRe.FindStringSubmatch(out)
	if m == nil {
		fe.t.Fatalf("filter bind: no binding id in %q", out)
	}
	return m[1]
}

// post sends body to the admin API and returns the status and the decoded
// error body.
func (fe *filterEnv) post(path string, body io.Reader, contentLength int64) (int, map[string]string) {
	fe.t.Helper()
	req, err := http.NewRequest("POST", fe.admin+path, body)
	if err != nil {
		fe.t.Fatal(err)
	}
	req.ContentLength = contentLength
	req.Header.Set("Content-Type", "application/wasm")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fe.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	var e map[string]string
	data, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(data, &e)
	return resp.StatusCode, e
}

// TestFilters walks the README's filter flow against a real `samsa serve`:
// build the examples, deploy, bind on the produce path and as a view,
// produce and consume with kcat, read the module's logs, test locally,
// redeploy under load, unbind, and refuse bad uploads.
func TestFilters(t *testing.T) {
	requireTool(t, "kcat")
	requireTool(t, "go")
	t.Parallel()
	const maxModule = 12 << 20
	b := startBroker(t, withConfig("filters", "max_module_bytes", maxModule))
	fe := &filterEnv{t: t, b: b, admin: "http://" + b.httpAddr, dir: t.TempDir()}

	redact := fe.build("redact")
	threshold := fe.build("threshold")
	if out := fe.samsa("filter", "deploy", "redact", redact); !strings.Contains(out, "deployed redact version 1") {
		t.Fatalf("deploy: %q", out)
	}
	fe.samsa("filter", "deploy", "threshold", threshold)
	if out := fe.samsa("filter", "list"); !strings.Contains(out, "redact") || !strings.Contains(out, "threshold") {
		t.Fatalf("filter list:\n%s", out)
	}

	// Produce path: redact masks e-mails in orders.
	createTopic(t, b.Addr(), "orders", 1)
	redactID := fe.bind("redact", "--produce", "orders", "--on-error", "reject")
	fe.kcat(`{"id":1,"email":"alice@example.com"}`+"\n"+`{"id":2,"note":"write to bob.smith@corp.example.org or carol@x.io"}`+"\n"+`not json at all`+"\n",
		"-P", "-t", "orders")
	got := fe.kcat("", "-C", "-t", "orders", "-o", "beginning", "-e", "-q")
	want := `{"id":1,"email":"a***@example.com"}` + "\n" + `{"id":2,"note":"write to b***@corp.example.org or c***@x.io"}` + "\n" + "not json at all\n"
	if got != want {
		t.Fatalf("consumed orders:\n%s\nwant:\n%s", got, want)
	}

	// A filtered view: sensors.hot over sensors keeps temp >= 30, with the
	// source offsets.
	t.Run("view", func(t *testing.T) {
		fe := fe.with(t)
		createTopic(t, b.Addr(), "sensors", 1)
		fe.bind("threshold", "--view", "sensors.hot", "--topic", "sensors", "--params", `{"field":"temp","min":30}`)
		var readings strings.Builder
		for i, temp := range []int{21, 35, 18, 30, 29, 44, 12} {
			fmt.Fprintf(&readings, `{"id":%d,"temp":%d}`+"\n", i, temp)
		}
		fe.kcat(readings.String(), "-P", "-t", "sensors")
		got := fe.kcat("", "-C", "-t", "sensors.hot", "-o", "beginning", "-e", "-q", "-f", "%o %s\n")
		want := "1 {\"id\":1,\"temp\":35}\n3 {\"id\":3,\"temp\":30}\n5 {\"id\":5,\"temp\":44}\n"
		if got != want {
			t.Fatalf("consumed sensors.hot:\n%s\nwant:\n%s", got, want)
		}
		if got := fe.kcat("", "-C", "-t", "sensors", "-o", "beginning", "-e", "-q"); strings.Count(got, "\n") != 7 {
			t.Fatalf("the source topic is changed:\n%s", got)
		}
	})

	// The module's stdout lines land in the log topic.
	t.Run("logs", func(t *testing.T) {
		fe := fe.with(t)
		deadline := time.Now().Add(15 * time.Second)
		for {
			out := fe.samsa("filter", "logs", "redact")
			if regexp.MustCompile(`(?m)^\S+ stdout redact: \d+ records?, [1-9]\d* masked`).MatchString(out) {
				if strings.Contains(out, "threshold:") {
					t.Errorf("logs of redact show threshold's lines:\n%s", out)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("filter logs redact:\n%s", out)
			}
			time.Sleep(250 * time.Millisecond)
		}
	})

	// Local test run: no broker involved.
	t.Run("test", func(t *testing.T) {
		fe := fe.with(t)
		input := filepath.Join(fe.dir, "records.jsonl")
		os.WriteFile(input, []byte(`{"key":"a","value":{"email":"dave@example.com"}}`+"\n"+`{"value":"plain"}`+"\n"), 0o644)
		out, errOut, err := fe.samsaE("", "filter", "test", redact, "--input", input)
		if err != nil {
			t.Fatalf("filter test: %v\n%s", err, errOut)
		}
		if !regexp.MustCompile(`^line 1: rewrite → .*value=\{"email":"d\*\*\*@example.com"\}\nline 2: keep\n$`).MatchString(out) ||
			!strings.Contains(errOut, "[stdout] redact: 2 records, 1 masked") {
			t.Errorf("filter test:\nstdout %q\nstderr %q", out, errOut)
		}
		// threshold with parameters, on the consume path.
		os.WriteFile(input, []byte(`{"value":{"temp":40}}`+"\n"+`{"value":{"temp":"40"}}`+"\n"), 0o644)
		out = fe.samsa("filter", "test", threshold, "--input", input, "--path", "consume", "--params", `{"field":"temp","min":30}`)
		if out != "line 1: keep\nline 2: drop\n" {
			t.Errorf("filter test threshold: %q", out)
		}
		// Bad parameters: a failure and a non-zero exit.
		if _, errOut, err := fe.samsaE("", "filter", "test", threshold, "--input", input, "--params", `{"min":30}`); err == nil {
			t.Errorf("filter test with bad params exited 0:\n%s", errOut)
		}
	})

	// Deploying v2 while a producer loops: the binding follows the latest
	// version and no produce fails.
	t.Run("redeploy under load", func(t *testing.T) {
		fe := fe.with(t)
		cl := newClient(t, b.Addr(), kgo.DefaultProduceTopic("orders"))
		var sent, failed atomic.Int64
		var firstErr atomic.Value
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf(`{"n":%d,"email":"user%d@example.com"}`, i, i))}).FirstErr()
				cancel()
				sent.Add(1)
				if err != nil {
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
				}
			}
		}()
		time.Sleep(300 * time.Millisecond)
		out := fe.samsa("filter", "deploy", "redact", redact)
		time.Sleep(500 * time.Millisecond)
		close(stop)
		wg.Wait()
		if !strings.Contains(out, "version 2") {
			t.Errorf("redeploy: %q", out)
		}
		if failed.Load() > 0 || sent.Load() < 10 {
			t.Fatalf("%d of %d produces failed during the redeploy (first: %v)", failed.Load(), sent.Load(), firstErr.Load())
		}
		if out := fe.samsa("filter", "describe", "redact"); !regexp.MustCompile(`(?m)^\s+2\s+\d+`).MatchString(out) {
			t.Errorf("describe after redeploy:\n%s", out)
		}
		// Everything produced was masked by one version or the other.
		consumeEach(t, b.Addr(), "orders", 20*time.Second, func(r *kgo.Record) {
			if regexp.MustCompile(`[a-z0-9]{2,}@`).Match(r.Value) {
				t.Errorf("offset %d not masked: %s", r.Offset, r.Value)
			}
		})
		t.Logf("%d produces during the redeploy", sent.Load())
	})

	t.Run("unbind", func(t *testing.T) {
		fe := fe.with(t)
		fe.samsa("filter", "unbind", redactID)
		if out := fe.samsa("filter", "bindings"); strings.Contains(out, redactID) {
			t.Fatalf("binding %s still listed:\n%s", redactID, out)
		}
		fe.kcat(`{"email":"erin@example.com"}`+"\n", "-P", "-t", "orders")
		got := fe.kcat("", "-C", "-t", "orders", "-o", "-1", "-e", "-q")
		if got != `{"email":"erin@example.com"}`+"\n" {
			t.Fatalf("after unbind got %q, want the record unchanged", got)
		}
		// No longer bound: the filter can be removed.
		fe.samsa("filter", "remove", "redact")
	})

	t.Run("bad uploads", func(t *testing.T) {
		fe := fe.with(t)
		status, e := fe.post("/api/v1/filters/junk", strings.NewReader("this is not a wasm module"), -1)
		if status != 400 || e["code"] != "invalid_module" || e["error"] == "" {
			t.Errorf("garbage upload: %d %v", status, e)
		}
		t.Logf("garbage upload: %s", e["error"])
		// The CLI shows the same message.
		junk := filepath.Join(fe.dir, "junk.wasm")
		os.WriteFile(junk, []byte("this is not a wasm module"), 0o644)
		if _, _, err := fe.samsaE("", "filter", "deploy", "junk", junk); err == nil {
			t.Errorf("deploy of junk exited 0")
		}
		// A module that is Wasm but not a filter: the message names what is missing.
		empty := "\x00asm\x01\x00\x00\x00"
		status, e = fe.post("/api/v1/filters/empty", strings.NewReader(empty), int64(len(empty)))
		if status != 400 || !strings.Contains(e["error"], "samsa_") && !strings.Contains(e["error"], "memory") {
			t.Errorf("empty module: %d %v", status, e)
		}
		// Over the limit, with and without a declared length.
		big := bytes.Repeat([]byte{0}, maxModule+1)
		if status, e = fe.post("/api/v1/filters/big", bytes.NewReader(big), int64(len(big))); status != 413 || e["code"] != "module_too_large" {
			t.Errorf("oversize upload: %d %v", status, e)
		}
		if status, e = fe.post("/api/v1/filters/big", io.MultiReader(bytes.NewReader(big)), -1); status != 413 {
			t.Errorf("oversize chunked upload: %d %v", status, e)
		}
		if out := fe.samsa("filter", "list"); strings.Contains(out, "junk") || strings.Contains(out, "big") {
			t.Errorf("a refused upload is listed:\n%s", out)
		}
	})

	// Modules and bindings survive a clean restart (the filter host is
	// closed after the broker, and reloads <data_dir>/filters).
	t.Run("restart", func(t *testing.T) {
		fe := fe.with(t)
		b.Restart()
		if out := fe.samsa("filter", "list"); !strings.Contains(out, "threshold") {
			t.Errorf("after restart, filter list:\n%s", out)
		}
		if out := fe.samsa("filter", "bindings"); !strings.Contains(out, "view sensors.hot over sensors") {
			t.Errorf("after restart, filter bindings:\n%s", out)
		}
		b.Stop()
		if !strings.Contains(b.out.String(), "stopped cleanly") {
			t.Errorf("no clean stop")
		}
	})
}

// TestFilterValidateAS builds the AssemblyScript example with `samsa filter
// build` and checks that a produce of invalid JSON fails with
// POLICY_VIOLATION and the validator's message in the Produce response.
func TestFilterValidateAS(t *testing.T) {
	requireTool(t, "npm")
	requireTool(t, "npx")
	t.Parallel()
	src := filepath.Join(moduleRoot, "examples", "filters", "validate")
	if _, err := os.Stat(filepath.Join(src, "assembly", "index.ts")); err != nil {
		t.Fatalf("examples/filters/validate is incomplete: %v", err)
	}
	b := startBroker(t)
	fe := &filterEnv{t: t, b: b, admin: "http://" + b.httpAddr, dir: t.TempDir()}
	mod := fe.build("validate")
	fe.samsa("filter", "deploy", "validate", mod)
	createTopic(t, b.Addr(), "events", 1)
	fe.bind("validate", "--produce", "events", "--on-error", "reject")

	cl := newClient(t, b.Addr(), kgo.DefaultProduceTopic("events"), kgo.RecordRetries(1))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(`{"ok":true}`)}).FirstErr(); err != nil {
		t.Fatalf("valid JSON refused: %v", err)
	}
	err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte(`{"ok":tru`)}).FirstErr()
	if err == nil {
		t.Fatal("invalid JSON accepted")
	}
	// franz-go (like librdkafka) reports the error code, not the broker's
	// error message: the client sees POLICY_VIOLATION ...
	t.Logf("franz-go ProduceSync of invalid JSON: %v", err)
	if !errors.Is(err, kerr.PolicyViolation) {
		t.Errorf("produce error %q: want POLICY_VIOLATION", err)
	}
	// ... and the validator's message travels in the Produce response's
	// ErrorMessage, which a client that reads it (here a raw request) shows.
	batch, berr := record.AppendBatch(nil, []record.Record{{Timestamp: time.Now().UnixMilli(), Value: []byte(`{"ok":tru`)}}, record.EncodeOptions{})
	if berr != nil {
		t.Fatal(berr)
	}
	req := kmsg.NewPtrProduceRequest()
	req.Acks, req.TimeoutMillis = -1, 10000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "events"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = batch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	// Produce v13 addresses topics by id; pin a version that names them.
	raw := newClient(t, b.Addr(), kgo.DisableIdempotentWrite(), kgo.MaxVersions(kversion.V3_9_0()))
	resp, err := req.RequestWith(ctx, raw)
	if err != nil {
		t.Fatalf("raw produce: %v", err)
	}
	pr := resp.Topics[0].Partitions[0]
	msg := ""
	if pr.ErrorMessage != nil {
		msg = *pr.ErrorMessage
	}
	t.Logf("Produce response: error %d, message %q", pr.ErrorCode, msg)
	if pr.ErrorCode != kerr.PolicyViolation.Code || !strings.Contains(strings.ToLower(msg), "json") {
		t.Errorf("raw produce of invalid JSON: code %d message %q, want POLICY_VIOLATION and the validator's message", pr.ErrorCode, msg)
	}
	got := consumeAll(t, b.Addr(), "events", 10*time.Second)
	if len(got[0]) != 1 || string(got[0][0].Value) != `{"ok":true}` {
		t.Errorf("events holds %d records, want only the valid one", len(got[0]))
	}
}

// TestFiltersDisabled: with [filters] enabled = false the admin API answers
// 503 and the CLI says why.
func TestFiltersDisabled(t *testing.T) {
	t.Parallel()
	b := startBroker(t, withConfig("filters", "enabled", false))
	fe := &filterEnv{t: t, b: b, admin: "http://" + b.httpAddr, dir: t.TempDir()}
	resp, err := http.Get(fe.admin + "/api/v1/filters")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Errorf("GET /api/v1/filters: %d, want 503", resp.StatusCode)
	}
	status, e := fe.post("/api/v1/filters/x", strings.NewReader("\x00asm\x01\x00\x00\x00"), 8)
	if status != 503 || e["code"] != "filters_disabled" {
		t.Errorf("deploy: %d %v", status, e)
	}
	_, _, err = fe.samsaE("", "filter", "bindings")
	if err == nil {
		t.Error("samsa filter bindings exited 0 with filters disabled")
	}
	if _, err := os.Stat(filepath.Join(b.DataDir(), "filters")); err == nil {
		t.Error("filters dir created with filters disabled")
	}
}
