// Command threshold is a samsa filter that keeps the JSON records whose
// numeric field lies within bounds. See README.md.
package main

import filter "github.com/samsa-broker/samsa/sdk/filter/go"

func init() { filter.Handle(&Threshold{}) }

// main is required by the go tool; a reactor module never runs it.
func main() {}
