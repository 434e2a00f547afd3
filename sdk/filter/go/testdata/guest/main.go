// Command guest is the SDK's test module: its decisions follow the record
// values, so that wasm_test.go can drive every path of the wasm glue.
package main

import (
	"errors"
	"fmt"
	"strings"

	filter "github.com/samsa-broker/samsa/sdk/filter/go"
)

type guest struct {
	params  string
	batches int
	kept    [][]byte // values kept from earlier batches: they must stay valid
}

func (g *guest) Init(params []byte) error {
	if string(params) == "bad" {
		return errors.New("bad params")
	}
	g.params = string(params)
	return nil
}

func (g *guest) Filter(b *filter.Batch, _ []byte) ([]filter.Decision, error) {
	g.batches++
	ds := make([]filter.Decision, 0, len(b.Records))
	for _, r := range b.Records {
		switch v := string(r.Value); v {
		case "keep":
			ds = append(ds, filter.Keep())
		case "drop":
			ds = append(ds, filter.Drop())
		case "rewrite":
			ds = append(ds, filter.Rewrite(r.Key, []byte(strings.ToUpper(v)+" "+g.params),
				append(r.Headers, filter.Header{Key: "batches", Value: fmt.Appendf(nil, "%d", g.batches)})))
		case "route":
			ds = append(ds, filter.Route(b.Topic+".a", "b"))
		case "routerw":
			ds = append(ds, filter.RouteRewrite([]string{"c"}, nil, []byte("x"), nil))
		case "reject":
			ds = append(ds, filter.Reject(fmt.Sprintf("no: offset %d", r.Offset)))
		case "remember":
			g.kept = append(g.kept, r.Value)
			ds = append(ds, filter.Keep())
		case "recall":
			var s []string
			for _, k := range g.kept {
				s = append(s, string(k))
			}
			ds = append(ds, filter.Rewrite(nil, []byte(strings.Join(s, ",")), nil))
		case "fail":
			return nil, errors.New("failing on purpose")
		case "panic":
			panic("panicking on purpose")
		case "short":
			return ds, nil
		default:
			ds = append(ds, filter.Keep())
		}
	}
	fmt.Printf("guest: batch %d, %d records\n", g.batches, len(b.Records))
	return ds, nil
}

func init() { filter.Handle(&guest{}) }

func main() {}
