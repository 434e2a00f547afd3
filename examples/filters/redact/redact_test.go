package main

import (
	"encoding/json"
	"testing"

	filter "github.com/samsa-broker/samsa/sdk/filter/go"
	"github.com/samsa-broker/samsa/sdk/filter/go/filtertest"
)

func TestMaskEmails(t *testing.T) {
	for in, want := range map[string]string{
		"alice@example.com":                       "a***@example.com",
		"mail bob.smith+x@mail.example.co.uk now": "mail b***@mail.example.co.uk now",
		"a@b.io, zed@c.org":                       "a***@b.io, z***@c.org",
		"no address @ here":                       "no address @ here",
		"a***@example.com":                        "a***@example.com",
		"end of sentence: x@y.com.":               "end of sentence: x***@y.com.",
		"not@an.a1 nor@this nor@.com nor @x.com":  "not@an.a1 nor@this nor@.com nor @x.com",
		"two@a.io@b.io":                           "t***@a.io@b.io",
		"über@x.com, ok_1@sub-d.x.com":            "üb***@x.com, o***@sub-d.x.com",
		"ber@x.com":                               "b***@x.com",
	} {
		if got, _ := MaskEmails(in); got != want {
			t.Errorf("MaskEmails(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRedactJSON(t *testing.T) {
	cases := []struct{ in, want string }{
		{`{"user":"alice@example.com","n":1}`, `{"user":"a***@example.com","n":1}`},
		// keys are left alone, nesting and arrays are walked, formatting kept
		{`{ "bob@x.org" : [ "bob@x.org", {"c": "to: carol@y.net"} ], "d":"<&>" }`,
			`{ "bob@x.org" : [ "b***@x.org", {"c": "to: c***@y.net"} ], "d":"<&>" }`},
		// escapes inside a string
		{`{"e":"\"q\" dave@z.com \u00e9"}`, `{"e":"\"q\" d***@z.com é"}`},
		{`"eve@example.com"`, `"e***@example.com"`},
		{`{"n":"none"}`, `{"n":"none"}`},
	}
	for _, c := range cases {
		got, _, ok := RedactJSON([]byte(c.in))
		if !ok || string(got) != c.want {
			t.Errorf("RedactJSON(%s) = %s (ok %v), want %s", c.in, got, ok, c.want)
		}
	}
	if got, n, ok := RedactJSON([]byte(`alice@example.com`)); ok || n != 0 || string(got) != "alice@example.com" {
		t.Errorf("non-JSON: %s %d %v", got, n, ok)
	}
}

func TestRedactFilter(t *testing.T) {
	recs := filtertest.Records(
		`{"from":"alice@example.com","to":["bob@example.com"]}`,
		`{"msg":"hi"}`,
		`plain alice@example.com`,
		``,
	)
	recs[0].Key = []byte("k0")
	recs[0].Headers = []filter.Header{{Key: "h", Value: []byte("v")}}
	recs = append(recs, filter.Record{Offset: 4}) // null value
	ds := filtertest.Run(filter.HandlerFunc(Redact), nil, recs...)
	if ds[0].Action != filter.ActionRewrite ||
		string(ds[0].Value) != `{"from":"a***@example.com","to":["b***@example.com"]}` ||
		string(ds[0].Key) != "k0" || len(ds[0].Headers) != 1 {
		t.Errorf("record 0: %v", ds[0])
	}
	for i := 1; i < len(ds); i++ {
		if ds[i].Action != filter.ActionKeep {
			t.Errorf("record %d: %v, want keep", i, ds[i])
		}
	}
}

func TestAppendJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `q"b\s`, "nl\n\r\t\x01\x1f", "é😀<&>"} {
		lit := appendJSONString(nil, s)
		var back string
		if err := json.Unmarshal(lit, &back); err != nil || back != s {
			t.Errorf("%q -> %s -> %q %v", s, lit, back, err)
		}
	}
}
