package main

import (
	"fmt"
	"testing"

	filter "github.com/samsa-broker/samsa/sdk/filter/go"
	"github.com/samsa-broker/samsa/sdk/filter/go/filtertest"
)

func TestRouter(t *testing.T) {
	recs := filtertest.Records(
		`{"type":"click","x":1}`,
		`{"type":"view"}`,
		`{"type":7}`,
		`{"kind":"click"}`,
		`{"type":""}`,
		`{"type":"bad name!"}`,
		`{"type":{"a":1}}`,
		`not json`,
		`{"type":"click"} trailing`,
	)
	ds := filtertest.Run(&Router{}, []byte(`{"field":"type","prefix":"events."}`), recs...)
	want := []string{`route(["events.click"])`, `route(["events.view"])`, `route(["events.7"])`,
		"keep", "keep", "keep", "keep", "keep", "keep"}
	for i, d := range ds {
		if got := d.String(); got != want[i] {
			t.Errorf("record %d (%s): %s, want %s", i, recs[i].Value, got, want[i])
		}
	}
	// nested field, no prefix
	ds = filtertest.Run(&Router{}, []byte(`{"field":"meta.kind"}`), filtertest.Records(`{"meta":{"kind":"audit"}}`)...)
	if ds[0].Action != filter.ActionRoute || fmt.Sprint(ds[0].Topics) != "[audit]" {
		t.Errorf("nested: %v", ds[0])
	}
}

func TestRouterParams(t *testing.T) {
	for _, p := range []string{``, `{}`, `{"prefix":"x."}`, `{"field":"t","prefix":"a b"}`, `{"field":"t","extra":1}`} {
		if _, err := filtertest.RunBatch(&Router{}, []byte(p), filter.Batch{}); err == nil {
			t.Errorf("params %q: no error", p)
		}
	}
}
