// Package samsajs_test runs the TypeScript SDK's own test suite (npm test: unit
// tests, integration tests against a real samsa serve, and the bundle size
// check) from `go test ./...`, so that the README's one test command covers
// it.
package samsajs_test

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

func requireTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required under CI=true: %v", name, err)
		}
		t.Skipf("%s not installed: %v", name, err)
	}
	return p
}

func TestNPM(t *testing.T) {
	npm := requireTool(t, "npm")
	requireTool(t, "node")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.CommandContext(ctx, npm, args...)
		cmd.Env = append(os.Environ(), "NO_COLOR=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("npm %v: %v\n%s", args, err, out)
		}
		t.Logf("npm %v:\n%s", args, out)
	}
	if _, err := os.Stat("node_modules"); err != nil {
		run("ci", "--no-audit", "--no-fund")
	}
	run("test")
}
