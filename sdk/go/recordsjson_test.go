package samsa

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"

	gws "github.com/gorilla/websocket"
)

// slowRecords is the encoding/json path of handleText for a records
// message (Topic left empty, as parseRecordsJSON leaves it).
func slowRecords(data []byte) (string, []Record, error) {
	var e envelope
	if err := json.Unmarshal(data, &e); err != nil {
		return "", nil, err
	}
	if e.Type != "records" {
		return "", nil, fmt.Errorf("type %q", e.Type)
	}
	recs := make([]Record, len(e.Records))
	for i := range e.Records {
		r, err := e.Records[i].record("")
		if err != nil {
			return "", nil, err
		}
		recs[i] = r
	}
	return e.Sub, recs, nil
}

// testRec is a record with the encodings the server would deliver it in.
type testRec struct {
	rec            Record
	keyEnc, valEnc string
	hdrEnc         []string
}

// appendTestJSONString writes s as JSON the way the server does, with
// extra escapes (\/, \u for non-ASCII) when fancy, which the server never
// writes but JSON allows.
func appendTestJSONString(b []byte, s []byte, fancy bool) []byte {
	if !fancy {
		return appendJSONString(b, s)
	}
	b = append(b, '"')
	for _, r := range string(s) {
		switch {
		case r == '/':
			b = append(b, `\/`...)
		case r == '\b':
			b = append(b, `\b`...)
		case r == '\f':
			b = append(b, `\f`...)
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case r < 0x20 || r >= 0x80:
			if r > 0xffff {
				r1, r2 := surrogates(r)
				b = fmt.Appendf(b, `\u%04x\u%04X`, r1, r2)
			} else {
				b = fmt.Appendf(b, `\u%04x`, r)
			}
		default:
			b = append(b, byte(r))
		}
	}
	return append(b, '"')
}

func surrogates(r rune) (rune, rune) {
	r -= 0x10000
	return 0xd800 + (r>>10)&0x3ff, 0xdc00 + r&0x3ff
}

func appendTestValue(b, v []byte, enc string, fancy bool) []byte {
	switch {
	case v == nil:
		return append(b, "null"...)
	case enc == "json":
		return append(b, v...)
	case enc == "text":
		return appendTestJSONString(b, v, fancy)
	}
	return appendBase64(b, v)
}

// buildRecordsMessage lays records out as transports/websocket's
// msgBuilder and appendRecord do.
func buildRecordsMessage(sub string, recs []testRec, fancy bool) []byte {
	b := []byte(`{"type":"records","sub":`)
	b = appendJSONString(b, sub)
	b = append(b, `,"records":[`...)
	for i, tr := range recs {
		if i > 0 {
			b = append(b, ',')
		}
		r := &tr.rec
		b = fmt.Appendf(b, `{"partition":%d,"offset":%d,"timestamp":%d,"key":`, r.Partition, r.Offset, r.Timestamp.UnixMilli())
		if r.Key == nil {
			b = append(b, "null"...)
		} else {
			b = appendTestValue(b, r.Key, tr.keyEnc, fancy)
			b = append(b, `,"key_encoding":"`+tr.keyEnc+`"`...)
		}
		b = append(b, `,"value":`...)
		ve := tr.valEnc
		if r.Value == nil {
			ve = "json"
		}
		b = appendTestValue(b, r.Value, ve, fancy)
		b = append(b, `,"encoding":"`+ve+`"`...)
		if len(r.Headers) > 0 {
			b = append(b, `,"headers":[`...)
			for j, h := range r.Headers {
				if j > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"key":`...)
				b = appendTestJSONString(b, []byte(h.Key), fancy)
				b = append(b, `,"value":`...)
				he := tr.hdrEnc[j]
				if h.Value == nil {
					he = "text"
				}
				b = appendTestValue(b, h.Value, he, fancy)
				b = append(b, `,"encoding":"`+he+`"}`...)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// randBytes returns bytes of one of several shapes: nil, empty, binary,
// ASCII text with escapes, unicode text, JSON.
func randBytes(rng *rand.Rand) (v []byte, jsonOK bool) {
	switch rng.IntN(8) {
	case 0:
		return nil, false
	case 1:
		return []byte{}, false
	case 2:
		v = make([]byte, rng.IntN(120))
		for i := range v {
			v[i] = byte(rng.Uint32())
		}
		return v, json.Valid(v)
	case 3:
		const alphabet = "ab \"\\/\n\t\r\x00\x01\x1f\x7f{}[],:"
		v = make([]byte, rng.IntN(40))
		for i := range v {
			v[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return v, json.Valid(v)
	case 4:
		runes := []rune("aé✓😀\u2028\U0010FFFF\uFFFD日本")
		var s []rune
		for range rng.IntN(20) {
			s = append(s, runes[rng.IntN(len(runes))])
		}
		return []byte(string(s)), false
	case 5:
		docs := []string{`{"speed":3}`, `[1,2,{"a":"b\"c"}]`, `"str"`, `"esc\u00e9\n"`, `42`, `-1.5e3`, `true`, `false`, `{"a":{"b":[[],{}]}}`, `{"k":"\ud83d\ude00"}`}
		return []byte(docs[rng.IntN(len(docs))]), true
	case 6:
		return []byte(strconv.Itoa(rng.IntN(1000))), true
	}
	return []byte("plain text value"), false
}

// randEnc picks an encoding the server could use for v.
func randEnc(rng *rand.Rand, v []byte, jsonOK, allowJSON bool) string {
	var opts []string
	// The server writes JSON values compacted.
	if allowJSON && jsonOK && !bytes.ContainsAny(v, " \t\r\n") {
		opts = append(opts, "json")
	}
	if utf8.Valid(v) {
		opts = append(opts, "text")
	}
	opts = append(opts, "base64")
	return opts[rng.IntN(len(opts))]
}

func randRecords(rng *rand.Rand) []testRec {
	recs := make([]testRec, rng.IntN(6))
	for i := range recs {
		tr := &recs[i]
		r := &tr.rec
		r.Partition = rng.Int32N(64)
		r.Offset = rng.Int64N(1 << 40)
		r.Timestamp = time.UnixMilli(time.Now().UnixMilli() - rng.Int64N(1e6))
		var ok bool
		r.Key, ok = randBytes(rng)
		tr.keyEnc = randEnc(rng, r.Key, ok, true)
		r.Value, ok = randBytes(rng)
		tr.valEnc = randEnc(rng, r.Value, ok, true)
		for range rng.IntN(3) {
			v, _ := randBytes(rng)
			k := []rune("kéy/\"\\\n✓")
			key := string(k[:rng.IntN(len(k))])
			r.Headers = append(r.Headers, Header{Key: key, Value: v})
			tr.hdrEnc = append(tr.hdrEnc, randEnc(rng, v, false, false))
		}
	}
	return recs
}

// want is what either path must decode recs into: JSON values arrive as
// their JSON text, which is what was produced here.
func wantRecords(recs []testRec) []Record {
	out := make([]Record, len(recs))
	for i, tr := range recs {
		out[i] = tr.rec
		if len(tr.rec.Headers) == 0 {
			out[i].Headers = nil
		}
	}
	return out
}

// checkSame fails unless the fast path accepts data (when mustAccept) and
// agrees with the encoding/json path.
func checkSame(t *testing.T, data []byte, mustAccept bool) {
	t.Helper()
	sub, recs, ok := parseRecordsJSON(data)
	if !ok {
		if mustAccept {
			t.Fatalf("fast path refused %s", data)
		}
		return
	}
	ssub, srecs, err := slowRecords(data)
	if err != nil {
		t.Fatalf("fast path accepted what encoding/json refuses (%v): %q", err, data)
	}
	if sub != ssub || !sameRecords(recs, srecs) {
		t.Fatalf("fast and encoding/json paths differ on %q:\nfast %q %+v\nslow %q %+v", data, sub, recs, ssub, srecs)
	}
}

// sameRecords compares with nil distinct from empty and times by instant.
func sameRecords(a, b []Record) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Topic != y.Topic || x.Partition != y.Partition || x.Offset != y.Offset || !x.Timestamp.Equal(y.Timestamp) ||
			!sameBytes(x.Key, y.Key) || !sameBytes(x.Value, y.Value) || len(x.Headers) != len(y.Headers) || (x.Headers == nil) != (y.Headers == nil) {
			return false
		}
		for j := range x.Headers {
			if x.Headers[j].Key != y.Headers[j].Key || !sameBytes(x.Headers[j].Value, y.Headers[j].Value) {
				return false
			}
		}
	}
	return true
}

func TestRecordsJSONCases(t *testing.T) {
	now := time.Now().UnixMilli()
	pre := `{"type":"records","sub":"s1","records":[`
	rec := func(body string) string {
		return `{"partition":1,"offset":7,"timestamp":` + strconv.FormatInt(now, 10) + `,` + body + `}`
	}
	cases := []struct {
		name   string
		msg    string
		accept bool // the fast path must take it
	}{
		{"empty", pre + `]}`, true},
		{"text", pre + rec(`"key":"k","key_encoding":"text","value":"hello","encoding":"text"`) + `]}`, true},
		{"null key and value", pre + rec(`"key":null,"value":null,"encoding":"json"`) + `]}`, true},
		{"empty text", pre + rec(`"key":"","key_encoding":"text","value":"","encoding":"text"`) + `]}`, true},
		{"empty base64", pre + rec(`"key":"","key_encoding":"base64","value":"","encoding":"base64"`) + `]}`, true},
		{"base64", pre + rec(`"key":"AAEC","key_encoding":"base64","value":"3q2+7w==","encoding":"base64"`) + `]}`, true},
		{"json object", pre + rec(`"key":null,"value":{"speed":3,"s":"a\"b"},"encoding":"json"`) + `]}`, true},
		{"json spaced", pre + rec(`"key":null,"value":{ "a" : [ 1 , 2 ] },"encoding":"json"`) + `]}`, true},
		{"json number", pre + rec(`"key":null,"value":-12.5e3,"encoding":"json"`) + `]}`, true},
		{"json string", pre + rec(`"key":null,"value":"x\u00e9","encoding":"json"`) + `]}`, true},
		{"json key", pre + rec(`"key":[true,false,null],"key_encoding":"json","value":null,"encoding":"json"`) + `]}`, true},
		{"escapes", pre + rec(`"key":null,"value":"\" \\ \/ \b \f \n \r \t \u0000 \u00e9 \u2713 \ud83d\ude00","encoding":"text"`) + `]}`, true},
		{"escaped base64", pre + rec(`"key":null,"value":"3q2\/7w==","encoding":"base64"`) + `]}`, true},
		{"no encoding string", pre + rec(`"key":"k","value":"v"`) + `]}`, true},
		{"no encoding number", pre + rec(`"key":1,"value":{"a":1}`) + `]}`, true},
		{"headers", pre + rec(`"key":null,"value":null,"encoding":"json","headers":[{"key":"src","value":"ui","encoding":"text"},{"key":"n","value":null,"encoding":"text"},{"key":"b","value":"AP8=","encoding":"base64"},{"key":"d","value":"x"}]`) + `]}`, true},
		{"empty headers", pre + rec(`"key":null,"value":null,"encoding":"json","headers":[]`) + `]}`, true},
		{"escaped sub", `{"type":"records","sub":"s\"1\u00e9","records":[]}`, true},
		{"two records", pre + rec(`"key":null,"value":"a","encoding":"text"`) + `,` + rec(`"key":null,"value":"b","encoding":"text"`) + `]}`, true},
		{"negative timestamp", pre + `{"partition":0,"offset":0,"timestamp":-1,"key":null,"value":null}]}`, true},
		// Refused: the encoding/json path decides (error or not).
		{"lone surrogate", pre + rec(`"key":null,"value":"\ud83d","encoding":"text"`) + `]}`, false},
		{"bad surrogate pair", pre + rec(`"key":null,"value":"\ud83d\u0041","encoding":"text"`) + `]}`, false},
		{"invalid utf8", pre + rec(`"key":null,"value":"`+"\xff"+`","encoding":"text"`) + `]}`, false},
		{"bad base64", pre + rec(`"key":null,"value":"@@","encoding":"base64"`) + `]}`, false},
		{"unknown encoding", pre + rec(`"key":null,"value":"a","encoding":"rot13"`) + `]}`, false},
		{"text not string", pre + rec(`"key":null,"value":1,"encoding":"text"`) + `]}`, false},
		{"unknown field", pre + rec(`"key":null,"value":"a","encoding":"text","extra":1`) + `]}`, false},
		{"reordered", pre + `{"offset":7,"partition":1,"timestamp":1,"key":null,"value":null}]}`, false},
		{"whitespace", `{"type":"records","sub":"s1","records":[ ]}`, false},
		{"trailing", pre + `]} `, false},
		{"truncated", pre + rec(`"key":null,"value":"a`), false},
		{"big partition", pre + `{"partition":4294967296,"offset":7,"timestamp":1,"key":null,"value":null}]}`, false},
		{"int32 bounds", pre + `{"partition":-2147483648,"offset":9223372036854775807,"timestamp":-9223372036854775808,"key":null,"value":null}]}`, true},
		{"int32 overflow", pre + `{"partition":2147483648,"offset":7,"timestamp":1,"key":null,"value":null}]}`, false},
		{"int64 overflow", pre + `{"partition":1,"offset":9223372036854775808,"timestamp":1,"key":null,"value":null}]}`, false},
		{"float offset", pre + `{"partition":1,"offset":7.0,"timestamp":1,"key":null,"value":null}]}`, false},
		{"leading zero", pre + `{"partition":01,"offset":7,"timestamp":1,"key":null,"value":null}]}`, false},
		{"bad json value", pre + rec(`"key":null,"value":{"a":},"encoding":"json"`) + `]}`, false},
		{"control char", pre + rec(`"key":null,"value":"a`+"\n"+`","encoding":"text"`) + `]}`, false},
		{"bad escape", pre + rec(`"key":null,"value":"\x41","encoding":"text"`) + `]}`, false},
		{"other type", `{"type":"reset","sub":"s1","partition":0,"offset":3}`, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, ok := parseRecordsJSON([]byte(tc.msg))
			if ok != tc.accept {
				t.Fatalf("fast path ok=%v, want %v", ok, tc.accept)
			}
			checkSame(t, []byte(tc.msg), tc.accept)
		})
	}
}

func TestRecordsJSONSpecificValues(t *testing.T) {
	now := time.Now().UnixMilli()
	msg := `{"type":"records","sub":"s9","records":[{"partition":2,"offset":5,"timestamp":` + strconv.FormatInt(now, 10) +
		`,"key":"pump-7","key_encoding":"text","value":{"speed":3},"encoding":"json","headers":[{"key":"bin","value":"AAE=","encoding":"base64"},{"key":"n","value":null,"encoding":"text"}]},` +
		`{"partition":0,"offset":6,"timestamp":` + strconv.FormatInt(now, 10) + `,"key":null,"value":"","encoding":"text"}]}`
	sub, recs, ok := parseRecordsJSON([]byte(msg))
	if !ok || sub != "s9" || len(recs) != 2 {
		t.Fatalf("ok %v sub %q recs %d", ok, sub, len(recs))
	}
	r := recs[0]
	if r.Partition != 2 || r.Offset != 5 || r.Timestamp.UnixMilli() != now || string(r.Key) != "pump-7" || string(r.Value) != `{"speed":3}` {
		t.Fatalf("record 0: %+v", r)
	}
	if len(r.Headers) != 2 || r.Headers[0].Key != "bin" || !bytes.Equal(r.Headers[0].Value, []byte{0, 1}) || r.Headers[1].Value != nil {
		t.Fatalf("headers: %+v", r.Headers)
	}
	if recs[1].Key != nil || recs[1].Value == nil || len(recs[1].Value) != 0 {
		t.Fatalf("record 1: null key, empty value: %+v", recs[1])
	}
}

func TestRecordsJSONRandomEquivalence(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))
	for i := range 3000 {
		recs := randRecords(rng)
		fancy := i%3 == 0
		msg := buildRecordsMessage("s"+strconv.Itoa(i), recs, fancy)
		sub, got, ok := parseRecordsJSON(msg)
		if !ok {
			t.Fatalf("fast path refused %q", msg)
		}
		if sub != "s"+strconv.Itoa(i) || !sameRecords(got, wantRecords(recs)) {
			t.Fatalf("message %q:\ngot  %+v\nwant %+v", msg, got, wantRecords(recs))
		}
		checkSame(t, msg, true)
		// Damaged copies: the fast path refuses them or agrees with
		// encoding/json; never a panic.
		for range 5 {
			bad := bytes.Clone(msg)
			switch rng.IntN(3) {
			case 0:
				bad = bad[:rng.IntN(len(bad))]
			case 1:
				bad[rng.IntN(len(bad))] = byte(rng.Uint32())
			default:
				j := rng.IntN(len(bad))
				bad = append(bad[:j:j], append([]byte(`\"{}[],:0 u`[rng.IntN(11):][:1]), bad[j:]...)...)
			}
			checkSame(t, bad, false)
		}
	}
}

func FuzzRecordsJSON(f *testing.F) {
	rng := rand.New(rand.NewPCG(2, 3))
	for i := range 20 {
		f.Add(buildRecordsMessage("s1", randRecords(rng), i%2 == 0))
	}
	f.Add([]byte(`{"type":"records","sub":"s1","records":[{"partition":0,"offset":0,"timestamp":1,"key":null,"value":"\ud83d\ude00","encoding":"text"}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSame(t, data, false)
	})
}

// TestRecordsJSONFromServer reads records as the real server writes them:
// the fast path takes every records message of a raw subscription, and
// an SDK JSON subscription delivers what a binary one does.
func TestRecordsJSONFromServer(t *testing.T) {
	ts := startServer(t)
	c := dial(t, ts.url, Options{})
	ctx := ctxT(t, 30*time.Second)
	const topic = "fastjson"
	rng := rand.New(rand.NewPCG(4, uint64(time.Now().UnixNano())))
	var produced []Record
	for range 300 {
		tr := randRecords(rng)
		for _, x := range tr {
			r := Record{Key: x.rec.Key, Value: x.rec.Value, Headers: x.rec.Headers}
			if len(r.Headers) == 0 {
				r.Headers = nil
			}
			produced = append(produced, r)
		}
	}
	produced = append(produced, Record{Key: []byte(`{"k": 1}`), Value: []byte("\"\\/\b\f\n\r\t\x00 é ✓ 😀 \u2028")})
	acks := make(chan error, len(produced))
	for _, r := range produced {
		c.ProduceAsync(ctx, topic, r, func(_ Ack, err error) { acks <- err })
	}
	for range produced {
		if err := <-acks; err != nil {
			t.Fatal(err)
		}
	}

	// Every format and encoding the server writes, on a raw connection.
	for _, enc := range []string{"auto", "text", "json", "base64"} {
		t.Run("raw-"+enc, func(t *testing.T) {
			d := gws.Dialer{Subprotocols: []string{Subprotocol}}
			conn, _, err := d.DialContext(ctx, ts.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			req := fmt.Sprintf(`{"op":"subscribe","id":1,"sub":"r1","topic":%q,"from":"earliest","credit":100000,"encoding":%q,"key_encoding":%q,"format":"json"}`, topic, enc, enc)
			if err := conn.WriteMessage(gws.TextMessage, []byte(req)); err != nil {
				t.Fatal(err)
			}
			_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			n := 0
			for n < len(produced) {
				_, data, err := conn.ReadMessage()
				if err != nil {
					t.Fatalf("after %d records: %v", n, err)
				}
				if !bytes.HasPrefix(data, []byte(`{"type":"records"`)) {
					continue
				}
				sub, recs, ok := parseRecordsJSON(data)
				if !ok || sub != "r1" {
					t.Fatalf("fast path refused the server's message %q", data)
				}
				_, srecs, err := slowRecords(data)
				if err != nil || !sameRecords(recs, srecs) {
					t.Fatalf("paths differ (%v) on %q", err, data)
				}
				for _, r := range recs {
					if r.Offset != int64(n) {
						t.Fatalf("offset %d, want %d", r.Offset, n)
					}
					if enc != "json" && enc != "auto" {
						w := produced[n]
						if !sameBytes(r.Key, w.Key) || !sameBytes(r.Value, w.Value) {
							t.Fatalf("record %d: key %q value %q, want %q %q", n, r.Key, r.Value, w.Key, w.Value)
						}
					}
					n++
				}
			}
		})
	}

	// The SDK: JSON deliveries equal binary ones, byte for byte.
	next := func(format string) []Record {
		sub, err := c.Subscribe(ctx, topic, SubscribeOptions{From: Earliest(), Format: format})
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		out := make([]Record, len(produced))
		for i := range out {
			if out[i], err = sub.Next(ctx); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	js, bin := next("json"), next("binary")
	for i := range produced {
		if !sameRecords(js[i:i+1], bin[i:i+1]) {
			t.Fatalf("record %d: json %+v, binary %+v", i, js[i], bin[i])
		}
		w := produced[i]
		if js[i].Topic != topic || js[i].Offset != int64(i) || !sameBytes(js[i].Key, w.Key) || !sameBytes(js[i].Value, w.Value) || len(js[i].Headers) != len(w.Headers) {
			t.Fatalf("record %d: got %+v, want %+v", i, js[i], w)
		}
	}
}

// BenchmarkDecodeRecordsJSON decodes a 4-record message of 100-byte
// base64 values with the fast path and with encoding/json.
func BenchmarkDecodeRecordsJSON(b *testing.B) {
	recs := make([]testRec, 4)
	for i := range recs {
		v := make([]byte, 100)
		for j := range v {
			v[j] = byte(i*31 + j*7)
		}
		recs[i] = testRec{rec: Record{Partition: 0, Offset: int64(1000 + i), Timestamp: time.Now(), Value: v}, valEnc: "base64"}
	}
	msg := buildRecordsMessage("s1", recs, false)
	b.Run("fast", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			if _, _, ok := parseRecordsJSON(msg); !ok {
				b.Fatal("refused")
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := slowRecords(msg); err != nil {
				b.Fatal(err)
			}
		}
	})
}
