// router routes by value: "copy" to the source topic and "copies";
// "rw" to "rewritten" with the value "routed" and a header; "drop" is
// dropped; anything else to the topic named by the key (kept if null).
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
	b := guest.Parse(n)
	o := guest.Start(len(b.Records))
	for i := range b.Records {
		r := &b.Records[i]
		switch string(r.Value) {
		case "copy":
			o.Route([]string{b.Topic, "copies"}, false, nil, nil, nil)
		case "rw":
			o.Route([]string{"rewritten"}, true, r.Key, []byte("routed"), []guest.Header{{Key: "via", Value: []byte("router")}, {Key: "null"}})
		case "drop":
			o.Drop()
		default:
			if r.Key == nil {
				o.Keep()
			} else {
				o.Route([]string{string(r.Key)}, false, nil, nil, nil)
			}
		}
	}
	return o.Result()
}
