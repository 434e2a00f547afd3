package websocket

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"

	"github.com/samsa-broker/samsa/broker"
)

type testEnv struct {
	b     *broker.Broker
	s     *Server
	hs    *httptest.Server
	url   string
	close func() // stops everything; also done at the test's end
}

// startServer opens a broker on a temp dir and serves the WebSocket
// transport on 127.0.0.1.
func startServer(t testing.TB, tweak ...func(*broker.Options, *Options)) *testEnv {
	t.Helper()
	bopts := broker.Options{DataDir: t.TempDir(), AutoCreateTopics: true, DefaultPartitions: 1}
	bopts.Defaults = broker.DefaultTopicConfig()
	bopts.Defaults.Flush = broker.FlushOS
	bopts.Groups.RebalanceDelay = 10 * time.Millisecond
	opts := Options{HeartbeatInterval: 100 * time.Millisecond, FetchMaxWait: 200 * time.Millisecond}
	for _, f := range tweak {
		f(&bopts, &opts)
	}
	b, err := broker.Open(bopts)
	if err != nil {
		t.Fatal(err)
	}
	s := New(b, opts)
	mux := http.NewServeMux()
	mux.Handle("/ws", s)
	hs := httptest.NewUnstartedServer(mux)
	hs.Start()
	e := &testEnv{b: b, s: s, hs: hs, url: "ws" + strings.TrimPrefix(hs.URL, "http") + "/ws"}
	e.close = sync.OnceFunc(func() {
		s.Close()
		hs.Close()
		b.Close()
	})
	t.Cleanup(e.close)
	return e
}

type client struct {
	t     testing.TB
	ws    *gws.Conn
	hello map[string]any
}

func (e *testEnv) dial(t testing.TB) *client {
	t.Helper()
	c, err := e.tryDial()
	if err != nil {
		t.Fatal(err)
	}
	c.t = t
	return c
}

func (e *testEnv) tryDial() (*client, error) {
	d := gws.Dialer{Subprotocols: []string{Subprotocol}, HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.Dial(e.url, nil)
	if err != nil {
		return nil, err
	}
	c := &client{ws: ws}
	_ = ws.SetReadDeadline(time.Now().Add(5 * time.Second))
	var h map[string]any
	if err := ws.ReadJSON(&h); err != nil {
		ws.Close()
		return nil, err
	}
	if h["type"] != "hello" {
		ws.Close()
		return nil, fmt.Errorf("first frame %v", h)
	}
	c.hello = h
	return c, nil
}

func (c *client) send(v any) {
	c.t.Helper()
	if err := c.ws.WriteJSON(v); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *client) sendRaw(typ int, b []byte) {
	c.t.Helper()
	if err := c.ws.WriteMessage(typ, b); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// next reads the next message (text: decoded; binary: "binary" holds it).
func (c *client) next() map[string]any {
	c.t.Helper()
	m, err := c.tryNext(10 * time.Second)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return m
}

func (c *client) tryNext(d time.Duration) (map[string]any, error) {
	_ = c.ws.SetReadDeadline(time.Now().Add(d))
	mt, data, err := c.ws.ReadMessage()
	if err != nil {
		return nil, err
	}
	if mt == gws.BinaryMessage {
		return map[string]any{"type": "binary", "binary": data}, nil
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("bad JSON from server %q: %v", data, err)
	}
	return m, nil
}

// expect reads the next message and checks its type.
func (c *client) expect(typ string) map[string]any {
	c.t.Helper()
	m := c.next()
	if m["type"] != typ {
		c.t.Fatalf("want %s, got %v", typ, m)
	}
	return m
}

// until reads messages until one has type typ, passing the others to fn.
func (c *client) until(typ string, fn func(map[string]any)) map[string]any {
	c.t.Helper()
	for {
		m := c.next()
		if m["type"] == typ {
			return m
		}
		if fn == nil {
			c.t.Fatalf("want %s, got %v", typ, m)
		}
		fn(m)
	}
}

func (c *client) close() { _ = c.ws.Close() }

// delivered is a record as a test sees it.
type delivered struct {
	Partition int
	Offset    int64
	Key       any
	Value     any
	Encoding  string
	KeyEnc    string
	Headers   []any
}

func records(m map[string]any) []delivered {
	var out []delivered
	for _, r := range m["records"].([]any) {
		rm := r.(map[string]any)
		d := delivered{Partition: int(rm["partition"].(float64)), Offset: int64(rm["offset"].(float64)), Key: rm["key"], Value: rm["value"]}
		d.Encoding, _ = rm["encoding"].(string)
		d.KeyEnc, _ = rm["key_encoding"].(string)
		d.Headers, _ = rm["headers"].([]any)
		out = append(out, d)
	}
	return out
}

// produceN produces n JSON records {"i":k} with keys and returns the acks.
func (c *client) produce(topic string, id int, recs ...map[string]any) map[string]any {
	c.t.Helper()
	c.send(map[string]any{"op": "produce", "id": id, "topic": topic, "records": recs})
	return c.expect("ack")
}

func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var _ = context.Background
