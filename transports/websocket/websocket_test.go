package websocket

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/samsa-broker/samsa/broker"
	"github.com/samsa-broker/samsa/broker/group"
	"github.com/samsa-broker/samsa/broker/record"
)

func TestHello(t *testing.T) {
	e := startServer(t)
	c := e.dial(t)
	defer c.close()
	h := c.hello
	if h["version"].(float64) != 1 || h["server"] != "samsa" || h["auth"] != "none" || h["session"] == "" || h["nonce"] == "" {
		t.Fatalf("hello %v", h)
	}
	lim := h["limits"].(map[string]any)
	if lim["max_frame_bytes"].(float64) != 1<<20 || lim["max_subscriptions"].(float64) != 64 || lim["max_pending_bytes"].(float64) != 4<<20 {
		t.Fatalf("limits %v", lim)
	}
	if c.ws.Subprotocol() != Subprotocol {
		t.Fatalf("subprotocol %q", c.ws.Subprotocol())
	}
	c.send(map[string]any{"op": "ping", "id": "p1"})
	if m := c.expect("pong"); m["id"] != "p1" {
		t.Fatalf("pong %v", m)
	}
}

func TestHandshakeRefusals(t *testing.T) {
	e := startServer(t, func(_ *broker.Options, o *Options) { o.AllowedOrigins = []string{"https://ok.example"} })
	tests := []struct {
		name   string
		protos []string
		origin string
		status int
	}{
		{"no subprotocol", nil, "", 400},
		{"other subprotocol", []string{"mqtt"}, "", 400},
		{"bad origin", []string{Subprotocol}, "https://evil.example", 403},
		{"listed origin", []string{Subprotocol}, "https://ok.example", 101},
		{"no origin", []string{Subprotocol}, "", 101},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d := gws.Dialer{Subprotocols: tc.protos}
			h := http.Header{}
			if tc.origin != "" {
				h.Set("Origin", tc.origin)
			}
			ws, resp, err := d.Dial(e.url, h)
			if ws != nil {
				ws.Close()
			}
			if resp == nil {
				t.Fatalf("no response: %v", err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.status)
			}
		})
	}
}

func TestProduceEncodings(t *testing.T) {
	e := startServer(t)
	c := e.dial(t)
	defer c.close()
	tests := []struct {
		name      string
		rec       map[string]any
		wantValue any
		wantEnc   string
		wantKey   any
		wantKEnc  string
		wantBytes []byte
	}{
		{"json object", map[string]any{"key": "pump-7", "value": map[string]any{"speed": 3}}, map[string]any{"speed": float64(3)}, "json", "pump-7", "text", []byte(`{"speed":3}`)},
		{"json number", map[string]any{"value": 42}, float64(42), "json", nil, "", []byte(`42`)},
		{"text", map[string]any{"value": "hello world", "encoding": "text"}, "hello world", "text", nil, "", []byte("hello world")},
		{"text that is json", map[string]any{"value": "true", "encoding": "text"}, true, "json", nil, "", []byte("true")},
		{"base64 binary", map[string]any{"value": base64.StdEncoding.EncodeToString([]byte{0xff, 0, 1}), "encoding": "base64", "key": "AAE=", "key_encoding": "base64"}, "/wAB", "base64", "\x00\x01", "text", []byte{0xff, 0, 1}},
		{"base64 key not utf8", map[string]any{"value": "x", "encoding": "text", "key": "/w==", "key_encoding": "base64"}, "x", "text", "/w==", "base64", []byte("x")},
		{"null value", map[string]any{"key": "k", "value": nil}, nil, "json", "k", "text", nil},
		{"empty text", map[string]any{"value": "", "encoding": "text"}, "", "text", nil, "", []byte{}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			topic := fmt.Sprintf("enc-%d", i)
			ack := c.produce(topic, i, tc.rec)
			res := ack["results"].([]any)
			if len(res) != 1 || ack["id"].(float64) != float64(i) {
				t.Fatalf("ack %v", ack)
			}
			if off := res[0].(map[string]any)["offset"].(float64); off != 0 {
				t.Fatalf("offset %v", off)
			}
			// The stored bytes.
			fr := e.b.Fetch(context.Background(), broker.FetchRequest{Partitions: []broker.FetchPartition{{Topic: topic, Partition: 0, Offset: 0}}})
			bt, _, err := record.DecodeBatch(fr[0].Records, 0)
			if err != nil {
				t.Fatal(err)
			}
			got := bt.Records[0].Value
			if (got == nil) != (tc.wantBytes == nil) || !bytes.Equal(got, tc.wantBytes) {
				t.Fatalf("stored %q, want %q", got, tc.wantBytes)
			}
			c.send(map[string]any{"op": "subscribe", "id": "s", "sub": topic, "topic": topic, "from": "earliest"})
			c.expect("subscribed")
			recs := records(c.expect("records"))
			if len(recs) != 1 {
				t.Fatalf("records %v", recs)
			}
			r := recs[0]
			if fmt.Sprint(r.Value) != fmt.Sprint(tc.wantValue) || r.Encoding != tc.wantEnc || fmt.Sprint(r.Key) != fmt.Sprint(tc.wantKey) || r.KeyEnc != tc.wantKEnc {
				t.Fatalf("got %+v, want value %v (%s) key %v (%s)", r, tc.wantValue, tc.wantEnc, tc.wantKey, tc.wantKEnc)
			}
			c.send(map[string]any{"op": "unsubscribe", "id": "u", "sub": topic})
			c.expect("unsubscribed")
		})
	}
}

func TestHeadersAndForcedEncoding(t *testing.T) {
	e := startServer(t)
	c := e.dial(t)
	defer c.close()
	c.produce("h", 1, map[string]any{"value": map[string]any{"a": 1}, "headers": []any{
		map[string]any{"key": "x", "value": "1"},
		map[string]any{"key": "x", "value": "/w==", "encoding": "base64"},
		map[string]any{"key": "n", "value": nil},
	}})
	c.send(map[string]any{"op": "subscribe", "sub": "s", "topic": "h", "from": "earliest", "encoding": "base64"})
	c.expect("subscribed")
	r := records(c.expect("records"))[0]
	if r.Encoding != "base64" || r.Value != base64.StdEncoding.EncodeToString([]byte(`{"a":1}`)) {
		t.Fatalf("value %+v", r)
	}
	want := `[map[encoding:text key:x value:1] map[encoding:base64 key:x value:/w==] map[encoding:text key:n value:<nil>]]`
	if fmt.Sprint(r.Headers) != want {
		t.Fatalf("headers %v", r.Headers)
	}
}

// The key→partition mapping is Kafka's default partitioner, as franz-go
// implements it.
func TestKeyPartitioning(t *testing.T) {
	e := startServer(t, func(b *broker.Options, _ *Options) { b.DefaultPartitions = 7 })
	c := e.dial(t)
	defer c.close()
	kp := kgo.StickyKeyPartitioner(nil).ForTopic("keys")
	var recs []map[string]any
	var keys []string
	for i := range 300 {
		k := fmt.Sprintf("key-%d-%s", i, strings.Repeat("x", i%9))
		keys = append(keys, k)
		recs = append(recs, map[string]any{"key": k, "value": i})
	}
	ack := c.produce("keys", 1, recs...)
	for i, r := range ack["results"].([]any) {
		got := int(r.(map[string]any)["partition"].(float64))
		want := kp.Partition(&kgo.Record{Key: []byte(keys[i])}, 7)
		if got != want {
			t.Fatalf("key %q: partition %d, franz-go %d", keys[i], got, want)
		}
	}
	// Unkeyed records: sticky per request, round robin across requests.
	p1 := c.produce("keys", 2, map[string]any{"value": 1}, map[string]any{"value": 2})["results"].([]any)
	p2 := c.produce("keys", 3, map[string]any{"value": 3})["results"].([]any)
	a, b := p1[0].(map[string]any)["partition"], p1[1].(map[string]any)["partition"]
	if a != b || p2[0].(map[string]any)["partition"] == a {
		t.Fatalf("unkeyed partitions %v %v", p1, p2)
	}
}

func TestSubscribeFrom(t *testing.T) {
	e := startServer(t, func(b *broker.Options, _ *Options) { b.DefaultPartitions = 2 })
	c := e.dial(t)
	defer c.close()
	// 10 records per partition, timestamps 1000+i.
	for i := range 10 {
		c.produce("from", i, map[string]any{"value": i, "partition": 0, "timestamp": 1000 + i}, map[string]any{"value": i, "partition": 1, "timestamp": 1000 + i})
	}
	tests := []struct {
		name  string
		from  any
		parts []int
		want  map[int]int64 // partition -> first offset delivered (-1: none)
	}{
		{"earliest", "earliest", nil, map[int]int64{0: 0, 1: 0}},
		{"latest", "latest", nil, map[int]int64{0: -1, 1: -1}},
		{"default is latest", nil, nil, map[int]int64{0: -1, 1: -1}},
		{"offset", map[string]any{"offset": 7}, nil, map[int]int64{0: 7, 1: 7}},
		{"offsets", map[string]any{"offsets": map[string]any{"0": 3, "1": 9}}, nil, map[int]int64{0: 3, 1: 9}},
		{"offsets missing partition", map[string]any{"offsets": map[string]any{"1": 9}}, nil, map[int]int64{0: 0, 1: 9}},
		{"offset beyond hwm", map[string]any{"offset": 99}, nil, map[int]int64{0: -1, 1: -1}},
		{"timestamp", map[string]any{"timestamp": 1005}, nil, map[int]int64{0: 5, 1: 5}},
		{"timestamp future", map[string]any{"timestamp": 99999}, nil, map[int]int64{0: -1, 1: -1}},
		{"one partition", "earliest", []int{1}, map[int]int64{1: 0}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			sub := fmt.Sprintf("s%d", i)
			req := map[string]any{"op": "subscribe", "id": i, "sub": sub, "topic": "from"}
			if tc.from != nil {
				req["from"] = tc.from
			}
			if tc.parts != nil {
				req["partitions"] = tc.parts
			}
			c.send(req)
			sm := c.expect("subscribed")
			if len(sm["partitions"].([]any)) != len(tc.want) {
				t.Fatalf("subscribed %v", sm)
			}
			got := map[int]int64{}
			wantRecords := 0
			for p, o := range tc.want {
				got[p] = -1
				if o >= 0 {
					wantRecords += int(10 - o)
				}
			}
			n := 0
			for n < wantRecords {
				for _, r := range records(c.expect("records")) {
					if got[r.Partition] == -1 {
						got[r.Partition] = r.Offset
					}
					n++
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("first offsets %v, want %v", got, tc.want)
			}
			c.send(map[string]any{"op": "unsubscribe", "id": "u", "sub": sub})
			c.expect("unsubscribed")
			// Nothing more was delivered than wanted.
		})
	}
}

func TestLiveDeliveryAndCompressedBatches(t *testing.T) {
	e := startServer(t)
	c := e.dial(t)
	defer c.close()
	c.send(map[string]any{"op": "subscribe", "id": 1, "sub": "live", "topic": "comp", "from": "latest"})
	c.expect("subscribed")
	// Kafka producers' compressed batches are decoded.
	for i, codec := range []record.Codec{record.Gzip, record.Snappy, record.LZ4, record.Zstd} {
		var recs []record.Record
		for j := range 3 {
			recs = append(recs, record.Record{Timestamp: 1, Key: []byte("k"), Value: fmt.Appendf(nil, `{"codec":%d,"j":%d}`, codec, j)})
		}
		batch, err := record.AppendBatch(nil, recs, record.EncodeOptions{Codec: codec})
		if err != nil {
			t.Fatal(err)
		}
		res := e.b.Produce(-1, []broker.ProducePartition{{Topic: "comp", Partition: 0, Records: batch}}).Wait(context.Background())
		if res[0].Err != nil {
			t.Fatal(res[0].Err)
		}
		got := 0
		for got < 3 {
			for _, r := range records(c.expect("records")) {
				if r.Offset != int64(i*3+got) || fmt.Sprint(r.Value) != fmt.Sprint(map[string]any{"codec": float64(codec), "j": float64(got)}) {
					t.Fatalf("codec %v: record %+v", codec, r)
				}
				got++
			}
		}
	}
}

func TestCreditFlowControl(t *testing.T) {
	e := startServer(t)
	c := e.dial(t)
	defer c.close()
	var recs []map[string]any
	for i := range 100 {
		recs = append(recs, map[string]any{"value": i})
	}
	c.produce("credit", 1, recs...)
	c.send(map[string]any{"op": "subscribe", "id": 1, "sub": "s", "topic": "credit", "from": "earliest", "credit": 10})
	c.expect("subscribed")
	next := int64(0)
	readUpTo := func(limit int64) {
		for next < limit {
			for _, r := range records(c.expect("records")) {
				if r.Offset != next {
					t.Fatalf("offset %d, want %d", r.Offset, next)
				}
				next++
			}
		}
		if next != limit {
			t.Fatalf("delivered up to %d, credit allowed %d", next, limit)
		}
		// Nothing more arrives without credit.
		if m, err := c.tryNext(300 * time.Millisecond); err == nil {
			t.Fatalf("delivered beyond credit: %v", m)
		} else if ne, ok := err.(interface{ Timeout() bool }); !ok || !ne.Timeout() {
			t.Fatal(err)
		}
		// gorilla's connection is unusable after a read timeout: redial and resume.
		c.close()
		nc := e.dial(t)
		*c = *nc
		c.send(map[string]any{"op": "subscribe", "id": 1, "sub": "s", "topic": "credit", "from": map[string]any{"offsets": map[string]any{"0": next}}, "credit": 1})
		c.expect("subscribed")
	}
	readUpTo(10)
	readUpTo(11) // credit 1
	c.send(map[string]any{"op": "credit", "id": "c", "sub": "s", "records": 25})
	m := c.until("credited", func(m map[string]any) {
		for _, r := range records(m) {
			if r.Offset != next {
				t.Fatalf("offset %d want %d", r.Offset, next)
			}
			next++
		}
	})
	if m["credit"].(float64) > 26 {
		t.Fatalf("credited %v", m)
	}
	readUpTo(11 + 1 + 25)
}

func TestErrors(t *testing.T) {
	e := startServer(t, func(_ *broker.Options, o *Options) { o.MaxSubscriptions = 2 })
	c := e.dial(t)
	defer c.close()
	tests := []struct {
		name string
		text string
		code string
	}{
		{"bad json", `{"op":`, "bad_request"},
		{"not an object", `[1,2]`, "bad_request"},
		{"no op", `{"id":1}`, "bad_request"},
		{"bad id", `{"op":"ping","id":{"a":1}}`, "bad_request"},
		{"unknown op", `{"op":"fly","id":1}`, "unknown_op"},
		{"produce no topic", `{"op":"produce","id":1,"records":[{"value":1}]}`, "bad_request"},
		{"produce no records", `{"op":"produce","id":1,"topic":"t","records":[]}`, "bad_request"},
		{"produce bad base64", `{"op":"produce","id":1,"topic":"t","records":[{"value":"!!","encoding":"base64"}]}`, "bad_request"},
		{"produce text not string", `{"op":"produce","id":1,"topic":"t","records":[{"value":1,"encoding":"text"}]}`, "bad_request"},
		{"produce bad partition", `{"op":"produce","id":1,"topic":"t","records":[{"value":1,"partition":5}]}`, "unknown_topic"},
		{"produce bad topic name", `{"op":"produce","id":1,"topic":"a b","records":[{"value":1}]}`, "unknown_topic"},
		{"subscribe no sub", `{"op":"subscribe","id":1,"topic":"t"}`, "bad_request"},
		{"subscribe bad from", `{"op":"subscribe","id":1,"sub":"x","topic":"t","from":"yesterday"}`, "bad_request"},
		{"subscribe group and partitions", `{"op":"subscribe","id":1,"sub":"x","topic":"t","group":"g","partitions":[0]}`, "bad_request"},
		{"subscribe filter unavailable", `{"op":"subscribe","id":1,"sub":"x","topic":"t","filter":{"name":"hot"}}`, "unavailable"},
		{"unsubscribe unknown", `{"op":"unsubscribe","id":1,"sub":"nope"}`, "not_found"},
		{"credit unknown", `{"op":"credit","id":1,"sub":"nope","records":5}`, "not_found"},
		{"commit no group", `{"op":"commit","id":1,"topic":"t","offsets":[{"partition":0,"offset":1}]}`, "bad_request"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			c.sendRaw(gws.TextMessage, []byte(tc.text))
			m := c.expect("error")
			if m["code"] != tc.code || m["message"] == "" {
				t.Fatalf("got %v, want code %s", m, tc.code)
			}
		})
	}
	t.Run("too many subscriptions", func(t *testing.T) {
		c.t = t
		for i := range 2 {
			c.send(map[string]any{"op": "subscribe", "id": i, "sub": fmt.Sprint("l", i), "topic": "t"})
			c.expect("subscribed")
		}
		c.send(map[string]any{"op": "subscribe", "id": 3, "sub": "l3", "topic": "t"})
		if m := c.expect("error"); m["code"] != "limit" || m["id"].(float64) != 3 {
			t.Fatalf("got %v", m)
		}
		c.send(map[string]any{"op": "subscribe", "id": 4, "sub": "l0", "topic": "t"})
		if m := c.expect("error"); m["code"] != "bad_request" {
			t.Fatalf("duplicate: %v", m)
		}
	})
}

func TestCloseCodes(t *testing.T) {
	e := startServer(t, func(_ *broker.Options, o *Options) { o.MaxFrameBytes = 4096 })
	readClose := func(c *client) int {
		for {
			_ = c.ws.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, _, err := c.ws.ReadMessage()
			if err != nil {
				if ce, ok := err.(*gws.CloseError); ok {
					return ce.Code
				}
				t.Fatalf("not a close: %v", err)
			}
		}
	}
	t.Run("oversized frame", func(t *testing.T) {
		c := e.dial(t)
		defer c.close()
		c.sendRaw(gws.TextMessage, bytes.Repeat([]byte("x"), 5000))
		if code := readClose(c); code != CloseTooBig {
			t.Fatalf("close %d", code)
		}
	})
	t.Run("repeated bad frames", func(t *testing.T) {
		c := e.dial(t)
		defer c.close()
		for range 10 {
			c.sendRaw(gws.TextMessage, []byte("nope"))
		}
		if code := readClose(c); code != CloseProtocolError {
			t.Fatalf("close %d", code)
		}
	})
	t.Run("shutdown", func(t *testing.T) {
		c := e.dial(t)
		defer c.close()
		go e.s.Close()
		if code := readClose(c); code != CloseRestart {
			t.Fatalf("close %d", code)
		}
	})
}

func TestIdleTimeout(t *testing.T) {
	e := startServer(t, func(_ *broker.Options, o *Options) {
		o.IdleTimeout = 300 * time.Millisecond
		o.PingInterval = time.Hour
	})
	c := e.dial(t)
	defer c.close()
	// Not even answering pings (this client does not read): closed 4008.
	waitFor(t, "idle close", 5*time.Second, func() bool { return e.s.closeCount(CloseSlowConsumer) == 1 })
	// A client that answers pings stays.
	e2 := startServer(t, func(_ *broker.Options, o *Options) {
		o.IdleTimeout = 400 * time.Millisecond
		o.PingInterval = 100 * time.Millisecond
	})
	c2 := e2.dial(t)
	defer c2.close()
	done := make(chan error, 1)
	go func() {
		_ = c2.ws.SetReadDeadline(time.Now().Add(1500 * time.Millisecond))
		_, _, err := c2.ws.ReadMessage() // answers pings while reading
		done <- err
	}()
	err := <-done
	if ne, ok := err.(interface{ Timeout() bool }); !ok || !ne.Timeout() {
		t.Fatalf("connection ended: %v", err)
	}
}

func TestSlowConsumer(t *testing.T) {
	const pending = 256 << 10
	e := startServer(t, func(_ *broker.Options, o *Options) {
		o.MaxPendingBytes = pending
		o.WriteTimeout = 500 * time.Millisecond
		o.IdleTimeout = time.Minute
	})
	// 8 MiB of records.
	p := e.dial(t)
	defer p.close()
	val := strings.Repeat("v", 1000)
	for i := range 64 {
		var recs []map[string]any
		for range 128 {
			recs = append(recs, map[string]any{"value": val, "encoding": "text"})
		}
		p.produce("big", i, recs...)
	}
	c := e.dial(t)
	defer c.close()
	c.send(map[string]any{"op": "subscribe", "id": 1, "sub": "s", "topic": "big", "from": "earliest", "credit": maxCredit})
	// Never read. The queue stays bounded and the connection is closed.
	var conn *conn
	waitFor(t, "server conn", 5*time.Second, func() bool {
		e.s.mu.Lock()
		defer e.s.mu.Unlock()
		for sc := range e.s.conns {
			sc.mu.Lock()
			if sc.subs != nil {
				conn = sc
			}
			sc.mu.Unlock()
		}
		return conn != nil
	})
	maxQueued := 0
	deadline := time.Now().Add(10 * time.Second)
	for e.s.closeCount(CloseSlowConsumer) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("slow consumer not closed")
		}
		maxQueued = max(maxQueued, conn.queuedBytes())
		time.Sleep(5 * time.Millisecond)
	}
	// One fetch's worth of delivery may pass the limit.
	if maxQueued > pending+2*maxMessageBytes {
		t.Fatalf("queued %d bytes, limit %d", maxQueued, pending)
	}
	t.Logf("max queued %d bytes (limit %d)", maxQueued, pending)
}

func TestGroupSplitAndCommit(t *testing.T) {
	e := startServer(t, func(b *broker.Options, _ *Options) { b.DefaultPartitions = 4 })
	p := e.dial(t)
	defer p.close()
	for i := range 4 {
		p.produce("gt", i, map[string]any{"value": i, "partition": i})
	}
	c1, c2 := e.dial(t), e.dial(t)
	defer c1.close()
	defer c2.close()
	sub := map[string]any{"op": "subscribe", "id": 1, "sub": "g", "topic": "gt", "group": "dash", "from": "earliest"}
	c1.send(sub)
	c1.expect("subscribed")
	a1 := c1.until("assigned", func(map[string]any) {})
	if len(a1["partitions"].([]any)) != 4 {
		t.Fatalf("single member got %v", a1)
	}
	c2.send(sub)
	c2.expect("subscribed")
	// c1 is revoked and gets half; c2 gets the other half.
	c1.until("revoked", func(map[string]any) {})
	a1 = c1.until("assigned", func(map[string]any) {})
	a2 := c2.until("assigned", func(map[string]any) {})
	parts := func(a map[string]any) []int {
		var ps []int
		for _, p := range a["partitions"].([]any) {
			ps = append(ps, int(p.(map[string]any)["partition"].(float64)))
		}
		return ps
	}
	p1, p2 := parts(a1), parts(a2)
	if len(p1) != 2 || len(p2) != 2 || fmt.Sprint(append(p1, p2...)) != "[0 1 2 3]" && fmt.Sprint(append(p2, p1...)) != "[0 1 2 3]" {
		t.Fatalf("split %v %v", p1, p2)
	}
	// c2 reads its two records and commits them.
	seen := 0
	for seen < 2 {
		for _, r := range records(c2.expect("records")) {
			if r.Partition != p2[0] && r.Partition != p2[1] {
				t.Fatalf("c2 got partition %d", r.Partition)
			}
			seen++
		}
	}
	c2.send(map[string]any{"op": "commit", "id": 9, "sub": "g", "offsets": []any{
		map[string]any{"partition": p2[0], "offset": 1}, map[string]any{"partition": p2[1], "offset": 1},
	}})
	c2.until("committed", nil)
	fo, err := e.b.Groups().FetchOffsets("dash", []group.TopicPartition{{Topic: "gt", Partition: int32(p2[0])}, {Topic: "gt", Partition: int32(p2[1])}})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range fo {
		if o.Offset.Offset != 1 {
			t.Fatalf("committed %+v", fo)
		}
	}
	// c2 leaves; c1 takes all four and resumes c2's partitions from the commit.
	c2.send(map[string]any{"op": "unsubscribe", "id": 10, "sub": "g"})
	c2.until("unsubscribed", nil)
	var a map[string]any
	for {
		a = c1.until("assigned", func(map[string]any) {})
		if len(a["partitions"].([]any)) == 4 {
			break
		}
	}
	for _, pp := range a["partitions"].([]any) {
		pm := pp.(map[string]any)
		part := int(pm["partition"].(float64))
		if (part == p2[0] || part == p2[1]) && pm["offset"].(float64) != 1 {
			t.Fatalf("partition %d resumed at %v", part, pm["offset"])
		}
	}
	// Standalone commit on a group without members.
	p.send(map[string]any{"op": "commit", "id": 11, "group": "solo", "topic": "gt", "offsets": []any{map[string]any{"partition": 0, "offset": 1}}})
	p.expect("committed")
	if got := e.b.Groups().CommittedOffsets("solo"); got[group.TopicPartition{Topic: "gt", Partition: 0}] != 1 {
		t.Fatalf("solo commit %v", got)
	}
}

// Killing connections at random points and resuming with next offsets
// delivers exactly the produced records: no duplicates, no gaps.
func TestResumeAfterRandomKills(t *testing.T) {
	e := startServer(t, func(b *broker.Options, _ *Options) { b.DefaultPartitions = 3 })
	const total = 3000
	prodDone := make(chan struct{})
	go func() {
		defer close(prodDone)
		p, err := e.tryDial()
		if err != nil {
			t.Error(err)
			return
		}
		defer p.ws.Close()
		for i := 0; i < total; i += 50 {
			var recs []map[string]any
			for j := i; j < i+50; j++ {
				recs = append(recs, map[string]any{"key": fmt.Sprint("k", j%17), "value": j})
			}
			if err := p.ws.WriteJSON(map[string]any{"op": "produce", "id": i, "topic": "resume", "records": recs}); err != nil {
				t.Error(err)
				return
			}
			var ack map[string]any
			if err := p.ws.ReadJSON(&ack); err != nil || ack["type"] != "ack" {
				t.Errorf("ack %v %v", ack, err)
				return
			}
		}
	}()
	rng := rand.New(rand.NewPCG(1, 2))
	next := map[string]int64{}
	seen := map[int]bool{}
	lastOffset := map[int]int64{0: -1, 1: -1, 2: -1}
	kills := 0
	for len(seen) < total {
		c := e.dial(t)
		from := any("earliest")
		if len(next) > 0 {
			from = map[string]any{"offsets": next}
		}
		credit := 1 + rng.IntN(30)
		c.send(map[string]any{"op": "subscribe", "id": 1, "sub": "r", "topic": "resume", "from": from, "credit": credit})
		sm := c.expect("subscribed")
		for _, pp := range sm["partitions"].([]any) {
			pm := pp.(map[string]any)
			next[fmt.Sprint(pm["partition"])] = int64(pm["offset"].(float64))
		}
		budget := rng.IntN(6) // messages before the kill
		for i := 0; i < budget && len(seen) < total; i++ {
			m := c.next()
			switch m["type"] {
			case "records":
				for _, r := range records(m) {
					if r.Offset != lastOffset[r.Partition]+1 {
						t.Fatalf("partition %d: offset %d after %d (gap or duplicate)", r.Partition, r.Offset, lastOffset[r.Partition])
					}
					lastOffset[r.Partition] = r.Offset
					v := int(r.Value.(float64))
					if seen[v] {
						t.Fatalf("duplicate value %d", v)
					}
					seen[v] = true
					next[fmt.Sprint(r.Partition)] = r.Offset + 1
					credit--
				}
				if credit < 0 {
					t.Fatalf("delivered beyond credit")
				}
				if credit == 0 || rng.IntN(3) == 0 {
					more := 1 + rng.IntN(40)
					credit += more
					c.send(map[string]any{"op": "credit", "sub": "r", "records": more})
				}
			default:
				t.Fatalf("unexpected %v", m)
			}
		}
		// Kill: drop the TCP connection without a close handshake
		// (records may be in flight), or close cleanly.
		if rng.IntN(4) == 0 {
			c.close()
		} else {
			c.ws.NetConn().Close()
		}
		kills++
	}
	<-prodDone
	t.Logf("%d records over %d connections", len(seen), kills)
	waitFor(t, "connections to end", 5*time.Second, func() bool { return e.s.Connections() == 0 })
}

func TestBinaryProduceAndRecords(t *testing.T) {
	e := startServer(t, func(b *broker.Options, _ *Options) { b.DefaultPartitions = 3 })
	c := e.dial(t)
	defer c.close()
	frame := []byte{kindProduce}
	frame = binary.LittleEndian.AppendUint32(frame, 77)
	frame = binary.LittleEndian.AppendUint16(frame, 3)
	frame = append(frame, "bin"...)
	frame = binary.LittleEndian.AppendUint32(frame, 3)
	// record 0: partition 2, key null, value bytes, one header
	frame = binary.LittleEndian.AppendUint32(frame, 2)
	frame = appendNBytes(frame, nil)
	frame = appendNBytes(frame, []byte{0, 1, 2})
	frame = appendBinHeaders(frame, []record.Header{{Key: "h", Value: []byte("v")}})
	// record 1: by key
	frame = binary.LittleEndian.AppendUint32(frame, 0xffffffff)
	frame = appendNBytes(frame, []byte("pump-7"))
	frame = appendNBytes(frame, []byte("x"))
	frame = appendBinHeaders(frame, nil)
	// record 2: null value, explicit partition 2
	frame = binary.LittleEndian.AppendUint32(frame, 2)
	frame = appendNBytes(frame, []byte("k"))
	frame = appendNBytes(frame, nil)
	frame = appendBinHeaders(frame, nil)
	c.sendRaw(gws.BinaryMessage, frame)
	ack := c.expect("binary")["binary"].([]byte)
	r := binReader{b: ack}
	kind := r.take(1)[0]
	id, code, n := r.u32(), r.u16(), r.u32()
	if kind != kindAck || id != 77 || code != 0 || n != 3 {
		t.Fatalf("ack kind %d id %d code %d n %d", kind, id, code, n)
	}
	wantKeyPart := int32(kgo.StickyKeyPartitioner(nil).ForTopic("bin").Partition(&kgo.Record{Key: []byte("pump-7")}, 3))
	wantParts := []int32{2, wantKeyPart, 2}
	for i := range 3 {
		part, off := int32(r.u32()), int64(binary.LittleEndian.Uint64(r.take(8)))
		if part != wantParts[i] {
			t.Fatalf("record %d partition %d want %d", i, part, wantParts[i])
		}
		if i == 2 && off != 1 {
			t.Fatalf("record 2 offset %d", off)
		}
	}
	// A bad binary produce gets an error ack.
	bad := []byte{kindProduce}
	bad = binary.LittleEndian.AppendUint32(bad, 78)
	bad = append(bad, 1, 2, 3)
	c.sendRaw(gws.BinaryMessage, bad)
	r = binReader{b: c.expect("binary")["binary"].([]byte)}
	r.take(1)
	if id, code := r.u32(), r.u16(); id != 78 || code != binaryCodes[codeBadRequest] {
		t.Fatalf("error ack id %d code %d", id, code)
	}
	// Binary deliveries.
	c.send(map[string]any{"op": "subscribe", "id": 1, "sub": "b", "topic": "bin", "partitions": []int{2}, "from": "earliest", "format": "binary"})
	c.expect("subscribed")
	got := 0
	for got < 2 {
		r := binReader{b: c.expect("binary")["binary"].([]byte)}
		if r.take(1)[0] != kindRecords || string(r.take(int(r.u16()))) != "b" {
			t.Fatal("bad records frame")
		}
		n := int(r.u32())
		for range n {
			part, off := int32(r.u32()), int64(binary.LittleEndian.Uint64(r.take(8)))
			r.take(8)
			key, val := r.nbytes(), r.nbytes()
			nh := r.u16()
			var hs []record.Header
			for range nh {
				hs = append(hs, record.Header{Key: string(r.take(int(r.u16()))), Value: r.nbytes()})
			}
			switch off {
			case 0:
				if part != 2 || key != nil || !bytes.Equal(val, []byte{0, 1, 2}) || len(hs) != 1 || hs[0].Key != "h" || string(hs[0].Value) != "v" {
					t.Fatalf("record 0: %d %q %q %v", part, key, val, hs)
				}
			case 1:
				if string(key) != "k" || val != nil {
					t.Fatalf("record 1: %q %q", key, val)
				}
			}
			got++
		}
		if r.bad || len(r.b) != 0 {
			t.Fatal("bad records frame layout")
		}
	}
}

func TestManyIdleConnections(t *testing.T) {
	n := 2000
	e := startServer(t)
	perConn, _ := measureIdle(t, e, n)
	t.Logf("%d idle connections: %.0f bytes of broker memory each", n, perConn)
	if perConn > 20<<10 {
		t.Errorf("%.0f bytes per idle connection, want <= 20 KiB", perConn)
	}
}

var _ = sync.Mutex{}
