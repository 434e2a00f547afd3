// Command guest is a samsa filter (ABI version 1) written against the ABI
// directly, for the broker's tests. Its behaviour is chosen at build time:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -ldflags=-X=main.mode=MODE
//
// Modes: keep (keep all), dropodd (drop odd offsets), upper (rewrite values
// to upper case), route (route a record with key K to topic "route-K"; key
// "both" goes to "route-both" and stays; no key stays), reject (reject a
// record whose value contains "bad"), spin (loop forever), log (keep all,
// write a line to stdout and to stderr per batch), dropmost (keep only
// offsets divisible by 10).
package main

import (
	"encoding/binary"
	"os"
	"strconv"
	"strings"
	"unsafe"
)

var mode = "keep"

func main() {}

var (
	in  []byte
	out []byte
)

//go:wasmexport samsa_abi_version
func abiVersion() int32 { return 1 }

//go:wasmexport samsa_alloc
func alloc(size int32) int32 {
	if cap(in) < int(size) {
		in = make([]byte, size)
	}
	in = in[:size]
	if size == 0 {
		in = make([]byte, 1)
	}
	return int32(uintptr(unsafe.Pointer(unsafe.SliceData(in))))
}

//go:wasmexport samsa_init
func initFilter(ptr, n int32) int32 { return 0 }

type header struct {
	key   string
	value []byte
}

type rec struct {
	offset, ts int64
	key, value []byte
	headers    []header
}

type reader struct {
	b []byte
	i int
}

func (r *reader) u32() uint32 { v := binary.LittleEndian.Uint32(r.b[r.i:]); r.i += 4; return v }
func (r *reader) i64() int64  { v := int64(binary.LittleEndian.Uint64(r.b[r.i:])); r.i += 8; return v }
func (r *reader) str() string { n := int(r.u32()); s := string(r.b[r.i : r.i+n]); r.i += n; return s }
func (r *reader) bytes() []byte {
	n := int32(r.u32())
	if n < 0 {
		return nil
	}
	s := r.b[r.i : r.i+int(n) : r.i+int(n)]
	r.i += int(n)
	return s
}

func putU32(v uint32) { out = binary.LittleEndian.AppendUint32(out, v) }
func putStr(s string) { putU32(uint32(len(s))); out = append(out, s...) }
func putBytes(b []byte) {
	if b == nil {
		putU32(0xffffffff)
		return
	}
	putU32(uint32(len(b)))
	out = append(out, b...)
}

func putRewrite(r rec, value []byte) {
	putBytes(r.key)
	putBytes(value)
	putU32(uint32(len(r.headers)))
	for _, h := range r.headers {
		putStr(h.key)
		putBytes(h.value)
	}
}

//go:wasmexport samsa_filter
func filter(ptr, n int32) int64 {
	r := reader{b: in[:n]}
	r.u32() // abi version
	topic := r.str()
	r.u32() // partition
	count := int(r.u32())
	out = out[:0]
	putU32(uint32(count))
	if mode == "keep" {
		// Keeping everything needs nothing but the count.
		for i := 0; i < count; i++ {
			out = append(out, 0)
		}
		return result()
	}
	recs := make([]rec, count)
	for i := range recs {
		x := &recs[i]
		x.offset, x.ts = r.i64(), r.i64()
		x.key, x.value = r.bytes(), r.bytes()
		nh := int(r.u32())
		for j := 0; j < nh; j++ {
			k := r.str()
			x.headers = append(x.headers, header{k, r.bytes()})
		}
	}
	switch mode {
	case "spin":
		for {
		}
	case "log":
		os.Stdout.WriteString("batch of " + strconv.Itoa(count) + " on " + topic + "\n")
		os.Stderr.WriteString("stderr line\n")
	}
	for _, x := range recs {
		switch mode {
		case "dropodd":
			if x.offset%2 == 1 {
				out = append(out, 1)
			} else {
				out = append(out, 0)
			}
		case "dropmost":
			if x.offset%10 != 0 {
				out = append(out, 1)
			} else {
				out = append(out, 0)
			}
		case "upper":
			out = append(out, 2)
			putRewrite(x, []byte(strings.ToUpper(string(x.value))))
		case "route":
			if x.key == nil {
				out = append(out, 0)
				continue
			}
			out = append(out, 3)
			if string(x.key) == "both" {
				putU32(2)
				putStr(topic)
				putStr("route-both")
			} else {
				putU32(1)
				putStr("route-" + string(x.key))
			}
			out = append(out, 0)
		case "reject":
			if strings.Contains(string(x.value), "bad") {
				out = append(out, 4)
				putStr("bad record: " + string(x.value))
			} else {
				out = append(out, 0)
			}
		default:
			out = append(out, 0)
		}
	}
	return result()
}

func result() int64 {
	p := uint64(uintptr(unsafe.Pointer(unsafe.SliceData(out))))
	return int64(p<<32 | uint64(len(out)))
}
