// rejecter rejects the batch when a value is "bad", with the message given
// by the parameters ({"message":"..."}), drops values "drop" and keeps the
// rest. samsa_init fails (returns 1, says why on stderr) when the
// parameters are not of that form; samsa_filter returns -1 (a guest error)
// for a value "fail".
package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/samsa-broker/samsa/wasm/testdata/guest"
)

func main() {}

var message string

//go:wasmexport samsa_abi_version
func abiVersion() int32 { return 1 }

//go:wasmexport samsa_alloc
func alloc(size int32) uint32 { return guest.Alloc(size) }

//go:wasmexport samsa_init
func initf(ptr, n uint32) int32 {
	p := string(guest.Init(n))
	const pre, post = `{"message":"`, `"}`
	if !strings.HasPrefix(p, pre) || !strings.HasSuffix(p, post) {
		fmt.Fprintf(os.Stderr, "rejecter: bad parameters %q\n", p)
		return 1
	}
	message = p[len(pre) : len(p)-len(post)]
	return 0
}

//go:wasmexport samsa_filter
func filter(ptr, n uint32) int64 {
	b := guest.Parse(n)
	o := guest.Start(len(b.Records))
	for i := range b.Records {
		switch string(b.Records[i].Value) {
		case "bad":
			o.Reject(message)
		case "drop":
			o.Drop()
		case "fail":
			fmt.Fprintln(os.Stderr, "rejecter: asked to fail")
			return -1
		default:
			o.Keep()
		}
	}
	return o.Result()
}
