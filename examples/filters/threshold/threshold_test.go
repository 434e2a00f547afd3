package main

import (
	"strings"
	"testing"

	filter "github.com/samsa-broker/samsa/sdk/filter/go"
	"github.com/samsa-broker/samsa/sdk/filter/go/filtertest"
)

func actions(ds []filter.Decision) string {
	var s []string
	for _, d := range ds {
		s = append(s, d.Action.String())
	}
	return strings.Join(s, " ")
}

func TestThreshold(t *testing.T) {
	recs := filtertest.Records(
		`{"temp":29.9}`,
		`{"temp":30}`,
		`{"temp":45,"other":1}`,
		`{"temp":50}`,
		`{"temp":50.5}`,
		`{"temp":"40"}`,
		`{"humidity":40}`,
		`not json`,
		`[1,2]`,
		``,
	)
	got := actions(filtertest.Run(&Threshold{}, []byte(`{"field":"temp","min":30,"max":50}`), recs...))
	want := "drop keep keep keep drop drop drop drop drop drop"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	// one bound only, nested field
	recs = filtertest.Records(`{"s":{"t":-5}}`, `{"s":{"t":5}}`, `{"s":5}`)
	got = actions(filtertest.Run(&Threshold{}, []byte(`{"field":"s.t","max":0}`), recs...))
	if got != "keep drop drop" {
		t.Fatalf("max only: %s", got)
	}
}

func TestThresholdParams(t *testing.T) {
	for _, p := range []string{``, `{}`, `{"field":"t"}`, `{"min":1}`, `{"field":"t","min":2,"max":1}`, `{"field":"t","min":"1"}`, `{"field":"t","mni":1}`} {
		if _, err := filtertest.RunBatch(&Threshold{}, []byte(p), filter.Batch{}); err == nil {
			t.Errorf("params %q: no error", p)
		}
	}
}
