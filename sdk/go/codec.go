package samsa

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// Binary frame kinds (PROTOCOL.md §6).
const (
	kindProduce = 1
	kindAck     = 2
	kindRecords = 3
)

// --- binary ---

// appendBinaryProduce appends a kind 1 frame.
func appendBinaryProduce(b []byte, id uint32, topic string, items []prodItem) []byte {
	b = append(b, kindProduce)
	b = binary.LittleEndian.AppendUint32(b, id)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(topic)))
	b = append(b, topic...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(items)))
	for i := range items {
		r := &items[i].rec
		p := int32(-1)
		if r.UsePartition {
			p = r.Partition
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(p))
		b = appendNBytes(b, r.Key)
		b = appendNBytes(b, r.Value)
		b = binary.LittleEndian.AppendUint16(b, uint16(len(r.Headers)))
		for _, h := range r.Headers {
			b = binary.LittleEndian.AppendUint16(b, uint16(len(h.Key)))
			b = append(b, h.Key...)
			b = appendNBytes(b, h.Value)
		}
	}
	return b
}

func appendNBytes(b, v []byte) []byte {
	if v == nil {
		return binary.LittleEndian.AppendUint32(b, 0xffffffff)
	}
	b = binary.LittleEndian.AppendUint32(b, uint32(len(v)))
	return append(b, v...)
}

// binaryRecordSize is the size of a record in a kind 1 frame.
func binaryRecordSize(r *Record) int {
	n := 4 + 4 + len(r.Key) + 4 + len(r.Value) + 2
	for _, h := range r.Headers {
		n += 2 + len(h.Key) + 4 + len(h.Value)
	}
	return n
}

var errShortFrame = errors.New("samsa: truncated binary frame from the server")

type binReader struct {
	b   []byte
	bad bool
}

func (r *binReader) need(n int) bool {
	if r.bad || n < 0 || len(r.b) < n {
		r.bad = true
		return false
	}
	return true
}

func (r *binReader) u16() uint16 {
	if !r.need(2) {
		return 0
	}
	v := binary.LittleEndian.Uint16(r.b)
	r.b = r.b[2:]
	return v
}

func (r *binReader) u32() uint32 {
	if !r.need(4) {
		return 0
	}
	v := binary.LittleEndian.Uint32(r.b)
	r.b = r.b[4:]
	return v
}

func (r *binReader) u64() uint64 {
	if !r.need(8) {
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *binReader) take(n int) []byte {
	if !r.need(n) {
		return nil
	}
	v := r.b[:n:n]
	r.b = r.b[n:]
	return v
}

// nbytes reads an i32-length-prefixed byte field (-1: nil). The result
// aliases the frame.
func (r *binReader) nbytes() []byte {
	n := int32(r.u32())
	if r.bad || n == -1 {
		return nil
	}
	if n < 0 {
		r.bad = true
		return nil
	}
	return r.take(int(n))
}

// binaryAck is a decoded kind 2 frame.
type binaryAck struct {
	id      uint32
	err     *Error
	results []byte // count × (i32 partition, i64 offset), aliasing the frame
	count   int
}

func (a *binaryAck) result(i int) (int32, int64) {
	p := a.results[i*12:]
	return int32(binary.LittleEndian.Uint32(p)), int64(binary.LittleEndian.Uint64(p[4:]))
}

func parseBinaryAck(data []byte) (binaryAck, error) {
	r := binReader{b: data}
	var a binaryAck
	a.id = r.u32()
	code := r.u16()
	if r.bad {
		return a, errShortFrame
	}
	if code != 0 {
		msg := r.take(int(r.u16()))
		a.err = &Error{Code: codeOfBinary(code), Message: string(msg)}
		return a, nil
	}
	a.count = int(r.u32())
	a.results = r.take(a.count * 12)
	if r.bad {
		return a, errShortFrame
	}
	return a, nil
}

// parseBinaryRecords decodes a kind 3 frame. Keys, values and header
// values are copied (the frame buffer is reused).
func parseBinaryRecords(data []byte, topic func(sub string) string) (string, []Record, error) {
	r := binReader{b: data}
	sub := string(r.take(int(r.u16())))
	n := int(r.u32())
	if r.bad || n*(4+8+8+4+4+2) > len(r.b) {
		return sub, nil, errShortFrame
	}
	t := topic(sub)
	recs := make([]Record, n)
	// One allocation for all the bytes of the frame's records.
	arena := make([]byte, 0, len(r.b))
	cp := func(v []byte) []byte {
		if v == nil {
			return nil
		}
		start := len(arena)
		arena = append(arena, v...)
		return arena[start:len(arena):len(arena)]
	}
	for i := range recs {
		rec := &recs[i]
		rec.Topic = t
		rec.Partition = int32(r.u32())
		rec.Offset = int64(r.u64())
		rec.Timestamp = time.UnixMilli(int64(r.u64()))
		rec.Key = cp(r.nbytes())
		rec.Value = cp(r.nbytes())
		if nh := int(r.u16()); nh > 0 && !r.bad {
			if nh*6 > len(r.b) {
				return sub, nil, errShortFrame
			}
			rec.Headers = make([]Header, nh)
			for j := range rec.Headers {
				k := r.take(int(r.u16()))
				rec.Headers[j] = Header{Key: string(k), Value: cp(r.nbytes())}
			}
		}
		if r.bad {
			return sub, nil, errShortFrame
		}
	}
	return sub, recs, nil
}

// --- JSON ---

// appendJSONProduce appends a produce op holding items.
func appendJSONProduce(b []byte, id uint32, topic string, items []prodItem) []byte {
	b = append(b, `{"op":"produce","id":`...)
	b = strconv.AppendUint(b, uint64(id), 10)
	b = append(b, `,"topic":`...)
	b = appendJSONString(b, topic)
	b = append(b, `,"records":[`...)
	for i := range items {
		if i > 0 {
			b = append(b, ',')
		}
		r := &items[i].rec
		b = append(b, '{')
		if r.Key != nil {
			b = append(b, `"key":`...)
			if utf8.Valid(r.Key) {
				b = appendJSONString(b, r.Key)
			} else {
				b = appendBase64(b, r.Key)
				b = append(b, `,"key_encoding":"base64"`...)
			}
			b = append(b, ',')
		}
		b = append(b, `"value":`...)
		switch {
		case r.Value == nil:
			b = append(b, "null"...)
		case utf8.Valid(r.Value):
			b = appendJSONString(b, r.Value)
			b = append(b, `,"encoding":"text"`...)
		default:
			b = appendBase64(b, r.Value)
			b = append(b, `,"encoding":"base64"`...)
		}
		if r.UsePartition {
			b = append(b, `,"partition":`...)
			b = strconv.AppendInt(b, int64(r.Partition), 10)
		}
		if !r.Timestamp.IsZero() {
			b = append(b, `,"timestamp":`...)
			b = strconv.AppendInt(b, r.Timestamp.UnixMilli(), 10)
		}
		if len(r.Headers) > 0 {
			b = append(b, `,"headers":[`...)
			for j, h := range r.Headers {
				if j > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"key":`...)
				b = appendJSONString(b, h.Key)
				b = append(b, `,"value":`...)
				switch {
				case h.Value == nil:
					b = append(b, "null"...)
				case utf8.Valid(h.Value):
					b = appendJSONString(b, h.Value)
				default:
					b = appendBase64(b, h.Value)
					b = append(b, `,"encoding":"base64"`...)
				}
				b = append(b, '}')
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

func appendBase64(b, v []byte) []byte {
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, v)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s, valid UTF-8, as a JSON string.
func appendJSONString[T string | []byte](b []byte, s T) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c != 0x7f {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"':
			b = append(b, '\\', '"')
		case '\\':
			b = append(b, '\\', '\\')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// envelope is any server text frame; fields are interpreted per type.
type envelope struct {
	Type       string          `json:"type"`
	ID         json.RawMessage `json:"id"`
	Sub        string          `json:"sub"`
	Code       string          `json:"code"`
	Message    string          `json:"message"`
	Results    []ackResult     `json:"results"`
	Records    []wireRecord    `json:"records"`
	Partitions []wirePartition `json:"partitions"`
	Partition  int32           `json:"partition"`
	Offset     int64           `json:"offset"`
	Group      string          `json:"group"`
	Member     string          `json:"member"`
	Generation int32           `json:"generation"`
	Credit     int64           `json:"credit"`
	Session    string          `json:"session"`
	// hello: the nonce (base64) and whether auth is "required".
	Nonce string `json:"nonce"`
	Auth  string `json:"auth"`
	// authenticated: the user and when its token expires (Unix ms; 0:
	// never).
	User    string `json:"user"`
	Expires int64  `json:"expires"`
	Limits  struct {
		MaxFrameBytes    int `json:"max_frame_bytes"`
		MaxSubscriptions int `json:"max_subscriptions"`
		MaxPendingBytes  int `json:"max_pending_bytes"`
	} `json:"limits"`
}

type ackResult struct {
	Partition int32 `json:"partition"`
	Offset    int64 `json:"offset"`
}

type wirePartition struct {
	Partition     int32 `json:"partition"`
	Offset        int64 `json:"offset"`
	HighWatermark int64 `json:"high_watermark"`
}

type wireRecord struct {
	Partition   int32           `json:"partition"`
	Offset      int64           `json:"offset"`
	Timestamp   int64           `json:"timestamp"`
	Key         json.RawMessage `json:"key"`
	KeyEncoding string          `json:"key_encoding"`
	Value       json.RawMessage `json:"value"`
	Encoding    string          `json:"encoding"`
	Headers     []wireHeader    `json:"headers"`
}

type wireHeader struct {
	Key      string          `json:"key"`
	Value    json.RawMessage `json:"value"`
	Encoding string          `json:"encoding"`
}

// decodeValue turns a JSON-encoded record field back into bytes.
func decodeValue(raw json.RawMessage, enc string) ([]byte, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	switch enc {
	case "json":
		return []byte(raw), nil
	case "", "text", "base64":
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			if enc == "" {
				// No encoding: a JSON value.
				return []byte(raw), nil
			}
			return nil, err
		}
		if enc == "base64" {
			return base64.StdEncoding.DecodeString(s)
		}
		return []byte(s), nil
	}
	return nil, fmt.Errorf("unknown encoding %q", enc)
}

func (w *wireRecord) record(topic string) (Record, error) {
	r := Record{Topic: topic, Partition: w.Partition, Offset: w.Offset, Timestamp: time.UnixMilli(w.Timestamp)}
	var err error
	if r.Key, err = decodeValue(w.Key, w.KeyEncoding); err != nil {
		return r, fmt.Errorf("samsa: record %d/%d: key: %w", w.Partition, w.Offset, err)
	}
	if r.Value, err = decodeValue(w.Value, w.Encoding); err != nil {
		return r, fmt.Errorf("samsa: record %d/%d: value: %w", w.Partition, w.Offset, err)
	}
	if len(w.Headers) > 0 {
		r.Headers = make([]Header, len(w.Headers))
		for i, h := range w.Headers {
			enc := h.Encoding
			if enc == "" {
				enc = "text"
			}
			v, err := decodeValue(h.Value, enc)
			if err != nil {
				return r, fmt.Errorf("samsa: record %d/%d: header %q: %w", w.Partition, w.Offset, h.Key, err)
			}
			r.Headers[i] = Header{Key: h.Key, Value: v}
		}
	}
	return r, nil
}

// parseID reads our numeric request ids back.
func parseID(raw json.RawMessage) (uint32, bool) {
	if len(raw) == 0 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(raw), 10, 32)
	if err != nil {
		return 0, false
	}
	return uint32(n), true
}
