package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	filter "github.com/samsa-broker/samsa/sdk/filter/go"
	"github.com/samsa-broker/samsa/sdk/filter/go/jsonfield"
)

// Params are the binding's parameters, e.g. {"field":"temp","min":30}.
type Params struct {
	// Field names the number to test; dots separate nested object keys
	// ("sensor.temp").
	Field string `json:"field"`
	// Min and Max are inclusive bounds; either may be left out, not both.
	Min *float64 `json:"min"`
	Max *float64 `json:"max"`
}

// Threshold is the filter. Init parses the parameters once per instance.
type Threshold struct {
	p    Params
	path []string
}

// Init checks and keeps the parameters.
func (t *Threshold) Init(params []byte) error {
	var p Params
	dec := json.NewDecoder(bytes.NewReader(params))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf(`threshold: parameters must be JSON like {"field":"temp","min":30,"max":50}: %v`, err)
	}
	if p.Field == "" {
		return errors.New(`threshold: parameter "field" is required`)
	}
	if p.Min == nil && p.Max == nil {
		return errors.New(`threshold: give "min", "max" or both`)
	}
	if p.Min != nil && p.Max != nil && *p.Min > *p.Max {
		return fmt.Errorf("threshold: min %v is greater than max %v", *p.Min, *p.Max)
	}
	t.p, t.path = p, strings.Split(p.Field, ".")
	return nil
}

// Pass tells whether the record value passes: it is a JSON object whose
// field is a number within the bounds.
func (t *Threshold) Pass(value []byte) bool {
	raw, ok := jsonfield.Lookup(value, t.path...)
	if !ok {
		return false
	}
	n, ok := jsonfield.Number(raw)
	if !ok {
		return false
	}
	return (t.p.Min == nil || n >= *t.p.Min) && (t.p.Max == nil || n <= *t.p.Max)
}

// Filter keeps the records that pass and drops the others.
func (t *Threshold) Filter(b *filter.Batch, _ []byte) ([]filter.Decision, error) {
	ds := make([]filter.Decision, len(b.Records))
	kept := 0
	for i, r := range b.Records {
		if t.Pass(r.Value) {
			ds[i] = filter.Keep()
			kept++
		} else {
			ds[i] = filter.Drop()
		}
	}
	fmt.Printf("threshold: %d records, %d kept, %d dropped\n", len(b.Records), kept, len(b.Records)-kept)
	return ds, nil
}
