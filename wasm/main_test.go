package wasm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// The test guests are real modules built from Go source in testdata/ at
// test time (reactors with //go:wasmexport, no SDK), once per test run.
var (
	guestDir    string // built .wasm files
	sharedCache string // compilation cache shared by the tests' hosts
)

// reactors are built with -buildmode=c-shared; command is a WASI command.
var reactors = []string{"keepall", "upper", "router", "rejecter", "spin", "trap", "membomb", "badptr", "badcount", "abi2", "nofilter"}

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "samsa-wasm-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(tmp)
	guestDir = filepath.Join(tmp, "guests")
	sharedCache = filepath.Join(tmp, "cache")
	if err := buildGuests(guestDir); err != nil {
		fmt.Fprintln(os.Stderr, "building test guests:", err)
		return 1
	}
	return m.Run()
}

func buildGuests(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		return err
	}
	type job struct{ name, mode string }
	var jobs []job
	for _, r := range reactors {
		jobs = append(jobs, job{r, "c-shared"})
	}
	jobs = append(jobs, job{"command", ""})
	sem := make(chan struct{}, 2)
	var wg sync.WaitGroup
	errs := make([]error, len(jobs))
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			args := []string{"build"}
			if j.mode != "" {
				args = append(args, "-buildmode="+j.mode)
			}
			args = append(args, "-o", filepath.Join(dir, j.name+".wasm"), "./testdata/"+j.name)
			cmd := exec.Command(goBin, args...)
			cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("%s: %v\n%s", j.name, err, out)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// guest returns a built test module's bytes.
func guest(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(guestDir, name+".wasm"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newHost makes a host on a fresh Dir sharing the test run's compilation
// cache, so each guest is compiled once per run.
func newHost(t testing.TB, opts Options) *Host {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.CacheDir == "" {
		opts.CacheDir = sharedCache
	}
	// wazero's compiler is ~20x slower under the race detector: there,
	// tests use the interpreter, except those that say otherwise
	// (TestRegistryPersistence runs the compiler and its cache).
	opts.Interpreter = raceEnabled
	h, err := NewHost(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(context.Background()) })
	return h
}

// deployPool deploys a guest under its own name and makes a pool of it.
func deployPool(t testing.TB, h *Host, name string, params []byte, limits Limits) *Pool {
	t.Helper()
	ctx := context.Background()
	if _, err := h.Deploy(ctx, name, guest(t, name)); err != nil {
		t.Fatalf("deploy %s: %v", name, err)
	}
	p, err := h.NewPool(ctx, name, 0, params, limits)
	if err != nil {
		t.Fatalf("pool %s: %v", name, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}
