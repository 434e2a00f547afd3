package wasm

import (
	"bytes"
	"math"
	"reflect"
	"strings"
	"testing"
)

func u32b(v uint32) []byte { return le.AppendUint32(nil, v) }

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func strb(s string) []byte { return append(u32b(uint32(len(s))), s...) }

func TestInputRoundTrip(t *testing.T) {
	cases := []struct {
		name  string
		topic string
		part  int32
		recs  []Record
	}{
		{"empty batch", "t", 0, nil},
		{"nulls and empties", "orders", 3, []Record{
			{Offset: 0, Timestamp: 1700000000000},
			{Offset: 1, Timestamp: -1, Key: []byte{}, Value: []byte{}},
		}},
		{"headers", "a.b-c_d", math.MaxInt32, []Record{
			{Offset: math.MaxInt64, Timestamp: 5, Key: []byte("k"), Value: []byte("v"),
				Headers: []Header{{Key: "h1", Value: []byte("x")}, {Key: "", Value: nil}, {Key: "h3", Value: []byte{}}}},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := AppendInput(nil, c.topic, c.part, c.recs)
			if err != nil {
				t.Fatal(err)
			}
			n, _ := inputSize(c.topic, c.recs)
			if len(b) != n {
				t.Fatalf("encoded %d bytes, inputSize says %d", len(b), n)
			}
			topic, part, recs, err := DecodeInput(b)
			if err != nil {
				t.Fatal(err)
			}
			if topic != c.topic || part != c.part || !reflect.DeepEqual(recs, c.recs) {
				t.Fatalf("round trip: got %q %d %#v, want %q %d %#v", topic, part, recs, c.topic, c.part, c.recs)
			}
		})
	}
}

func TestInputLayout(t *testing.T) {
	// The exact bytes of ABI.md's input layout for one record.
	b, _ := AppendInput(nil, "t", 2, []Record{{Offset: 7, Timestamp: 9, Key: nil, Value: []byte("v"), Headers: []Header{{Key: "h", Value: nil}}}})
	want := cat(u32b(1), strb("t"), u32b(2), u32b(1),
		le.AppendUint64(nil, 7), le.AppendUint64(nil, 9),
		u32b(math.MaxUint32), u32b(1), []byte("v"),
		u32b(1), strb("h"), u32b(math.MaxUint32))
	if !bytes.Equal(b, want) {
		t.Fatalf("got  %x\nwant %x", b, want)
	}
}

func TestDecodeOutput(t *testing.T) {
	rewriteFields := cat(u32b(1), []byte("K"), u32b(math.MaxUint32), u32b(2), strb("h"), u32b(1), []byte("x"), strb("n"), u32b(math.MaxUint32))
	cases := []struct {
		name string
		in   []byte
		n    int
		path Path
		want []Decision
		err  string
	}{
		{name: "empty", in: u32b(0), n: 0, want: nil},
		{name: "keep drop", in: cat(u32b(2), []byte{0, 1}), n: 2, want: []Decision{{Action: Keep}, {Action: Drop}}},
		{name: "rewrite", in: cat(u32b(1), []byte{2}, rewriteFields), n: 1, path: ConsumePath,
			want: []Decision{{Action: Rewrite, Rewritten: true, Key: []byte("K"), Value: nil,
				Headers: []Header{{Key: "h", Value: []byte("x")}, {Key: "n"}}}}},
		{name: "rewrite empty", in: cat(u32b(1), []byte{2}, u32b(0), u32b(0), u32b(0)), n: 1,
			want: []Decision{{Action: Rewrite, Rewritten: true, Key: []byte{}, Value: []byte{}}}},
		{name: "route", in: cat(u32b(1), []byte{3}, u32b(2), strb("a"), strb("b"), []byte{0}), n: 1,
			want: []Decision{{Action: Route, Topics: []string{"a", "b"}}}},
		{name: "route rewrite", in: cat(u32b(1), []byte{3}, u32b(1), strb("a"), []byte{1}, rewriteFields), n: 1,
			want: []Decision{{Action: Route, Topics: []string{"a"}, Rewritten: true, Key: []byte("K"),
				Headers: []Header{{Key: "h", Value: []byte("x")}, {Key: "n"}}}}},
		{name: "reject", in: cat(u32b(2), []byte{0, 4}, strb("no way")), n: 2,
			want: []Decision{{Action: Keep}, {Action: Reject, Message: "no way"}}},

		{name: "too short", in: []byte{1, 0}, n: 1, err: "too short for the decision count"},
		{name: "wrong count", in: cat(u32b(2), []byte{0, 0}), n: 3, err: "2 decisions for 3 records"},
		{name: "huge count", in: cat(u32b(math.MaxUint32)), n: math.MaxUint32, err: "claims 4294967295 decisions in 0 bytes"},
		{name: "truncated", in: cat(u32b(2), []byte{0}), n: 2, err: "claims 2 decisions in 1 bytes"},
		{name: "unknown action", in: cat(u32b(1), []byte{9}), n: 1, err: "decision 0: unknown action 9"},
		{name: "route on consume", in: cat(u32b(1), []byte{3}, u32b(1), strb("a"), []byte{0}), n: 1, path: ConsumePath,
			err: "decision 0: action route is not allowed on the consume path"},
		{name: "reject on consume", in: cat(u32b(1), []byte{4}, strb("x")), n: 1, path: ConsumePath,
			err: "action reject is not allowed on the consume path"},
		{name: "value past end", in: cat(u32b(1), []byte{2}, u32b(0), u32b(10), []byte("abc")), n: 1,
			err: "value of 10 bytes runs past the end"},
		{name: "negative length", in: cat(u32b(1), []byte{2}, u32b(0xfffffffe), u32b(0), u32b(0)), n: 1,
			err: "key has invalid length -2"},
		{name: "huge header count", in: cat(u32b(1), []byte{2}, u32b(0), u32b(0), u32b(1<<30)), n: 1,
			err: "1073741824 headers cannot fit"},
		{name: "route no topic", in: cat(u32b(1), []byte{3}, u32b(0), []byte{0}), n: 1, err: "route lists no topic"},
		{name: "route empty topic", in: cat(u32b(1), []byte{3}, u32b(1), strb(""), []byte{0}), n: 1, err: "route topic 0 is empty"},
		{name: "route bad flag", in: cat(u32b(1), []byte{3}, u32b(1), strb("a"), []byte{7}), n: 1, err: "rewrite flag is 7"},
		{name: "route no flag", in: cat(u32b(1), []byte{3}, u32b(1), strb("a")), n: 1, err: "truncated before the route rewrite flag"},
		{name: "reject truncated", in: cat(u32b(1), []byte{4}, u32b(5), []byte("ab")), n: 1, err: "reject message of 5 bytes runs past the end"},
		{name: "trailing bytes", in: cat(u32b(1), []byte{0, 0}), n: 1, err: "1 bytes after the last decision"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := DecodeOutput(c.in, c.n, c.path)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %#v\nwant %#v", got, c.want)
			}
			// And the encoder writes the same bytes back.
			if re := AppendOutput(nil, got); !bytes.Equal(re, c.in) {
				t.Fatalf("re-encoded %x, want %x", re, c.in)
			}
		})
	}
}

// The decoder must not keep references into guest memory.
func TestDecodeOutputCopies(t *testing.T) {
	src := AppendOutput(nil, []Decision{{Action: Rewrite, Rewritten: true, Key: []byte("key"), Value: []byte("value"),
		Headers: []Header{{Key: "h", Value: []byte("hv")}}}})
	ds, err := DecodeOutput(src, 1, ProducePath)
	if err != nil {
		t.Fatal(err)
	}
	clear(src)
	if string(ds[0].Key) != "key" || string(ds[0].Value) != "value" || string(ds[0].Headers[0].Value) != "hv" {
		t.Fatalf("decisions changed with the source: %#v", ds[0])
	}
}

// A reused decoder and destination give the same results.
func TestDecoderReuse(t *testing.T) {
	var d outputDecoder
	dst := make([]Decision, 0, 4)
	for i := 0; i < 3; i++ {
		in := AppendOutput(nil, []Decision{{Action: Route, Topics: []string{"x", "y"}}, {Action: Keep}})
		ds, err := d.decode(in, 2, ProducePath, dst)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != 2 || ds[0].Topics[1] != "y" || ds[1].Action != Keep || ds[1].Topics != nil {
			t.Fatalf("round %d: %#v", i, ds)
		}
		dst = ds
	}
}

func FuzzDecodeOutput(f *testing.F) {
	f.Add(u32b(0), 0, uint8(0))
	f.Add(cat(u32b(2), []byte{0, 1}), 2, uint8(1))
	f.Add(AppendOutput(nil, []Decision{
		{Action: Rewrite, Rewritten: true, Key: []byte("k"), Headers: []Header{{Key: "a", Value: []byte("b")}}},
		{Action: Route, Topics: []string{"t1", "t2"}, Rewritten: true, Value: []byte("v")},
		{Action: Reject, Message: "m"},
	}), 3, uint8(0))
	f.Add(cat(u32b(1), []byte{3}, u32b(math.MaxUint32)), 1, uint8(0))
	f.Fuzz(func(t *testing.T, b []byte, n int, path uint8) {
		if n < 0 || n > 1<<20 {
			n = 1
		}
		var d outputDecoder
		ds, err := d.decode(b, n, Path(path%3), nil)
		if err == nil {
			if len(ds) != n {
				t.Fatalf("%d decisions for %d", len(ds), n)
			}
			// What decodes re-encodes to the same bytes.
			if re := AppendOutput(nil, ds); !bytes.Equal(re, b) {
				t.Fatalf("re-encoded %x, want %x", re, b)
			}
		}
	})
}

func FuzzDecodeInput(f *testing.F) {
	b, _ := AppendInput(nil, "t", 1, []Record{{Key: []byte("k"), Headers: []Header{{Key: "h"}}}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		topic, part, recs, err := DecodeInput(b)
		if err == nil {
			re, err := AppendInput(nil, topic, part, recs)
			if err != nil || !bytes.Equal(re, b) {
				t.Fatalf("re-encoded %x, want %x", re, b)
			}
		}
	})
}

func TestLogSink(t *testing.T) {
	var s logSink
	s.reset()
	out := &streamWriter{sink: &s, stream: 0}
	errw := &streamWriter{sink: &s, stream: 1}
	s.begin()
	out.Write([]byte("hel"))
	errw.Write([]byte("oops\r\n"))
	out.Write([]byte("lo\nworld"))
	got := s.take()
	want := []LogLine{{"stderr", "oops"}, {"stdout", "hello"}, {"stdout", "world"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %q, want %q", got, want)
	}

	// Bounded per call, with a note; the next call has a fresh budget.
	s.begin()
	line := strings.Repeat("x", 999) + "\n"
	for i := 0; i < 100; i++ {
		out.Write([]byte(line))
	}
	got = s.take()
	total := 0
	for _, l := range got[:len(got)-1] {
		total += len(l.Line) + 1
	}
	if total > MaxLogBytesPerCall+1 || total < MaxLogBytesPerCall-1000 {
		t.Fatalf("kept %d bytes of logs, want about %d", total, MaxLogBytesPerCall)
	}
	if last := got[len(got)-1]; !strings.Contains(last.Line, "cut at 65536 bytes") {
		t.Fatalf("last line %q, want the cut note", last.Line)
	}
	s.begin()
	out.Write([]byte("again\n"))
	if got := s.take(); len(got) != 1 || got[0].Line != "again" {
		t.Fatalf("after a cut call: %q", got)
	}
}
