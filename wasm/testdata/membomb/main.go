// membomb keeps every record, unless a value is "membomb": then it allocates until memory runs out.
package main

import (
	"github.com/samsa-broker/samsa/wasm/testdata/guest"
)

func main() {}

//go:wasmexport samsa_abi_version
func abiVersion() int32 { return 1 }

//go:wasmexport samsa_alloc
func alloc(size int32) uint32 { return guest.Alloc(size) }

//go:wasmexport samsa_init
func initf(ptr, n uint32) int32 { guest.Init(n); return 0 }

//go:wasmexport samsa_filter
func filter(ptr, n uint32) int64 {
	b := guest.Parse(n)
	for i := range b.Records {
		if string(b.Records[i].Value) == "membomb" {
			bomb()
		}
	}
	o := guest.Start(len(b.Records))
	for range b.Records {
		o.Keep()
	}
	return o.Result()
}

var hoard [][]byte

func bomb() {
	for {
		b := make([]byte, 1<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		hoard = append(hoard, b)
	}
}
