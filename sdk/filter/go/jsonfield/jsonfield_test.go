package jsonfield

import (
	"strings"
	"testing"
)

func TestLookup(t *testing.T) {
	doc := []byte(` { "a" : 1, "s":"x\"y", "o": {"k": [1, {"z": "}"}], "t": -2.5e1, "e\u0301": true}, "last": null } `)
	cases := []struct {
		path []string
		want string
		ok   bool
	}{
		{nil, `{ "a" : 1, "s":"x\"y", "o": {"k": [1, {"z": "}"}], "t": -2.5e1, "e\u0301": true}, "last": null }`, true},
		{[]string{"a"}, `1`, true},
		{[]string{"s"}, `"x\"y"`, true},
		{[]string{"o", "k"}, `[1, {"z": "}"}]`, true},
		{[]string{"o", "t"}, `-2.5e1`, true},
		{[]string{"o", "e\u0301"}, `true`, true},
		{[]string{"last"}, `null`, true},
		{[]string{"missing"}, ``, false},
		{[]string{"a", "b"}, ``, false},
		{[]string{"o", "k", "z"}, ``, false},
	}
	for _, c := range cases {
		got, ok := Lookup(doc, c.path...)
		if ok != c.ok || string(got) != c.want {
			t.Errorf("Lookup(%q) = %q %v, want %q %v", c.path, got, ok, c.want, c.ok)
		}
	}
	for _, bad := range []string{``, `{`, `{"a":1`, `{"a":1} x`, `nope`} {
		if _, ok := Lookup([]byte(bad)); ok {
			t.Errorf("Lookup(%q): ok", bad)
		}
	}
	if _, ok := Lookup([]byte(`{}`), "a"); ok {
		t.Error("empty object")
	}
	if v, ok := Lookup([]byte(`[1]`)); !ok || string(v) != "[1]" {
		t.Error("array document")
	}
}

func TestScalars(t *testing.T) {
	if f, ok := Number([]byte(`-2.5e1`)); !ok || f != -25 {
		t.Error(f, ok)
	}
	if _, ok := Number([]byte(`"1"`)); ok {
		t.Error(`Number("1")`)
	}
	if s, ok := String([]byte(`"a\u00e9\n"`)); !ok || s != "aé\n" {
		t.Errorf("%q", s)
	}
	if _, ok := String([]byte(`1`)); ok {
		t.Error("String(1)")
	}
	for raw, want := range map[string]string{`"x"`: "x", `12`: "12", `true`: "true", `-1`: "-1"} {
		if s, ok := Scalar([]byte(raw)); !ok || s != want {
			t.Errorf("Scalar(%s) = %q %v", raw, s, ok)
		}
	}
	for _, raw := range []string{`null`, `{}`, `[]`, ``} {
		if _, ok := Scalar([]byte(raw)); ok {
			t.Errorf("Scalar(%s): ok", raw)
		}
	}
}

func TestStrings(t *testing.T) {
	doc := []byte(`{"k1": "v1", "k\"2" :["v2", {"k3":"v\"3"}], "n": 1}`)
	var got []string
	Strings(doc, func(s, e int) { got = append(got, string(doc[s:e])) })
	if strings.Join(got, " ") != `"v1" "v2" "v\"3"` {
		t.Errorf("%q", got)
	}
}
