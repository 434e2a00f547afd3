//go:build wasip1

package filter

// The wasm exports of ABI version 1 (wasm/ABI.md). They are compiled only
// for GOOS=wasip1; the module must be built as a reactor
// (-buildmode=c-shared) so that the host calls _initialize, which runs the
// package init functions (and so the user's filter.Handle call), and never
// main.

import (
	"fmt"
	"os"
	"unsafe"
)

var (
	// inBuf is the buffer handed out by the last samsa_alloc, kept here so
	// the GC does not free it before the host's next call. Each call gets a
	// fresh one, so records of a batch stay valid for a filter that keeps
	// them.
	inBuf []byte
	// outBuf is the output of the last samsa_filter; the host copies it out
	// before calling in again. inst reuses its backing array.
	outBuf []byte
	inst   *Instance
)

//go:wasmexport samsa_abi_version
func samsaABIVersion() int32 { return ABIVersion }

//go:wasmexport samsa_alloc
func samsaAlloc(size int32) uint32 {
	if size < 0 {
		return 0
	}
	// At least one byte, so that even size 0 gets a real (non-zero) pointer.
	inBuf = make([]byte, size, max(size, 1))
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(inBuf))))
}

// input returns the n bytes the host wrote at ptr, which must lie inside
// the buffer of the last samsa_alloc.
func input(ptr, n uint32) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	base := uint32(uintptr(unsafe.Pointer(unsafe.SliceData(inBuf))))
	if inBuf == nil || ptr < base || uint64(ptr-base)+uint64(n) > uint64(len(inBuf)) {
		return nil, fmt.Errorf("samsa filter: input at %#x (%d bytes) is not inside the buffer from samsa_alloc", ptr, n)
	}
	return inBuf[ptr-base : ptr-base+n], nil
}

//go:wasmexport samsa_init
func samsaInit(ptr, n uint32) int32 {
	params, err := input(ptr, n)
	inBuf = nil
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	i, err := NewInstance(registered, params)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	inst = i
	return 0
}

//go:wasmexport samsa_filter
func samsaFilter(ptr, n uint32) int64 {
	in, err := input(ptr, n)
	inBuf = nil
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return -1
	}
	if inst == nil {
		fmt.Fprintln(os.Stderr, "samsa filter: samsa_filter called before a successful samsa_init")
		return -1
	}
	out, err := inst.Process(in)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return -1
	}
	outBuf = out
	p := uint32(uintptr(unsafe.Pointer(unsafe.SliceData(outBuf))))
	return int64(uint64(p)<<32 | uint64(uint32(len(outBuf))))
}
