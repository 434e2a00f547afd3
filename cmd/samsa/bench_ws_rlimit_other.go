//go:build !unix

package main

// raiseOpenFileLimit does nothing where there is no RLIMIT_NOFILE.
func raiseOpenFileLimit(*cliEnv) {}
