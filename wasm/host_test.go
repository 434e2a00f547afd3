package wasm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// A tiny WebAssembly assembler for hand-made modules the Go toolchain
// cannot produce (foreign imports, wrong signatures, invalid code).
func uleb(v uint32) []byte {
	var b []byte
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v != 0 {
			b = append(b, c|0x80)
			continue
		}
		return append(b, c)
	}
}

func vec(items ...[]byte) []byte { return append(uleb(uint32(len(items))), bytes.Join(items, nil)...) }
func wname(s string) []byte      { return append(uleb(uint32(len(s))), s...) }
func section(id byte, content []byte) []byte {
	return append(append([]byte{id}, uleb(uint32(len(content)))...), content...)
}
func wmodule(sections ...[]byte) []byte {
	return append([]byte{0, 'a', 's', 'm', 1, 0, 0, 0}, bytes.Join(sections, nil)...)
}
func body(code ...byte) []byte {
	b := append([]byte{0}, code...) // no locals
	return append(uleb(uint32(len(b))), b...)
}

const (
	tI32 = 0x7f
	tI64 = 0x7e
)

// handModule builds a module with the four samsa exports and memory; every
// function has type sig (an index into the type section built from types)
// and the given body; imports are (module, name) functions of type 0.
func handModule(types [][]byte, sigs []int, bodies [][]byte, imports [][2]string) []byte {
	return handModuleMem(1, types, sigs, bodies, imports)
}

func handModuleMem(memPages uint32, types [][]byte, sigs []int, bodies [][]byte, imports [][2]string) []byte {
	var secs [][]byte
	secs = append(secs, section(1, vec(types...)))
	if len(imports) > 0 {
		var ims [][]byte
		for _, im := range imports {
			ims = append(ims, bytes.Join([][]byte{wname(im[0]), wname(im[1]), {0}, uleb(0)}, nil))
		}
		secs = append(secs, section(2, vec(ims...)))
	}
	var fs [][]byte
	for _, s := range sigs {
		fs = append(fs, uleb(uint32(s)))
	}
	secs = append(secs, section(3, vec(fs...)))
	secs = append(secs, section(5, vec(append([]byte{0}, uleb(memPages)...))))
	n := uint32(len(imports))
	secs = append(secs, section(7, vec(
		bytes.Join([][]byte{wname("memory"), {2}, uleb(0)}, nil),
		bytes.Join([][]byte{wname("samsa_abi_version"), {0}, uleb(n)}, nil),
		bytes.Join([][]byte{wname("samsa_alloc"), {0}, uleb(n + 1)}, nil),
		bytes.Join([][]byte{wname("samsa_init"), {0}, uleb(n + 2)}, nil),
		bytes.Join([][]byte{wname("samsa_filter"), {0}, uleb(n + 3)}, nil),
	)))
	secs = append(secs, section(10, vec(bodies...)))
	return wmodule(secs...)
}

func fnType(params, results []byte) []byte {
	return bytes.Join([][]byte{{0x60}, vec(splitBytes(params)...), vec(splitBytes(results)...)}, nil)
}

func splitBytes(b []byte) [][]byte {
	var out [][]byte
	for _, c := range b {
		out = append(out, []byte{c})
	}
	return out
}

func TestDeployRefusals(t *testing.T) {
	h := newHost(t, Options{})
	small := newHost(t, Options{MaxModuleBytes: 1 << 20})
	ctx := context.Background()
	noop := body(0x0b)
	ret1 := body(0x41, 1, 0x0b)
	// Correct types: 0 ()->i32, 1 (i32)->i32, 2 (i32,i32)->i32, 3 (i32,i32)->i64.
	goodTypes := [][]byte{fnType(nil, []byte{tI32}), fnType([]byte{tI32}, []byte{tI32}), fnType([]byte{tI32, tI32}, []byte{tI32}), fnType([]byte{tI32, tI32}, []byte{tI64})}
	cases := []struct {
		name   string
		module []byte
		is     error
		want   []string
	}{
		{"garbage", []byte("this is not wasm at all, just some bytes"), ErrInvalidModule,
			[]string{"not a WebAssembly binary", "magic"}},
		{"empty", nil, ErrInvalidModule, []string{"module is empty"}},
		{"truncated", guest(t, "keepall")[:5000], ErrInvalidModule, []string{"malformed WebAssembly binary", "claims"}},
		{"oversized (limit 1 MiB)", guest(t, "upper"), ErrModuleTooLarge, []string{fmt.Sprintf("module is %d bytes, the limit is 1048576", len(guest(t, "upper")))}},
		{"missing samsa_filter", guest(t, "nofilter"), ErrInvalidModule, []string{"missing exports: samsa_filter"}},
		{"WASI command", guest(t, "command"), ErrInvalidModule,
			[]string{"missing exports: samsa_abi_version, samsa_alloc, samsa_init, samsa_filter", "exports _start: it is a WASI command"}},
		{"abi version 2", guest(t, "abi2"), ErrInvalidModule, []string{"samsa_abi_version returned 2; this host supports ABI version 1"}},
		{"foreign import", handModule([][]byte{fnType(nil, nil)}, []int{0, 0, 0, 0}, [][]byte{noop, noop, noop, noop},
			[][2]string{{"env", "now"}, {wasiModule, "fd_write"}}), ErrInvalidModule,
			[]string{"imports other than wasi_snapshot_preview1 functions: env.now (function)"}},
		{"wrong signatures", handModule([][]byte{fnType(nil, []byte{tI32}), fnType(nil, nil)}, []int{0, 1, 1, 0},
			[][]byte{ret1, noop, noop, ret1}, nil), ErrInvalidModule,
			[]string{"export samsa_alloc has signature () -> (), want (i32) -> (i32)",
				"export samsa_init has signature () -> (), want (i32, i32) -> (i32)",
				"export samsa_filter has signature () -> (i32), want (i32, i32) -> (i64)"}},
		{"huge initial memory", handModuleMem(20000, goodTypes, []int{0, 1, 2, 3},
			[][]byte{ret1, body(0x41, 16, 0x0b), body(0x41, 0, 0x0b), body(0x42, 0, 0x0b)}, nil), ErrInvalidModule,
			[]string{"initial memory is 20000 pages, more than the 16384 pages (1 GiB) allowed"}},
		{"does not compile", handModule(goodTypes, []int{0, 1, 2, 3}, [][]byte{noop, noop, noop, noop}, nil), ErrInvalidModule,
			[]string{"does not compile"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h := h
			if c.is == ErrModuleTooLarge {
				h = small
			}
			_, err := h.Deploy(ctx, "m", c.module)
			t.Log(err)
			if !errors.Is(err, c.is) {
				t.Fatalf("err = %v, want %v", err, c.is)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v\nwant it to say %q", err, w)
				}
			}
			// NewPoolFromBytes refuses the same way.
			if _, err := h.NewPoolFromBytes(ctx, c.module, nil, Limits{}); !errors.Is(err, c.is) {
				t.Errorf("NewPoolFromBytes: err = %v, want %v", err, c.is)
			}
		})
	}
	for _, name := range []string{"", "a/b", "..", strings.Repeat("x", 65), "sp ace"} {
		if _, err := h.Deploy(ctx, name, guest(t, "keepall")); !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), "name") {
			t.Errorf("name %q: err = %v", name, err)
		}
	}
	if ms := h.Modules(); len(ms) != 0 {
		t.Fatalf("refused modules were stored: %v", ms)
	}
	// A hand-made module that follows the ABI deploys.
	if _, err := h.Deploy(ctx, "hand", handModule(goodTypes, []int{0, 1, 2, 3},
		[][]byte{ret1, body(0x41, 16, 0x0b), body(0x41, 0, 0x0b), body(0x42, 0, 0x0b)}, nil)); err != nil {
		t.Fatalf("minimal hand-made module: %v", err)
	}
}

func recsOf(values ...string) []Record {
	recs := make([]Record, len(values))
	for i, v := range values {
		recs[i] = Record{Offset: int64(i), Timestamp: 1000 + int64(i), Key: []byte(fmt.Sprint("k", i)), Value: []byte(v)}
	}
	return recs
}

func TestUpper(t *testing.T) {
	h := newHost(t, Options{})
	p := deployPool(t, h, "upper", nil, Limits{})
	recs := []Record{
		{Offset: 0, Key: nil, Value: []byte("hello"), Headers: []Header{{Key: "h", Value: []byte("v")}, {Key: "n"}}},
		{Offset: 1, Key: []byte("k"), Value: nil},
		{Offset: 2, Key: []byte{}, Value: []byte("MiXeD 123")},
	}
	for _, path := range []Path{ProducePath, ConsumePath} {
		ds, logs, err := p.Run(context.Background(), path, "orders", 7, recs)
		if err != nil {
			t.Fatal(err)
		}
		want := []Decision{
			{Action: Rewrite, Rewritten: true, Key: nil, Value: []byte("HELLO"), Headers: []Header{{Key: "h", Value: []byte("v")}, {Key: "n"}}},
			{Action: Rewrite, Rewritten: true, Key: []byte("k"), Value: nil},
			{Action: Rewrite, Rewritten: true, Key: []byte{}, Value: []byte("MIXED 123")},
		}
		if fmt.Sprintf("%#v", ds) != fmt.Sprintf("%#v", want) {
			t.Fatalf("got  %#v\nwant %#v", ds, want)
		}
		if len(logs) != 1 || logs[0] != (LogLine{Stream: "stdout", Line: "upper: 3 records from orders/7"}) {
			t.Fatalf("logs = %q", logs)
		}
	}
	// An empty batch.
	ds, _, err := p.Run(context.Background(), ProducePath, "orders", 7, nil)
	if err != nil || len(ds) != 0 {
		t.Fatalf("empty batch: %v %v", ds, err)
	}
	if st := p.Stats(); st.Runs != 3 || st.Failures != 0 || st.Instances != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestRouter(t *testing.T) {
	h := newHost(t, Options{})
	p := deployPool(t, h, "router", nil, Limits{})
	recs := []Record{{Value: []byte("x")}, {Key: []byte("elsewhere"), Value: []byte("x")}, {Value: []byte("copy")}, {Key: []byte("k"), Value: []byte("rw")}, {Value: []byte("drop")}}
	ds, _, err := p.Run(context.Background(), ProducePath, "src", 0, recs)
	if err != nil {
		t.Fatal(err)
	}
	want := []Decision{
		{Action: Keep},
		{Action: Route, Topics: []string{"elsewhere"}},
		{Action: Route, Topics: []string{"src", "copies"}},
		{Action: Route, Topics: []string{"rewritten"}, Rewritten: true, Key: []byte("k"), Value: []byte("routed"),
			Headers: []Header{{Key: "via", Value: []byte("router")}, {Key: "null"}}},
		{Action: Drop},
	}
	if fmt.Sprintf("%#v", ds) != fmt.Sprintf("%#v", want) {
		t.Fatalf("got  %#v\nwant %#v", ds, want)
	}
	// Route is not allowed on the consume path: a failure of the call.
	_, _, err = p.Run(context.Background(), ConsumePath, "src", 0, recs)
	var fe *FilterError
	if !errors.Is(err, ErrFilterFailed) || !errors.As(err, &fe) || fe.Kind != FailABI ||
		!strings.Contains(err.Error(), "decision 1: action route is not allowed on the consume path") {
		t.Fatalf("consume path: err = %v", err)
	}
	// Keep and drop are fine there.
	if ds, _, err := p.Run(context.Background(), ConsumePath, "src", 0, recs[4:]); err != nil || ds[0].Action != Drop {
		t.Fatalf("consume path, drop: %v %v", ds, err)
	}
}

func TestRejecterParams(t *testing.T) {
	h := newHost(t, Options{})
	ctx := context.Background()
	p := deployPool(t, h, "rejecter", []byte(`{"message":"no bad values"}`), Limits{})
	ds, _, err := p.Run(ctx, ProducePath, "t", 0, recsOf("ok", "bad", "drop"))
	if err != nil {
		t.Fatal(err)
	}
	if ds[0].Action != Keep || ds[1].Action != Reject || ds[1].Message != "no bad values" || ds[2].Action != Drop {
		t.Fatalf("decisions %#v", ds)
	}
	// A negative samsa_filter result is a guest error, with its stderr.
	_, logs, err := p.Run(ctx, ProducePath, "t", 0, recsOf("fail"))
	var fe *FilterError
	if !errors.As(err, &fe) || fe.Kind != FailGuest || !strings.Contains(err.Error(), "samsa_filter returned an error (-1): stderr: rejecter: asked to fail") {
		t.Fatalf("err = %v", err)
	}
	if len(logs) != 1 || logs[0].Stream != "stderr" {
		t.Fatalf("logs %q", logs)
	}
	// Parameters the guest refuses: samsa_init fails, every Run fails, and
	// Warm says so at once.
	bad, err := h.NewPool(ctx, "rejecter", 1, []byte(`nonsense`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	for _, e := range []error{bad.Warm(ctx), func() error { _, _, err := bad.Run(ctx, ProducePath, "t", 0, recsOf("x")); return err }()} {
		if !errors.As(e, &fe) || fe.Kind != FailGuest || !strings.Contains(e.Error(), `samsa_init returned 1: stderr: rejecter: bad parameters "nonsense"`) {
			t.Fatalf("bad params: err = %v", e)
		}
	}
	// What the guest wrote before failing comes back with the error.
	if _, logs, err := bad.Run(ctx, ProducePath, "t", 0, recsOf("x")); err == nil || len(logs) != 1 ||
		logs[0] != (LogLine{Stream: "stderr", Line: `rejecter: bad parameters "nonsense"`}) {
		t.Fatalf("bad params: logs %q, err %v", logs, err)
	}
	if st := bad.Stats(); st.Instances != 0 || st.Failures != 3 || st.GuestErrors != 3 {
		t.Fatalf("stats %+v", st)
	}
	if _, err := h.NewPool(ctx, "rejecter", 1, make([]byte, MaxParamsBytes+1), Limits{}); err == nil {
		t.Fatal("oversized parameters accepted")
	}
}

// Each misbehaving guest fails the batch that triggers it, with the right
// kind, and leaves its pool usable (a fresh instance) and other pools
// unaffected.
func TestFailures(t *testing.T) {
	h := newHost(t, Options{})
	other := deployPool(t, h, "keepall", nil, Limits{})
	cases := []struct {
		guest string
		kind  FailureKind
		want  string
	}{
		{"spin", FailTimeout, "stopped at the time limit"}, // the only one with a short time limit
		{"trap", FailTrap, "stderr: panic: trap guest: boom"},
		{"membomb", FailMemory, "memory growth past the limit of 256 pages was refused"},
		{"badptr", FailABI, "samsa_filter returned output at 0x7ff00000, 1024 bytes: outside memory"},
		{"badcount", FailABI, "bad output: output has 4 decisions for 3 records"},
	}
	for _, c := range cases {
		t.Run(c.guest, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			timeout := 20 * time.Second // generous: the interpreter under -race is slow
			if c.kind == FailTimeout {
				timeout = 250 * time.Millisecond
			}
			p := deployPool(t, h, c.guest, nil, Limits{Timeout: timeout})
			good := recsOf("a", "b", "c")
			if _, _, err := p.Run(ctx, ProducePath, "t", 0, good); err != nil {
				t.Fatalf("good batch: %v", err)
			}
			start := time.Now()
			ds, _, err := p.Run(ctx, ProducePath, "t", 0, recsOf("a", c.guest, "c"))
			took := time.Since(start)
			var fe *FilterError
			if !errors.Is(err, ErrFilterFailed) || !errors.As(err, &fe) || fe.Kind != c.kind || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("bad batch: err = %v (%T), want kind %s saying %q", err, err, c.kind, c.want)
			}
			if ds != nil {
				t.Fatalf("decisions with an error: %v", ds)
			}
			if fe.Module.Name != c.guest || fe.Module.Version != 1 {
				t.Fatalf("error names module %+v", fe.Module)
			}
			if c.kind == FailTimeout && took > 5*time.Second {
				t.Fatalf("failure took %v", took)
			}
			t.Logf("%s: failed after %v: %v", c.guest, took, err)
			if st := p.Stats(); st.Instances != 0 || st.Failures != 1 {
				t.Fatalf("after the failure: %+v", st)
			}
			for i := 0; i < 2; i++ {
				if ds, _, err := p.Run(ctx, ProducePath, "t", 0, good); err != nil || len(ds) != 3 {
					t.Fatalf("good batch after the failure: %v %v", ds, err)
				}
			}
			if _, _, err := other.Run(ctx, ProducePath, "t", 0, good); err != nil {
				t.Fatalf("other pool: %v", err)
			}
			st := p.Stats()
			if st.Runs != 4 || st.Failures != 1 || st.Instances != 1 {
				t.Fatalf("stats %+v", st)
			}
			byKind := map[FailureKind]uint64{FailTrap: st.Traps, FailTimeout: st.Timeouts, FailMemory: st.MemoryFailures, FailABI: st.ABIFailures, FailGuest: st.GuestErrors}
			if byKind[c.kind] != 1 {
				t.Fatalf("kind %s not counted: %+v", c.kind, st)
			}
		})
	}
}

// A binding's memory limit applies per pool: the same module under a
// bigger limit survives what fails under a smaller one... and a module
// whose initial memory exceeds the limit is refused at NewPool.
func TestMemoryLimitPerPool(t *testing.T) {
	h := newHost(t, Options{})
	ctx := context.Background()
	small := deployPool(t, h, "keepall", nil, Limits{MemoryPages: 48, Timeout: 20 * time.Second})
	if _, _, err := small.Run(ctx, ProducePath, "t", 0, recsOf("a")); err != nil {
		t.Fatalf("48 pages: %v", err)
	}
	// ~4 MiB of input does not fit in the guest under 48 pages (3 MiB)...
	big := []Record{{Value: make([]byte, 4<<20)}}
	_, _, err := small.Run(ctx, ProducePath, "t", 0, big)
	var fe *FilterError
	if !errors.As(err, &fe) || fe.Kind != FailMemory {
		t.Fatalf("4 MiB batch under 48 pages: err = %v", err)
	}
	// ... but does under the default limit, in another pool of the same
	// module.
	roomy, err := h.NewPool(ctx, "keepall", 0, nil, Limits{Timeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer roomy.Close()
	if _, _, err := roomy.Run(ctx, ProducePath, "t", 0, big); err != nil {
		t.Fatalf("4 MiB batch under 256 pages: %v", err)
	}
	if _, err := h.NewPool(ctx, "keepall", 0, nil, Limits{MemoryPages: 2}); err == nil || !strings.Contains(err.Error(), "more than the binding's limit of 2 pages") {
		t.Fatalf("2 pages: err = %v", err)
	}
}

func TestConcurrentRuns(t *testing.T) {
	h := newHost(t, Options{})
	p := deployPool(t, h, "upper", nil, Limits{Timeout: 5 * time.Second})
	const workers, rounds = 6, 15
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				v := fmt.Sprintf("worker %d round %d", w, r)
				recs := recsOf(v, v+" again")
				ds, logs, err := p.Run(context.Background(), ProducePath, "t", int32(w), recs)
				if err != nil {
					errs <- err
					return
				}
				if string(ds[0].Value) != strings.ToUpper(v) || string(ds[1].Value) != strings.ToUpper(v+" again") {
					errs <- fmt.Errorf("worker %d got %q", w, ds[0].Value)
					return
				}
				if len(logs) != 1 || logs[0].Line != fmt.Sprintf("upper: 2 records from t/%d", w) {
					errs <- fmt.Errorf("worker %d logs %q", w, logs)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	st := p.Stats()
	if st.Runs != workers*rounds || st.Failures != 0 || st.Instances < 1 || st.Instances > workers {
		t.Fatalf("stats %+v", st)
	}
	t.Logf("stats %+v", st)
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.Run(context.Background(), ProducePath, "t", 0, nil); !errors.Is(err, ErrPoolClosed) {
		t.Fatalf("after Close: %v", err)
	}
	if st := p.Stats(); st.Instances != 0 {
		t.Fatalf("after Close: %+v", st)
	}
}

// The registry survives a restart: versions, removals (numbers not
// reused), and the compilation cache in Dir/cache.
func TestRegistryPersistence(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	h1, err := NewHost(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	v1, err := h1.Deploy(ctx, "keep", guest(t, "keepall"))
	if err != nil {
		t.Fatal(err)
	}
	firstDeploy := time.Since(start)
	v2, err := h1.Deploy(ctx, "keep", guest(t, "keepall"))
	if err != nil {
		t.Fatal(err)
	}
	if v1.Version != 1 || v2.Version != 2 || v1.SHA256 != v2.SHA256 || v1.Size != int64(len(guest(t, "keepall"))) {
		t.Fatalf("versions %+v %+v", v1, v2)
	}
	if _, err := h1.Deploy(ctx, "gone", guest(t, "keepall")); err != nil {
		t.Fatal(err)
	}
	if err := h1.Remove("gone"); err != nil {
		t.Fatal(err)
	}
	if err := h1.Remove("gone"); !errors.Is(err, ErrUnknownModule) {
		t.Fatalf("second remove: %v", err)
	}
	if err := h1.Close(ctx); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "cache"))
	if len(entries) == 0 {
		t.Fatal("compilation cache dir is empty")
	}
	if _, err := os.Stat(filepath.Join(dir, "modules", "keep", "2.wasm")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "modules", "gone")); !os.IsNotExist(err) {
		t.Fatalf("removed module's files: %v", err)
	}

	h2, err := NewHost(ctx, Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close(ctx)
	vs, err := h2.Versions("keep")
	if err != nil || len(vs) != 2 || vs[0] != v1 || vs[1] != v2 {
		t.Fatalf("versions after restart: %+v %v (want %+v %+v)", vs, err, v1, v2)
	}
	if ms := h2.Modules(); len(ms) != 1 || ms[0] != v2 {
		t.Fatalf("modules after restart: %+v", ms)
	}
	if _, err := h2.Versions("gone"); !errors.Is(err, ErrUnknownModule) {
		t.Fatalf("removed module: %v", err)
	}
	start = time.Now()
	p, err := h2.NewPool(ctx, "keep", 1, nil, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, _, err := p.Run(ctx, ProducePath, "t", 0, recsOf("a")); err != nil {
		t.Fatal(err)
	}
	afterRestart := time.Since(start)
	t.Logf("first deploy (compile) %v; NewPool+Run after restart (cache) %v", firstDeploy, afterRestart)
	if afterRestart >= firstDeploy {
		t.Errorf("no faster after a restart with the cache: %v, first %v", afterRestart, firstDeploy)
	}
	if p.Module() != v1 {
		t.Fatalf("pool module %+v", p.Module())
	}
	if _, err := h2.NewPool(ctx, "keep", 3, nil, Limits{}); !errors.Is(err, ErrUnknownModule) {
		t.Fatalf("version 3: %v", err)
	}
	// Removed names do not get their version numbers back.
	g, err := h2.Deploy(ctx, "gone", guest(t, "keepall"))
	if err != nil || g.Version != 2 {
		t.Fatalf("redeploy after remove: %+v %v", g, err)
	}
	// A corrupted stored module is refused, not run.
	if err := os.WriteFile(filepath.Join(dir, "modules", "keep", "2.wasm"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := h2.NewPool(ctx, "keep", 2, nil, Limits{}); err == nil || !strings.Contains(err.Error(), "SHA-256") {
		t.Fatalf("corrupt module: %v", err)
	}
}

func TestInMemoryHost(t *testing.T) {
	ctx := context.Background()
	// No Dir: modules in memory (the shared test cache only saves time).
	h, err := NewHost(ctx, Options{CacheDir: sharedCache, Interpreter: raceEnabled})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close(ctx)
	p, err := h.NewPoolFromBytes(ctx, guest(t, "keepall"), nil, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	ds, _, err := p.Run(ctx, ConsumePath, "t", 0, recsOf("a", "b"))
	if err != nil || len(ds) != 2 || ds[0].Action != Keep {
		t.Fatalf("%v %v", ds, err)
	}
	if p.Module().SHA256 == "" || p.Module().Version != 0 {
		t.Fatalf("module %+v", p.Module())
	}
	info, err := h.Deploy(ctx, "mem", guest(t, "keepall"))
	if err != nil || info.Version != 1 {
		t.Fatalf("%+v %v", info, err)
	}
	if _, err := h.NewPool(ctx, "mem", 0, nil, Limits{}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.NewPool(ctx, "nope", 0, nil, Limits{}); !errors.Is(err, ErrUnknownModule) {
		t.Fatal(err)
	}
}

// The caller's context ending is not the filter's failure.
func TestCallerCancel(t *testing.T) {
	h := newHost(t, Options{})
	p := deployPool(t, h, "spin", nil, Limits{Timeout: 10 * time.Second})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, _, err := p.Run(ctx, ProducePath, "t", 0, recsOf("spin"))
	if err == nil || errors.Is(err, ErrFilterFailed) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	if st := p.Stats(); st.Failures != 0 || st.Instances != 0 {
		t.Fatalf("stats %+v", st)
	}
	if _, _, err := p.Run(context.Background(), ProducePath, "t", 0, recsOf("a")); err != nil {
		t.Fatal(err)
	}
}

// Removing a module leaves its pools working; the compiled code is freed
// when the last pool closes.
func TestRemoveWhilePooled(t *testing.T) {
	h := newHost(t, Options{})
	ctx := context.Background()
	p := deployPool(t, h, "keepall", nil, Limits{})
	sum := p.Module().SHA256
	if err := h.Remove("keepall"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.NewPool(ctx, "keepall", 0, nil, Limits{}); !errors.Is(err, ErrUnknownModule) {
		t.Fatalf("pool of a removed module: %v", err)
	}
	if _, _, err := p.Run(ctx, ProducePath, "t", 0, recsOf("a")); err != nil {
		t.Fatalf("pool after Remove: %v", err)
	}
	h.mu.Lock()
	held := h.compiled[sum] != nil
	h.mu.Unlock()
	if !held {
		t.Fatal("compiled module dropped while a pool uses it")
	}
	p.Close()
	h.mu.Lock()
	held = h.compiled[sum] != nil
	h.mu.Unlock()
	if held {
		t.Fatal("compiled module kept after its last pool closed")
	}
}
