package samsa

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// recordsPrefix is how the server starts every JSON records message
// (transports/websocket msgBuilder.start).
const recordsPrefix = `{"type":"records","sub":`

// parseRecordsJSON is the fast path for JSON records messages: it decodes
// data laid out exactly as the server writes it (fields in the server's
// order, no whitespace between tokens) into the records the encoding/json
// path (envelope and wireRecord.record) would produce, without setting
// Topic. ok is false when data is anything else, malformed or holds
// something the scanner does not handle; the caller then takes the
// encoding/json path, which decides what the message means. Keys, values
// and header values are copied (the frame buffer is reused).
func parseRecordsJSON(data []byte) (sub string, recs []Record, ok bool) {
	if !bytes.HasPrefix(data, []byte(recordsPrefix)) {
		return "", nil, false
	}
	p := recordsParser{b: data, i: len(recordsPrefix)}
	// Decoded bytes are never longer than their JSON text, so one
	// allocation holds every key, value and header value.
	p.arena = make([]byte, 0, len(data))
	sub, ok = p.str()
	if !ok || !p.lit(`,"records":[`) {
		return "", nil, false
	}
	recs = make([]Record, 0, 8)
	if !p.peek(']') {
		for {
			var r Record
			if !p.record(&r) {
				return "", nil, false
			}
			recs = append(recs, r)
			if p.peek(',') {
				p.i++
				continue
			}
			break
		}
	}
	if !p.lit("]}") || p.i != len(p.b) {
		return "", nil, false
	}
	return sub, recs, true
}

// recordsParser scans a records message; every method returns false on
// anything it does not accept.
type recordsParser struct {
	b     []byte
	i     int
	arena []byte
}

func (p *recordsParser) peek(c byte) bool { return p.i < len(p.b) && p.b[p.i] == c }

// lit consumes the literal s.
func (p *recordsParser) lit(s string) bool {
	if len(p.b)-p.i < len(s) || string(p.b[p.i:p.i+len(s)]) != s {
		return false
	}
	p.i += len(s)
	return true
}

// int reads a JSON integer that fits in bits bits.
func (p *recordsParser) int(bits int) (int64, bool) {
	start := p.i
	if p.peek('-') {
		p.i++
	}
	digits := p.i
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		p.i++
	}
	n := p.i - digits
	if n == 0 || (n > 1 && p.b[digits] == '0') {
		return 0, false
	}
	// A fraction or an exponent is an error for encoding/json's ints.
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return 0, false
	}
	if n > 18 {
		// Possibly out of range: let strconv decide.
		v, err := strconv.ParseInt(string(p.b[start:p.i]), 10, bits)
		return v, err == nil
	}
	var v int64
	for _, c := range p.b[digits:p.i] {
		v = v*10 + int64(c-'0')
	}
	if digits != start {
		v = -v
	}
	if bits == 32 && int64(int32(v)) != v {
		return 0, false
	}
	return v, true
}

// span scans a JSON string starting at p.i (the opening quote) and
// returns its contents without the quotes and whether it holds escapes.
// Control characters, bad escapes and invalid UTF-8 are refused.
func (p *recordsParser) span() (body []byte, esc bool, ok bool) {
	if !p.peek('"') {
		return nil, false, false
	}
	p.i++
	start := p.i
	high := false
	b := p.b
	for i := start; i < len(b); i++ {
		c := b[i]
		switch {
		case c == '"':
			p.i = i + 1
			body = b[start:i]
			if high && !utf8.Valid(body) {
				return nil, false, false
			}
			return body, esc, true
		case c == '\\':
			esc = true
			i++
			if i >= len(b) {
				return nil, false, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return nil, false, false
				}
				for _, h := range b[i+1 : i+5] {
					if _, ok := unhex(h); !ok {
						return nil, false, false
					}
				}
				i += 4
			default:
				return nil, false, false
			}
		case c < 0x20:
			return nil, false, false
		case c >= 0x80:
			high = true
		}
	}
	return nil, false, false
}

func unhex(c byte) (rune, bool) {
	switch {
	case c >= '0' && c <= '9':
		return rune(c - '0'), true
	case c >= 'a' && c <= 'f':
		return rune(c-'a') + 10, true
	case c >= 'A' && c <= 'F':
		return rune(c-'A') + 10, true
	}
	return 0, false
}

func u4(b []byte) rune {
	var r rune
	for _, c := range b[:4] {
		h, _ := unhex(c)
		r = r<<4 | h
	}
	return r
}

// unescape appends the decoded contents of a string scanned by span to
// dst. Lone surrogates are refused (encoding/json would write U+FFFD).
func unescape(dst, body []byte) ([]byte, bool) {
	for i := 0; i < len(body); {
		j := bytes.IndexByte(body[i:], '\\')
		if j < 0 {
			return append(dst, body[i:]...), true
		}
		dst = append(dst, body[i:i+j]...)
		i += j + 1 // at the escape letter; span checked the escape
		c := body[i]
		i++
		switch c {
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r := u4(body[i:])
			i += 4
			if utf16.IsSurrogate(r) {
				if r >= 0xdc00 || len(body)-i < 6 || body[i] != '\\' || body[i+1] != 'u' {
					return dst, false
				}
				r2 := u4(body[i+2:])
				if r2 < 0xdc00 || r2 > 0xdfff {
					return dst, false
				}
				r = utf16.DecodeRune(r, r2)
				i += 6
			}
			dst = utf8.AppendRune(dst, r)
		default: // '"', '\\', '/'
			dst = append(dst, c)
		}
	}
	return dst, true
}

// str reads a JSON string as a Go string.
func (p *recordsParser) str() (string, bool) {
	body, esc, ok := p.span()
	if !ok {
		return "", false
	}
	if !esc {
		// The encodings' names, without allocating.
		switch string(body) {
		case "json":
			return "json", true
		case "text":
			return "text", true
		case "base64":
			return "base64", true
		}
		return string(body), true
	}
	var tmp [64]byte
	s, ok := unescape(tmp[:0], body)
	return string(s), ok
}

// rawValue is a scanned JSON value: a string's contents (str), or the
// text of any other value.
type rawValue struct {
	text   []byte // the whole value as in the message
	body   []byte // a string's contents
	isStr  bool
	esc    bool
	isNull bool
}

// value scans any JSON value. Strings are checked by span; other values
// are delimited by nesting and then checked with json.Valid.
func (p *recordsParser) value() (rawValue, bool) {
	start := p.i
	if p.i >= len(p.b) {
		return rawValue{}, false
	}
	switch p.b[p.i] {
	case '"':
		body, esc, ok := p.span()
		return rawValue{text: p.b[start:p.i], body: body, isStr: true, esc: esc}, ok
	case 'n':
		if p.lit("null") {
			return rawValue{text: p.b[start:p.i], isNull: true}, true
		}
		return rawValue{}, false
	case '{', '[':
		depth := 0
		for p.i < len(p.b) {
			switch p.b[p.i] {
			case '"':
				if _, _, ok := p.span(); !ok {
					return rawValue{}, false
				}
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
			}
			p.i++
			if depth == 0 {
				break
			}
		}
		if depth != 0 {
			return rawValue{}, false
		}
	default:
		for p.i < len(p.b) {
			c := p.b[p.i]
			if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
				break
			}
			p.i++
		}
	}
	text := p.b[start:p.i]
	if !json.Valid(text) {
		return rawValue{}, false
	}
	return rawValue{text: text}, true
}

// decode turns a value into bytes the way decodeValue does, into the
// arena.
func (p *recordsParser) decode(v rawValue, enc string) ([]byte, bool) {
	if v.isNull {
		return nil, true
	}
	start := len(p.arena)
	switch enc {
	case "json":
		p.arena = append(p.arena, v.text...)
	case "", "text":
		if !v.isStr {
			if enc == "text" {
				return nil, false
			}
			p.arena = append(p.arena, v.text...)
			break
		}
		var ok bool
		if p.arena, ok = unescape(p.arena, v.body); !ok {
			return nil, false
		}
	case "base64":
		if !v.isStr {
			return nil, false
		}
		src := v.body
		if v.esc {
			// Rare: unescape aside first.
			var ok bool
			if src, ok = unescape(nil, v.body); !ok {
				return nil, false
			}
		}
		var err error
		if p.arena, err = base64.StdEncoding.AppendDecode(p.arena, src); err != nil {
			return nil, false
		}
	default:
		return nil, false
	}
	return p.arena[start:len(p.arena):len(p.arena)], true
}

// record reads one record object in the server's layout.
func (p *recordsParser) record(r *Record) bool {
	if !p.lit(`{"partition":`) {
		return false
	}
	part, ok := p.int(32)
	if !ok || !p.lit(`,"offset":`) {
		return false
	}
	off, ok := p.int(64)
	if !ok || !p.lit(`,"timestamp":`) {
		return false
	}
	ts, ok := p.int(64)
	if !ok || !p.lit(`,"key":`) {
		return false
	}
	key, ok := p.value()
	if !ok {
		return false
	}
	keyEnc := ""
	if p.lit(`,"key_encoding":`) {
		if keyEnc, ok = p.str(); !ok {
			return false
		}
	}
	if !p.lit(`,"value":`) {
		return false
	}
	val, ok := p.value()
	if !ok {
		return false
	}
	enc := ""
	if p.lit(`,"encoding":`) {
		if enc, ok = p.str(); !ok {
			return false
		}
	}
	r.Partition, r.Offset, r.Timestamp = int32(part), off, time.UnixMilli(ts)
	if r.Key, ok = p.decode(key, keyEnc); !ok {
		return false
	}
	if r.Value, ok = p.decode(val, enc); !ok {
		return false
	}
	if p.lit(`,"headers":[`) {
		if !p.peek(']') {
			for {
				var h Header
				if !p.header(&h) {
					return false
				}
				r.Headers = append(r.Headers, h)
				if p.peek(',') {
					p.i++
					continue
				}
				break
			}
		}
		if !p.lit("]") {
			return false
		}
	}
	return p.lit("}")
}

// header reads one header object in the server's layout.
func (p *recordsParser) header(h *Header) bool {
	if !p.lit(`{"key":`) {
		return false
	}
	k, ok := p.str()
	if !ok || !p.lit(`,"value":`) {
		return false
	}
	v, ok := p.value()
	if !ok {
		return false
	}
	enc := "text"
	if p.lit(`,"encoding":`) {
		if enc, ok = p.str(); !ok {
			return false
		}
		if enc == "" {
			enc = "text"
		}
	}
	h.Key = k
	if h.Value, ok = p.decode(v, enc); !ok {
		return false
	}
	return p.lit("}")
}
