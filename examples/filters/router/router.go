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

// Params are the binding's parameters, e.g. {"field":"type","prefix":"events."}.
type Params struct {
	// Field names the field whose value names the topic; dots separate
	// nested object keys ("meta.type").
	Field string `json:"field"`
	// Prefix is put before the value to make the topic name.
	Prefix string `json:"prefix"`
}

// Router is the filter. Init parses the parameters once per instance.
type Router struct {
	p    Params
	path []string
}

// Init checks and keeps the parameters.
func (rt *Router) Init(params []byte) error {
	var p Params
	dec := json.NewDecoder(bytes.NewReader(params))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return fmt.Errorf(`router: parameters must be JSON like {"field":"type","prefix":"events."}: %v`, err)
	}
	if p.Field == "" {
		return errors.New(`router: parameter "field" is required`)
	}
	if p.Prefix != "" && !ValidTopic(p.Prefix) {
		return fmt.Errorf("router: prefix %q has characters a topic name cannot have", p.Prefix)
	}
	rt.p, rt.path = p, strings.Split(p.Field, ".")
	return nil
}

// ValidTopic tells whether name is a legal Kafka topic name: 1 to 249 of
// ASCII letters, digits, '.', '_' and '-', and not "." or "..".
func ValidTopic(name string) bool {
	if name == "" || len(name) > 249 || name == "." || name == ".." {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// Topic returns the destination of a record value: the prefix and the
// field's value (a string, or a number or boolean as written in JSON). ok
// is false if the value is not a JSON object with such a field, or the
// name would not be a legal topic name.
func (rt *Router) Topic(value []byte) (topic string, ok bool) {
	raw, ok := jsonfield.Lookup(value, rt.path...)
	if !ok {
		return "", false
	}
	s, ok := jsonfield.Scalar(raw)
	if !ok || s == "" {
		return "", false
	}
	topic = rt.p.Prefix + s
	return topic, ValidTopic(topic)
}

// Filter routes every record with the field to its topic; the others stay
// on the source topic. Produce path only (the consume path does not allow
// routes).
func (rt *Router) Filter(b *filter.Batch, _ []byte) ([]filter.Decision, error) {
	ds := make([]filter.Decision, len(b.Records))
	topics := map[string]bool{}
	routed := 0
	for i, r := range b.Records {
		if t, ok := rt.Topic(r.Value); ok {
			ds[i] = filter.Route(t)
			topics[t] = true
			routed++
		} else {
			ds[i] = filter.Keep()
		}
	}
	fmt.Printf("router: %d records, %d routed to %d topics, %d stay on %s\n",
		len(b.Records), routed, len(topics), len(b.Records)-routed, b.Topic)
	return ds, nil
}
