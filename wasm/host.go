package wasm

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Options configure a Host.
type Options struct {
	// Dir holds the modules (Dir/modules/NAME/VERSION.wasm and an index)
	// and the compilation cache (Dir/cache). "" keeps modules in memory
	// only, with no cache (for `samsa filter test`).
	Dir string
	// MaxModuleBytes bounds a module's size; 0: 16 MiB.
	MaxModuleBytes int64
	Logger         *slog.Logger
	// CacheDir overrides where the compilation cache lives (default
	// Dir/cache; with Dir "" the default is no cache).
	CacheDir string
	// Interpreter forces wazero's interpreter instead of its compiler:
	// much faster to load a module, much slower to run it. For tests (the
	// compiler is slow under the race detector) and for debugging.
	Interpreter bool
}

// Host compiles, stores and runs filter modules. It is safe for concurrent
// use.
type Host struct {
	opts  Options
	log   *slog.Logger
	rt    wazero.Runtime
	cache wazero.CompilationCache

	mu       sync.Mutex
	closed   bool
	isClosed atomic.Bool // closed, readable without mu (hot path)
	reg      *registry
	compiled map[string]*compiledModule // by SHA-256 of the bytes
	// compiling serializes compilations of the same bytes: wazero's cache
	// does not, and a second compilation would be wasted work.
	compiling map[string]*sync.WaitGroup
}

// compiledModule is a module compiled in the host's runtime and checked
// against the ABI.
type compiledModule struct {
	cm       wazero.CompiledModule
	sum      string
	minPages uint32
	hasInit  bool // exports _initialize
	// refs counts holds (pools, and callers between compile and
	// release); guarded by Host.mu. A module with no hold that the
	// registry no longer lists is closed.
	refs int
}

// NewHost opens (creating if needed) the registry in opts.Dir and sets up
// the runtime: wazero's compiler where the platform supports it (the
// interpreter elsewhere), a compilation cache on disk, and
// close-on-context-done so a batch's deadline stops any loop.
func NewHost(ctx context.Context, opts Options) (*Host, error) {
	if opts.MaxModuleBytes <= 0 {
		opts.MaxModuleBytes = DefaultMaxModuleBytes
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	h := &Host{
		opts:      opts,
		log:       log,
		compiled:  map[string]*compiledModule{},
		compiling: map[string]*sync.WaitGroup{},
	}
	var err error
	if h.reg, err = openRegistry(opts.Dir); err != nil {
		return nil, err
	}
	cfg := wazero.NewRuntimeConfig()
	if opts.Interpreter {
		cfg = wazero.NewRuntimeConfigInterpreter()
	}
	cfg = cfg.WithCloseOnContextDone(true)
	cacheDir := opts.CacheDir
	if cacheDir == "" && opts.Dir != "" {
		cacheDir = filepath.Join(opts.Dir, "cache")
	}
	if cacheDir != "" {
		if h.cache, err = wazero.NewCompilationCacheWithDir(cacheDir); err != nil {
			return nil, fmt.Errorf("wasm: compilation cache %s: %w", cacheDir, err)
		}
		cfg = cfg.WithCompilationCache(h.cache)
	}
	h.rt = wazero.NewRuntimeWithConfig(ctx, cfg)
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, h.rt); err != nil {
		h.rt.Close(ctx)
		if h.cache != nil {
			h.cache.Close(ctx)
		}
		return nil, fmt.Errorf("wasm: instantiating WASI: %w", err)
	}
	return h, nil
}

// Close closes the runtime (and with it every pool's instances) and the
// compilation cache. Pools must not be used afterwards.
func (h *Host) Close(ctx context.Context) error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	h.isClosed.Store(true)
	h.compiled = nil
	h.mu.Unlock()
	err := h.rt.Close(ctx)
	if h.cache != nil {
		err = errors.Join(err, h.cache.Close(ctx))
	}
	return err
}

// compile compiles module (whose SHA-256 is sum) once per host and checks
// it against the ABI as far as that can be done without running it.
// Errors wrap ErrInvalidModule. The caller gets a hold on the result and
// must release it (or hand it to a pool, which releases it on Close).
func (h *Host) compile(ctx context.Context, module []byte, sum string) (*compiledModule, error) {
	for {
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			return nil, ErrHostClosed
		}
		if c := h.compiled[sum]; c != nil {
			c.refs++
			h.mu.Unlock()
			return c, nil
		}
		wg := h.compiling[sum]
		if wg == nil {
			wg = new(sync.WaitGroup)
			wg.Add(1)
			h.compiling[sum] = wg
			h.mu.Unlock()
			c, err := h.compileNow(ctx, module)
			h.mu.Lock()
			delete(h.compiling, sum)
			if err == nil {
				if h.closed {
					err = ErrHostClosed
				} else {
					c.sum = sum
					c.refs = 1
					h.compiled[sum] = c
				}
			}
			h.mu.Unlock()
			wg.Done()
			if err != nil {
				return nil, err
			}
			return c, nil
		}
		h.mu.Unlock()
		wg.Wait() // then look again: it failed, or it is there
	}
}

func (h *Host) compileNow(ctx context.Context, module []byte) (*compiledModule, error) {
	shape, err := readShape(module)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidModule, err)
	}
	if err := shape.check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidModule, err)
	}
	start := time.Now()
	cctx := experimental.WithCompilationWorkers(ctx, runtime.GOMAXPROCS(0))
	cm, err := h.rt.CompileModule(cctx, module)
	if err != nil {
		return nil, fmt.Errorf("%w: does not compile: %v", ErrInvalidModule, err)
	}
	h.log.Debug("wasm: compiled module", "bytes", len(module), "took", time.Since(start))
	c := &compiledModule{cm: cm}
	if err := c.checkSignatures(); err != nil {
		cm.Close(ctx)
		return nil, fmt.Errorf("%w: %v", ErrInvalidModule, err)
	}
	return c, nil
}

var (
	i32 = api.ValueTypeI32
	i64 = api.ValueTypeI64
)

var wantSignatures = []struct {
	name            string
	params, results []api.ValueType
}{
	{"samsa_abi_version", nil, []api.ValueType{i32}},
	{"samsa_alloc", []api.ValueType{i32}, []api.ValueType{i32}},
	{"samsa_init", []api.ValueType{i32, i32}, []api.ValueType{i32}},
	{"samsa_filter", []api.ValueType{i32, i32}, []api.ValueType{i64}},
}

func sigString(params, results []api.ValueType) string {
	s := "("
	for i, p := range params {
		if i > 0 {
			s += ", "
		}
		s += api.ValueTypeName(p)
	}
	s += ") -> ("
	for i, r := range results {
		if i > 0 {
			s += ", "
		}
		s += api.ValueTypeName(r)
	}
	return s + ")"
}

func sameTypes(a, b []api.ValueType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (c *compiledModule) checkSignatures() error {
	fns := c.cm.ExportedFunctions()
	var problems []string
	for _, w := range wantSignatures {
		f := fns[w.name]
		if f == nil {
			problems = append(problems, fmt.Sprintf("missing export %s", w.name))
			continue
		}
		if !sameTypes(f.ParamTypes(), w.params) || !sameTypes(f.ResultTypes(), w.results) {
			problems = append(problems, fmt.Sprintf("export %s has signature %s, want %s", w.name,
				sigString(f.ParamTypes(), f.ResultTypes()), sigString(w.params, w.results)))
		}
	}
	if f := fns["_initialize"]; f != nil {
		c.hasInit = true
		if len(f.ParamTypes()) != 0 || len(f.ResultTypes()) != 0 {
			problems = append(problems, fmt.Sprintf("export _initialize has signature %s, want () -> ()",
				sigString(f.ParamTypes(), f.ResultTypes())))
		}
	}
	mem := c.cm.ExportedMemories()["memory"]
	if mem == nil {
		problems = append(problems, fmt.Sprint("missing export memory"))
	} else {
		c.minPages = mem.Min()
		if c.minPages > MaxInitialPages {
			problems = append(problems, fmt.Sprintf("initial memory is %d pages, more than the %d pages (1 GiB) allowed", c.minPages, MaxInitialPages))
		}
		if _, _, imported := mem.Import(); imported {
			problems = append(problems, fmt.Sprint("memory is imported; the module must define its own"))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// checkVersion instantiates the module once, as deploy requires, and
// checks samsa_abi_version.
func (h *Host) checkVersion(ctx context.Context, c *compiledModule, name string) error {
	pages := max(c.minPages, DefaultMemoryPages)
	in, _, err := h.newInstance(ctx, c, instanceConfig{name: name, pages: pages, initTimeout: deployTimeout})
	if err != nil {
		var fe *FilterError
		if errors.As(err, &fe) {
			return fmt.Errorf("%w: %v", ErrInvalidModule, fe.Err)
		}
		return fmt.Errorf("%w: %v", ErrInvalidModule, err)
	}
	in.close(ctx)
	return nil
}

// deployTimeout bounds _initialize + samsa_abi_version at deploy.
const deployTimeout = 10 * time.Second

// validate runs every deploy check on module and returns it compiled.
func (h *Host) validate(ctx context.Context, name string, module []byte) (*compiledModule, string, error) {
	if int64(len(module)) > h.opts.MaxModuleBytes {
		return nil, "", fmt.Errorf("%w: module is %d bytes, the limit is %d", ErrModuleTooLarge, len(module), h.opts.MaxModuleBytes)
	}
	if len(module) == 0 {
		return nil, "", fmt.Errorf("%w: module is empty", ErrInvalidModule)
	}
	s := sha256.Sum256(module)
	sum := hex.EncodeToString(s[:])
	c, err := h.compile(ctx, module, sum)
	if err != nil {
		return nil, "", err
	}
	if err := h.checkVersion(ctx, c, name); err != nil {
		h.release(c)
		return nil, "", err
	}
	return c, sum, nil
}

// Deploy validates module (size, WebAssembly, compiles, exports memory,
// samsa_abi_version, samsa_alloc, samsa_init and samsa_filter with the
// right signatures, no _start, imports only wasi_snapshot_preview1,
// samsa_abi_version() == 1), compiles it and stores it durably as the next
// version of name. name: [a-zA-Z0-9._-]{1,64}. Versions are never reused,
// even after Remove.
func (h *Host) Deploy(ctx context.Context, name string, module []byte) (ModuleInfo, error) {
	if err := checkName(name); err != nil {
		return ModuleInfo{}, err
	}
	c, sum, err := h.validate(ctx, name, module)
	if err != nil {
		return ModuleInfo{}, err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	defer h.releaseLocked(c) // after add: then the registry holds it
	if h.closed {
		return ModuleInfo{}, ErrHostClosed
	}
	info, err := h.reg.add(name, module, sum, time.Now())
	if err != nil {
		return ModuleInfo{}, err
	}
	h.log.Info("wasm: deployed filter module", "name", name, "version", info.Version, "bytes", info.Size, "sha256", sum)
	return info, nil
}

// Modules lists the latest version of each module, sorted by name.
func (h *Host) Modules() []ModuleInfo {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.reg.latest()
}

// Versions lists every stored version of name, oldest first.
func (h *Host) Versions(name string) ([]ModuleInfo, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	vs := h.reg.versions(name)
	if len(vs) == 0 {
		return nil, fmt.Errorf("%w: %q", ErrUnknownModule, name)
	}
	return vs, nil
}

// Remove deletes every version of name. Pools already made from it keep
// working.
func (h *Host) Remove(name string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return ErrHostClosed
	}
	vs := h.reg.versions(name)
	if err := h.reg.remove(name); err != nil {
		return err
	}
	for _, v := range vs {
		if c := h.compiled[v.SHA256]; c != nil {
			c.refs++
			h.releaseLocked(c)
		}
	}
	return nil
}

// release drops a hold on c, closing it when nothing holds it and the
// registry does not list it.
func (h *Host) release(c *compiledModule) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.releaseLocked(c)
}

func (h *Host) releaseLocked(c *compiledModule) {
	c.refs--
	if c.refs > 0 || h.closed || h.reg.has(c.sum) {
		return
	}
	if h.compiled[c.sum] == c {
		delete(h.compiled, c.sum)
	}
	c.cm.Close(context.Background())
}

// NewPool makes a pool of instances of module name at version (0: the
// latest) with the binding's parameters and limits. Instances are created
// on demand (see Pool.Warm to create one now).
func (h *Host) NewPool(ctx context.Context, name string, version int, params []byte, limits Limits) (*Pool, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrHostClosed
	}
	info, err := h.reg.lookup(name, version)
	h.mu.Unlock()
	if err != nil {
		return nil, err
	}
	module, err := h.reg.read(info)
	if err != nil {
		return nil, err
	}
	c, err := h.compile(ctx, module, info.SHA256)
	if err != nil {
		return nil, fmt.Errorf("wasm: stored module %s v%d: %w", name, version, err)
	}
	p, err := h.newPool(c, info, params, limits)
	if err != nil {
		h.release(c)
	}
	return p, err
}

// NewPoolFromBytes validates module as Deploy does and makes a pool of it
// without storing it: for `samsa filter test`.
func (h *Host) NewPoolFromBytes(ctx context.Context, module []byte, params []byte, limits Limits) (*Pool, error) {
	c, sum, err := h.validate(ctx, "", module)
	if err != nil {
		return nil, err
	}
	info := ModuleInfo{Size: int64(len(module)), SHA256: sum, Created: time.Now()}
	p, err := h.newPool(c, info, params, limits)
	if err != nil {
		h.release(c)
	}
	return p, err
}

// instanceConfig is what an instance is made with.
type instanceConfig struct {
	name        string // for args[0]
	params      []byte
	pages       uint32
	initTimeout time.Duration
}

// newInstance instantiates c with its own memory limit and log capture,
// runs _initialize, checks samsa_abi_version and, if cfg.params is not nil
// or the instance is for a pool, runs samsa_init. Errors are *FilterError.
func (h *Host) newInstance(ctx context.Context, c *compiledModule, cfg instanceConfig) (_ *instance, logs []LogLine, err error) {
	if c.minPages > cfg.pages {
		return nil, nil, &FilterError{Kind: FailMemory, Err: fmt.Errorf("the module's initial memory is %d pages, more than the limit of %d pages", c.minPages, cfg.pages)}
	}
	in := &instance{lim: &memLimiter{limit: uint64(cfg.pages) << 16}, log: h.log}
	in.logs.reset()
	defer func() {
		if err != nil {
			logs = in.logs.take() // what the guest said before failing
		}
	}()
	argv0 := cfg.name
	if argv0 == "" {
		argv0 = "filter"
	}
	mc := wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions().
		WithArgs(argv0).
		WithStdout(&streamWriter{sink: &in.logs, stream: 0}).
		WithStderr(&streamWriter{sink: &in.logs, stream: 1}).
		WithSysWalltime().
		WithSysNanotime().
		WithRandSource(rand.Reader)
	ictx, cancel := context.WithTimeout(ctx, cfg.initTimeout)
	defer cancel()
	ictx = experimental.WithMemoryAllocator(ictx, in.lim)
	mod, ierr := h.rt.InstantiateModule(ictx, c.cm, mc)
	if ierr != nil {
		return nil, nil, in.failure(ctx, ictx, fmt.Errorf("instantiating: %w", ierr))
	}
	in.mod = mod
	in.mem = mod.Memory()
	in.alloc = mod.ExportedFunction("samsa_alloc")
	in.filter = mod.ExportedFunction("samsa_filter")
	if in.mem == nil || in.alloc == nil || in.filter == nil {
		in.close(ctx)
		return nil, nil, &FilterError{Kind: FailABI, Err: errors.New("instance lacks memory, samsa_alloc or samsa_filter")}
	}
	if c.hasInit {
		if err := mod.ExportedFunction("_initialize").CallWithStack(ictx, in.stack[:]); err != nil {
			return nil, nil, in.failure(ctx, ictx, fmt.Errorf("_initialize: %w", err))
		}
	}
	if err := mod.ExportedFunction("samsa_abi_version").CallWithStack(ictx, in.stack[:]); err != nil {
		return nil, nil, in.failure(ctx, ictx, fmt.Errorf("samsa_abi_version: %w", err))
	}
	if v := int32(in.stack[0]); v != ABIVersion {
		in.close(ctx)
		return nil, nil, &FilterError{Kind: FailABI, Err: fmt.Errorf("samsa_abi_version returned %d; this host supports ABI version %d", v, ABIVersion)}
	}
	if cfg.params == nil {
		return in, nil, nil
	}
	// samsa_init with the parameters (len 0 for none).
	var ptr uint32
	if len(cfg.params) > 0 {
		if ptr, err = in.allocate(ictx, len(cfg.params)); err != nil {
			var fe *FilterError
			if errors.As(err, &fe) {
				in.close(ctx)
				return nil, nil, err
			}
			return nil, nil, in.failure(ctx, ictx, fmt.Errorf("samsa_alloc for the parameters: %w", err))
		}
		buf, _ := in.mem.Read(ptr, uint32(len(cfg.params)))
		copy(buf, cfg.params)
	}
	in.stack[0], in.stack[1] = uint64(ptr), uint64(len(cfg.params))
	if err := mod.ExportedFunction("samsa_init").CallWithStack(ictx, in.stack[:]); err != nil {
		return nil, nil, in.failure(ctx, ictx, fmt.Errorf("samsa_init: %w", err))
	}
	if rc := int32(in.stack[0]); rc != 0 {
		in.close(ctx)
		return nil, nil, &FilterError{Kind: FailGuest, Err: fmt.Errorf("samsa_init returned %d%s", rc, in.logs.lastStderr())}
	}
	return in, nil, nil
}
