//go:build unix

package main

import (
	"fmt"
	"syscall"
)

// raiseOpenFileLimit raises the soft RLIMIT_NOFILE to the hard limit, so
// that a bench can hold thousands of connections.
func raiseOpenFileLimit(env *cliEnv) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		fmt.Fprintf(env.stderr, "warning: reading the open file limit: %v\n", err)
		return
	}
	if rl.Cur >= rl.Max {
		return
	}
	rl.Cur = rl.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		fmt.Fprintf(env.stderr, "warning: raising the open file limit to %d: %v\n", rl.Max, err)
	}
}
