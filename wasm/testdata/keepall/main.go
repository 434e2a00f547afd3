// keepall keeps every record, with as little work as possible: it reads
// the record count and writes that many keep decisions.
package main

import "github.com/samsa-broker/samsa/wasm/testdata/guest"

func main() {}

//go:wasmexport samsa_abi_version
func abiVersion() int32 { return 1 }

//go:wasmexport samsa_alloc
func alloc(size int32) uint32 { return guest.Alloc(size) }

//go:wasmexport samsa_init
func initf(ptr, n uint32) int32 { guest.Init(n); return 0 }

//go:wasmexport samsa_filter
func filter(ptr, n uint32) int64 {
	cnt := guest.Count(n)
	o := guest.Start(cnt)
	for i := 0; i < cnt; i++ {
		o.Keep()
	}
	return o.Result()
}
