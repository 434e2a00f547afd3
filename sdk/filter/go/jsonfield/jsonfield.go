// Package jsonfield reads single fields of JSON documents without decoding
// them whole. In a Wasm filter, encoding/json's reflection costs tens of
// microseconds per record; a filter that only needs one field of each record
// (a number to compare, a string to route on) is many times faster with
// this package.
//
//	raw, ok := jsonfield.Lookup(record.Value, "sensor", "temp")
//	t, isNum := jsonfield.Number(raw)
package jsonfield

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Lookup returns the raw JSON value at path (the keys of nested objects) in
// doc, and whether doc is valid JSON and has a value there. With no path it
// returns the whole document (trimmed of whitespace).
func Lookup(doc []byte, path ...string) ([]byte, bool) {
	if !json.Valid(doc) {
		return nil, false
	}
	return Get(doc, path...)
}

// Get is Lookup for a document already known to be valid JSON (it does not
// check, and its result on invalid JSON is unspecified but safe).
func Get(doc []byte, path ...string) ([]byte, bool) {
	i := skipWS(doc, 0)
	for _, key := range path {
		if i >= len(doc) || doc[i] != '{' {
			return nil, false
		}
		i = skipWS(doc, i+1)
		found := false
		for i < len(doc) && doc[i] == '"' {
			end := skipString(doc, i)
			k := doc[i:end]
			i = skipWS(doc, end)
			if i >= len(doc) || doc[i] != ':' {
				return nil, false
			}
			i = skipWS(doc, i+1)
			if keyEqual(k, key) {
				found = true
				break
			}
			i = skipWS(doc, skipValue(doc, i))
			if i < len(doc) && doc[i] == ',' {
				i = skipWS(doc, i+1)
			}
		}
		if !found {
			return nil, false
		}
	}
	if i >= len(doc) {
		return nil, false
	}
	return doc[i:skipValue(doc, i)], true
}

// Number returns the value of a raw JSON number.
func Number(raw []byte) (float64, bool) {
	if len(raw) == 0 || (raw[0] != '-' && (raw[0] < '0' || raw[0] > '9')) {
		return 0, false
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	return f, err == nil
}

// String returns the value of a raw JSON string.
func String(raw []byte) (string, bool) {
	if len(raw) < 2 || raw[0] != '"' || raw[len(raw)-1] != '"' {
		return "", false
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw[1 : len(raw)-1]), true
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

// Scalar returns the text of a raw JSON string, number or boolean: a
// string's value, or a number or boolean as written.
func Scalar(raw []byte) (string, bool) {
	if len(raw) == 0 {
		return "", false
	}
	switch c := raw[0]; {
	case c == '"':
		return String(raw)
	case c == 't' || c == 'f' || c == '-' || (c >= '0' && c <= '9'):
		return string(raw), true
	}
	return "", false
}

// Strings calls fn with the bounds [start, end) of every string literal
// (quotes included) in the valid JSON document doc that is a value, not an
// object key, in document order.
func Strings(doc []byte, fn func(start, end int)) {
	for i := 0; i < len(doc); i++ {
		if doc[i] != '"' {
			continue
		}
		end := skipString(doc, i)
		if k := skipWS(doc, end); k >= len(doc) || doc[k] != ':' {
			fn(i, end)
		}
		i = end - 1
	}
}

func keyEqual(lit []byte, key string) bool {
	if len(lit) >= 2 && bytes.IndexByte(lit, '\\') < 0 {
		return string(lit[1:len(lit)-1]) == key
	}
	s, ok := String(lit)
	return ok && s == key
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string literal starting at b[i].
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) int {
	if i >= len(b) {
		return i
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && b[i] != ' ' && b[i] != '\t' && b[i] != '\n' && b[i] != '\r' {
		i++
	}
	return i
}
