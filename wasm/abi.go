package wasm

// This file implements the byte encoding of the filter ABI, version 1
// (see ABI.md): the input batch the host writes into guest memory and the
// decisions the guest hands back. It has no dependency on wazero so that it
// can be tested and fuzzed on its own.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ABIVersion is the version of the guest ABI this host implements.
const ABIVersion = 1

var le = binary.LittleEndian

// errInputTooLarge is returned when a batch does not fit the ABI's 32-bit
// lengths.
var errInputTooLarge = errors.New("batch too large for the ABI (more than 4 GiB encoded)")

// inputSize returns the number of bytes encodeInput writes for the batch.
func inputSize(topic string, recs []Record) (int, error) {
	n := 4 + 4 + len(topic) + 4 + 4
	for i := range recs {
		r := &recs[i]
		n += 8 + 8 + 4 + len(r.Key) + 4 + len(r.Value) + 4
		for j := range r.Headers {
			h := &r.Headers[j]
			n += 4 + len(h.Key) + 4 + len(h.Value)
		}
	}
	if n > math.MaxUint32 || n < 0 || len(recs) > math.MaxUint32 {
		return 0, errInputTooLarge
	}
	return n, nil
}

// encodeInput writes the input batch into dst, which must be exactly
// inputSize(topic, recs) bytes long.
func encodeInput(dst []byte, topic string, partition int32, recs []Record) {
	le.PutUint32(dst, ABIVersion)
	p := 4
	p = putString(dst, p, topic)
	le.PutUint32(dst[p:], uint32(partition))
	le.PutUint32(dst[p+4:], uint32(len(recs)))
	p += 8
	for i := range recs {
		r := &recs[i]
		b := dst[p : p+16]
		le.PutUint64(b, uint64(r.Offset))
		le.PutUint64(b[8:], uint64(r.Timestamp))
		p += 16
		p = putBytes(dst, p, r.Key)
		p = putBytes(dst, p, r.Value)
		le.PutUint32(dst[p:], uint32(len(r.Headers)))
		p += 4
		for j := range r.Headers {
			h := &r.Headers[j]
			p = putString(dst, p, h.Key)
			p = putBytes(dst, p, h.Value)
		}
	}
}

func putString(dst []byte, p int, s string) int {
	le.PutUint32(dst[p:], uint32(len(s)))
	p += 4
	return p + copy(dst[p:], s)
}

func putBytes(dst []byte, p int, b []byte) int {
	if b == nil {
		le.PutUint32(dst[p:], math.MaxUint32) // -1: null
		return p + 4
	}
	le.PutUint32(dst[p:], uint32(len(b)))
	p += 4
	return p + copy(dst[p:], b)
}

// AppendInput appends the ABI encoding of an input batch to dst. It is what
// the host writes into guest memory; exported for tools and SDK tests.
func AppendInput(dst []byte, topic string, partition int32, recs []Record) ([]byte, error) {
	n, err := inputSize(topic, recs)
	if err != nil {
		return dst, err
	}
	start := len(dst)
	dst = append(dst, make([]byte, n)...)
	encodeInput(dst[start:], topic, partition, recs)
	return dst, nil
}

// AppendOutput appends the ABI encoding of decisions (the guest's output) to
// dst. Exported for tools and SDK tests; the host itself only decodes.
func AppendOutput(dst []byte, ds []Decision) []byte {
	dst = le.AppendUint32(dst, uint32(len(ds)))
	for i := range ds {
		d := &ds[i]
		dst = append(dst, byte(d.Action))
		switch d.Action {
		case Rewrite:
			dst = appendRewrite(dst, d)
		case Route:
			dst = le.AppendUint32(dst, uint32(len(d.Topics)))
			for _, t := range d.Topics {
				dst = appendString(dst, t)
			}
			if d.Rewritten {
				dst = append(dst, 1)
				dst = appendRewrite(dst, d)
			} else {
				dst = append(dst, 0)
			}
		case Reject:
			dst = appendString(dst, d.Message)
		}
	}
	return dst
}

func appendRewrite(dst []byte, d *Decision) []byte {
	dst = appendBytes(dst, d.Key)
	dst = appendBytes(dst, d.Value)
	dst = le.AppendUint32(dst, uint32(len(d.Headers)))
	for _, h := range d.Headers {
		dst = appendString(dst, h.Key)
		dst = appendBytes(dst, h.Value)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = le.AppendUint32(dst, uint32(len(s)))
	return append(dst, s...)
}

func appendBytes(dst []byte, b []byte) []byte {
	if b == nil {
		return le.AppendUint32(dst, math.MaxUint32)
	}
	dst = le.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

// allowed reports whether action a may be returned on path p.
func allowed(p Path, a Action) bool {
	switch p {
	case ProducePath:
		return a <= Reject
	case ConsumePath:
		return a <= Rewrite
	}
	return false
}

func (a Action) String() string {
	switch a {
	case Keep:
		return "keep"
	case Drop:
		return "drop"
	case Rewrite:
		return "rewrite"
	case Route:
		return "route"
	case Reject:
		return "reject"
	}
	return fmt.Sprintf("action(%d)", uint8(a))
}

func (p Path) String() string {
	switch p {
	case ProducePath:
		return "produce"
	case ConsumePath:
		return "consume"
	}
	return fmt.Sprintf("path(%d)", uint8(p))
}

// outputDecoder decodes a guest's output. Byte fields (keys, values, header
// values) are copied out of src, which is guest memory the guest may reuse,
// into one arena per call that is allocated only when a decision carries
// bytes; strings are copied as Go strings, topic names through a small
// intern table that lives as long as the decoder (one per instance).
type outputDecoder struct {
	src   []byte
	p     int
	arena []byte
	hdrs  []Header
	// topics interns route topic names: the same few names come back
	// batch after batch.
	topics map[string]string
}

// decodeError is an output that does not follow the ABI.
type decodeError struct{ msg string }

func (e *decodeError) Error() string { return e.msg }

func (d *outputDecoder) fail(format string, args ...any) error {
	return &decodeError{msg: fmt.Sprintf(format, args...)}
}

// decodeOutput decodes src into want decisions, appended to dst[:0], and
// checks that every action is allowed on path. It never panics, whatever
// src holds, and never retains src.
func (d *outputDecoder) decode(src []byte, want int, path Path, dst []Decision) ([]Decision, error) {
	d.src, d.p, d.arena, d.hdrs = src, 0, nil, nil
	defer func() { d.src, d.arena, d.hdrs = nil, nil, nil }()
	n, ok := d.u32()
	if !ok {
		return dst[:0], d.fail("output is %d bytes, too short for the decision count", len(src))
	}
	if int64(n) != int64(want) {
		return dst[:0], d.fail("output has %d decisions for %d records", n, want)
	}
	// Every decision takes at least one byte: refuse impossible counts
	// before allocating for them.
	if int64(n) > int64(len(src)-d.p) {
		return dst[:0], d.fail("output claims %d decisions in %d bytes", n, len(src)-d.p)
	}
	if cap(dst) >= want {
		dst = dst[:want]
	} else {
		dst = make([]Decision, want)
	}
	if len(src)-d.p == want && onlyKeepDrop(src[d.p:]) {
		// One byte per decision, all keep or drop (the common case):
		// no need for the general machinery.
		for i, a := range src[d.p:] {
			dst[i] = Decision{Action: Action(a)}
		}
		return dst, nil
	}
	for i := range dst {
		if d.p >= len(src) {
			return dst[:0], d.fail("output truncated at decision %d of %d", i, want)
		}
		dec := &dst[i]
		*dec = Decision{Action: Action(src[d.p])}
		d.p++
		if !allowed(path, dec.Action) {
			if dec.Action > Reject {
				return dst[:0], d.fail("decision %d: unknown action %d", i, uint8(dec.Action))
			}
			return dst[:0], d.fail("decision %d: action %s is not allowed on the %s path", i, dec.Action, path)
		}
		var err error
		switch dec.Action {
		case Rewrite:
			dec.Rewritten = true
			err = d.rewrite(i, dec)
		case Route:
			err = d.route(i, dec)
		case Reject:
			var s string
			if s, err = d.string(i, "reject message"); err == nil {
				dec.Message = s
			}
		}
		if err != nil {
			return dst[:0], err
		}
	}
	if d.p != len(src) {
		return dst[:0], d.fail("output has %d bytes after the last decision", len(src)-d.p)
	}
	return dst, nil
}

func onlyKeepDrop(b []byte) bool {
	for _, a := range b {
		if a > byte(Drop) {
			return false
		}
	}
	return true
}

func (d *outputDecoder) u32() (uint32, bool) {
	if len(d.src)-d.p < 4 {
		return 0, false
	}
	v := le.Uint32(d.src[d.p:])
	d.p += 4
	return v, true
}

// take returns the next n bytes of src (a view, not a copy).
func (d *outputDecoder) take(i int, what string, n uint32) ([]byte, error) {
	if uint64(n) > uint64(len(d.src)-d.p) {
		return nil, d.fail("decision %d: %s of %d bytes runs past the end of the output", i, what, n)
	}
	b := d.src[d.p : d.p+int(n)]
	d.p += int(n)
	return b, nil
}

func (d *outputDecoder) bytes(i int, what string) ([]byte, error) {
	n, ok := d.u32()
	if !ok {
		return nil, d.fail("decision %d: output truncated in the length of %s", i, what)
	}
	if n == math.MaxUint32 {
		return nil, nil
	}
	if int32(n) < 0 {
		return nil, d.fail("decision %d: %s has invalid length %d", i, what, int32(n))
	}
	b, err := d.take(i, what, n)
	if err != nil {
		return nil, err
	}
	if d.arena == nil {
		// Everything copied out of this output fits in len(src) bytes, so
		// the arena never reallocates and earlier slices of it stay valid.
		d.arena = make([]byte, 0, len(d.src))
	}
	s := len(d.arena)
	d.arena = append(d.arena, b...)
	return d.arena[s:len(d.arena):len(d.arena)], nil
}

func (d *outputDecoder) string(i int, what string) (string, error) {
	n, ok := d.u32()
	if !ok {
		return "", d.fail("decision %d: output truncated in the length of %s", i, what)
	}
	b, err := d.take(i, what, n)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func (d *outputDecoder) rewrite(i int, dec *Decision) error {
	var err error
	if dec.Key, err = d.bytes(i, "key"); err != nil {
		return err
	}
	if dec.Value, err = d.bytes(i, "value"); err != nil {
		return err
	}
	h, ok := d.u32()
	if !ok {
		return d.fail("decision %d: output truncated in the header count", i)
	}
	// A header takes at least 8 bytes.
	if uint64(h)*8 > uint64(len(d.src)-d.p) {
		return d.fail("decision %d: %d headers cannot fit in the %d bytes left", i, h, len(d.src)-d.p)
	}
	if h == 0 {
		return nil
	}
	start := len(d.hdrs)
	for j := uint32(0); j < h; j++ {
		var hd Header
		if hd.Key, err = d.string(i, "header key"); err != nil {
			return err
		}
		if hd.Value, err = d.bytes(i, "header value"); err != nil {
			return err
		}
		d.hdrs = append(d.hdrs, hd)
	}
	// Earlier decisions keep slices of older backing arrays if append
	// reallocates; those arrays are no longer written to.
	dec.Headers = d.hdrs[start:len(d.hdrs):len(d.hdrs)]
	return nil
}

func (d *outputDecoder) route(i int, dec *Decision) error {
	t, ok := d.u32()
	if !ok {
		return d.fail("decision %d: output truncated in the route topic count", i)
	}
	if t == 0 {
		return d.fail("decision %d: route lists no topic", i)
	}
	if uint64(t)*4 > uint64(len(d.src)-d.p) {
		return d.fail("decision %d: %d route topics cannot fit in the %d bytes left", i, t, len(d.src)-d.p)
	}
	dec.Topics = make([]string, t)
	for j := range dec.Topics {
		n, ok := d.u32()
		if !ok {
			return d.fail("decision %d: output truncated in the length of route topic %d", i, j)
		}
		b, err := d.take(i, "route topic", n)
		if err != nil {
			return err
		}
		if len(b) == 0 {
			return d.fail("decision %d: route topic %d is empty", i, j)
		}
		s, ok := d.topics[string(b)]
		if !ok {
			s = string(b)
			if d.topics == nil || len(d.topics) >= 1024 {
				d.topics = make(map[string]string)
			}
			d.topics[s] = s
		}
		dec.Topics[j] = s
	}
	if d.p >= len(d.src) {
		return d.fail("decision %d: output truncated before the route rewrite flag", i)
	}
	flag := d.src[d.p]
	d.p++
	switch flag {
	case 0:
		return nil
	case 1:
		dec.Rewritten = true
		return d.rewrite(i, dec)
	}
	return d.fail("decision %d: route rewrite flag is %d, want 0 or 1", i, flag)
}

// DecodeOutput decodes a guest's output for a batch of want records and
// checks every action against path. Exported for tools and SDK tests.
func DecodeOutput(src []byte, want int, path Path) ([]Decision, error) {
	var d outputDecoder
	return d.decode(src, want, path, nil)
}

// DecodeInput decodes an input batch as the host encodes it. Exported for
// tools and SDK tests; the host itself only encodes. It never panics.
func DecodeInput(src []byte) (topic string, partition int32, recs []Record, err error) {
	r := inputReader{b: src}
	v := r.u32()
	if r.err == nil && v != ABIVersion {
		return "", 0, nil, fmt.Errorf("input has ABI version %d, want %d", v, ABIVersion)
	}
	topic = r.str()
	partition = int32(r.u32())
	n := r.u32()
	if r.err == nil && uint64(n)*28 > uint64(len(r.b)-r.p) {
		r.err = fmt.Errorf("input claims %d records in %d bytes", n, len(r.b)-r.p)
	}
	for i := uint32(0); i < n && r.err == nil; i++ {
		var rec Record
		rec.Offset = int64(r.u64())
		rec.Timestamp = int64(r.u64())
		rec.Key = r.bytes()
		rec.Value = r.bytes()
		h := r.u32()
		if r.err == nil && uint64(h)*8 > uint64(len(r.b)-r.p) {
			r.err = fmt.Errorf("record %d claims %d headers in %d bytes", i, h, len(r.b)-r.p)
		}
		for j := uint32(0); j < h && r.err == nil; j++ {
			rec.Headers = append(rec.Headers, Header{Key: r.str(), Value: r.bytes()})
		}
		recs = append(recs, rec)
	}
	if r.err == nil && r.p != len(r.b) {
		r.err = fmt.Errorf("input has %d bytes after the last record", len(r.b)-r.p)
	}
	if r.err != nil {
		return "", 0, nil, r.err
	}
	return topic, partition, recs, nil
}

type inputReader struct {
	b   []byte
	p   int
	err error
}

func (r *inputReader) need(n uint64) bool {
	if r.err != nil {
		return false
	}
	if n > uint64(len(r.b)-r.p) {
		r.err = fmt.Errorf("input truncated at byte %d", r.p)
		return false
	}
	return true
}

func (r *inputReader) u32() uint32 {
	if !r.need(4) {
		return 0
	}
	v := le.Uint32(r.b[r.p:])
	r.p += 4
	return v
}

func (r *inputReader) u64() uint64 {
	if !r.need(8) {
		return 0
	}
	v := le.Uint64(r.b[r.p:])
	r.p += 8
	return v
}

func (r *inputReader) str() string {
	n := r.u32()
	if !r.need(uint64(n)) {
		return ""
	}
	s := string(r.b[r.p : r.p+int(n)])
	r.p += int(n)
	return s
}

func (r *inputReader) bytes() []byte {
	n := r.u32()
	if r.err != nil || n == math.MaxUint32 {
		return nil
	}
	if !r.need(uint64(n)) {
		return nil
	}
	b := append([]byte{}, r.b[r.p:r.p+int(n)]...)
	r.p += int(n)
	return b
}
