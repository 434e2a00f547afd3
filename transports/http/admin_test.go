package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/samsa-broker/samsa/broker"
	"github.com/samsa-broker/samsa/wasm"
)

// fakeFilters is an in-memory FilterAdmin that follows the Broker API's
// contract: modules are valid when they start with the Wasm magic, topics
// "orders" and "sensors" exist, a bound filter cannot be removed.
type fakeFilters struct {
	mu       sync.Mutex
	disabled bool
	modules  map[string][]wasm.ModuleInfo
	bindings []broker.Binding
	seq      int
	deployed int // DeployFilter calls
	lastSpec broker.BindingSpec
}

func newFake() *fakeFilters { return &fakeFilters{modules: map[string][]wasm.ModuleInfo{}} }

var wasmMagic = []byte("\x00asm\x01\x00\x00\x00")

func (f *fakeFilters) DeployFilter(_ context.Context, name string, module []byte) (wasm.ModuleInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.deployed++
	if f.disabled {
		return wasm.ModuleInfo{}, fmt.Errorf("deploy: %w", broker.ErrFiltersDisabled)
	}
	if !bytes.HasPrefix(module, wasmMagic) {
		return wasm.ModuleInfo{}, fmt.Errorf("%w: not a WebAssembly module (bad magic number)", wasm.ErrInvalidModule)
	}
	mi := wasm.ModuleInfo{Name: name, Version: len(f.modules[name]) + 1, Size: int64(len(module)), SHA256: "abcdef0123456789", Created: time.Unix(1700000000, 0).UTC()}
	f.modules[name] = append(f.modules[name], mi)
	return mi, nil
}

func (f *fakeFilters) RemoveFilter(name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.disabled {
		return broker.ErrFiltersDisabled
	}
	if _, ok := f.modules[name]; !ok {
		return fmt.Errorf("%w: %q", wasm.ErrUnknownModule, name)
	}
	for _, b := range f.bindings {
		if b.Filter == name {
			return fmt.Errorf("%w: %q is bound (binding %s)", broker.ErrFilterInUse, name, b.ID)
		}
	}
	delete(f.modules, name)
	return nil
}

func (f *fakeFilters) FilterModules() []wasm.ModuleInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []wasm.ModuleInfo
	for _, vs := range f.modules {
		out = append(out, vs[len(vs)-1])
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (f *fakeFilters) FilterVersions(name string) ([]wasm.ModuleInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.disabled {
		return nil, broker.ErrFiltersDisabled
	}
	vs, ok := f.modules[name]
	if !ok {
		return nil, fmt.Errorf("%w: %q", wasm.ErrUnknownModule, name)
	}
	return vs, nil
}

func (f *fakeFilters) Bind(_ context.Context, spec broker.BindingSpec) (broker.Binding, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastSpec = spec
	if f.disabled {
		return broker.Binding{}, broker.ErrFiltersDisabled
	}
	if _, ok := f.modules[spec.Filter]; !ok {
		return broker.Binding{}, fmt.Errorf("%w: %q", wasm.ErrUnknownModule, spec.Filter)
	}
	src := spec.Produce + spec.Topic
	if src != "orders" && src != "sensors" {
		return broker.Binding{}, fmt.Errorf("%w: %q", broker.ErrUnknownTopic, src)
	}
	if spec.View == "orders" || spec.View == "sensors" {
		return broker.Binding{}, fmt.Errorf("%w: view name %q is a topic", broker.ErrTopicExists, spec.View)
	}
	if spec.OnError != "" && spec.OnError != "reject" && spec.OnError != "drop" && spec.OnError != "pass" && !strings.HasPrefix(string(spec.OnError), "dead-letter:") {
		return broker.Binding{}, fmt.Errorf("invalid on_error %q", spec.OnError)
	}
	f.seq++
	b := broker.Binding{ID: fmt.Sprintf("b%d", f.seq), BindingSpec: spec, Created: time.Unix(1700000000, 0).UTC()}
	f.bindings = append(f.bindings, b)
	return b, nil
}

func (f *fakeFilters) Unbind(id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.disabled {
		return broker.ErrFiltersDisabled
	}
	for i, b := range f.bindings {
		if b.ID == id {
			f.bindings = append(f.bindings[:i], f.bindings[i+1:]...)
			return nil
		}
	}
	return fmt.Errorf("%w: %q", broker.ErrUnknownBinding, id)
}

func (f *fakeFilters) Bindings() []broker.Binding {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]broker.Binding(nil), f.bindings...)
}

// seeded returns a fake with filter "redact" (2 versions) and "idle",
// and one binding b1 of redact on orders.
func seeded() *fakeFilters {
	f := newFake()
	ctx := context.Background()
	mod := append(append([]byte(nil), wasmMagic...), 1, 2, 3)
	f.DeployFilter(ctx, "redact", mod)
	f.DeployFilter(ctx, "redact", mod)
	f.DeployFilter(ctx, "idle", mod)
	if _, err := f.Bind(ctx, broker.BindingSpec{Filter: "redact", Produce: "orders"}); err != nil {
		panic(err)
	}
	f.deployed = 0
	return f
}

func TestAdminAPI(t *testing.T) {
	module := append(append([]byte(nil), wasmMagic...), bytes.Repeat([]byte{7}, 100)...)
	tests := []struct {
		name     string
		fake     func() *fakeFilters
		max      int64
		method   string
		path     string
		body     []byte
		status   int
		code     string   // error code, when status >= 400
		contains []string // substrings of the body
		check    func(t *testing.T, f *fakeFilters, body []byte)
	}{
		{name: "deploy", method: "POST", path: "/api/v1/filters/mask", body: module, status: 201,
			contains: []string{`"name": "mask"`, `"version": 1`, `"size": 108`, `"sha256"`}},
		{name: "deploy next version", method: "POST", path: "/api/v1/filters/redact", body: module, status: 201,
			contains: []string{`"version": 3`}},
		{name: "deploy garbage", method: "POST", path: "/api/v1/filters/bad", body: []byte("not wasm at all"), status: 400, code: "invalid_module",
			contains: []string{"bad magic number"}},
		{name: "deploy empty", method: "POST", path: "/api/v1/filters/bad", body: nil, status: 400, code: "invalid_module",
			check: func(t *testing.T, f *fakeFilters, _ []byte) {
				if f.deployed != 0 {
					t.Errorf("DeployFilter called for an empty body")
				}
			}},
		{name: "deploy bad name", method: "POST", path: "/api/v1/filters/a%20b", body: module, status: 400, code: "invalid_name"},
		{name: "deploy long name", method: "POST", path: "/api/v1/filters/" + strings.Repeat("x", 65), body: module, status: 400, code: "invalid_name"},
		{name: "deploy too large", max: 64, method: "POST", path: "/api/v1/filters/big", body: module, status: 413, code: "module_too_large",
			contains: []string{"64 bytes"},
			check: func(t *testing.T, f *fakeFilters, _ []byte) {
				if f.deployed != 0 {
					t.Errorf("DeployFilter called for an oversized module")
				}
			}},
		{name: "deploy disabled", fake: func() *fakeFilters { f := newFake(); f.disabled = true; return f },
			method: "POST", path: "/api/v1/filters/x", body: module, status: 503, code: "filters_disabled"},
		{name: "list", method: "GET", path: "/api/v1/filters", status: 200,
			check: func(t *testing.T, _ *fakeFilters, body []byte) {
				var resp struct{ Filters []Module }
				if err := json.Unmarshal(body, &resp); err != nil {
					t.Fatal(err)
				}
				if len(resp.Filters) != 2 || resp.Filters[0].Name != "idle" || resp.Filters[1].Name != "redact" || resp.Filters[1].Version != 2 {
					t.Errorf("filters %+v, want idle v1 and redact v2 sorted by name", resp.Filters)
				}
			}},
		{name: "list empty", fake: newFake, method: "GET", path: "/api/v1/filters", status: 200, contains: []string{`"filters": []`}},
		{name: "list disabled", fake: func() *fakeFilters { f := newFake(); f.disabled = true; return f },
			method: "GET", path: "/api/v1/filters", status: 503, code: "filters_disabled"},
		{name: "describe", method: "GET", path: "/api/v1/filters/redact", status: 200,
			check: func(t *testing.T, _ *fakeFilters, body []byte) {
				var resp struct {
					Name     string
					Versions []Module
					Bindings []broker.Binding
				}
				if err := json.Unmarshal(body, &resp); err != nil {
					t.Fatal(err)
				}
				if resp.Name != "redact" || len(resp.Versions) != 2 || len(resp.Bindings) != 1 || resp.Bindings[0].ID != "b1" {
					t.Errorf("got %+v", resp)
				}
			}},
		{name: "describe unknown", method: "GET", path: "/api/v1/filters/nope", status: 404, code: "unknown_filter"},
		{name: "remove", method: "DELETE", path: "/api/v1/filters/idle", status: 204,
			check: func(t *testing.T, f *fakeFilters, _ []byte) {
				if _, ok := f.modules["idle"]; ok {
					t.Error("idle still there")
				}
			}},
		{name: "remove bound", method: "DELETE", path: "/api/v1/filters/redact", status: 409, code: "filter_in_use", contains: []string{"b1"}},
		{name: "remove unknown", method: "DELETE", path: "/api/v1/filters/nope", status: 404, code: "unknown_filter"},
		{name: "bind produce", method: "POST", path: "/api/v1/bindings",
			body:   []byte(`{"filter":"idle","produce":"orders","on_error":"dead-letter:orders.dlq","params":{"mask":"*"}}`),
			status: 201, contains: []string{`"id": "b2"`, `"on_error": "dead-letter:orders.dlq"`, `"mask": "*"`},
			check: func(t *testing.T, f *fakeFilters, _ []byte) {
				if f.lastSpec.MemoryPages != 128 || f.lastSpec.TimeoutMs != 250 {
					t.Errorf("config defaults not applied: %+v", f.lastSpec)
				}
			}},
		{name: "bind view keeps explicit limits", method: "POST", path: "/api/v1/bindings",
			body:   []byte(`{"filter":"idle","view":"sensors.hot","topic":"sensors","params":{"field":"temp","min":30},"memory_pages":16,"timeout_ms":20}`),
			status: 201, contains: []string{`"view": "sensors.hot"`},
			check: func(t *testing.T, f *fakeFilters, _ []byte) {
				if f.lastSpec.MemoryPages != 16 || f.lastSpec.TimeoutMs != 20 {
					t.Errorf("limits changed: %+v", f.lastSpec)
				}
			}},
		{name: "bind bad json", method: "POST", path: "/api/v1/bindings", body: []byte(`{"filter":`), status: 400, code: "invalid_spec"},
		{name: "bind unknown field", method: "POST", path: "/api/v1/bindings", body: []byte(`{"filter":"idle","produce":"orders","onerror":"drop"}`),
			status: 400, code: "invalid_spec", contains: []string{"onerror"}},
		{name: "bind no filter", method: "POST", path: "/api/v1/bindings", body: []byte(`{"produce":"orders"}`), status: 400, code: "invalid_spec", contains: []string{`\"filter\" is required`}},
		{name: "bind nowhere", method: "POST", path: "/api/v1/bindings", body: []byte(`{"filter":"idle"}`), status: 400, code: "invalid_spec"},
		{name: "bind view without topic", method: "POST", path: "/api/v1/bindings", body: []byte(`{"filter":"idle","view":"v"}`), status: 400, code: "invalid_spec"},
		{name: "bind both", method: "POST", path: "/api/v1/bindings", body: []byte(`{"filter":"idle","produce":"orders","view":"v","topic":"orders"}`), status: 400, code: "invalid_spec"},
		{name: "bind unknown filter", method: "POST", path: "/api/v1/bindings", body: []byte(`{"filter":"nope","produce":"orders"}`), status: 404, code: "unknown_filter"},
		{name: "bind unknown topic", method: "POST", path: "/api/v1/bindings", body: []byte(`{"filter":"idle","produce":"nope"}`), status: 404, code: "unknown_topic"},
		{name: "bind view name taken", method: "POST", path: "/api/v1/bindings", body: []byte(`{"filter":"idle","view":"orders","topic":"sensors"}`), status: 409, code: "exists"},
		{name: "bind bad on_error", method: "POST", path: "/api/v1/bindings", body: []byte(`{"filter":"idle","produce":"orders","on_error":"explode"}`), status: 400, code: "invalid_spec", contains: []string{"explode"}},
		{name: "bind disabled", fake: func() *fakeFilters { f := newFake(); f.disabled = true; return f },
			method: "POST", path: "/api/v1/bindings", body: []byte(`{"filter":"idle","produce":"orders"}`), status: 503, code: "filters_disabled"},
		{name: "bindings", method: "GET", path: "/api/v1/bindings", status: 200, contains: []string{`"id": "b1"`, `"produce": "orders"`}},
		{name: "bindings empty", fake: newFake, method: "GET", path: "/api/v1/bindings", status: 200, contains: []string{`"bindings": []`}},
		{name: "unbind", method: "DELETE", path: "/api/v1/bindings/b1", status: 204,
			check: func(t *testing.T, f *fakeFilters, _ []byte) {
				if len(f.bindings) != 0 {
					t.Error("binding still there")
				}
			}},
		{name: "unbind unknown", method: "DELETE", path: "/api/v1/bindings/b9", status: 404, code: "unknown_binding"},
		{name: "wrong method", method: "PUT", path: "/api/v1/bindings", status: 405, code: "method_not_allowed", contains: []string{"GET, POST"}},
		{name: "unknown endpoint", method: "GET", path: "/api/v1/nope", status: 404, code: "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := seeded()
			if tt.fake != nil {
				f = tt.fake()
			}
			h := AdminHandler(f, AdminOptions{MaxModuleBytes: tt.max, DefaultMemoryPages: 128, DefaultTimeout: 250 * time.Millisecond})
			var body io.Reader
			if tt.body != nil {
				body = bytes.NewReader(tt.body)
			}
			req := httptest.NewRequest(tt.method, tt.path, body)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			got := rec.Body.Bytes()
			if rec.Code != tt.status {
				t.Fatalf("%s %s: status %d, want %d; body %s", tt.method, tt.path, rec.Code, tt.status, got)
			}
			if tt.status >= 400 {
				if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
					t.Errorf("error Content-Type %q", ct)
				}
				var e APIError
				if err := json.Unmarshal(got, &e); err != nil || e.Error == "" || e.Code != tt.code {
					t.Errorf("error body %s (%v), want code %q and a message", got, err, tt.code)
				}
			}
			for _, s := range tt.contains {
				if !bytes.Contains(got, []byte(s)) {
					t.Errorf("body lacks %q:\n%s", s, got)
				}
			}
			if tt.check != nil {
				tt.check(t, f, got)
			}
		})
	}
}

// countingReader counts what the handler reads of a body with no
// Content-Length.
type countingReader struct {
	n, read int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, io.EOF
	}
	k := min(int64(len(p)), c.n)
	for i := range p[:k] {
		p[i] = 0
	}
	c.n -= k
	c.read += k
	return int(k), nil
}

// An upload over the limit is refused after reading at most the limit (and
// the byte that shows it is over), whether or not it declares its length.
func TestAdminDeployLimitReadsNoMore(t *testing.T) {
	const limit = 1 << 10
	t.Run("declared length", func(t *testing.T) {
		f := newFake()
		h := AdminHandler(f, AdminOptions{MaxModuleBytes: limit})
		cr := &countingReader{n: 1 << 20}
		req := httptest.NewRequest("POST", "/api/v1/filters/big", cr)
		req.ContentLength = 1 << 20
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != 413 || cr.read != 0 {
			t.Fatalf("status %d, read %d bytes; want 413 and nothing read", rec.Code, cr.read)
		}
	})
	t.Run("chunked", func(t *testing.T) {
		f := newFake()
		srv := httptest.NewServer(AdminHandler(f, AdminOptions{MaxModuleBytes: limit}))
		defer srv.Close()
		cr := &countingReader{n: 64 << 20}
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/filters/big", io.MultiReader(cr))
		req.ContentLength = -1 // chunked
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			// The server may close the connection while we still send; a
			// reset is fine as long as it answered 413 first or we did not
			// send everything.
			if cr.read >= 64<<20 {
				t.Fatalf("whole body sent: %v", err)
			}
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 413 || !strings.Contains(string(body), "module_too_large") {
			t.Fatalf("status %d body %s", resp.StatusCode, body)
		}
		if f.deployed != 0 {
			t.Fatal("DeployFilter called")
		}
	})
}

// The wasm and broker sentinels map to the documented statuses.
func TestAdminErrorMapping(t *testing.T) {
	tests := []struct {
		err    error
		status int
		code   string
	}{
		{fmt.Errorf("x: %w", broker.ErrFiltersDisabled), 503, "filters_disabled"},
		{fmt.Errorf("x: %w", wasm.ErrInvalidModule), 400, "invalid_module"},
		{fmt.Errorf("x: %w", wasm.ErrModuleTooLarge), 413, "module_too_large"},
		{fmt.Errorf("x: %w", wasm.ErrUnknownModule), 404, "unknown_filter"},
		{fmt.Errorf("x: %w", broker.ErrUnknownBinding), 404, "unknown_binding"},
		{fmt.Errorf("x: %w", broker.ErrFilterInUse), 409, "filter_in_use"},
		{fmt.Errorf("x: %w", broker.ErrUnknownTopic), 404, "unknown_topic"},
		{fmt.Errorf("x: %w", broker.ErrTopicExists), 409, "exists"},
		{fmt.Errorf("x: %w", broker.ErrStorage), 500, "storage"},
		{errors.New("something else"), 500, "internal"},
	}
	for _, tt := range tests {
		rec := httptest.NewRecorder()
		a := &admin{logger: slog.New(slog.DiscardHandler)}
		a.fail(rec, httptest.NewRequest("GET", "/", nil), tt.err, http.StatusInternalServerError)
		var e APIError
		_ = json.Unmarshal(rec.Body.Bytes(), &e)
		if rec.Code != tt.status || e.Code != tt.code || e.Error != tt.err.Error() {
			t.Errorf("%v: got %d %+v, want %d %s", tt.err, rec.Code, e, tt.status, tt.code)
		}
	}
}
