// nofilter lacks the samsa_filter export.
package main

import "github.com/samsa-broker/samsa/wasm/testdata/guest"

func main() {}

//go:wasmexport samsa_abi_version
func abiVersion() int32 { return 1 }

//go:wasmexport samsa_alloc
func alloc(size int32) uint32 { return guest.Alloc(size) }

//go:wasmexport samsa_init
func initf(ptr, n uint32) int32 { guest.Init(n); return 0 }
