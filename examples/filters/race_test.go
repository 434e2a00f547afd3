//go:build race

package filters_test

// raceEnabled: under the race detector wazero compiles Go guests very
// slowly, so tests run them on the interpreter.
const raceEnabled = true
