// upper rewrites every value to upper case (keys and headers unchanged)
// and prints one line to stdout per batch.
package main

import (
	"fmt"

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
	o := guest.Start(len(b.Records))
	for i := range b.Records {
		r := &b.Records[i]
		v := r.Value
		if v != nil {
			v = upper(v)
		}
		o.Rewrite(r.Key, v, r.Headers)
	}
	fmt.Printf("upper: %d records from %s/%d\n", len(b.Records), b.Topic, b.Partition)
	return o.Result()
}

var buf []byte

func upper(v []byte) []byte {
	buf = append(buf[:0], v...)
	for i, c := range buf {
		if 'a' <= c && c <= 'z' {
			buf[i] = c - 'a' + 'A'
		}
	}
	return buf
}
