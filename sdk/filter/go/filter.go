// Package filter is the Go SDK for samsa Wasm filters.
//
// A filter is a WebAssembly module that the broker runs on the produce path
// of a topic (before append) or on the consume path (a filtered view or a
// WebSocket subscription). The broker hands the module a whole [Batch] at a
// time and gets one [Decision] per record back. The contract is written down
// in wasm/ABI.md (ABI version 1); this package implements it so that a filter
// is a plain Go function or type:
//
//	package main
//
//	import filter "github.com/samsa-broker/samsa/sdk/filter/go"
//
//	func init() {
//		filter.Handle(filter.HandlerFunc(func(b *filter.Batch, params []byte) ([]filter.Decision, error) {
//			ds := make([]filter.Decision, len(b.Records))
//			for i, r := range b.Records {
//				if len(r.Value) == 0 {
//					ds[i] = filter.Drop()
//				} else {
//					ds[i] = filter.Keep()
//				}
//			}
//			return ds, nil
//		}))
//	}
//
//	func main() {} // required by the go tool, never run
//
// Build it as a WASI reactor:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o f.wasm .
//
// Everything except the wasm exports (the file built only for wasip1) is
// plain Go, so a filter's logic is unit-tested on the host with `go test`;
// the filtertest package runs a handler through the same encoding the broker
// uses.
//
// What the filter writes to stdout and stderr (fmt.Println, log, ...) lands
// in the broker's filter log topic, one record per line.
package filter

import (
	"errors"
	"fmt"
	"strconv"
)

// ABIVersion is the version of the guest ABI this package implements.
const ABIVersion = 1

// Header is one record header. Value nil means a null header value.
type Header struct {
	Key   string
	Value []byte
}

// Record is one record of a batch. Key and Value are nil for a null key or
// value, and non-nil (possibly empty) otherwise.
type Record struct {
	// Offset is the record's offset in the source partition; on the produce
	// path it is the record's position in the batch (0, 1, 2 ...).
	Offset int64
	// Timestamp is in milliseconds since the Unix epoch.
	Timestamp int64
	Key       []byte
	Value     []byte
	Headers   []Header
}

// Header returns the value of the first header named key, and whether there
// is one.
func (r *Record) Header(key string) ([]byte, bool) {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value, true
		}
	}
	return nil, false
}

// Batch is the unit of work: the records of one call, all from one
// partition of one topic.
type Batch struct {
	Topic     string
	Partition int32
	Records   []Record
}

// Action is what happens to a record.
type Action uint8

// The actions of ABI version 1. Route and Reject are allowed on the produce
// path only; on the consume path the broker treats them as a failure.
const (
	ActionKeep    Action = 0
	ActionDrop    Action = 1
	ActionRewrite Action = 2
	ActionRoute   Action = 3
	ActionReject  Action = 4
)

func (a Action) String() string {
	switch a {
	case ActionKeep:
		return "keep"
	case ActionDrop:
		return "drop"
	case ActionRewrite:
		return "rewrite"
	case ActionRoute:
		return "route"
	case ActionReject:
		return "reject"
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// Decision is what a filter decides for one record. Build one with [Keep],
// [Drop], [Rewrite], [Route], [RouteRewrite] or [Reject]; the fields are
// exported so that tests can look at them.
type Decision struct {
	Action Action
	// Topics are the destinations of a route.
	Topics []string
	// HasRewrite tells whether a route also rewrites the record. It is always
	// true for ActionRewrite.
	HasRewrite bool
	// Key, Value and Headers replace the record's whole (offset and
	// timestamp are kept) for a rewrite, or a route with HasRewrite.
	Key     []byte
	Value   []byte
	Headers []Header
	// Message is the reason of a reject; the producer sees it.
	Message string
}

// Keep passes the record on unchanged.
func Keep() Decision { return Decision{Action: ActionKeep} }

// Drop removes the record.
func Drop() Decision { return Decision{Action: ActionDrop} }

// Rewrite passes the record on with this key, value and headers instead of
// its own (all three are replaced; pass the record's own to keep them). A nil
// key or value is null.
func Rewrite(key, value []byte, headers []Header) Decision {
	return Decision{Action: ActionRewrite, HasRewrite: true, Key: key, Value: value, Headers: headers}
}

// Route sends the record to each of topics instead of the source topic;
// list the source topic to keep it there too. Produce path only. No topics
// at all means the record goes nowhere.
func Route(topics ...string) Decision {
	return Decision{Action: ActionRoute, Topics: topics}
}

// RouteRewrite is [Route] with the record rewritten as by [Rewrite].
func RouteRewrite(topics []string, key, value []byte, headers []Header) Decision {
	return Decision{Action: ActionRoute, Topics: topics, HasRewrite: true, Key: key, Value: value, Headers: headers}
}

// Reject fails the whole produce request for the partition with msg (the
// producer gets POLICY_VIOLATION with this message); nothing of the batch is
// appended. Produce path only.
func Reject(msg string) Decision { return Decision{Action: ActionReject, Message: msg} }

func (d Decision) String() string {
	switch d.Action {
	case ActionRewrite:
		return fmt.Sprintf("rewrite(key=%q value=%q headers=%d)", d.Key, d.Value, len(d.Headers))
	case ActionRoute:
		if d.HasRewrite {
			return fmt.Sprintf("route(%q, key=%q value=%q headers=%d)", d.Topics, d.Key, d.Value, len(d.Headers))
		}
		return fmt.Sprintf("route(%q)", d.Topics)
	case ActionReject:
		return fmt.Sprintf("reject(%q)", d.Message)
	}
	return d.Action.String()
}

// Handler is a filter. Filter is called once per batch and must return
// exactly one decision per record, in order; an error fails the whole batch
// (the binding's error policy decides what happens to it) and its text is
// written to stderr. params is the binding's parameters (a JSON document,
// or empty for none); it is the same for every call of an instance.
//
// A Handler that also implements [Initializer] gets the parameters once,
// before the first batch.
type Handler interface {
	Filter(b *Batch, params []byte) ([]Decision, error)
}

// HandlerFunc adapts a function to a [Handler].
type HandlerFunc func(b *Batch, params []byte) ([]Decision, error)

// Filter calls f(b, params).
func (f HandlerFunc) Filter(b *Batch, params []byte) ([]Decision, error) { return f(b, params) }

// Initializer is implemented by a [Handler] that wants to check or parse its
// parameters once per instance (the broker pools instances per binding, and
// every instance of a binding has the same parameters). An error fails the
// instance: the broker logs it and does not use the module.
type Initializer interface {
	Init(params []byte) error
}

// Instance is one filter instance in plain Go: what the wasm exports do,
// without wasm. The wasm glue uses one per module; tests (see package
// filtertest) and tools may make their own.
type Instance struct {
	h      Handler
	params []byte
	out    []byte
}

// NewInstance makes an instance of h with the given parameters, calling
// h.Init(params) if h is an [Initializer].
func NewInstance(h Handler, params []byte) (inst *Instance, err error) {
	if h == nil {
		return nil, errors.New("samsa filter: no handler registered (call filter.Handle from an init function)")
	}
	if i, ok := h.(Initializer); ok {
		defer func() {
			if p := recover(); p != nil {
				inst, err = nil, fmt.Errorf("samsa filter: init panicked: %v", p)
			}
		}()
		if err := i.Init(params); err != nil {
			return nil, fmt.Errorf("samsa filter: init: %w", err)
		}
	}
	return &Instance{h: h, params: params}, nil
}

// Process decodes an input batch, runs the handler and encodes its
// decisions. The result is valid until the next call of Process.
func (in *Instance) Process(input []byte) ([]byte, error) {
	b, err := DecodeBatch(input)
	if err != nil {
		return nil, fmt.Errorf("samsa filter: %w", err)
	}
	ds, err := in.Filter(&b)
	if err != nil {
		return nil, err
	}
	in.out = AppendDecisions(in.out[:0], ds)
	return in.out, nil
}

// Filter runs the handler on b and checks that it returned one decision per
// record. A panic in the handler is returned as an error.
func (in *Instance) Filter(b *Batch) (ds []Decision, err error) {
	n := len(b.Records)
	defer func() {
		if p := recover(); p != nil {
			ds, err = nil, fmt.Errorf("samsa filter: handler panicked: %v", p)
		}
	}()
	ds, err = in.h.Filter(b, in.params)
	if err != nil {
		return nil, fmt.Errorf("samsa filter: %w", err)
	}
	if len(ds) != n {
		return nil, fmt.Errorf("samsa filter: handler returned %d decisions for %d records", len(ds), n)
	}
	for i, d := range ds {
		if d.Action > ActionReject {
			return nil, fmt.Errorf("samsa filter: decision %d: unknown action %d", i, d.Action)
		}
	}
	return ds, nil
}

var registered Handler

// Handle registers the module's handler. Call it from an init function of
// package main; the last call wins.
func Handle(h Handler) { registered = h }

// Registered returns the handler given to [Handle], or nil.
func Registered() Handler { return registered }
