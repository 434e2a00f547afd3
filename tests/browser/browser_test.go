// Package browser runs the Node/Chromium end-to-end tests of this folder
// (dashboard.test.mjs: examples/browser-dashboard as a real `samsa serve`
// serves it at /, and every other *.test.mjs here) from `go test ./...`.
//
// It needs node (>= 20), npm and a Chromium (/usr/bin/chromium, or
// $CHROMIUM); when one is missing the test is skipped, or fails under
// CI=true. No browser is ever downloaded.
package browser

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

func need(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s: %v (required under CI=true)", what, err)
	}
	t.Skipf("%s: %v", what, err)
}

func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser end-to-end test: not in -short mode")
	}
	node, err := exec.LookPath("node")
	need(t, "node", err)
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	_, err = os.Stat(chromium)
	need(t, "chromium", err)
	_, err = exec.LookPath("go")
	need(t, "go", err)

	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "..", "..")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	env := append(os.Environ(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1", "CHROMIUM="+chromium)

	// The pages load the JS SDK's bundle. It is committed (samsa serve
	// embeds it), so this only builds it in a tree where it was deleted;
	// an existing bundle is used as it is.
	sdk := filepath.Join(root, "sdk", "js")
	if _, err := os.Stat(filepath.Join(sdk, "dist", "samsa.js")); err != nil {
		npm, err := exec.LookPath("npm")
		need(t, "npm", err)
		steps := [][]string{{"run", "build"}}
		if _, err := os.Stat(filepath.Join(sdk, "node_modules")); err != nil {
			steps = append([][]string{{"ci", "--no-audit", "--no-fund"}}, steps...)
		}
		for _, args := range steps {
			cmd := exec.CommandContext(ctx, npm, args...)
			cmd.Dir = sdk
			cmd.Env = env
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("building the JS SDK (npm %v): %v\n%s", args, err, out)
			}
		}
	}

	if _, err := os.Stat(filepath.Join(dir, "node_modules", "playwright-core", "package.json")); err != nil {
		npm, err := exec.LookPath("npm")
		need(t, "npm", err)
		cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		cmd.Env = env
		out, err := cmd.CombinedOutput()
		if err != nil {
			need(t, "npm ci (playwright-core)", &cmdError{err, out})
		}
	}

	cmd := exec.CommandContext(ctx, node, "--test", "--test-concurrency=1", "tests/browser/")
	cmd.Dir = root
	cmd.Env = env
	cmd.WaitDelay = 10 * time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err = cmd.Run()
	t.Logf("node --test tests/browser/:\n%s", out.String())
	if err != nil {
		t.Fatalf("node --test: %v (logs and screenshots in tests/browser/out/)", err)
	}
}

type cmdError struct {
	err error
	out []byte
}

func (e *cmdError) Error() string { return e.err.Error() + ": " + string(e.out) }
