package http

// The admin REST API under /api/v1: Wasm filter modules and their bindings.
//
//	POST   /api/v1/filters/{name}   body: the module (application/wasm) → 201 module
//	GET    /api/v1/filters          → {"filters": [module, ...]} (latest version of each)
//	GET    /api/v1/filters/{name}   → {"name", "versions": [module, ...], "bindings": [...]}
//	DELETE /api/v1/filters/{name}   → 204 (409 while bound)
//	POST   /api/v1/bindings         body: BindingSpec JSON → 201 binding
//	GET    /api/v1/bindings         → {"bindings": [binding, ...]}
//	DELETE /api/v1/bindings/{id}    → 204
//
// Errors are {"error": "what went wrong", "code": "stable_code"} with the
// matching HTTP status: 400 invalid module or spec, 404 unknown filter,
// binding or topic, 409 in use or already exists, 413 module too large, 503
// filters disabled.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/samsa-broker/samsa/auth"
	"github.com/samsa-broker/samsa/broker"
	"github.com/samsa-broker/samsa/wasm"
)

// DefaultMaxModuleBytes is the upload limit when none is configured; it is
// the wasm host's default too.
const DefaultMaxModuleBytes = 16 << 20

// maxSpecBytes bounds a binding spec body: 64 KiB of parameters plus the rest.
const maxSpecBytes = 128 << 10

// FilterAdmin is the part of the Broker API the admin endpoints call;
// *broker.Broker implements it.
type FilterAdmin interface {
	DeployFilter(ctx context.Context, name string, module []byte) (wasm.ModuleInfo, error)
	RemoveFilter(name string) error
	FilterModules() []wasm.ModuleInfo
	FilterVersions(name string) ([]wasm.ModuleInfo, error)
	Bind(ctx context.Context, spec broker.BindingSpec) (broker.Binding, error)
	Unbind(id string) error
	Bindings() []broker.Binding
}

var _ FilterAdmin = (*broker.Broker)(nil)

// AdminOptions configure the admin API.
type AdminOptions struct {
	// MaxModuleBytes is the largest module upload; a bigger one is refused
	// with 413 before more than this many bytes are read. 0 is
	// DefaultMaxModuleBytes.
	MaxModuleBytes int64
	// DefaultMemoryPages and DefaultTimeout fill a binding spec that sets
	// no memory_pages or timeout_ms (the config's filters.default_*); 0
	// leaves them to the broker (256 pages, 100 ms).
	DefaultMemoryPages uint32
	DefaultTimeout     time.Duration
	Logger             *slog.Logger
	// Auth, when non-nil and enabled, requires credentials (auth.go):
	// reads need the filters or admin permission, writes filters.
	Auth *auth.Authenticator
}

// Module is a filter module version as the API shows it.
type Module struct {
	Name    string    `json:"name"`
	Version int       `json:"version"`
	Size    int64     `json:"size"`
	SHA256  string    `json:"sha256"`
	Created time.Time `json:"created"`
}

func moduleJSON(mi wasm.ModuleInfo) Module {
	return Module{Name: mi.Name, Version: mi.Version, Size: mi.Size, SHA256: mi.SHA256, Created: mi.Created}
}

func modulesJSON(mis []wasm.ModuleInfo) []Module {
	out := make([]Module, 0, len(mis))
	for _, mi := range mis {
		out = append(out, moduleJSON(mi))
	}
	return out
}

// APIError is the body of every error response.
type APIError struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

var filterNameRe = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,64}$`)

type admin struct {
	fa     FilterAdmin
	max    int64
	opts   AdminOptions
	logger *slog.Logger
}

// mountAdmin registers the admin API on mux.
func mountAdmin(mux *http.ServeMux, fa FilterAdmin, opts AdminOptions) {
	a := &admin{fa: fa, max: opts.MaxModuleBytes, opts: opts, logger: opts.Logger}
	if a.max <= 0 {
		a.max = DefaultMaxModuleBytes
	}
	if a.logger == nil {
		a.logger = slog.New(slog.DiscardHandler)
	}
	g := newGate(opts.Auth, a.logger)
	const filtersPerm, readPerm = "filters", "filters or admin"
	api := http.NewServeMux()
	api.Handle("POST /api/v1/filters/{name}", g.require(filtersPerm, canDeployFilter, http.HandlerFunc(a.deploy)))
	api.Handle("GET /api/v1/filters", g.require(readPerm, canReadFilters, http.HandlerFunc(a.listFilters)))
	api.Handle("GET /api/v1/filters/{name}", g.require(readPerm, canReadFilters, http.HandlerFunc(a.describeFilter)))
	api.Handle("DELETE /api/v1/filters/{name}", g.require(filtersPerm, canDeployFilter, http.HandlerFunc(a.removeFilter)))
	api.Handle("POST /api/v1/bindings", g.require(filtersPerm, canBind, http.HandlerFunc(a.bind)))
	api.Handle("GET /api/v1/bindings", g.require(readPerm, canReadFilters, http.HandlerFunc(a.listBindings)))
	api.Handle("DELETE /api/v1/bindings/{id}", g.require(filtersPerm, canBind, http.HandlerFunc(a.unbind)))
	// Everything under /api/ answers in JSON, a wrong path or method too;
	// with auth on, only to authenticated clients.
	mux.Handle("/api/", g.require("", nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := api.Handler(r); pattern != "" {
			api.ServeHTTP(w, r)
			return
		}
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
			r2 := r.Clone(r.Context())
			r2.Method = m
			if _, p := api.Handler(r2); p != "" {
				allow = append(allow, m)
			}
		}
		if len(allow) > 0 {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			writeError(w, http.StatusMethodNotAllowed, "method_not_allowed",
				fmt.Sprintf("%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", ")))
			return
		}
		writeError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no such endpoint: %s %s", r.Method, r.URL.Path))
	})))
}

// AdminHandler returns the admin API alone (for tests and embedding).
func AdminHandler(fa FilterAdmin, opts AdminOptions) http.Handler {
	mux := http.NewServeMux()
	mountAdmin(mux, fa, opts)
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, APIError{Error: msg, Code: code})
}

// fail maps an error of the Broker API to a status and a stable code.
// fallback is the status of an error the API does not classify (a binding
// spec the broker refuses for a reason without a sentinel is the client's
// fault; a failed deploy that is not an invalid module is the server's).
func (a *admin) fail(w http.ResponseWriter, r *http.Request, err error, fallback int) {
	status, code := fallback, "internal"
	switch {
	case errors.Is(err, broker.ErrFiltersDisabled):
		status, code = http.StatusServiceUnavailable, "filters_disabled"
	case errors.Is(err, wasm.ErrModuleTooLarge):
		status, code = http.StatusRequestEntityTooLarge, "module_too_large"
	case errors.Is(err, wasm.ErrInvalidModule):
		status, code = http.StatusBadRequest, "invalid_module"
	case errors.Is(err, wasm.ErrUnknownModule):
		status, code = http.StatusNotFound, "unknown_filter"
	case errors.Is(err, broker.ErrUnknownBinding):
		status, code = http.StatusNotFound, "unknown_binding"
	case errors.Is(err, broker.ErrFilterInUse):
		status, code = http.StatusConflict, "filter_in_use"
	case errors.Is(err, broker.ErrUnknownTopic):
		status, code = http.StatusNotFound, "unknown_topic"
	case errors.Is(err, broker.ErrTopicExists):
		status, code = http.StatusConflict, "exists"
	case errors.Is(err, broker.ErrInvalidTopic):
		status, code = http.StatusBadRequest, "invalid_topic"
	case errors.Is(err, broker.ErrInvalidConfig):
		status, code = http.StatusBadRequest, "invalid_spec"
	case errors.Is(err, broker.ErrClosed):
		status, code = http.StatusServiceUnavailable, "closed"
	case errors.Is(err, broker.ErrStorage), errors.Is(err, broker.ErrDiskFull):
		status, code = http.StatusInternalServerError, "storage"
	case fallback == http.StatusBadRequest:
		code = "invalid_spec"
	}
	if status >= 500 && status != http.StatusServiceUnavailable {
		a.logger.Error("admin api", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, status, code, err.Error())
}

func (a *admin) deploy(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !filterNameRe.MatchString(name) {
		writeError(w, http.StatusBadRequest, "invalid_name",
			fmt.Sprintf("invalid filter name %q: 1 to 64 ASCII letters, digits, '.', '_' or '-'", name))
		return
	}
	if r.ContentLength > a.max {
		writeError(w, http.StatusRequestEntityTooLarge, "module_too_large",
			fmt.Sprintf("module of %d bytes is over the limit of %d bytes (filters.max_module_bytes)", r.ContentLength, a.max))
		return
	}
	// MaxBytesReader stops at the limit (and makes the server close the
	// connection instead of draining the rest).
	body := http.MaxBytesReader(w, r.Body, a.max)
	module, err := io.ReadAll(body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "module_too_large",
				fmt.Sprintf("module is over the limit of %d bytes (filters.max_module_bytes)", a.max))
			return
		}
		writeError(w, http.StatusBadRequest, "bad_request", "reading the module: "+err.Error())
		return
	}
	if len(module) == 0 {
		writeError(w, http.StatusBadRequest, "invalid_module", "empty body: send the module's bytes (Content-Type: application/wasm)")
		return
	}
	mi, err := a.fa.DeployFilter(r.Context(), name, module)
	if err != nil {
		a.fail(w, r, err, http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusCreated, moduleJSON(mi))
}

func (a *admin) listFilters(w http.ResponseWriter, r *http.Request) {
	if err := a.filtersOff(); err != nil {
		a.fail(w, r, err, http.StatusInternalServerError)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"filters": modulesJSON(a.fa.FilterModules())})
}

// filtersOff returns ErrFiltersDisabled (wrapped) when the broker runs
// without filters. FilterModules and Bindings have no error result, so the
// list endpoints ask FilterVersions, which does.
func (a *admin) filtersOff() error {
	if _, err := a.fa.FilterVersions("_"); errors.Is(err, broker.ErrFiltersDisabled) {
		return err
	}
	return nil
}

func (a *admin) describeFilter(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	vs, err := a.fa.FilterVersions(name)
	if err != nil {
		a.fail(w, r, err, http.StatusInternalServerError)
		return
	}
	if len(vs) == 0 {
		writeError(w, http.StatusNotFound, "unknown_filter", fmt.Sprintf("unknown filter %q", name))
		return
	}
	bs := []broker.Binding{}
	for _, b := range a.fa.Bindings() {
		if b.Filter == name {
			bs = append(bs, b)
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"name": name, "versions": modulesJSON(vs), "bindings": bs})
}

func (a *admin) removeFilter(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if err := a.fa.RemoveFilter(name); err != nil {
		a.fail(w, r, err, http.StatusInternalServerError)
		return
	}
	a.logger.Info("filter removed", "name", name)
	w.WriteHeader(http.StatusNoContent)
}

func (a *admin) bind(w http.ResponseWriter, r *http.Request) {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxSpecBytes))
	dec.DisallowUnknownFields()
	var spec broker.BindingSpec
	if err := dec.Decode(&spec); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeError(w, http.StatusRequestEntityTooLarge, "spec_too_large", fmt.Sprintf("binding spec is over %d bytes", maxSpecBytes))
			return
		}
		writeError(w, http.StatusBadRequest, "invalid_spec", "binding spec: "+err.Error())
		return
	}
	if dec.More() {
		writeError(w, http.StatusBadRequest, "invalid_spec", "binding spec: trailing data after the JSON object")
		return
	}
	if msg := checkSpec(spec); msg != "" {
		writeError(w, http.StatusBadRequest, "invalid_spec", msg)
		return
	}
	if spec.MemoryPages == 0 {
		spec.MemoryPages = a.opts.DefaultMemoryPages
	}
	if spec.TimeoutMs == 0 && a.opts.DefaultTimeout > 0 {
		spec.TimeoutMs = max(1, a.opts.DefaultTimeout.Milliseconds())
	}
	b, err := a.fa.Bind(r.Context(), spec)
	if err != nil {
		a.fail(w, r, err, http.StatusBadRequest)
		return
	}
	writeJSON(w, http.StatusCreated, b)
}

// checkSpec catches the mistakes that need no broker state, with messages
// that say which field is wrong.
func checkSpec(s broker.BindingSpec) string {
	switch {
	case s.Filter == "":
		return `binding spec: "filter" is required`
	case s.Produce == "" && s.View == "":
		return `binding spec: set "produce" (a topic) or "view" and "topic" (a filtered view over a topic)`
	case s.Produce != "" && (s.View != "" || s.Topic != ""):
		return `binding spec: "produce" cannot be combined with "view" or "topic"`
	case s.View != "" && s.Topic == "":
		return `binding spec: a view needs "topic", the source topic`
	case s.View == "" && s.Topic != "":
		return `binding spec: "topic" is the source of a view; set "view" too, or use "produce"`
	case s.Version < 0:
		return `binding spec: "version" must be >= 0 (0 follows the latest version)`
	case s.TimeoutMs < 0:
		return `binding spec: "timeout_ms" must be >= 0`
	case len(s.Params) > 64<<10:
		return fmt.Sprintf(`binding spec: "params" is %d bytes, more than 64 KiB`, len(s.Params))
	}
	return ""
}

func (a *admin) listBindings(w http.ResponseWriter, r *http.Request) {
	if err := a.filtersOff(); err != nil {
		a.fail(w, r, err, http.StatusInternalServerError)
		return
	}
	bs := a.fa.Bindings()
	if bs == nil {
		bs = []broker.Binding{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"bindings": bs})
}

func (a *admin) unbind(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := a.fa.Unbind(id); err != nil {
		a.fail(w, r, err, http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
