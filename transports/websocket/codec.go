package websocket

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/samsa-broker/samsa/broker"
	"github.com/samsa-broker/samsa/broker/group"
	"github.com/samsa-broker/samsa/broker/record"
)

// Stable error codes of PROTOCOL.md §2.
const (
	codeBadRequest   = "bad_request"
	codeUnknownOp    = "unknown_op"
	codeUnknownTopic = "unknown_topic"
	codeNotFound     = "not_found"
	codeTooLarge     = "too_large"
	codeRejected     = "rejected"
	codeForbidden    = "forbidden"
	codeUnauthorized = "unauthorized"
	codeLimit        = "limit"
	codeUnavailable  = "unavailable"
	codeInternal     = "internal"
)

// binaryCodes are the u16 codes of binary acks.
var binaryCodes = map[string]uint16{
	codeBadRequest: 1, codeUnknownOp: 2, codeUnknownTopic: 3, codeNotFound: 4,
	codeTooLarge: 5, codeRejected: 6, codeForbidden: 7, codeUnauthorized: 8,
	codeLimit: 9, codeUnavailable: 10, codeInternal: 11,
}

// Close codes of PROTOCOL.md §8.
const (
	CloseNormal        = 1000
	ClosePolicy        = 1008
	CloseTooBig        = 1009
	CloseRestart       = 1012
	CloseProtocolError = 4000
	CloseUnauthorized  = 4001
	CloseSlowConsumer  = 4008
)

// Binary frame kinds.
const (
	kindProduce = 1
	kindAck     = 2
	kindRecords = 3
)

// protoError is an error with a stable code.
type protoError struct {
	code string
	msg  string
}

func (e *protoError) Error() string { return e.code + ": " + e.msg }

func errf(code, format string, args ...any) *protoError {
	return &protoError{code: code, msg: fmt.Sprintf(format, args...)}
}

// ErrFilterNotFound and ErrFilterUnavailable may be returned (wrapped) by a
// ConsumeFilter: they map to not_found and unavailable.
var (
	ErrFilterNotFound    = errors.New("filter not found")
	ErrFilterUnavailable = errors.New("filters unavailable")
)

// toProto maps a broker error to a protocol error.
func toProto(err error) *protoError {
	var pe *protoError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &pe):
		return pe
	case errors.Is(err, broker.ErrUnknownTopic), errors.Is(err, broker.ErrInvalidTopic),
		errors.Is(err, group.ErrUnknownTopic):
		return errf(codeUnknownTopic, "%v", err)
	case errors.Is(err, broker.ErrBatchTooLarge), errors.Is(err, record.ErrTooLarge):
		return errf(codeTooLarge, "%v", err)
	case errors.Is(err, broker.ErrFilterRejected):
		return errf(codeRejected, "%v", err)
	case errors.Is(err, ErrFilterNotFound), errors.Is(err, broker.ErrUnknownFilter):
		return errf(codeNotFound, "%v", err)
	case errors.Is(err, broker.ErrDiskFull), errors.Is(err, broker.ErrStorage), errors.Is(err, broker.ErrClosed),
		errors.Is(err, broker.ErrTimeout), errors.Is(err, broker.ErrFiltersDisabled), errors.Is(err, ErrFilterUnavailable),
		errors.Is(err, group.ErrCoordinatorNotAvailable), errors.Is(err, group.ErrRebalanceInProgress),
		errors.Is(err, group.ErrIllegalGeneration), errors.Is(err, group.ErrUnknownMemberID):
		return errf(codeUnavailable, "%v", err)
	case errors.Is(err, group.ErrInvalidGroupID), errors.Is(err, group.ErrInconsistentProtocol),
		errors.Is(err, group.ErrOffsetMetadataTooLarge), errors.Is(err, group.ErrInvalidSessionTimeout),
		errors.Is(err, broker.ErrInvalidConfig), errors.Is(err, broker.ErrCorruptBatch):
		return errf(codeBadRequest, "%v", err)
	case errors.Is(err, broker.ErrOffsetOutOfRange):
		return errf(codeBadRequest, "%v", err)
	}
	return errf(codeInternal, "%v", err)
}

// --- JSON output helpers ---

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. s must be valid UTF-8 (callers
// check, or use validUTF8).
func appendString[T string | []byte](dst []byte, s T) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// validUTF8 replaces invalid UTF-8 in s.
func validUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }

// Encodings.
const (
	encAuto   = "auto"
	encJSON   = "json"
	encText   = "text"
	encBase64 = "base64"
)

func validEncoding(e string, allowAuto bool) bool {
	switch e {
	case encJSON, encText, encBase64:
		return true
	case encAuto:
		return allowAuto
	}
	return false
}

// chooseEncoding picks the encoding of b for a wanted encoding, with the
// auto rule as the fallback. keyMode does not detect JSON under auto.
func chooseEncoding(b []byte, want string, keyMode bool) string {
	switch want {
	case encBase64:
		return encBase64
	case encJSON:
		if json.Valid(b) {
			return encJSON
		}
	case encText:
		if utf8.Valid(b) {
			return encText
		}
	}
	if !keyMode && json.Valid(b) {
		return encJSON
	}
	if utf8.Valid(b) {
		return encText
	}
	return encBase64
}

// appendValue appends b as JSON in encoding enc (as chosen by
// chooseEncoding); nil is null.
func appendValue(dst, b []byte, enc string) []byte {
	if b == nil {
		return append(dst, "null"...)
	}
	switch enc {
	case encJSON:
		return appendCompactJSON(dst, b)
	case encText:
		return appendString(dst, b)
	}
	dst = append(dst, '"')
	n := base64.StdEncoding.EncodedLen(len(b))
	dst = append(dst, make([]byte, n)...)
	base64.StdEncoding.Encode(dst[len(dst)-n:], b)
	return append(dst, '"')
}

// appendCompactJSON appends valid JSON, compacted when it holds whitespace.
func appendCompactJSON(dst, b []byte) []byte {
	if bytes.IndexAny(b, " \t\r\n") < 0 {
		return append(dst, b...)
	}
	buf := bytes.NewBuffer(dst)
	if err := json.Compact(buf, b); err != nil {
		return append(dst, b...)
	}
	return buf.Bytes()
}

// decodeValue decodes a produced key/value in encoding enc; JSON null is a
// null.
func decodeValue(raw json.RawMessage, enc, what string) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	switch enc {
	case encJSON:
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return nil, errf(codeBadRequest, "%s: %v", what, err)
		}
		return buf.Bytes(), nil
	case encText, encBase64:
		if raw[0] != '"' {
			return nil, errf(codeBadRequest, "%s: encoding %q wants a string", what, enc)
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, errf(codeBadRequest, "%s: %v", what, err)
		}
		if enc == encText {
			return []byte(s), nil
		}
		return decodeBase64(s, what)
	}
	return nil, errf(codeBadRequest, "%s: unknown encoding %q", what, enc)
}

func decodeBase64(s, what string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		if b2, err2 := base64.RawStdEncoding.DecodeString(s); err2 == nil {
			return b2, nil
		}
		return nil, errf(codeBadRequest, "%s: bad base64: %v", what, err)
	}
	if b == nil {
		b = []byte{}
	}
	return b, nil
}

// appendID appends `"id":<id>,` when id is set.
func appendID(dst []byte, id json.RawMessage) []byte {
	if len(id) == 0 {
		return dst
	}
	dst = append(dst, `"id":`...)
	dst = append(dst, id...)
	return append(dst, ',')
}

// validID checks a request id: a string or a number.
func validID(id json.RawMessage) bool {
	if len(id) == 0 {
		return true
	}
	if id[0] == '"' {
		return true // json.Unmarshal validated it
	}
	_, err := strconv.ParseFloat(string(id), 64)
	return err == nil
}

// errorFrame builds an error message.
func errorFrame(id json.RawMessage, sub string, e *protoError) []byte {
	b := make([]byte, 0, 64+len(e.msg))
	b = append(b, `{"type":"error",`...)
	b = appendID(b, id)
	if sub != "" {
		b = append(b, `"sub":`...)
		b = appendString(b, validUTF8(sub))
		b = append(b, ',')
	}
	b = append(b, `"code":`...)
	b = appendString(b, e.code)
	b = append(b, `,"message":`...)
	b = appendString(b, validUTF8(e.msg))
	return append(b, '}')
}

// simpleReply builds {"type":typ,"id":id,"sub":sub}.
func simpleReply(typ string, id json.RawMessage, sub string) []byte {
	b := make([]byte, 0, 48)
	b = append(b, `{"type":`...)
	b = appendString(b, typ)
	if len(id) > 0 {
		b = append(b, `,"id":`...)
		b = append(b, id...)
	}
	if sub != "" {
		b = append(b, `,"sub":`...)
		b = appendString(b, sub)
	}
	return append(b, '}')
}

// --- binary frames ---

// binReader reads little-endian fields of a binary frame.
type binReader struct {
	b   []byte
	bad bool
}

func (r *binReader) take(n int) []byte {
	if r.bad || n < 0 || len(r.b) < n {
		r.bad = true
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

func (r *binReader) u16() uint16 {
	if v := r.take(2); v != nil {
		return binary.LittleEndian.Uint16(v)
	}
	return 0
}

func (r *binReader) u32() uint32 {
	if v := r.take(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

// nbytes reads an i32 length (-1 null) and the bytes.
func (r *binReader) nbytes() []byte {
	n := int32(r.u32())
	if r.bad {
		return nil
	}
	if n == -1 {
		return nil
	}
	if n < 0 {
		r.bad = true
		return nil
	}
	v := r.take(int(n))
	if v == nil && !r.bad {
		return []byte{}
	}
	return v
}

// appendNBytes appends an i32 length (-1 null) and the bytes.
func appendNBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.LittleEndian.AppendUint32(dst, 0xffffffff)
	}
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(b)))
	return append(dst, b...)
}

// appendBinHeaders appends u16 count and the headers.
func appendBinHeaders(dst []byte, hs []record.Header) []byte {
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(hs)))
	for _, h := range hs {
		dst = binary.LittleEndian.AppendUint16(dst, uint16(len(h.Key)))
		dst = append(dst, h.Key...)
		dst = appendNBytes(dst, h.Value)
	}
	return dst
}

// binaryAckError builds a kind 2 error ack.
func binaryAckError(reqID uint32, e *protoError) []byte {
	msg := e.msg
	if len(msg) > 0xffff {
		msg = msg[:0xffff]
	}
	b := make([]byte, 0, 9+len(msg))
	b = append(b, kindAck)
	b = binary.LittleEndian.AppendUint32(b, reqID)
	b = binary.LittleEndian.AppendUint16(b, binaryCodes[e.code])
	b = binary.LittleEndian.AppendUint16(b, uint16(len(msg)))
	return append(b, msg...)
}
