package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	filter "github.com/samsa-broker/samsa/sdk/filter/go"
	"github.com/samsa-broker/samsa/sdk/filter/go/jsonfield"
)

func isLocal(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '.' || c == '_' || c == '%' || c == '+' || c == '-'
}

func isDomain(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-'
}

// domainEnd returns the end of the e-mail domain that starts at s[i], or -1:
// dot-separated labels of letters, digits and '-', at least two, the last
// of two or more letters. A trailing '.' or '-' (end of a sentence) is not
// part of it.
func domainEnd(s string, i int) int {
	j := i
	for j < len(s) && isDomain(s[j]) {
		j++
	}
	for j > i && (s[j-1] == '.' || s[j-1] == '-') {
		j--
	}
	d := s[i:j]
	dot := strings.LastIndexByte(d, '.')
	if dot <= 0 || len(d)-dot-1 < 2 || strings.Contains(d, "..") || d[0] == '-' {
		return -1
	}
	for k := dot + 1; k < len(d); k++ {
		if c := d[k] | 0x20; c < 'a' || c > 'z' {
			return -1
		}
	}
	return j
}

// MaskEmails masks every e-mail address in s: the local part keeps its first
// character and the rest becomes "***"; the domain is kept.
// "alice@example.com" becomes "a***@example.com". It returns the new string
// and the number of addresses masked. An address already masked this way is
// not matched again ('*' is not part of an address here).
func MaskEmails(s string) (string, int) {
	var b strings.Builder
	n, last := 0, 0 // s[last:] is not yet written to b
	for at := 0; at < len(s); at++ {
		if s[at] != '@' {
			continue
		}
		start := at
		for start > last && isLocal(s[start-1]) {
			start--
		}
		if start == at {
			continue
		}
		end := domainEnd(s, at+1)
		if end < 0 {
			continue
		}
		b.WriteString(s[last : start+1])
		b.WriteString("***")
		b.WriteString(s[at:end])
		last, at, n = end, end-1, n+1
	}
	if n == 0 {
		return s, 0
	}
	b.WriteString(s[last:])
	return b.String(), n
}

// RedactJSON masks the e-mail addresses in every string value (not object
// key) of the JSON document v, anywhere in it, and leaves every other byte
// as it was. It returns the new document and the number of addresses
// masked; ok is false if v is not JSON.
func RedactJSON(v []byte) (out []byte, masked int, ok bool) {
	if bytes.IndexByte(v, '@') < 0 {
		// No address can be there; only validity is left to tell.
		return v, 0, json.Valid(v)
	}
	if !json.Valid(v) {
		return v, 0, false
	}
	last := 0 // v[last:] is not yet copied to out
	jsonfield.Strings(v, func(start, end int) {
		lit := v[start:end]
		if bytes.IndexByte(lit, '@') < 0 && !bytes.Contains(lit, []byte(`\u`)) {
			return
		}
		s, ok := jsonfield.String(lit)
		if !ok {
			return
		}
		if m, n := MaskEmails(s); n > 0 {
			out = append(out, v[last:start]...)
			out = appendJSONString(out, m)
			last = end
			masked += n
		}
	})
	if masked == 0 {
		return v, 0, true
	}
	return append(out, v[last:]...), masked, true
}

// appendJSONString appends s as a JSON string literal: '"', '\\' and control
// characters escaped, everything else (valid UTF-8, as s comes from a
// decoded JSON string) as is.
func appendJSONString(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c == '\n':
			dst = append(dst, '\\', 'n')
		case c == '\r':
			dst = append(dst, '\\', 'r')
		case c == '\t':
			dst = append(dst, '\\', 't')
		case c < 0x20:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}

// Redact is the filter: records whose JSON value holds an e-mail address are
// rewritten with the addresses masked (key and headers kept); all other
// records, including non-JSON ones, are kept unchanged. It takes no
// parameters.
func Redact(b *filter.Batch, _ []byte) ([]filter.Decision, error) {
	ds := make([]filter.Decision, len(b.Records))
	records, addresses := 0, 0
	for i, r := range b.Records {
		out, n, _ := RedactJSON(r.Value)
		if n == 0 {
			ds[i] = filter.Keep()
			continue
		}
		ds[i] = filter.Rewrite(r.Key, out, r.Headers)
		records++
		addresses += n
	}
	fmt.Printf("redact: %d records, %d masked (%d addresses)\n", len(b.Records), records, addresses)
	return ds, nil
}
