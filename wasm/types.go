// Package wasm runs samsa filter modules (WebAssembly, ABI in ABI.md) with
// wazero: a durable registry of versioned modules, validation at deploy,
// and pools of instances that filter record batches under per-binding
// memory and time limits.
//
// # Memory limits
//
// wazero's RuntimeConfig.WithMemoryLimitPages applies to a whole runtime,
// and a module's own declared maximum is whatever its toolchain wrote. The
// host therefore runs every module in one runtime (one compilation of each
// module, shared by every binding) and enforces each binding's MemoryPages
// per instance with wazero's experimental MemoryAllocator hook: every
// instance's linear memory is backed by an allocator that refuses to grow
// past the binding's limit, so memory.grow returns -1 exactly as the ABI
// says. Because the allocator sees the refusal, a failure after one is
// classified as a memory failure, not a plain trap. A module whose initial
// memory is already larger than a binding's limit is refused by NewPool.
package wasm

import (
	"errors"
	"fmt"
	"time"
)

// Header is a record header. A nil Value is null.
type Header struct {
	Key   string
	Value []byte
}

// Record is one record of a batch. A nil Key or Value is null.
type Record struct {
	Offset, Timestamp int64
	Key, Value        []byte
	Headers           []Header
}

// Action is what a filter decides for one record.
type Action uint8

// The actions of ABI version 1.
const (
	Keep    Action = 0
	Drop    Action = 1
	Rewrite Action = 2
	Route   Action = 3
	Reject  Action = 4
)

// Decision is a filter's decision for one record.
type Decision struct {
	Action Action
	// Rewritten is set for Rewrite, and for Route with a rewrite: Key,
	// Value and Headers then replace the record's.
	Rewritten  bool
	Key, Value []byte
	Headers    []Header
	Topics     []string // Route
	Message    string   // Reject
}

// Path is where a filter runs. ConsumePath allows only Keep, Drop and
// Rewrite.
type Path uint8

// The paths.
const (
	ProducePath Path = 0
	ConsumePath Path = 1
)

// Limits bound one binding's instances.
type Limits struct {
	MemoryPages uint32        // 64 KiB pages; 0: 256 (16 MiB)
	Timeout     time.Duration // per batch; 0: 100ms
}

// Default limits.
const (
	DefaultMemoryPages = 256
	DefaultTimeout     = 100 * time.Millisecond
	// MaxParamsBytes bounds a binding's parameters.
	MaxParamsBytes = 64 << 10
	// MaxLogBytesPerCall bounds what one call may write to stdout and
	// stderr together; the rest is cut with a note.
	MaxLogBytesPerCall = 64 << 10
	// MaxInitialPages bounds a module's initial memory (1 GiB).
	MaxInitialPages = 16384
	// DefaultMaxModuleBytes is Options.MaxModuleBytes when 0.
	DefaultMaxModuleBytes = 16 << 20
)

func (l Limits) withDefaults() Limits {
	if l.MemoryPages == 0 {
		l.MemoryPages = DefaultMemoryPages
	}
	if l.MemoryPages > 65536 {
		l.MemoryPages = 65536
	}
	if l.Timeout <= 0 {
		l.Timeout = DefaultTimeout
	}
	return l
}

// LogLine is one line a module wrote to stdout or stderr.
type LogLine struct {
	Stream string // "stdout" or "stderr"
	Line   string
}

// ModuleInfo describes one stored version of a module.
type ModuleInfo struct {
	Name    string
	Version int
	Size    int64
	SHA256  string
	Created time.Time
}

// Sentinel errors; they are always wrapped with details.
var (
	ErrInvalidModule  = errors.New("invalid filter module")
	ErrModuleTooLarge = errors.New("filter module too large")
	ErrUnknownModule  = errors.New("unknown filter module")
	ErrFilterFailed   = errors.New("filter failed")
	// ErrPoolClosed is returned by Run on a closed pool (and wraps
	// nothing else).
	ErrPoolClosed = errors.New("filter pool closed")
	// ErrHostClosed is returned by Host methods after Close.
	ErrHostClosed = errors.New("filter host closed")
)

// FailureKind classifies a filter failure.
type FailureKind string

// The failure kinds.
const (
	FailTrap    FailureKind = "trap"    // trap, unreachable, out-of-bounds, stack exhaustion, the guest exiting
	FailTimeout FailureKind = "timeout" // the batch ran past Limits.Timeout
	FailMemory  FailureKind = "memory"  // memory growth refused at Limits.MemoryPages, or samsa_alloc out of memory
	FailABI     FailureKind = "abi"     // bad pointer/length, undecodable output, wrong count, action not allowed, wrong ABI version
	FailGuest   FailureKind = "guest"   // the guest reported an error: samsa_filter < 0 or samsa_init != 0
)

// FilterError is the error of a failed Run. errors.Is(err,
// ErrFilterFailed) holds for it; Kind says what went wrong.
type FilterError struct {
	Kind   FailureKind
	Module ModuleInfo
	Err    error
}

func (e *FilterError) Error() string {
	switch {
	case e.Module.Version > 0:
		return fmt.Sprintf("filter failed (%s) in %s v%d: %v", e.Kind, e.Module.Name, e.Module.Version, e.Err)
	case e.Module.Name != "":
		return fmt.Sprintf("filter failed (%s) in %s: %v", e.Kind, e.Module.Name, e.Err)
	}
	return fmt.Sprintf("filter failed (%s): %v", e.Kind, e.Err)
}

// Unwrap makes errors.Is(err, ErrFilterFailed) and errors.Is/As on the
// cause work.
func (e *FilterError) Unwrap() []error { return []error{ErrFilterFailed, e.Err} }

// PoolStats are a pool's counters.
type PoolStats struct {
	Runs     uint64 // batches run (including failed ones)
	Failures uint64 // failed batches and instance creations, all kinds
	// Failures by kind.
	Traps, Timeouts, MemoryFailures, ABIFailures, GuestErrors uint64
	// GuestTime is the time spent in calls into the guest (samsa_alloc
	// and samsa_filter) by Runs; the rest of a Run's time is the host's.
	GuestTime time.Duration
	Instances int // live instances, idle and busy
	Idle      int // idle instances
}
