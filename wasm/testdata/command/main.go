// command is a WASI command (it has _start), not a reactor.
package main

import "fmt"

func main() { fmt.Println("hello from a command") }
