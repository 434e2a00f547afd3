package broker

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/samsa-broker/samsa/broker/commitlog"
	"github.com/samsa-broker/samsa/broker/record"
	"github.com/samsa-broker/samsa/wasm"
)

// OnError is a binding's error policy: what happens to a batch when its
// filter fails (traps, runs past its time limit, exhausts its memory,
// returns a bad answer, or its module cannot be loaded).
//
//   - "reject": fail the produce with the cause; on a view, return the error
//     to the reader (records before the failing batch are still returned).
//   - "drop": drop the batch's records.
//   - "pass": let the batch go on unfiltered.
//   - "dead-letter:TOPIC": append the batch's records to TOPIC, each with a
//     header samsa.filter.error holding the cause, instead of their
//     destination.
type OnError string

// Error policies.
const (
	OnErrorReject OnError = "reject"
	OnErrorDrop   OnError = "drop"
	OnErrorPass   OnError = "pass"
	// DeadLetterPrefix starts a dead-letter policy: "dead-letter:TOPIC".
	DeadLetterPrefix = "dead-letter:"
)

// DeadLetter returns the policy that sends failed batches to topic.
func DeadLetter(topic string) OnError { return OnError(DeadLetterPrefix + topic) }

// DeadLetterTopic returns the topic of a dead-letter policy, or "".
func (o OnError) DeadLetterTopic() string {
	if t, ok := strings.CutPrefix(string(o), DeadLetterPrefix); ok {
		return t
	}
	return ""
}

// FilterErrorHeader is the header that dead-lettered records carry with
// the failure that sent them there.
const FilterErrorHeader = "samsa.filter.error"

// FilterLogsTopic receives what filters write to stdout and stderr.
const FilterLogsTopic = "_samsa_filter_logs"

// MaxFilterParams bounds a binding's parameters.
const MaxFilterParams = 64 << 10

// BindingSpec says where a filter runs. Exactly one of Produce or View
// (with Topic) is set.
type BindingSpec struct {
	Filter string `json:"filter"`
	// Version pins a module version; 0 follows the latest version (a new
	// deploy takes over without a restart).
	Version int `json:"version,omitempty"`
	// Produce binds the filter on the produce path of this topic.
	Produce string `json:"produce,omitempty"`
	// View is the name of a filtered view (a new, virtual, read-only topic)
	// over the source topic Topic.
	View  string `json:"view,omitempty"`
	Topic string `json:"topic,omitempty"`
	// Params reach the module once per instance (JSON, at most 64 KiB).
	Params json.RawMessage `json:"params,omitempty"`
	// OnError defaults to "reject" on the produce path and "pass" on views.
	OnError     OnError `json:"on_error,omitempty"`
	MemoryPages uint32  `json:"memory_pages,omitempty"`
	TimeoutMs   int64   `json:"timeout_ms,omitempty"`
}

// Binding is a filter bound to a topic's produce path or as a view.
type Binding struct {
	ID string `json:"id"`
	BindingSpec
	Created time.Time    `json:"created"`
	Stats   BindingStats `json:"stats"`
	// ActiveVersion is the module version new batches run on; 0 when the
	// module could not be loaded (see Error).
	ActiveVersion int `json:"active_version"`
	// Error says why the binding has no module to run, if it has none:
	// its batches then fail and its OnError policy applies.
	Error string `json:"error,omitempty"`
}

// BindingStats count what a binding did since the broker started.
type BindingStats struct {
	Batches      int64 `json:"batches"`       // batches run through the filter (or failed)
	Records      int64 `json:"records"`       // records handed to the filter
	Kept         int64 `json:"kept"`          // records kept unchanged
	Rewritten    int64 `json:"rewritten"`     // records rewritten
	Dropped      int64 `json:"dropped"`       // records dropped (by the filter or by an OnError of drop)
	Routed       int64 `json:"routed"`        // records routed to other topics
	Rejected     int64 `json:"rejected"`      // batches rejected (by the filter or by an OnError of reject)
	Failures     int64 `json:"failures"`      // failed runs: traps, timeouts, memory, bad output, module missing
	Passed       int64 `json:"passed"`        // failed batches passed on unfiltered (OnError pass)
	DeadLettered int64 `json:"dead_lettered"` // records sent to the dead-letter topic
	LogLines     int64 `json:"log_lines"`     // lines the module wrote to stdout/stderr
}

type bindingCounters struct {
	batches, records, kept, rewritten, dropped, routed, rejected, failures, passed, deadLettered, logLines atomic.Int64
}

func (c *bindingCounters) snapshot() BindingStats {
	return BindingStats{
		Batches: c.batches.Load(), Records: c.records.Load(), Kept: c.kept.Load(), Rewritten: c.rewritten.Load(),
		Dropped: c.dropped.Load(), Routed: c.routed.Load(), Rejected: c.rejected.Load(), Failures: c.failures.Load(),
		Passed: c.passed.Load(), DeadLettered: c.deadLettered.Load(), LogLines: c.logLines.Load(),
	}
}

// FilterError is the error of a produce that a filter refused: the guest
// rejected a record (Message is the guest's message), or the filter failed
// under an OnError of reject (Err is the failure). It matches
// ErrFilterRejected.
type FilterError struct {
	Binding string
	Filter  string
	// Message is what the producer should read: the guest's message, or a
	// description of the failure.
	Message string
	// Err is the failure, nil for a rejection by the guest.
	Err error
}

func (e *FilterError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("filter %s (binding %s) failed: %s", e.Filter, e.Binding, e.Message)
	}
	return fmt.Sprintf("rejected by filter %s: %s", e.Filter, e.Message)
}

// Is makes a FilterError match ErrFilterRejected.
func (e *FilterError) Is(target error) bool { return target == ErrFilterRejected }

func (e *FilterError) Unwrap() error { return e.Err }

// binding is a live binding. Its spec never changes; its pool is swapped
// when a new version of its module is deployed.
type binding struct {
	id      string
	spec    BindingSpec // normalized: OnError set
	created time.Time
	limits  wasm.Limits
	onError OnError
	deadTo  string // dead-letter topic, "" for other policies
	pool    atomic.Pointer[poolRef]

	// deadUpTo is, per source partition, the offset below which a view's
	// failed records have been dead-lettered already (deadLetterView).
	deadMu   sync.Mutex
	deadUpTo map[int32]int64
	counters bindingCounters
}

// poolRef is one generation of a binding's instance pool. Runs hold mu for
// reading; a retired generation is closed once they have finished.
type poolRef struct {
	mu      sync.RWMutex
	closed  bool
	pool    *wasm.Pool // nil: the module is unavailable (err says why)
	version int
	err     error
	// unbound marks the generation left behind by Unbind: batches that
	// picked up the binding just before it went pass through untouched.
	unbound bool
}

// acquire returns the current generation, read-locked: release it with
// r.mu.RUnlock once the run is over.
func (bd *binding) acquire() *poolRef {
	for {
		r := bd.pool.Load()
		r.mu.RLock()
		if !r.closed {
			return r
		}
		// Retired between the load and the lock: the new generation is
		// already in place.
		r.mu.RUnlock()
	}
}

func (bd *binding) public() Binding {
	r := bd.pool.Load()
	out := Binding{ID: bd.id, BindingSpec: bd.spec, Created: bd.created, Stats: bd.counters.snapshot(), ActiveVersion: r.version}
	if r.err != nil {
		out.Error = r.err.Error()
	}
	return out
}

func (bd *binding) isView() bool { return bd.spec.View != "" }

// viewID is a view's stable topic id, derived from its binding id.
func (bd *binding) viewID() [16]byte {
	sum := sha256.Sum256([]byte("samsa-view:" + bd.id))
	var id [16]byte
	copy(id[:], sum[:16])
	return id
}

// filterSet is an immutable snapshot of the bindings, replaced whole on
// every change. The broker holds nil when there are none, so that the
// produce path pays one atomic load and nothing else.
type filterSet struct {
	list    []*binding            // in bind order
	produce map[string][]*binding // topic -> produce chain, in bind order
	views   map[string]*binding   // view name -> binding
}

func newFilterSet(list []*binding) *filterSet {
	if len(list) == 0 {
		return nil
	}
	fs := &filterSet{list: list, produce: make(map[string][]*binding), views: make(map[string]*binding)}
	for _, bd := range list {
		if bd.isView() {
			fs.views[bd.spec.View] = bd
		} else {
			fs.produce[bd.spec.Produce] = append(fs.produce[bd.spec.Produce], bd)
		}
	}
	return fs
}

// produceChain returns the produce bindings of a topic, nil for none.
func (b *Broker) produceChain(topic string) []*binding {
	if fs := b.fset.Load(); fs != nil {
		return fs.produce[topic]
	}
	return nil
}

// viewBinding returns the binding of a view, or nil.
func (b *Broker) viewBinding(name string) *binding {
	if fs := b.fset.Load(); fs != nil {
		return fs.views[name]
	}
	return nil
}

func (b *Broker) bindingList() []*binding {
	if fs := b.fset.Load(); fs != nil {
		return fs.list
	}
	return nil
}

// FiltersEnabled reports whether the broker has a Wasm host.
func (b *Broker) FiltersEnabled() bool { return b.opts.Filters != nil }

// DeployFilter validates, compiles and stores a module as the next version
// of name. Bindings that follow the latest version switch to it for new
// batches; batches already running finish on the old version.
func (b *Broker) DeployFilter(ctx context.Context, name string, module []byte) (wasm.ModuleInfo, error) {
	h := b.opts.Filters
	if h == nil {
		return wasm.ModuleInfo{}, ErrFiltersDisabled
	}
	b.fmu.Lock()
	defer b.fmu.Unlock()
	info, err := h.Deploy(ctx, name, module)
	if err != nil {
		return info, err
	}
	for _, bd := range b.bindingList() {
		if bd.spec.Filter != name || bd.spec.Version != 0 {
			continue
		}
		r := b.newPoolRef(ctx, bd, info.Version)
		if err := warm(ctx, r); err != nil {
			b.closeRef(r)
			r = &poolRef{err: fmt.Errorf("filter %q version %d does not start: %w", name, info.Version, err)}
		}
		if r.err != nil {
			// Keep running the previous version rather than failing.
			b.logger.Error("filter: new version does not start; the binding keeps its version", "binding", bd.id, "filter", name, "version", info.Version, "err", r.err)
			if old := bd.pool.Load(); old.pool != nil {
				continue
			}
		}
		b.swapPool(bd, r)
		b.logger.Info("filter: binding switched version", "binding", bd.id, "filter", name, "version", info.Version)
	}
	return info, nil
}

// RemoveFilter removes every version of a module. It fails with
// ErrFilterInUse while a binding uses it.
func (b *Broker) RemoveFilter(name string) error {
	h := b.opts.Filters
	if h == nil {
		return ErrFiltersDisabled
	}
	b.fmu.Lock()
	defer b.fmu.Unlock()
	var ids []string
	for _, bd := range b.bindingList() {
		if bd.spec.Filter == name {
			ids = append(ids, bd.id)
		}
	}
	if len(ids) > 0 {
		return fmt.Errorf("filter %q is bound (%s): %w", name, strings.Join(ids, ", "), ErrFilterInUse)
	}
	return h.Remove(name)
}

// FilterModules lists the latest version of each deployed module.
func (b *Broker) FilterModules() []wasm.ModuleInfo {
	if b.opts.Filters == nil {
		return nil
	}
	return b.opts.Filters.Modules()
}

// FilterVersions lists every version of a module.
func (b *Broker) FilterVersions(name string) ([]wasm.ModuleInfo, error) {
	if b.opts.Filters == nil {
		return nil, ErrFiltersDisabled
	}
	return b.opts.Filters.Versions(name)
}

// Bindings lists the bindings in bind order, with their counters.
func (b *Broker) Bindings() []Binding {
	list := b.bindingList()
	out := make([]Binding, 0, len(list))
	for _, bd := range list {
		out = append(out, bd.public())
	}
	return out
}

// normalize checks a spec and fills its defaults. It does not look at
// topics or modules.
func normalizeSpec(spec BindingSpec) (BindingSpec, error) {
	bad := func(format string, args ...any) (BindingSpec, error) {
		return spec, fmt.Errorf("%w: binding: "+format, append([]any{ErrInvalidConfig}, args...)...)
	}
	if spec.Filter == "" {
		return bad("no filter named")
	}
	if spec.Version < 0 {
		return bad("version %d", spec.Version)
	}
	switch {
	case spec.Produce != "" && (spec.View != "" || spec.Topic != ""):
		return bad("set either produce, or view and topic, not both")
	case spec.Produce == "" && spec.View == "":
		return bad("set produce (a topic) or view (a view name) and topic")
	case spec.View != "" && spec.Topic == "":
		return bad("view %q needs a source topic", spec.View)
	}
	if spec.Produce == FilterLogsTopic || spec.Topic == FilterLogsTopic {
		if spec.Produce != "" {
			return bad("filters cannot be bound on the produce path of %s", FilterLogsTopic)
		}
	}
	if len(spec.Params) > MaxFilterParams {
		return bad("params are %d bytes, more than %d", len(spec.Params), MaxFilterParams)
	}
	if len(spec.Params) > 0 {
		// Compact, so the module sees the same bytes after a restart
		// (meta.json is written indented).
		var buf bytes.Buffer
		if err := json.Compact(&buf, spec.Params); err != nil {
			return bad("params are not valid JSON: %v", err)
		}
		spec.Params = buf.Bytes()
	}
	if spec.MemoryPages > 65536 {
		return bad("memory_pages %d is more than 65536 (4 GiB)", spec.MemoryPages)
	}
	if spec.TimeoutMs < 0 {
		return bad("timeout_ms %d", spec.TimeoutMs)
	}
	if spec.OnError == "" {
		spec.OnError = OnErrorReject
		if spec.View != "" {
			spec.OnError = OnErrorPass
		}
	}
	switch spec.OnError {
	case OnErrorReject, OnErrorDrop, OnErrorPass:
	default:
		t := spec.OnError.DeadLetterTopic()
		if t == "" {
			return bad("on_error %q: want reject, drop, pass or dead-letter:TOPIC", spec.OnError)
		}
		if err := ValidTopicName(t); err != nil {
			return bad("on_error %q: %v", spec.OnError, err)
		}
		if t == spec.Produce || t == spec.Topic {
			return bad("on_error %q: the dead-letter topic must not be the bound topic", spec.OnError)
		}
	}
	return spec, nil
}

// Bind binds a filter on a topic's produce path or as a view. It checks
// that the module exists, the topic exists, a view's name is free and
// valid, and the error policy is valid (a dead-letter topic is created if
// missing); then it starts the module's pool and makes the binding durable
// and effective at once.
func (b *Broker) Bind(ctx context.Context, spec BindingSpec) (Binding, error) {
	h := b.opts.Filters
	if h == nil {
		return Binding{}, ErrFiltersDisabled
	}
	spec, err := normalizeSpec(spec)
	if err != nil {
		return Binding{}, err
	}
	b.fmu.Lock()
	defer b.fmu.Unlock()
	versions, err := h.Versions(spec.Filter)
	if err != nil {
		return Binding{}, err
	}
	if spec.Version != 0 {
		found := false
		for _, v := range versions {
			found = found || v.Version == spec.Version
		}
		if !found {
			return Binding{}, fmt.Errorf("filter %q has no version %d: %w", spec.Filter, spec.Version, wasm.ErrUnknownModule)
		}
	}
	src := spec.Produce
	if spec.View != "" {
		src = spec.Topic
		if err := ValidTopicName(spec.View); err != nil {
			return Binding{}, err
		}
		if b.viewBinding(spec.View) != nil {
			return Binding{}, fmt.Errorf("view %q: %w", spec.View, ErrTopicExists)
		}
		if _, err := b.Topic(spec.View); err == nil {
			return Binding{}, fmt.Errorf("view %q: a topic has that name: %w", spec.View, ErrTopicExists)
		}
		if b.viewBinding(spec.Topic) != nil {
			return Binding{}, fmt.Errorf("%w: %q is a view; a view's source must be a topic", ErrInvalidTopic, spec.Topic)
		}
	}
	if _, err := b.Topic(src); err != nil {
		return Binding{}, err
	}
	if t := spec.OnError.DeadLetterTopic(); t != "" {
		if b.viewBinding(t) != nil {
			return Binding{}, fmt.Errorf("%w: dead-letter topic %q is a view", ErrInvalidTopic, t)
		}
		if _, err := b.CreateTopic(t, -1, nil, false); err != nil && !errors.Is(err, ErrTopicExists) {
			return Binding{}, fmt.Errorf("dead-letter topic: %w", err)
		}
	}
	bd := newBinding(newBindingID(), spec, b.opts.Now().UTC())
	r := b.newPoolRef(ctx, bd, spec.Version)
	if r.err != nil {
		return Binding{}, r.err
	}
	if err := warm(ctx, r); err != nil {
		b.closeRef(r)
		return Binding{}, fmt.Errorf("filter %q does not start with these params: %w", spec.Filter, err)
	}
	bd.pool.Store(r)

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		b.closeRef(r)
		return Binding{}, ErrClosed
	}
	if spec.View != "" {
		// Checked again under b.mu: CreateTopic checks views under it too.
		if _, ok := b.topics[spec.View]; ok {
			b.mu.Unlock()
			b.closeRef(r)
			return Binding{}, fmt.Errorf("view %q: a topic has that name: %w", spec.View, ErrTopicExists)
		}
	}
	list := append(append([]*binding(nil), b.bindingList()...), bd)
	if err := b.saveMetaWith(list); err != nil {
		b.mu.Unlock()
		b.closeRef(r)
		return Binding{}, err
	}
	b.fset.Store(newFilterSet(list))
	b.mu.Unlock()
	b.logger.Info("filter bound", "binding", bd.id, "filter", spec.Filter, "version", r.version, "produce", spec.Produce, "view", spec.View, "topic", spec.Topic, "on_error", spec.OnError)
	return bd.public(), nil
}

// Unbind removes a binding. Batches already running through it finish;
// its instances are closed after them.
func (b *Broker) Unbind(id string) error {
	if b.opts.Filters == nil {
		return ErrFiltersDisabled
	}
	b.fmu.Lock()
	defer b.fmu.Unlock()
	old := b.bindingList()
	var bd *binding
	list := make([]*binding, 0, len(old))
	for _, x := range old {
		if x.id == id {
			bd = x
			continue
		}
		list = append(list, x)
	}
	if bd == nil {
		return fmt.Errorf("binding %q: %w", id, ErrUnknownBinding)
	}
	b.mu.Lock()
	if err := b.saveMetaWith(list); err != nil {
		b.mu.Unlock()
		return err
	}
	b.fset.Store(newFilterSet(list))
	b.mu.Unlock()
	b.swapPool(bd, &poolRef{unbound: true, err: errors.New("unbound")})
	b.logger.Info("filter unbound", "binding", id, "filter", bd.spec.Filter)
	return nil
}

func newBindingID() string {
	var id [6]byte
	_, _ = rand.Read(id[:])
	return "b-" + hex.EncodeToString(id[:])
}

func newBinding(id string, spec BindingSpec, created time.Time) *binding {
	bd := &binding{id: id, spec: spec, created: created, onError: spec.OnError, deadTo: spec.OnError.DeadLetterTopic()}
	bd.limits = wasm.Limits{MemoryPages: spec.MemoryPages, Timeout: time.Duration(spec.TimeoutMs) * time.Millisecond}
	return bd
}

// newPoolRef starts a pool for bd running version (0: the latest). On
// failure the returned generation has no pool and says why.
func (b *Broker) newPoolRef(ctx context.Context, bd *binding, version int) *poolRef {
	h := b.opts.Filters
	if h == nil {
		return &poolRef{err: fmt.Errorf("filters are disabled on this broker: %w", ErrFiltersDisabled)}
	}
	p, err := h.NewPool(ctx, bd.spec.Filter, version, bd.spec.Params, bd.limits)
	if err != nil {
		return &poolRef{err: fmt.Errorf("filter %q: %w", bd.spec.Filter, err)}
	}
	return &poolRef{pool: p, version: p.Module().Version}
}

// warm starts an instance of a new pool when the host can (running
// samsa_init with the binding's parameters), so that a module that cannot
// start is refused at bind or deploy, and the first batches do not wait.
func warm(ctx context.Context, r *poolRef) error {
	w, ok := any(r.pool).(interface{ Warm(context.Context) error })
	if r.pool == nil || !ok {
		return nil
	}
	return w.Warm(ctx)
}

// swapPool installs a new generation and closes the old one once the runs
// on it have finished, without blocking the caller.
func (b *Broker) swapPool(bd *binding, r *poolRef) {
	old := bd.pool.Swap(r)
	if old != nil {
		b.retiring.Add(1)
		go func() {
			defer b.retiring.Done()
			b.closeRef(old)
		}()
	}
}

// closeRef waits for the runs on r and closes its pool.
func (b *Broker) closeRef(r *poolRef) {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	if r.pool != nil {
		if err := r.pool.Close(); err != nil {
			b.logger.Warn("filter: closing instance pool", "err", err)
		}
	}
}

// restoreBindings brings back the bindings of meta.json at Open. A binding
// whose module cannot be loaded stays, failing its batches by its policy.
func (b *Broker) restoreBindings(mbs []metaBinding) {
	var list []*binding
	for _, mb := range mbs {
		spec, err := normalizeSpec(mb.BindingSpec)
		if err != nil {
			b.logger.Error("filter: binding in meta.json is invalid; it stays and fails its batches", "binding", mb.ID, "err", err)
			spec = mb.BindingSpec
			if spec.OnError == "" {
				spec.OnError = OnErrorReject
			}
		}
		bd := newBinding(mb.ID, spec, mb.Created)
		r := b.newPoolRef(context.Background(), bd, spec.Version)
		if r.err != nil {
			b.logger.Error("filter: binding has no module to run; its batches fail by its on_error policy", "binding", mb.ID, "filter", spec.Filter, "on_error", spec.OnError, "err", r.err)
		}
		bd.pool.Store(r)
		list = append(list, bd)
	}
	b.fset.Store(newFilterSet(list))
}

// closeFilters closes every pool once the runs on them finish.
// Batches that still arrive fail by their binding's policy.
func (b *Broker) closeFilters() {
	b.closeSubFilters()
	for _, bd := range b.bindingList() {
		b.swapPool(bd, &poolRef{err: fmt.Errorf("filter %q: %w", bd.spec.Filter, ErrClosed)})
	}
	b.retiring.Wait()
}

// runFilter runs one batch through a binding. skip means the binding was
// removed meanwhile: the batch goes on as if it were not there.
func (b *Broker) runFilter(s *filterScratch, bd *binding, path wasm.Path, topic string, partition int32, recs []wasm.Record) (decs []wasm.Decision, skip bool, err error) {
	r := bd.acquire()
	defer r.mu.RUnlock()
	if r.unbound {
		return nil, true, nil
	}
	bd.counters.batches.Add(1)
	bd.counters.records.Add(int64(len(recs)))
	if r.pool == nil {
		bd.counters.failures.Add(1)
		return nil, false, r.err
	}
	decs, logs, err := r.pool.RunInto(b.ctx, path, topic, partition, recs, s.decs)
	if cap(decs) > cap(s.decs) {
		s.decs = decs[:0]
	}
	if len(logs) > 0 {
		bd.counters.logLines.Add(int64(len(logs)))
		b.flog.enqueue(bd, r.version, logs)
	}
	if err == nil && len(decs) != len(recs) {
		err = fmt.Errorf("%w: %d decisions for %d records", wasm.ErrFilterFailed, len(decs), len(recs))
	}
	if err != nil {
		bd.counters.failures.Add(1)
		b.logger.Warn("filter failed", "binding", bd.id, "filter", bd.spec.Filter, "version", r.version, "topic", topic, "partition", partition, "on_error", bd.onError, "err", err)
		return nil, false, err
	}
	return decs, false, nil
}

// sortedBindingsMeta returns the durable form of a list of bindings.
func bindingsMeta(list []*binding) []metaBinding {
	out := make([]metaBinding, 0, len(list))
	for _, bd := range list {
		out = append(out, metaBinding{ID: bd.id, BindingSpec: bd.spec, Created: bd.created})
	}
	return out
}

// Views lists the filtered views as topics, sorted by name. A view has its
// source's partition count and config; Source names the source.
func (b *Broker) Views() []TopicInfo {
	fs := b.fset.Load()
	if fs == nil {
		return nil
	}
	var out []TopicInfo
	for _, bd := range fs.list {
		if !bd.isView() {
			continue
		}
		if info, err := b.viewInfo(bd); err == nil {
			out = append(out, info)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// View describes a filtered view as a topic, or returns ErrUnknownTopic
// (also when its source topic is gone).
func (b *Broker) View(name string) (TopicInfo, error) {
	bd := b.viewBinding(name)
	if bd == nil {
		return TopicInfo{}, fmt.Errorf("view %q: %w", name, ErrUnknownTopic)
	}
	return b.viewInfo(bd)
}

// ViewByID describes the view with the given topic id.
func (b *Broker) ViewByID(id [16]byte) (TopicInfo, error) {
	if fs := b.fset.Load(); fs != nil {
		for _, bd := range fs.list {
			if bd.isView() && bd.viewID() == id {
				return b.viewInfo(bd)
			}
		}
	}
	return TopicInfo{}, fmt.Errorf("topic id %x: %w", id, ErrUnknownTopic)
}

func (b *Broker) viewInfo(bd *binding) (TopicInfo, error) {
	src, err := b.Topic(bd.spec.Topic)
	if err != nil {
		return TopicInfo{}, fmt.Errorf("view %q: source: %w", bd.spec.View, err)
	}
	return TopicInfo{Name: bd.spec.View, ID: bd.viewID(), Partitions: src.Partitions, Config: src.Config, Overrides: map[string]string{}, Source: bd.spec.Topic}, nil
}

// readPartition resolves a topic or a view to the partition to read from;
// for a view it also returns the view's binding.
func (b *Broker) readPartition(name string, idx int32) (*partition, *binding, error) {
	p, _, err := b.partition(name, idx)
	if err == nil {
		return p, nil, nil
	}
	bd := b.viewBinding(name)
	if bd == nil {
		return nil, nil, err
	}
	p, _, err = b.partition(bd.spec.Topic, idx)
	if err != nil {
		return nil, nil, fmt.Errorf("view %q: %w", name, err)
	}
	return p, bd, nil
}

// viewError explains why a view cannot be written to, or is nil.
func (b *Broker) viewError(name string) error {
	if bd := b.viewBinding(name); bd != nil {
		return fmt.Errorf("%w: %q is a filtered view of %q and is read-only", ErrInvalidTopic, name, bd.spec.Topic)
	}
	return nil
}

// --- produce path ---

// filterScratch holds the buffers of one batch's trip through filters,
// recycled across batches.
type filterScratch struct {
	recs  []wasm.Record
	hdrs  []wasm.Header
	decs  []wasm.Decision
	batch []record.Record // records to encode
	dec   []record.Record // records decoded
}

// decode decodes the batch at the start of raw into s's buffers.
func (s *filterScratch) decode(raw []byte) (record.Batch, error) {
	bt, _, err := record.DecodeBatchInto(raw, 0, s.dec)
	if cap(bt.Records) > cap(s.dec) {
		s.dec = bt.Records[:0]
	}
	return bt, err
}

var filterScratchPool = sync.Pool{New: func() any { return new(filterScratch) }}

// maxPooledRecords keeps huge batches' buffers out of the pool.
const maxPooledRecords = 1 << 14

func getScratch() *filterScratch { return filterScratchPool.Get().(*filterScratch) }

func putScratch(s *filterScratch) {
	if cap(s.recs) > maxPooledRecords || cap(s.hdrs) > maxPooledRecords || cap(s.decs) > maxPooledRecords || cap(s.batch) > maxPooledRecords || cap(s.dec) > maxPooledRecords {
		return
	}
	clear(s.dec[:cap(s.dec)])
	clear(s.recs[:cap(s.recs)])
	clear(s.hdrs[:cap(s.hdrs)])
	clear(s.decs[:cap(s.decs)])
	clear(s.batch[:cap(s.batch)])
	filterScratchPool.Put(s)
}

// toWasm converts decoded records for the guest into s's buffers, with
// offsets relative to base (the produce path hands the guest positions).
func (s *filterScratch) toWasm(recs []record.Record, base int64) []wasm.Record {
	out := slices.Grow(s.recs[:0], len(recs))[:len(recs)]
	n := 0
	for i := range recs {
		n += len(recs[i].Headers)
	}
	arena := slices.Grow(s.hdrs[:0], n)
	defer func() { s.recs, s.hdrs = out, arena }()
	for i := range recs {
		r := &recs[i]
		w := wasm.Record{Offset: r.Offset - base, Timestamp: r.Timestamp, Key: r.Key, Value: r.Value}
		if len(r.Headers) > 0 {
			start := len(arena)
			for _, h := range r.Headers {
				arena = append(arena, wasm.Header{Key: h.Key, Value: h.Value})
			}
			w.Headers = arena[start:len(arena):len(arena)]
		}
		out[i] = w
	}
	return out
}

// fromWasm converts records back for encoding, with offsets shifted by
// base, or all zero (AppendBatch then numbers them). dst's backing array
// is reused.
func fromWasm(dst []record.Record, recs []wasm.Record, base int64, zero bool) []record.Record {
	out := slices.Grow(dst[:0], len(recs))[:len(recs)]
	for i := range recs {
		w := &recs[i]
		r := record.Record{Offset: w.Offset + base, Timestamp: w.Timestamp, Key: w.Key, Value: w.Value}
		if zero {
			r.Offset = 0
		}
		if len(w.Headers) > 0 {
			r.Headers = make([]record.Header, len(w.Headers))
			for j, h := range w.Headers {
				r.Headers[j] = record.Header{Key: h.Key, Value: h.Value}
			}
		}
		out[i] = r
	}
	return out
}

// chainResult is what a produce chain made of one batch.
type chainResult struct {
	keep   []wasm.Record            // for the source partition, in order
	routes map[string][]wasm.Record // other topics
	dead   map[string][]wasm.Record // dead-letter topics
	// changed is false when every record went through untouched, so the
	// producer's bytes can be appended as they are.
	changed bool
}

func addTo(m *map[string][]wasm.Record, topic string, r wasm.Record) {
	if *m == nil {
		*m = make(map[string][]wasm.Record)
	}
	(*m)[topic] = append((*m)[topic], r)
}

// withFilterError returns r with the failure header added.
func withFilterError(r wasm.Record, cause string) wasm.Record {
	hs := make([]wasm.Header, 0, len(r.Headers)+1)
	hs = append(hs, r.Headers...)
	r.Headers = append(hs, wasm.Header{Key: FilterErrorHeader, Value: []byte(cause)})
	return r
}

// runProduceChain runs recs through the chain, in bind order. A rejection,
// or a failure under OnError reject, returns a *FilterError.
func (b *Broker) runProduceChain(s *filterScratch, chain []*binding, topic string, partition int32, recs []wasm.Record) (chainResult, error) {
	var res chainResult
	for _, bd := range chain {
		if len(recs) == 0 {
			break
		}
		decs, skip, err := b.runFilter(s, bd, wasm.ProducePath, topic, partition, recs)
		if skip {
			continue
		}
		c := &bd.counters
		if err != nil {
			switch {
			case bd.onError == OnErrorPass:
				c.passed.Add(1)
				continue
			case bd.onError == OnErrorDrop:
				c.dropped.Add(int64(len(recs)))
				recs, res.changed = nil, true
			case bd.deadTo != "":
				cause := err.Error()
				for _, r := range recs {
					addTo(&res.dead, bd.deadTo, withFilterError(r, cause))
				}
				c.deadLettered.Add(int64(len(recs)))
				recs, res.changed = nil, true
			default:
				c.rejected.Add(1)
				return res, &FilterError{Binding: bd.id, Filter: bd.spec.Filter, Message: err.Error(), Err: err}
			}
			continue
		}
		// next is built from the first decision that is not a keep on.
		var next []wasm.Record
		changed := false
		var kept, rewritten, dropped, routed int64
		for i := range decs {
			d := &decs[i]
			r := recs[i]
			if d.Action == wasm.Keep {
				kept++
				if changed {
					next = append(next, r)
				}
				continue
			}
			if !changed {
				changed = true
				next = make([]wasm.Record, i, len(recs))
				copy(next, recs[:i])
			}
			switch d.Action {
			case wasm.Drop:
				dropped++
			case wasm.Rewrite:
				rewritten++
				r.Key, r.Value, r.Headers = d.Key, d.Value, d.Headers
				next = append(next, r)
			case wasm.Route:
				routed++
				if d.Rewritten {
					r.Key, r.Value, r.Headers = d.Key, d.Value, d.Headers
				}
				for _, t := range d.Topics {
					if t == topic {
						next = append(next, r)
					} else {
						addTo(&res.routes, t, r)
					}
				}
			case wasm.Reject:
				c.rejected.Add(1)
				return res, &FilterError{Binding: bd.id, Filter: bd.spec.Filter, Message: d.Message}
			default:
				c.failures.Add(1)
				c.rejected.Add(1)
				err := fmt.Errorf("%w: unknown action %d", wasm.ErrFilterFailed, d.Action)
				return res, &FilterError{Binding: bd.id, Filter: bd.spec.Filter, Message: err.Error(), Err: err}
			}
		}
		c.kept.Add(kept)
		c.rewritten.Add(rewritten)
		c.dropped.Add(dropped)
		c.routed.Add(routed)
		if changed {
			recs, res.changed = next, true
		}
	}
	res.keep = recs
	return res, nil
}

// filteredBatch is one producer batch after the chain: what to append to
// the source partition, and the producer's header for sequence checks.
type filteredBatch struct {
	hdr  commitlog.BatchHeader
	data []byte
	res  chainResult
}

// produceFiltered runs each batch of a produce through the topic's chain
// and appends the outcome. The records kept are appended as one batch per
// producer batch, with the producer's codec, id, epoch and base sequence;
// when the chain removed records, an empty batch follows that takes the
// producer's remaining sequence numbers (and offsets), so that idempotent
// sequences stay whole across restarts. Nothing is appended when a batch is
// rejected. It returns the base offset and the other partitions written to
// (routes, dead letters), which must be made durable with the produce.
func (b *Broker) produceFiltered(p *partition, pr ProducePartition, hdrs []commitlog.BatchHeader, chain []*binding) (int64, []*partition, error) {
	out := make([]filteredBatch, 0, len(hdrs))
	// The records of every batch stay referenced until the routes are
	// appended: one scratch per batch.
	var scratches []*filterScratch
	defer func() {
		for _, s := range scratches {
			putScratch(s)
		}
	}()
	pos := 0
	for _, h := range hdrs {
		raw := pr.Records[pos : pos+int(h.Length)]
		pos += int(h.Length)
		s := getScratch()
		scratches = append(scratches, s)
		bt, err := s.decode(raw)
		if err != nil {
			return -1, nil, fmt.Errorf("%s-%d: %w: %v", pr.Topic, pr.Partition, ErrCorruptBatch, err)
		}
		res, err := b.runProduceChain(s, chain, pr.Topic, pr.Partition, s.toWasm(bt.Records, bt.BaseOffset))
		if err != nil {
			return -1, nil, fmt.Errorf("%s-%d: %w", pr.Topic, pr.Partition, err)
		}
		data := raw
		if res.changed {
			if data, err = encodeFiltered(s, bt, h, res.keep); err != nil {
				return -1, nil, fmt.Errorf("%s-%d: re-encode filtered batch: %w", pr.Topic, pr.Partition, err)
			}
		}
		out = append(out, filteredBatch{hdr: h, data: data, res: res})
	}
	// Resolve every route and dead-letter target before appending
	// anything, so that a bad target fails the produce whole.
	targets := make(map[string]*topic)
	for _, fb := range out {
		for _, m := range []map[string][]wasm.Record{fb.res.routes, fb.res.dead} {
			for name := range m {
				if _, ok := targets[name]; ok {
					continue
				}
				t, err := b.routeTarget(name)
				if err != nil {
					return -1, nil, fmt.Errorf("%s-%d: route: %w", pr.Topic, pr.Partition, err)
				}
				targets[name] = t
			}
		}
	}
	size := 0
	for _, fb := range out {
		size += len(fb.data)
	}
	if err := b.reserveDisk(int64(size)); err != nil {
		return -1, nil, err
	}
	base, dups, err := p.appendFiltered(out)
	if err != nil {
		return -1, nil, fmt.Errorf("%s-%d: %w", pr.Topic, pr.Partition, err)
	}
	// Routed and dead-lettered records of the batches just appended (not
	// of duplicates, whose records went out the first time).
	byPart := make(map[*partition][]wasm.Record)
	var order []*partition
	codec := record.None
	for i, fb := range out {
		if dups[i] {
			continue
		}
		codec = record.Codec(fb.hdr.Attributes & record.AttrCodecMask)
		for _, m := range []map[string][]wasm.Record{fb.res.routes, fb.res.dead} {
			for name, recs := range m {
				t := targets[name]
				for _, r := range recs {
					tp := t.partitions[routePartition(r.Key, pr.Partition, len(t.partitions))]
					if _, ok := byPart[tp]; !ok {
						order = append(order, tp)
					}
					byPart[tp] = append(byPart[tp], r)
				}
			}
		}
	}
	var extra []*partition
	for _, tp := range order {
		if err := b.appendRecords(tp, byPart[tp], codec); err != nil {
			return base, extra, fmt.Errorf("%s-%d: route to %s-%d: %w", pr.Topic, pr.Partition, tp.topic, tp.idx, err)
		}
		extra = append(extra, tp)
	}
	return base, extra, nil
}

// encodeFiltered encodes what the chain kept of bt for the source
// partition: a batch of the kept records (dense offsets, as the log
// requires), then, if records were removed, an empty batch spanning the
// rest of the producer's offsets and sequence numbers.
func encodeFiltered(s *filterScratch, bt record.Batch, h commitlog.BatchHeader, keep []wasm.Record) ([]byte, error) {
	n := int64(h.LastOffsetDelta) + 1
	k := int64(len(keep))
	opts := record.EncodeOptions{
		Codec:         bt.Codec(),
		ProducerID:    bt.ProducerID,
		ProducerEpoch: bt.ProducerEpoch,
		BaseSequence:  bt.BaseSequence,
		LogAppendTime: bt.IsLogAppendTime(),
	}
	var dst []byte
	var err error
	if k > 0 {
		s.batch = fromWasm(s.batch, keep, 0, true)
		dst, err = record.AppendBatch(nil, s.batch, opts)
		if err != nil {
			return nil, err
		}
	}
	if k < n {
		rest := opts
		rest.Span, rest.BaseOffset, rest.LastOffsetDelta, rest.MaxTimestamp = true, k, int32(n-k-1), bt.MaxTimestamp
		if bt.BaseSequence >= 0 {
			rest.BaseSequence = int32((int64(bt.BaseSequence) + k) % (1 << 31))
		}
		dst, err = record.AppendBatch(dst, nil, rest)
		if err != nil {
			return nil, err
		}
	}
	return dst, nil
}

// appendFiltered appends the filtered batches, checking each producer
// batch's sequence against its original header. dups marks the batches
// that were duplicates (answered with their original offset).
func (p *partition) appendFiltered(out []filteredBatch) (int64, []bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	first := int64(-1)
	dups := make([]bool, len(out))
	for i := range out {
		fb := &out[i]
		off, dup, err := p.checkSequence(fb.hdr)
		if err != nil {
			return -1, dups, err
		}
		if dup {
			dups[i] = true
		} else {
			base, _, err := p.log.Append(fb.data)
			if err != nil {
				return -1, dups, storageError(err)
			}
			off = base
			p.recordSequence(fb.hdr, base)
		}
		if first < 0 {
			first = off
		}
	}
	return first, dups, nil
}

// routeTarget returns a topic that routed or dead-lettered records go to,
// creating it when auto-creation is on.
func (b *Broker) routeTarget(name string) (*topic, error) {
	if err := b.viewError(name); err != nil {
		return nil, err
	}
	if err := ValidTopicName(name); err != nil {
		return nil, err
	}
	if _, err := b.AutoCreate(name); err != nil {
		return nil, err
	}
	b.mu.RLock()
	t, ok := b.topics[name]
	b.mu.RUnlock()
	if !ok {
		return nil, fmt.Errorf("topic %q: %w", name, ErrUnknownTopic)
	}
	return t, nil
}

// routePartition picks the partition of a routed record: by key as Kafka's
// default partitioner does (murmur2), else the source partition's index.
func routePartition(key []byte, src int32, n int) int {
	if n <= 1 {
		return 0
	}
	if key != nil {
		return int(KeyPartition(key, int32(n)))
	}
	return int(src) % n
}

// appendRecords encodes records as one batch (no producer) and appends it
// to p, bypassing p's produce bindings. The caller makes it durable.
func (b *Broker) appendRecords(p *partition, recs []wasm.Record, codec record.Codec) error {
	data, err := record.AppendBatch(nil, fromWasm(nil, recs, 0, true), record.EncodeOptions{Codec: codec})
	if err != nil {
		return err
	}
	if err := b.reserveDisk(int64(len(data))); err != nil {
		return err
	}
	hdr, err := commitlog.ParseHeader(data)
	if err != nil {
		return err
	}
	hdr.ProducerID = -1
	_, err = p.append(data, []commitlog.BatchHeader{hdr})
	return err
}

// --- filter logs ---

// filterLogQueue bounds the log lines waiting to be appended. When it is
// full, lines are dropped and counted: logging never slows records down.
const filterLogQueue = 4096

type filterLogLine struct {
	filter, binding, version, stream, line string
	ts                                     int64
}

// filterLogger appends what modules write to FilterLogsTopic, off the
// produce and fetch paths.
type filterLogger struct {
	b       *Broker
	ch      chan filterLogLine
	written atomic.Int64
	dropped atomic.Int64
}

func newFilterLogger(b *Broker) *filterLogger {
	return &filterLogger{b: b, ch: make(chan filterLogLine, filterLogQueue)}
}

func (l *filterLogger) enqueue(bd *binding, version int, lines []wasm.LogLine) {
	l.enqueueFor(bd.spec.Filter, bd.id, version, lines)
}

// enqueueSub queues the log lines of a per-subscription filter, which has
// no binding.
func (l *filterLogger) enqueueSub(filter string, version int, lines []wasm.LogLine) {
	l.enqueueFor(filter, "subscription", version, lines)
}

func (l *filterLogger) enqueueFor(filter, bindingID string, version int, lines []wasm.LogLine) {
	if l == nil {
		return
	}
	now := l.b.opts.Now().UnixMilli()
	v := fmt.Sprint(version)
	for _, ln := range lines {
		select {
		case l.ch <- filterLogLine{filter: filter, binding: bindingID, version: v, stream: ln.Stream, line: ln.Line, ts: now}:
		default:
			l.dropped.Add(1)
		}
	}
}

// run appends queued lines in batches until the broker closes, then
// appends what is left.
func (l *filterLogger) run(ctx context.Context) {
	defer l.b.bg.Done()
	buf := make([]filterLogLine, 0, 512)
	for {
		select {
		case ln := <-l.ch:
			buf = append(buf[:0], ln)
		case <-ctx.Done():
			for {
				buf = buf[:0]
			drain:
				for len(buf) < cap(buf) {
					select {
					case ln := <-l.ch:
						buf = append(buf, ln)
					default:
						break drain
					}
				}
				if len(buf) == 0 {
					return
				}
				l.write(buf)
			}
		}
	more:
		for len(buf) < cap(buf) {
			select {
			case ln := <-l.ch:
				buf = append(buf, ln)
			default:
				break more
			}
		}
		l.write(buf)
	}
}

func (l *filterLogger) write(lines []filterLogLine) {
	b := l.b
	if _, err := b.Topic(FilterLogsTopic); err != nil {
		if _, err := b.CreateTopic(FilterLogsTopic, 1, nil, false); err != nil && !errors.Is(err, ErrTopicExists) {
			l.dropped.Add(int64(len(lines)))
			b.logger.Warn("filter logs: cannot create topic", "topic", FilterLogsTopic, "err", err)
			return
		}
	}
	p, _, err := b.partition(FilterLogsTopic, 0)
	if err != nil {
		l.dropped.Add(int64(len(lines)))
		return
	}
	recs := make([]wasm.Record, len(lines))
	for i, ln := range lines {
		recs[i] = wasm.Record{Timestamp: ln.ts, Key: []byte(ln.filter), Value: []byte(ln.line), Headers: []wasm.Header{
			{Key: "stream", Value: []byte(ln.stream)},
			{Key: "binding", Value: []byte(ln.binding)},
			{Key: "version", Value: []byte(ln.version)},
		}}
	}
	if err := b.appendRecords(p, recs, record.None); err != nil {
		l.dropped.Add(int64(len(lines)))
		b.logger.Warn("filter logs: append failed", "err", err)
		return
	}
	l.written.Add(int64(len(lines)))
	if p.flushPolicy() == FlushAlways {
		if _, err := p.log.Sync(); err != nil {
			b.logger.Warn("filter logs: fsync failed", "err", err)
		}
	}
	p.notify()
}

// FilterLogStats reports the filter log lines appended to FilterLogsTopic
// and those dropped because the queue was full or the append failed.
func (b *Broker) FilterLogStats() (written, dropped int64) {
	if b.flog == nil {
		return 0, 0
	}
	return b.flog.written.Load(), b.flog.dropped.Load()
}
