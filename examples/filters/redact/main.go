// Command redact is a samsa filter that masks e-mail addresses in JSON
// record values. See README.md.
package main

import filter "github.com/samsa-broker/samsa/sdk/filter/go"

func init() { filter.Handle(filter.HandlerFunc(Redact)) }

// main is required by the go tool; a reactor module never runs it.
func main() {}
