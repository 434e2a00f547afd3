package filter

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// The encoding of ABI version 1 (wasm/ABI.md, "Encoding"): little-endian;
// bytes are an i32 length (-1 for null) and the bytes; strings a u32 length
// and UTF-8 bytes.

var le = binary.LittleEndian

// ErrShort is wrapped by decode errors for input that ends too early.
var ErrShort = errors.New("input too short")

type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("decode %s at byte %d: %w", what, r.off, ErrShort)
	}
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.fail(what)
		return nil
	}
	s := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return s
}

func (r *reader) u8(what string) uint8 {
	if s := r.take(1, what); s != nil {
		return s[0]
	}
	return 0
}

func (r *reader) u32(what string) uint32 {
	if s := r.take(4, what); s != nil {
		return le.Uint32(s)
	}
	return 0
}

func (r *reader) i64(what string) int64 {
	if s := r.take(8, what); s != nil {
		return int64(le.Uint64(s))
	}
	return 0
}

func (r *reader) bytes(what string) []byte {
	n := int32(r.u32(what))
	if r.err != nil {
		return nil
	}
	if n == -1 {
		return nil
	}
	if n < 0 {
		r.err = fmt.Errorf("decode %s at byte %d: negative length %d", what, r.off-4, n)
		return nil
	}
	s := r.take(int(n), what)
	if s == nil && r.err == nil {
		s = []byte{}
	}
	return s
}

func (r *reader) str(what string) string {
	n := r.u32(what)
	if r.err != nil {
		return ""
	}
	if uint64(n) > math.MaxInt32 {
		r.fail(what)
		return ""
	}
	return string(r.take(int(n), what))
}

// count reads a u32 element count and checks it against what is left of the
// input (each element takes at least min bytes), so that a bad count cannot
// make the decoder allocate a huge slice.
func (r *reader) count(what string, min int) int {
	n := r.u32(what)
	if r.err != nil {
		return 0
	}
	if uint64(n)*uint64(min) > uint64(len(r.b)-r.off) {
		r.err = fmt.Errorf("decode %s at byte %d: count %d does not fit in the input: %w", what, r.off-4, n, ErrShort)
		return 0
	}
	return int(n)
}

func (r *reader) headers() []Header {
	n := r.count("header count", 8)
	if n == 0 {
		return nil
	}
	hs := make([]Header, n)
	for i := range hs {
		hs[i].Key = r.str("header key")
		hs[i].Value = r.bytes("header value")
	}
	return hs
}

// DecodeBatch decodes an input batch (host to guest). Key, value and header
// value slices point into in; the wasm glue gives every batch a fresh
// buffer, so they stay valid for as long as the filter keeps them.
func DecodeBatch(in []byte) (Batch, error) {
	r := &reader{b: in}
	var b Batch
	if v := r.u32("abi version"); r.err == nil && v != ABIVersion {
		return Batch{}, fmt.Errorf("decode batch: abi version %d, want %d", v, ABIVersion)
	}
	b.Topic = r.str("topic")
	b.Partition = int32(r.u32("partition"))
	n := r.count("record count", 8+8+4+4+4)
	if n > 0 {
		b.Records = make([]Record, n)
	}
	for i := 0; i < n && r.err == nil; i++ {
		rec := &b.Records[i]
		rec.Offset = r.i64("offset")
		rec.Timestamp = r.i64("timestamp")
		rec.Key = r.bytes("key")
		rec.Value = r.bytes("value")
		rec.Headers = r.headers()
	}
	if r.err != nil {
		return Batch{}, fmt.Errorf("decode batch: %w", r.err)
	}
	if r.off != len(in) {
		return Batch{}, fmt.Errorf("decode batch: %d bytes left over", len(in)-r.off)
	}
	return b, nil
}

func appendU32(dst []byte, v uint32) []byte { return le.AppendUint32(dst, v) }

func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return appendU32(dst, math.MaxUint32) // -1: null
	}
	return append(appendU32(dst, uint32(len(b))), b...)
}

func appendString(dst []byte, s string) []byte {
	return append(appendU32(dst, uint32(len(s))), s...)
}

func appendHeaders(dst []byte, hs []Header) []byte {
	dst = appendU32(dst, uint32(len(hs)))
	for _, h := range hs {
		dst = appendString(dst, h.Key)
		dst = appendBytes(dst, h.Value)
	}
	return dst
}

// EncodeBatch encodes a batch the way the broker hands it to a filter. It is
// the inverse of [DecodeBatch], for tests and tools.
func EncodeBatch(b *Batch) []byte {
	dst := appendU32(nil, ABIVersion)
	dst = appendString(dst, b.Topic)
	dst = appendU32(dst, uint32(b.Partition))
	dst = appendU32(dst, uint32(len(b.Records)))
	for i := range b.Records {
		r := &b.Records[i]
		dst = le.AppendUint64(dst, uint64(r.Offset))
		dst = le.AppendUint64(dst, uint64(r.Timestamp))
		dst = appendBytes(dst, r.Key)
		dst = appendBytes(dst, r.Value)
		dst = appendHeaders(dst, r.Headers)
	}
	return dst
}

// EncodeDecisions encodes decisions as a filter's output (guest to host).
func EncodeDecisions(ds []Decision) []byte { return AppendDecisions(nil, ds) }

// AppendDecisions appends the encoding of ds to dst and returns it.
func AppendDecisions(dst []byte, ds []Decision) []byte {
	dst = appendU32(dst, uint32(len(ds)))
	for i := range ds {
		d := &ds[i]
		dst = append(dst, byte(d.Action))
		switch d.Action {
		case ActionRewrite:
			dst = appendBytes(dst, d.Key)
			dst = appendBytes(dst, d.Value)
			dst = appendHeaders(dst, d.Headers)
		case ActionRoute:
			dst = appendU32(dst, uint32(len(d.Topics)))
			for _, t := range d.Topics {
				dst = appendString(dst, t)
			}
			if d.HasRewrite {
				dst = append(dst, 1)
				dst = appendBytes(dst, d.Key)
				dst = appendBytes(dst, d.Value)
				dst = appendHeaders(dst, d.Headers)
			} else {
				dst = append(dst, 0)
			}
		case ActionReject:
			dst = appendString(dst, d.Message)
		}
	}
	return dst
}

// DecodeDecisions decodes a filter's output. It is the inverse of
// [EncodeDecisions], for tests and tools.
func DecodeDecisions(in []byte) ([]Decision, error) {
	r := &reader{b: in}
	n := r.count("decision count", 1)
	ds := make([]Decision, n)
	for i := 0; i < n && r.err == nil; i++ {
		d := &ds[i]
		d.Action = Action(r.u8("action"))
		switch d.Action {
		case ActionKeep, ActionDrop:
		case ActionRewrite:
			d.HasRewrite = true
			d.Key = r.bytes("key")
			d.Value = r.bytes("value")
			d.Headers = r.headers()
		case ActionRoute:
			t := r.count("topic count", 4)
			if t > 0 {
				d.Topics = make([]string, t)
			}
			for j := 0; j < t; j++ {
				d.Topics[j] = r.str("topic")
			}
			switch f := r.u8("rewrite flag"); f {
			case 0:
			case 1:
				d.HasRewrite = true
				d.Key = r.bytes("key")
				d.Value = r.bytes("value")
				d.Headers = r.headers()
			default:
				if r.err == nil {
					r.err = fmt.Errorf("decision %d: bad rewrite flag %d", i, f)
				}
			}
		case ActionReject:
			d.Message = r.str("message")
		default:
			if r.err == nil {
				r.err = fmt.Errorf("decision %d: unknown action %d", i, d.Action)
			}
		}
	}
	if r.err != nil {
		return nil, fmt.Errorf("decode decisions: %w", r.err)
	}
	if r.off != len(in) {
		return nil, fmt.Errorf("decode decisions: %d bytes left over", len(in)-r.off)
	}
	return ds, nil
}
