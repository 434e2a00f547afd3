// Command testfilter is a samsa filter for the CLI's tests, written against
// the ABI directly (no SDK). Per record, by value:
//
//	contains params.drop (default "drop")  → drop
//	"reject…"                               → reject "value says reject"
//	"route…"                                → route to TOPIC.routed and TOPIC
//	"upper:…"                               → rewrite the value to upper case, header seen=yes
//	"trap"                                  → the call traps (a failure)
//	anything else                           → keep
//
// It logs one stderr line per batch and one stdout line per rewrite.
// samsa_init fails when the parameters are not a JSON object.
package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"unsafe"
)

func main() {}

var (
	inBuf    []byte
	outBuf   []byte
	dropWord = "drop"
)

var le = binary.LittleEndian

func ptr(b []byte) int32 { return int32(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }

//go:wasmexport samsa_abi_version
func abiVersion() int32 { return 1 }

//go:wasmexport samsa_alloc
func alloc(size int32) int32 {
	if cap(inBuf) < int(size)+1 {
		inBuf = make([]byte, size+1)
	}
	inBuf = inBuf[:size]
	return ptr(inBuf[:1])
}

//go:wasmexport samsa_init
func initParams(p, n int32) int32 {
	if n == 0 {
		return 0
	}
	var params struct {
		Drop string `json:"drop"`
	}
	if err := json.Unmarshal(inBuf[:n], &params); err != nil {
		fmt.Fprintln(os.Stderr, "bad params:", err)
		return 1
	}
	if params.Drop != "" {
		dropWord = params.Drop
	}
	return 0
}

type reader struct {
	b []byte
	i int
}

func (r *reader) u32() uint32 { v := le.Uint32(r.b[r.i:]); r.i += 4; return v }
func (r *reader) u64() uint64 { v := le.Uint64(r.b[r.i:]); r.i += 8; return v }
func (r *reader) str() string { n := int(r.u32()); s := string(r.b[r.i : r.i+n]); r.i += n; return s }
func (r *reader) bytes() []byte {
	n := int32(r.u32())
	if n < 0 {
		return nil
	}
	b := r.b[r.i : r.i+int(n)]
	r.i += int(n)
	return b
}

func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return le.AppendUint32(dst, 0xffffffff)
	}
	return append(le.AppendUint32(dst, uint32(len(b))), b...)
}

func appendString(dst []byte, s string) []byte {
	return append(le.AppendUint32(dst, uint32(len(s))), s...)
}

//go:wasmexport samsa_filter
func filter(p, n int32) int64 {
	r := &reader{b: inBuf[:n]}
	r.u32() // abi version
	topic := r.str()
	r.u32() // partition
	count := r.u32()
	out := le.AppendUint32(outBuf[:0], count)
	fmt.Fprintf(os.Stderr, "batch of %d records on %s\n", count, topic)
	for range count {
		r.u64() // offset
		r.u64() // timestamp
		key := r.bytes()
		value := r.bytes()
		type hdr struct {
			k string
			v []byte
		}
		var hs []hdr
		for range r.u32() {
			hs = append(hs, hdr{r.str(), r.bytes()})
		}
		v := string(value)
		switch {
		case v == "trap":
			panic("asked to trap")
		case strings.Contains(v, dropWord):
			out = append(out, 1)
		case strings.HasPrefix(v, "reject"):
			out = append(out, 4)
			out = appendString(out, "value says reject")
		case strings.HasPrefix(v, "route"):
			out = append(out, 3)
			out = le.AppendUint32(out, 2)
			out = appendString(out, topic+".routed")
			out = appendString(out, topic)
			out = append(out, 0)
		case strings.HasPrefix(v, "upper:"):
			fmt.Println("rewriting", v)
			out = append(out, 2)
			out = appendBytes(out, key)
			out = appendBytes(out, bytes.ToUpper(value[len("upper:"):]))
			out = le.AppendUint32(out, uint32(len(hs)+1))
			for _, h := range hs {
				out = appendString(out, h.k)
				out = appendBytes(out, h.v)
			}
			out = appendString(out, "seen")
			out = appendBytes(out, []byte("yes"))
		default:
			out = append(out, 0)
		}
	}
	outBuf = out
	return int64(uint64(uint32(ptr(out)))<<32 | uint64(len(out)))
}
