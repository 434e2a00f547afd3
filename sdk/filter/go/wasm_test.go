package filter_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/samsa-broker/samsa/wasm"
)

// TestWasmGlue builds testdata/guest into a module (the wasm exports of
// this package) and runs it in the broker's filter host.
func TestWasmGlue(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a wasm module")
	}
	out := filepath.Join(t.TempDir(), "guest.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./testdata/guest")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the guest: %v\n%s", err, b)
	}
	module, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	h, err := wasm.NewHost(ctx, wasm.Options{Interpreter: raceEnabled})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	newPool := func(params string) *wasm.Pool {
		t.Helper()
		p, err := h.NewPoolFromBytes(ctx, module, []byte(params), wasm.Limits{Timeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	recs := func(values ...string) []wasm.Record {
		rs := make([]wasm.Record, len(values))
		for i, v := range values {
			rs[i] = wasm.Record{Offset: int64(10 + i), Key: []byte("k"), Value: []byte(v),
				Headers: []wasm.Header{{Key: "h", Value: nil}}}
		}
		return rs
	}

	t.Run("actions", func(t *testing.T) {
		p := newPool(`{"p":1}`)
		ds, logs, err := p.Run(ctx, wasm.ProducePath, "orders", 2, recs("keep", "drop", "rewrite", "route", "routerw", "reject", "remember"))
		if err != nil {
			t.Fatal(err, logs)
		}
		want := []wasm.Decision{
			{Action: wasm.Keep},
			{Action: wasm.Drop},
			{Action: wasm.Rewrite, Rewritten: true, Key: []byte("k"), Value: []byte(`REWRITE {"p":1}`),
				Headers: []wasm.Header{{Key: "h"}, {Key: "batches", Value: []byte("1")}}},
			{Action: wasm.Route, Topics: []string{"orders.a", "b"}},
			{Action: wasm.Route, Topics: []string{"c"}, Rewritten: true, Value: []byte("x")},
			{Action: wasm.Reject, Message: "no: offset 15"},
			{Action: wasm.Keep},
		}
		if len(ds) != len(want) {
			t.Fatalf("%d decisions", len(ds))
		}
		for i := range want {
			g, w := ds[i], want[i]
			if g.Action != w.Action || g.Rewritten != w.Rewritten || string(g.Key) != string(w.Key) ||
				string(g.Value) != string(w.Value) || !slices.Equal(g.Topics, w.Topics) || g.Message != w.Message ||
				len(g.Headers) != len(w.Headers) {
				t.Errorf("decision %d: got %+v, want %+v", i, g, w)
			}
		}
		if g := ds[2].Headers; g[1].Key != "batches" || string(g[1].Value) != "1" || g[0].Value != nil {
			t.Errorf("headers %+v", g)
		}
		if !slices.Contains(logs, wasm.LogLine{Stream: "stdout", Line: "guest: batch 1, 7 records"}) {
			t.Errorf("logs %v", logs)
		}
		// Later batches on the same instance: records kept from earlier
		// batches are intact, and big batches go through.
		for i := 0; i < 3; i++ {
			big := recs(slices.Repeat([]string{"remember", "x"}, 2000)...)
			if ds, _, err := p.Run(ctx, wasm.ProducePath, "orders", 2, big); err != nil || len(ds) != len(big) {
				t.Fatalf("big batch: %d, %v", len(ds), err)
			}
		}
		ds, _, err = p.Run(ctx, wasm.ConsumePath, "orders", 2, recs("recall"))
		if err != nil {
			t.Fatal(err)
		}
		if v := string(ds[0].Value); strings.Count(v, "remember") != 1+3*2000 || strings.Trim(strings.ReplaceAll(v, "remember", ""), ",") != "" {
			t.Errorf("recalled values are corrupted: %.100s...", v)
		}
		if st := p.Stats(); st.Failures != 0 || st.Instances != 1 {
			t.Errorf("stats %+v", st)
		}
	})

	t.Run("failures", func(t *testing.T) {
		p := newPool("")
		for value, msg := range map[string]string{
			"fail":  "failing on purpose",
			"panic": "handler panicked: panicking on purpose",
			"short": "handler returned 1 decisions for 2 records",
		} {
			_, logs, err := p.Run(ctx, wasm.ProducePath, "t", 0, recs("keep", value))
			var fe *wasm.FilterError
			if !errors.As(err, &fe) || fe.Kind != wasm.FailGuest {
				t.Errorf("%s: got %v, want a guest failure", value, err)
				continue
			}
			if !slices.ContainsFunc(logs, func(l wasm.LogLine) bool { return l.Stream == "stderr" && strings.Contains(l.Line, msg) }) {
				t.Errorf("%s: logs %v lack %q", value, logs, msg)
			}
		}
		// The pool goes on after failures.
		if ds, _, err := p.Run(ctx, wasm.ProducePath, "t", 0, recs("drop")); err != nil || ds[0].Action != wasm.Drop {
			t.Errorf("after failures: %v %v", ds, err)
		}
	})

	t.Run("init error", func(t *testing.T) {
		p := newPool("bad")
		_, _, err := p.Run(ctx, wasm.ProducePath, "t", 0, recs("keep"))
		var fe *wasm.FilterError
		if !errors.As(err, &fe) || fe.Kind != wasm.FailGuest || !strings.Contains(err.Error(), "bad params") {
			t.Errorf("got %v", err)
		}
	})
}
