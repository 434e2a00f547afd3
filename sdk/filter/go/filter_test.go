package filter_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"strings"
	"testing"

	filter "github.com/samsa-broker/samsa/sdk/filter/go"
	"github.com/samsa-broker/samsa/sdk/filter/go/filtertest"
)

// w builds ABI bytes by hand, independently of the package's encoder.
type w struct{ bytes.Buffer }

func (b *w) u8(v uint8)   { b.WriteByte(v) }
func (b *w) u32(v uint32) { binary.Write(&b.Buffer, binary.LittleEndian, v) }
func (b *w) i32(v int32)  { binary.Write(&b.Buffer, binary.LittleEndian, v) }
func (b *w) i64(v int64)  { binary.Write(&b.Buffer, binary.LittleEndian, v) }
func (b *w) str(s string) { b.u32(uint32(len(s))); b.WriteString(s) }
func (b *w) bytes(p []byte) {
	if p == nil {
		b.i32(-1)
		return
	}
	b.i32(int32(len(p)))
	b.Write(p)
}

func TestDecodeBatchByHand(t *testing.T) {
	var b w
	b.u32(1)
	b.str("orders")
	b.i32(7)
	b.u32(2)
	// record 0: null key, value, one header with a null value
	b.i64(100)
	b.i64(1700000000000)
	b.bytes(nil)
	b.bytes([]byte("v0"))
	b.u32(1)
	b.str("h")
	b.bytes(nil)
	// record 1: empty key, null value, two headers
	b.i64(-1)
	b.i64(0)
	b.bytes([]byte{})
	b.bytes(nil)
	b.u32(2)
	b.str("a")
	b.bytes([]byte("1"))
	b.str("")
	b.bytes([]byte{})

	got, err := filter.DecodeBatch(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := filter.Batch{Topic: "orders", Partition: 7, Records: []filter.Record{
		{Offset: 100, Timestamp: 1700000000000, Value: []byte("v0"), Headers: []filter.Header{{Key: "h"}}},
		{Offset: -1, Key: []byte{}, Headers: []filter.Header{{Key: "a", Value: []byte("1")}, {Key: "", Value: []byte{}}}},
	}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %#v\nwant %#v", got, want)
	}
	if got.Records[0].Key != nil || got.Records[1].Key == nil || got.Records[1].Value != nil {
		t.Fatal("null and empty not told apart")
	}
	// EncodeBatch is the exact inverse.
	if enc := filter.EncodeBatch(&got); !bytes.Equal(enc, b.Bytes()) {
		t.Fatalf("EncodeBatch differs:\n%x\n%x", enc, b.Bytes())
	}
	// Every truncation fails cleanly.
	full := b.Bytes()
	for i := 0; i < len(full); i++ {
		if _, err := filter.DecodeBatch(full[:i]); err == nil {
			t.Fatalf("truncated at %d: no error", i)
		}
	}
	if _, err := filter.DecodeBatch(append(append([]byte{}, full...), 0)); err == nil {
		t.Fatal("trailing byte: no error")
	}
}

func TestDecodeBatchBad(t *testing.T) {
	var v2 w
	v2.u32(2)
	v2.str("t")
	v2.i32(0)
	v2.u32(0)
	if _, err := filter.DecodeBatch(v2.Bytes()); err == nil || !strings.Contains(err.Error(), "abi version 2") {
		t.Fatalf("version 2: %v", err)
	}
	var huge w
	huge.u32(1)
	huge.str("t")
	huge.i32(0)
	huge.u32(0xffffffff)
	if _, err := filter.DecodeBatch(huge.Bytes()); !errors.Is(err, filter.ErrShort) {
		t.Fatalf("huge count: %v", err)
	}
	var empty w
	empty.u32(1)
	empty.str("t")
	empty.i32(3)
	empty.u32(0)
	b, err := filter.DecodeBatch(empty.Bytes())
	if err != nil || b.Topic != "t" || b.Partition != 3 || len(b.Records) != 0 {
		t.Fatalf("empty batch: %+v %v", b, err)
	}
}

func TestEncodeDecisionsByHand(t *testing.T) {
	ds := []filter.Decision{
		filter.Keep(),
		filter.Drop(),
		filter.Rewrite(nil, []byte("v"), []filter.Header{{Key: "k", Value: nil}}),
		filter.Route("a", "bb"),
		filter.RouteRewrite([]string{"c"}, []byte{}, nil, nil),
		filter.Reject("bad"),
	}
	var b w
	b.u32(6)
	b.u8(0)
	b.u8(1)
	b.u8(2)
	b.bytes(nil)
	b.bytes([]byte("v"))
	b.u32(1)
	b.str("k")
	b.bytes(nil)
	b.u8(3)
	b.u32(2)
	b.str("a")
	b.str("bb")
	b.u8(0)
	b.u8(3)
	b.u32(1)
	b.str("c")
	b.u8(1)
	b.bytes([]byte{})
	b.bytes(nil)
	b.u32(0)
	b.u8(4)
	b.str("bad")

	got := filter.EncodeDecisions(ds)
	if !bytes.Equal(got, b.Bytes()) {
		t.Fatalf("got  %x\nwant %x", got, b.Bytes())
	}
	back, err := filter.DecodeDecisions(got)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, ds) {
		t.Fatalf("round trip:\n%v\n%v", back, ds)
	}
	for i := 0; i < len(got); i++ {
		if _, err := filter.DecodeDecisions(got[:i]); err == nil {
			t.Fatalf("truncated at %d: no error", i)
		}
	}
}

type initCounter struct {
	inits  int
	prefix string
}

func (h *initCounter) Init(params []byte) error {
	h.inits++
	if string(params) == "bad" {
		return errors.New("bad params")
	}
	h.prefix = string(params)
	return nil
}

func (h *initCounter) Filter(b *filter.Batch, params []byte) ([]filter.Decision, error) {
	ds := make([]filter.Decision, len(b.Records))
	for i, r := range b.Records {
		ds[i] = filter.Rewrite(r.Key, append([]byte(h.prefix), r.Value...), r.Headers)
	}
	return ds, nil
}

func TestInitializerAndRun(t *testing.T) {
	h := &initCounter{}
	ds := filtertest.Run(h, []byte("p:"), filtertest.Records("x", "y")...)
	if h.inits != 1 || len(ds) != 2 || string(ds[0].Value) != "p:x" || string(ds[1].Value) != "p:y" || ds[0].Key != nil {
		t.Fatalf("inits=%d ds=%v", h.inits, ds)
	}
	if _, err := filtertest.RunBatch(h, []byte("bad"), filter.Batch{}); err == nil || !strings.Contains(err.Error(), "bad params") {
		t.Fatalf("init error: %v", err)
	}
}

func TestHandlerFailures(t *testing.T) {
	recs := filtertest.Records("a", "b")
	cases := map[string]filter.HandlerFunc{
		"returned 1 decisions for 2 records": func(b *filter.Batch, _ []byte) ([]filter.Decision, error) {
			return []filter.Decision{filter.Keep()}, nil
		},
		"boom": func(b *filter.Batch, _ []byte) ([]filter.Decision, error) {
			return nil, errors.New("boom")
		},
		"panicked: oops": func(b *filter.Batch, _ []byte) ([]filter.Decision, error) {
			panic("oops")
		},
		"unknown action 9": func(b *filter.Batch, _ []byte) ([]filter.Decision, error) {
			return []filter.Decision{filter.Keep(), {Action: 9}}, nil
		},
	}
	for want, h := range cases {
		_, err := filtertest.RunBatch(h, nil, filter.Batch{Topic: "t", Records: recs})
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q, got %v", want, err)
		}
	}
	if _, err := filter.NewInstance(nil, nil); err == nil {
		t.Error("nil handler: no error")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Error("Run did not panic on a failing handler")
			}
		}()
		filtertest.Run(cases["boom"], nil, recs...)
	}()
}

func TestInstanceReusesOutput(t *testing.T) {
	inst, err := filter.NewInstance(filter.HandlerFunc(func(b *filter.Batch, _ []byte) ([]filter.Decision, error) {
		ds := make([]filter.Decision, len(b.Records))
		for i := range ds {
			ds[i] = filter.Route(b.Topic + ".copy")
		}
		return ds, nil
	}), nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		b := filter.Batch{Topic: "t", Records: filtertest.Records("1", "2", "3")}
		out, err := inst.Process(filter.EncodeBatch(&b))
		if err != nil {
			t.Fatal(err)
		}
		ds, err := filter.DecodeDecisions(out)
		if err != nil || len(ds) != 3 || ds[2].Topics[0] != "t.copy" {
			t.Fatalf("%v %v", ds, err)
		}
	}
	if _, err := inst.Process([]byte{1, 2}); err == nil {
		t.Fatal("garbage input: no error")
	}
}

func TestHandleRegistered(t *testing.T) {
	h := filter.HandlerFunc(func(b *filter.Batch, _ []byte) ([]filter.Decision, error) { return nil, nil })
	filter.Handle(h)
	if filter.Registered() == nil {
		t.Fatal("not registered")
	}
	r := filter.Record{Headers: []filter.Header{{Key: "a", Value: []byte("1")}}}
	if v, ok := r.Header("a"); !ok || string(v) != "1" {
		t.Fatal("Header")
	}
	if _, ok := r.Header("b"); ok {
		t.Fatal("Header b")
	}
	if s := filter.Reject("x").String(); s != `reject("x")` {
		t.Fatal(s)
	}
}
