// Command router is a samsa filter that routes each JSON record to a topic
// named after one of its fields. See README.md.
package main

import filter "github.com/samsa-broker/samsa/sdk/filter/go"

func init() { filter.Handle(&Router{}) }

// main is required by the go tool; a reactor module never runs it.
func main() {}
