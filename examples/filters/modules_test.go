package filters_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/samsa-broker/samsa/wasm"
)

// ci is true under CI, where a missing tool fails a test instead of
// skipping it.
var ci = os.Getenv("CI") == "true"

func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if ci {
				t.Fatalf("%s is missing (CI=true)", tool)
			}
			t.Skipf("%s is missing", tool)
		}
	}
}

// repoRoot is the module root: examples/filters is two levels down.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func run(t *testing.T, dir string, env []string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s (in %s): %v\n%s", name, strings.Join(args, " "), dir, err, out)
	}
}

// buildGo builds a Go example exactly as its README says.
func buildGo(t *testing.T, name string) []byte {
	t.Helper()
	needTools(t, "go")
	out := filepath.Join(t.TempDir(), name+".wasm")
	run(t, repoRoot(t), []string{"GOOS=wasip1", "GOARCH=wasm"},
		"go", "build", "-buildmode=c-shared", "-o", out, "./examples/filters/"+name)
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var npmCI sync.Map // dir -> *sync.Once

// npmInstall runs `npm ci` once per directory per test run.
func npmInstall(t *testing.T, dir string) {
	t.Helper()
	needTools(t, "node", "npm", "npx")
	o, _ := npmCI.LoadOrStore(dir, new(sync.Once))
	var failed bool
	o.(*sync.Once).Do(func() {
		cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			failed = true
			t.Errorf("npm ci in %s: %v\n%s", dir, err, out)
		}
	})
	if failed || t.Failed() {
		t.FailNow()
	}
}

// buildValidate builds the AssemblyScript example exactly as its README says.
func buildValidate(t *testing.T) []byte {
	t.Helper()
	dir := filepath.Join(repoRoot(t), "examples", "filters", "validate")
	npmInstall(t, dir)
	run(t, dir, nil, "npx", "asc", "assembly/index.ts", "--target", "release")
	b, err := os.ReadFile(filepath.Join(dir, "build", "validate.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wasmShape is what checkShape reads from a module's binary.
type wasmShape struct {
	imports  []string          // "module.name"
	exports  map[string]byte   // name -> kind (0 func, 2 memory)
	minPages map[uint32]uint32 // memory index -> initial pages (defined memories)
}

// readShape parses the import, memory and export sections of a wasm binary.
func readShape(b []byte) (*wasmShape, error) {
	if len(b) < 8 || !bytes.Equal(b[:8], []byte{0, 'a', 's', 'm', 1, 0, 0, 0}) {
		return nil, errors.New("not a wasm 1.0 binary")
	}
	s := &wasmShape{exports: map[string]byte{}, minPages: map[uint32]uint32{}}
	p := b[8:]
	var err error
	u32 := func() uint32 {
		v, n := binary.Uvarint(p)
		if n <= 0 || v > 1<<32-1 {
			err = errors.New("bad LEB128")
			p = nil
			return 0
		}
		p = p[n:]
		return uint32(v)
	}
	name := func() string {
		n := u32()
		if int(n) > len(p) {
			err = errors.New("name past the end")
			p = nil
			return ""
		}
		v := string(p[:n])
		p = p[n:]
		return v
	}
	byte1 := func() byte {
		if len(p) == 0 {
			err = errors.New("unexpected end")
			return 0
		}
		v := p[0]
		p = p[1:]
		return v
	}
	limits := func() uint32 {
		flag := byte1()
		min := u32()
		if flag&1 != 0 {
			u32()
		}
		return min
	}
	for len(p) > 0 && err == nil {
		id := byte1()
		size := u32()
		if err != nil || int(size) > len(p) {
			return nil, fmt.Errorf("section %d: bad size", id)
		}
		sec, rest := p[:size], p[size:]
		p = sec
		switch id {
		case 2: // imports
			for n := u32(); n > 0 && err == nil; n-- {
				s.imports = append(s.imports, name()+"."+name())
				switch byte1() {
				case 0:
					u32()
				case 1:
					byte1()
					limits()
				case 2:
					limits()
				case 3:
					byte1()
					byte1()
				}
			}
		case 5: // memories
			for i, n := uint32(0), u32(); i < n && err == nil; i++ {
				s.minPages[i] = limits()
			}
		case 7: // exports
			for n := u32(); n > 0 && err == nil; n-- {
				nm := name()
				kind := byte1()
				u32()
				s.exports[nm] = kind
			}
		}
		p = rest
	}
	return s, err
}

// checkShape checks a module against "Module shape" in wasm/ABI.md.
func checkShape(t *testing.T, b []byte) {
	t.Helper()
	s, err := readShape(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range s.imports {
		if !strings.HasPrefix(imp, "wasi_snapshot_preview1.") {
			t.Errorf("imports %s; only wasi_snapshot_preview1 is allowed", imp)
		}
	}
	if k, ok := s.exports["memory"]; !ok || k != 2 {
		t.Errorf("does not export a memory named memory (exports %v)", s.exports)
	}
	for _, fn := range []string{"samsa_abi_version", "samsa_alloc", "samsa_init", "samsa_filter", "_initialize"} {
		if k, ok := s.exports[fn]; !ok || k != 0 {
			t.Errorf("does not export function %s", fn)
		}
	}
	if _, ok := s.exports["_start"]; ok {
		t.Error("exports _start (a WASI command, refused by the host)")
	}
	if s.minPages[0] > wasm.DefaultMemoryPages {
		t.Errorf("initial memory %d pages is over the default binding limit %d", s.minPages[0], wasm.DefaultMemoryPages)
	}
	t.Logf("imports %d, exports %d, initial memory %d pages", len(s.imports), len(s.exports), s.minPages[0])
}

// checkABIVersion instantiates the module with plain wazero (its
// interpreter: compiling a Go module is slow under the race detector, and
// the host test compiles it anyway), runs _initialize and checks that
// samsa_abi_version returns 1.
func checkABIVersion(t *testing.T, b []byte) {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer r.Close(ctx)
	wasi_snapshot_preview1.MustInstantiate(ctx, r)
	m, err := r.InstantiateWithConfig(ctx, b, wazero.NewModuleConfig().WithStartFunctions("_initialize"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.ExportedFunction("samsa_abi_version").Call(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if int32(res[0]) != 1 {
		t.Fatalf("samsa_abi_version() = %d, want 1", int32(res[0]))
	}
}

type hostCase struct {
	name    string
	params  string
	path    wasm.Path
	values  []string // record values; "<null>" for a null value
	want    []string // decisions, as decisionString
	logLine string   // the stdout line of the batch
	initErr string   // with initErr set, the run must fail with this in the error
}

func decisionString(d wasm.Decision) string {
	switch d.Action {
	case wasm.Rewrite:
		return "rewrite " + string(d.Value)
	case wasm.Route:
		if d.Rewritten {
			return "route " + strings.Join(d.Topics, ",") + " " + string(d.Value)
		}
		return "route " + strings.Join(d.Topics, ",")
	case wasm.Reject:
		return "reject " + d.Message
	}
	return d.Action.String()
}

var hostCases = map[string][]hostCase{
	"redact": {{
		name: "masks", path: wasm.ConsumePath,
		values:  []string{`{"from":"alice@example.com","n":[{"to":"bob.b@mail.example.org"}]}`, `{"x":1}`, `alice@example.com`, "<null>"},
		want:    []string{`rewrite {"from":"a***@example.com","n":[{"to":"b***@mail.example.org"}]}`, "keep", "keep", "keep"},
		logLine: "redact: 4 records, 1 masked (2 addresses)",
	}},
	"threshold": {{
		name: "bounds", params: `{"field":"temp","min":30,"max":50}`, path: wasm.ConsumePath,
		values:  []string{`{"temp":29}`, `{"temp":30}`, `{"temp":50.5}`, `{"temp":"40"}`, `{"t":40}`, `nope`},
		want:    []string{"drop", "keep", "drop", "drop", "drop", "drop"},
		logLine: "threshold: 6 records, 1 kept, 5 dropped",
	}, {
		name: "bad params", params: `{"min":1}`, initErr: `parameter "field" is required`,
	}},
	"router": {{
		name: "routes", params: `{"field":"type","prefix":"events."}`, path: wasm.ProducePath,
		values:  []string{`{"type":"click"}`, `{"type":"view"}`, `{"kind":"x"}`, `[]`},
		want:    []string{"route events.click", "route events.view", "keep", "keep"},
		logLine: "router: 4 records, 2 routed to 2 topics, 2 stay on src",
	}},
	"validate": {{
		name: "rejects", path: wasm.ProducePath,
		values:  []string{`{"ok":true}`, `{"ok":}`, `[1, 2]`},
		want:    []string{"keep", "reject offset 1: value is not valid JSON: unexpected '}' at byte 6", "keep"},
		logLine: "validate: 3 records, 1 rejected",
	}},
}

// runInHost runs the module's cases through the broker's filter host.
func runInHost(t *testing.T, h *wasm.Host, name string, b []byte) {
	ctx := context.Background()
	for _, c := range hostCases[name] {
		t.Run(c.name, func(t *testing.T) {
			pool, err := h.NewPoolFromBytes(ctx, b, []byte(c.params), wasm.Limits{Timeout: 10 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			recs := make([]wasm.Record, len(c.values))
			for i, v := range c.values {
				recs[i] = wasm.Record{Offset: int64(i), Timestamp: 1767225600000, Key: []byte("k")}
				if v != "<null>" {
					recs[i].Value = []byte(v)
				}
			}
			// Several batches on the same instance: the guest reuses its
			// buffers between calls.
			for round := 0; round < 3; round++ {
				ds, logs, err := pool.Run(ctx, c.path, "src", 0, recs)
				if c.initErr != "" {
					if err == nil || !errors.Is(err, wasm.ErrFilterFailed) || !strings.Contains(err.Error(), c.initErr) {
						t.Fatalf("want a failure with %q, got %v (logs %v)", c.initErr, err, logs)
					}
					return
				}
				if err != nil {
					t.Fatalf("round %d: %v (logs %v)", round, err, logs)
				}
				got := make([]string, len(ds))
				for i, d := range ds {
					got[i] = decisionString(d)
				}
				if !slices.Equal(got, c.want) {
					t.Fatalf("round %d:\n got  %q\n want %q", round, got, c.want)
				}
				if want := (wasm.LogLine{Stream: "stdout", Line: c.logLine}); !slices.Contains(logs, want) {
					t.Fatalf("round %d: logs %v, want %v", round, logs, want)
				}
			}
			// A big batch goes through too.
			n := 5000
			if raceEnabled {
				n = 500 // the interpreter runs under the race detector
			}
			big := make([]wasm.Record, n)
			for i := range big {
				big[i] = recs[i%len(recs)]
			}
			for i := 0; i < 4; i++ {
				start := time.Now()
				ds, _, err := pool.Run(ctx, c.path, "src", 0, big)
				if err != nil || len(ds) != len(big) {
					t.Fatalf("big batch: %d decisions, %v", len(ds), err)
				}
				t.Logf("big batch %d: %v", i, time.Since(start))
			}
		})
	}
}

// TestModules builds every example with the commands of its README, checks
// the module's shape and ABI version, and runs it in the filter host.
func TestModules(t *testing.T) {
	if testing.Short() {
		t.Skip("builds wasm modules")
	}
	builds := map[string]func(t *testing.T) []byte{
		"redact":    func(t *testing.T) []byte { return buildGo(t, "redact") },
		"threshold": func(t *testing.T) []byte { return buildGo(t, "threshold") },
		"router":    func(t *testing.T) []byte { return buildGo(t, "router") },
		"validate":  buildValidate,
	}
	ctx := context.Background()
	h, err := wasm.NewHost(ctx, wasm.Options{Interpreter: raceEnabled})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(ctx) })
	for _, name := range []string{"redact", "threshold", "router", "validate"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := builds[name](t)
			t.Run("shape", func(t *testing.T) { checkShape(t, b) })
			t.Run("abi", func(t *testing.T) { checkABIVersion(t, b) })
			t.Run("host", func(t *testing.T) { runInHost(t, h, name, b) })
		})
	}
}

// TestAssemblyScriptUnitTests runs `npm test` of the AssemblyScript SDK and
// of the validate example (their unit tests run under node).
func TestAssemblyScriptUnitTests(t *testing.T) {
	if testing.Short() {
		t.Skip("builds wasm modules")
	}
	root := repoRoot(t)
	for _, dir := range []string{"sdk/filter/as", "examples/filters/validate"} {
		t.Run(dir, func(t *testing.T) {
			d := filepath.Join(root, filepath.FromSlash(dir))
			npmInstall(t, d)
			run(t, d, nil, "npm", "test")
		})
	}
}
