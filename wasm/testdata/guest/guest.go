// Package guest is the hand-written ABI (version 1) plumbing shared by the
// test guests. It is deliberately not the SDK (sdk/filter/go): the tests
// check the host against the ABI document directly.
package guest

import (
	"encoding/binary"
	"unsafe"
)

var le = binary.LittleEndian

var (
	in     []byte
	out    []byte
	Params []byte
)

// Ptr returns the linear-memory address of b's first byte.
func Ptr(b []byte) uint32 {
	if cap(b) == 0 {
		return 0
	}
	return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b))))
}

// Alloc implements samsa_alloc: one input buffer, reused.
func Alloc(size int32) uint32 {
	if size < 0 {
		return 0
	}
	if int(size) > cap(in) || cap(in) == 0 {
		in = make([]byte, max(int(size), 64))
	}
	in = in[:size]
	return Ptr(in)
}

// Init implements samsa_init: it keeps a copy of the parameters.
func Init(n uint32) []byte {
	Params = append([]byte(nil), in[:n]...)
	return Params
}

// Header is a record header; a nil Value is null.
type Header struct {
	Key   string
	Value []byte
}

// Record is one input record; nil Key/Value are null.
type Record struct {
	Offset, Timestamp int64
	Key, Value        []byte
	Headers           []Header
}

// Batch is a decoded input batch.
type Batch struct {
	Topic     string
	Partition int32
	Records   []Record
}

type reader struct {
	b []byte
	p int
}

func (r *reader) u32() uint32 { v := le.Uint32(r.b[r.p:]); r.p += 4; return v }
func (r *reader) u64() uint64 { v := le.Uint64(r.b[r.p:]); r.p += 8; return v }
func (r *reader) str() string {
	n := int(r.u32())
	s := string(r.b[r.p : r.p+n])
	r.p += n
	return s
}
func (r *reader) bytes() []byte {
	n := int32(r.u32())
	if n < 0 {
		return nil
	}
	b := r.b[r.p : r.p+int(n) : r.p+int(n)]
	r.p += int(n)
	return b
}

// Count returns the record count of the input without decoding records.
func Count(n uint32) int {
	b := in[:n]
	tl := int(le.Uint32(b[4:]))
	return int(le.Uint32(b[8+tl+4:]))
}

// Parse decodes the input of length n (views into the input buffer).
func Parse(n uint32) Batch {
	r := &reader{b: in[:n]}
	if v := r.u32(); v != 1 {
		panic("bad abi version in input")
	}
	var bt Batch
	bt.Topic = r.str()
	bt.Partition = int32(r.u32())
	cnt := int(r.u32())
	bt.Records = make([]Record, cnt)
	for i := range bt.Records {
		rec := &bt.Records[i]
		rec.Offset = int64(r.u64())
		rec.Timestamp = int64(r.u64())
		rec.Key = r.bytes()
		rec.Value = r.bytes()
		h := int(r.u32())
		for j := 0; j < h; j++ {
			rec.Headers = append(rec.Headers, Header{Key: r.str(), Value: r.bytes()})
		}
	}
	return bt
}

// Out builds an output.
type Out struct{ b []byte }

// Start begins an output of n decisions, reusing the output buffer.
func Start(n int) *Out {
	o := &Out{b: out[:0]}
	o.b = le.AppendUint32(o.b, uint32(n))
	return o
}

func (o *Out) Keep()           { o.b = append(o.b, 0) }
func (o *Out) Drop()           { o.b = append(o.b, 1) }
func (o *Out) Reject(m string) { o.b = append(o.b, 4); o.str(m) }
func (o *Out) Rewrite(key, value []byte, hs []Header) {
	o.b = append(o.b, 2)
	o.rw(key, value, hs)
}

// Route routes to topics, with a rewrite if rw.
func (o *Out) Route(topics []string, rw bool, key, value []byte, hs []Header) {
	o.b = append(o.b, 3)
	o.b = le.AppendUint32(o.b, uint32(len(topics)))
	for _, t := range topics {
		o.str(t)
	}
	if !rw {
		o.b = append(o.b, 0)
		return
	}
	o.b = append(o.b, 1)
	o.rw(key, value, hs)
}

// Raw appends raw bytes (for broken outputs).
func (o *Out) Raw(b ...byte) { o.b = append(o.b, b...) }

func (o *Out) rw(key, value []byte, hs []Header) {
	o.bytes(key)
	o.bytes(value)
	o.b = le.AppendUint32(o.b, uint32(len(hs)))
	for _, h := range hs {
		o.str(h.Key)
		o.bytes(h.Value)
	}
}

func (o *Out) str(s string) {
	o.b = le.AppendUint32(o.b, uint32(len(s)))
	o.b = append(o.b, s...)
}

func (o *Out) bytes(b []byte) {
	if b == nil {
		o.b = le.AppendUint32(o.b, 0xffffffff)
		return
	}
	o.b = le.AppendUint32(o.b, uint32(len(b)))
	o.b = append(o.b, b...)
}

// Result ends the output and packs its location for samsa_filter.
func (o *Out) Result() int64 {
	out = o.b
	return Pack(Ptr(out), uint32(len(out)))
}

// Pack packs a pointer and a length as samsa_filter returns them.
func Pack(ptr, n uint32) int64 { return int64(uint64(ptr)<<32 | uint64(n)) }
