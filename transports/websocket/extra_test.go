package websocket

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	gws "github.com/gorilla/websocket"

	"github.com/samsa-broker/samsa/broker"
	"github.com/samsa-broker/samsa/broker/record"
)

// fakeFilter keeps records whose JSON value "n" is at least params.min and
// adds a header.
type fakeFilter struct{}

func (fakeFilter) FilterRecords(_ context.Context, name string, params json.RawMessage, _ string, _ int32, recs []record.Record) ([]record.Record, error) {
	if name != "min" {
		return nil, fmt.Errorf("%w: %q", ErrFilterNotFound, name)
	}
	var p struct{ Min int }
	_ = json.Unmarshal(params, &p)
	var out []record.Record
	for _, r := range recs {
		var v struct{ N int }
		_ = json.Unmarshal(r.Value, &v)
		if v.N >= p.Min {
			r.Headers = append(r.Headers[:len(r.Headers):len(r.Headers)], record.Header{Key: "filtered", Value: []byte("yes")})
			out = append(out, r)
		}
	}
	return out, nil
}

func TestConsumeFilter(t *testing.T) {
	e := startServer(t, func(_ *broker.Options, o *Options) { o.Filter = fakeFilter{} })
	c := e.dial(t)
	defer c.close()
	for i := range 10 {
		c.produce("f", i, map[string]any{"value": map[string]any{"n": i}})
	}
	c.send(map[string]any{"op": "subscribe", "id": 1, "sub": "s", "topic": "f", "from": "earliest", "filter": map[string]any{"name": "nope"}})
	if m := c.expect("error"); m["code"] != "not_found" {
		t.Fatalf("unknown filter: %v", m)
	}
	c.send(map[string]any{"op": "subscribe", "id": 2, "sub": "s", "topic": "f", "from": "earliest", "credit": 3, "filter": map[string]any{"name": "min", "params": map[string]any{"min": 6}}})
	c.expect("subscribed")
	var got []int64
	for len(got) < 3 {
		for _, r := range records(c.expect("records")) {
			if len(r.Headers) != 1 {
				t.Fatalf("headers %v", r.Headers)
			}
			got = append(got, r.Offset)
		}
	}
	if fmt.Sprint(got) != "[6 7 8]" {
		t.Fatalf("filtered offsets %v", got)
	}
}

func BenchmarkProduceJSON(b *testing.B) {
	e := startServer(b)
	c := e.dial(b)
	defer c.close()
	recs := make([]map[string]any, 100)
	for i := range recs {
		recs[i] = map[string]any{"key": fmt.Sprint("k", i), "value": map[string]any{"speed": i, "name": strings.Repeat("x", 60)}}
	}
	msg, _ := json.Marshal(map[string]any{"op": "produce", "id": 1, "topic": "bench", "records": recs})
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	// Pipelined: up to 32 requests in flight.
	inflight := 0
	for i := 0; i < b.N; i++ {
		c.sendRaw(gws.TextMessage, msg)
		inflight++
		if inflight == 32 {
			c.expect("ack")
			inflight--
		}
	}
	for ; inflight > 0; inflight-- {
		c.expect("ack")
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkProduceBinary(b *testing.B) {
	e := startServer(b)
	c := e.dial(b)
	defer c.close()
	frame := []byte{kindProduce}
	frame = binary.LittleEndian.AppendUint32(frame, 1)
	frame = binary.LittleEndian.AppendUint16(frame, 5)
	frame = append(frame, "bench"...)
	frame = binary.LittleEndian.AppendUint32(frame, 100)
	for i := range 100 {
		frame = binary.LittleEndian.AppendUint32(frame, 0xffffffff)
		frame = appendNBytes(frame, fmt.Append(nil, "k", i))
		frame = appendNBytes(frame, []byte(strings.Repeat("v", 100)))
		frame = appendBinHeaders(frame, nil)
	}
	b.SetBytes(int64(len(frame)))
	b.ResetTimer()
	inflight := 0
	for i := 0; i < b.N; i++ {
		c.sendRaw(gws.BinaryMessage, frame)
		inflight++
		if inflight == 32 {
			c.expect("binary")
			inflight--
		}
	}
	for ; inflight > 0; inflight-- {
		c.expect("binary")
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkConsumeJSON(b *testing.B) {
	e := startServer(b)
	p := e.dial(b)
	defer p.close()
	total := max(b.N, 1000)
	for i := 0; i < total; i += 500 {
		recs := make([]map[string]any, 0, 500)
		for j := i; j < i+500 && j < total; j++ {
			recs = append(recs, map[string]any{"value": map[string]any{"i": j, "name": strings.Repeat("x", 60)}})
		}
		p.produce("cbench", i, recs...)
	}
	c := e.dial(b)
	defer c.close()
	b.ResetTimer()
	c.send(map[string]any{"op": "subscribe", "id": 1, "sub": "s", "topic": "cbench", "from": "earliest", "credit": maxCredit})
	c.expect("subscribed")
	n := 0
	for n < total {
		m := c.expect("records")
		n += len(m["records"].([]any))
	}
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "records/s")
}
