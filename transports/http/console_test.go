package http

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/samsa-broker/samsa/broker"
	samsajs "github.com/samsa-broker/samsa/sdk/js"
	"github.com/samsa-broker/samsa/transports/websocket"
)

// consoleBroker opens a real broker for the listener's handler.
func consoleBroker(t *testing.T) *broker.Broker {
	t.Helper()
	b, err := broker.Open(broker.Options{DataDir: t.TempDir(), AutoCreateTopics: true, DefaultPartitions: 1, Defaults: broker.DefaultTopicConfig()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// listener returns the HTTP listener's handler as serve builds it: the
// admin API, /ws and, when fsys is not nil, the console.
func listener(t *testing.T, fsys fs.FS) http.Handler {
	t.Helper()
	b := consoleBroker(t)
	ws := websocket.New(b, websocket.Options{})
	t.Cleanup(func() { ws.Close() })
	opts := []Option{WithWebSocket(ws)}
	if fsys != nil {
		opts = append(opts, WithConsole(fsys))
	}
	return Handler(b, nil, opts...)
}

func mustConsoleFS(t *testing.T, dir string) fs.FS {
	t.Helper()
	fsys, err := ConsoleFS(dir)
	if err != nil {
		t.Fatal(err)
	}
	return fsys
}

// get sends one request through the handler, exactly as the server would
// after parsing the request line (the path is not cleaned by a client).
func get(h http.Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

type consoleCase struct {
	name     string
	method   string // GET when empty
	path     string
	hdr      map[string]string
	status   int
	ctype    string // prefix of Content-Type
	contains string // in the body
	body     []byte // the exact body
	check    func(t *testing.T, w *httptest.ResponseRecorder)
}

func runConsoleCases(t *testing.T, h http.Handler, tests []consoleCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			w := get(h, method, tt.path, tt.hdr)
			if w.Code != tt.status {
				t.Fatalf("%s %s: status %d, want %d; body %.300s", method, tt.path, w.Code, tt.status, w.Body)
			}
			if ct := w.Header().Get("Content-Type"); tt.ctype != "" && !strings.HasPrefix(ct, tt.ctype) {
				t.Fatalf("%s %s: Content-Type %q, want %q", method, tt.path, ct, tt.ctype)
			}
			if tt.contains != "" && !strings.Contains(w.Body.String(), tt.contains) {
				t.Fatalf("%s %s: body lacks %q: %.300s", method, tt.path, tt.contains, w.Body)
			}
			if tt.body != nil && !bytes.Equal(w.Body.Bytes(), tt.body) {
				t.Fatalf("%s %s: body of %d bytes differs from the %d expected", method, tt.path, w.Body.Len(), len(tt.body))
			}
			if tt.check != nil {
				tt.check(t, w)
			}
		})
	}
}

func noCache(t *testing.T, w *httptest.ResponseRecorder) {
	t.Helper()
	if cc := w.Header().Get("Cache-Control"); cc != "no-cache" {
		t.Fatalf("Cache-Control %q, want no-cache", cc)
	}
}

func TestConsoleBuiltin(t *testing.T) {
	h := listener(t, mustConsoleFS(t, ""))
	bundle := samsajs.Bundle()
	if len(bundle) < 1000 || !bytes.Contains(bundle, []byte("export")) {
		t.Fatalf("embedded bundle of %d bytes is not the SDK's ES module", len(bundle))
	}
	index := get(h, "GET", "/", nil)
	etag := index.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag on the built-in index.html")
	}
	runConsoleCases(t, h, []consoleCase{
		{name: "index", path: "/", status: 200, ctype: "text/html", contains: "live dashboard", check: func(t *testing.T, w *httptest.ResponseRecorder) {
			noCache(t, w)
			if !strings.Contains(w.Body.String(), `src="app.js"`) {
				t.Fatalf("index.html does not load app.js: %s", w.Body)
			}
		}},
		{name: "index with query", path: "/?topic=sensors", status: 200, ctype: "text/html", contains: "live dashboard"},
		{name: "app module", path: "/app.js", status: 200, ctype: "text/javascript", contains: `from "./samsa.js"`, check: noCache},
		{name: "sdk bundle", path: "/samsa.js", status: 200, ctype: "text/javascript", body: bundle, check: noCache},
		{name: "style", path: "/style.css", status: 200, ctype: "text/css"},
		{name: "head", method: "HEAD", path: "/samsa.js", status: 200, ctype: "text/javascript", check: func(t *testing.T, w *httptest.ResponseRecorder) {
			if w.Body.Len() != 0 || w.Header().Get("Content-Length") == "" {
				t.Fatalf("HEAD: body %d bytes, Content-Length %q", w.Body.Len(), w.Header().Get("Content-Length"))
			}
		}},
		{name: "unchanged index", path: "/", hdr: map[string]string{"If-None-Match": etag}, status: 304},
		{name: "stale etag", path: "/", hdr: map[string]string{"If-None-Match": `"old"`}, status: 200, contains: "live dashboard"},
		{name: "index.html redirects to the directory", path: "/index.html", status: 301, check: func(t *testing.T, w *httptest.ResponseRecorder) {
			if loc := w.Header().Get("Location"); loc != "./" {
				t.Fatalf("Location %q", loc)
			}
		}},
		{name: "missing file", path: "/nope.js", status: 404},
		{name: "not embedded", path: "/embed.go", status: 404},
		{name: "readme not embedded", path: "/README.md", status: 404},
		{name: "post", method: "POST", path: "/", status: 405, check: func(t *testing.T, w *httptest.ResponseRecorder) {
			if a := w.Header().Get("Allow"); a != "GET, HEAD" {
				t.Fatalf("Allow %q", a)
			}
		}},
		{name: "delete a file", method: "DELETE", path: "/app.js", status: 405},
		// The other endpoints keep their handlers.
		{name: "ws without upgrade", path: "/ws", status: 400},
		{name: "admin api", path: "/api/v1/filters", status: 503, ctype: "application/json", contains: "filters_disabled"},
		{name: "admin api unknown path", path: "/api/v1/nope", status: 404, ctype: "application/json", contains: `"not_found"`},
		{name: "admin api root", path: "/api/", status: 404, ctype: "application/json"},
		{name: "healthz", path: "/healthz", status: 200, ctype: "application/json", check: func(t *testing.T, w *httptest.ResponseRecorder) {
			var v struct{ Status string }
			if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil || v.Status != "ok" {
				t.Fatalf("healthz %s: %v", w.Body, err)
			}
		}},
		{name: "pprof", path: "/debug/pprof/", status: 200, contains: "goroutine"},
		{name: "other debug path", path: "/debug/vars", status: 404},
	})
}

// A path that climbs out of the console's root never serves a file
// outside it: the mux redirects to the cleaned path, FileServerFS and
// fs.ValidPath refuse "..", so the answer is a redirect or a 404.
func TestConsoleTraversal(t *testing.T) {
	parent := t.TempDir()
	const secret = "root:x:0:0:secret"
	if err := os.WriteFile(filepath.Join(parent, "passwd"), []byte(secret), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(parent, "console")
	writeFiles(t, dir, map[string]string{"index.html": "<h1>mine</h1>", "sub/index.html": "<h1>sub</h1>"})
	paths := []string{
		"/../passwd",
		"/../../../../etc/passwd",
		"/%2e%2e/passwd",
		"/%2e%2e%2fpasswd",
		"/..%2fpasswd",
		"/sub/../../passwd",
		"/sub/..%2f..%2fpasswd",
		"/..%5cpasswd",
		"/sub/%2e%2e/%2e%2e/passwd",
		"//../passwd",
		"/./../passwd",
	}
	for _, tc := range []struct {
		name string
		fsys fs.FS
	}{{"built-in", mustConsoleFS(t, "")}, {"console_dir", mustConsoleFS(t, dir)}} {
		h := listener(t, tc.fsys)
		for _, p := range paths {
			t.Run(tc.name+p, func(t *testing.T) {
				w := get(h, "GET", p, nil)
				// Follow redirects (to the cleaned path) within the handler.
				for hops := 0; w.Code/100 == 3 && hops < 5; hops++ {
					loc := w.Header().Get("Location")
					if !strings.HasPrefix(loc, "/") {
						loc = "/" + loc
					}
					w = get(h, "GET", loc, nil)
				}
				if strings.Contains(w.Body.String(), "root:") {
					t.Fatalf("GET %s served a file outside the console: %s", p, w.Body)
				}
				if w.Code == 200 && !strings.Contains(w.Body.String(), "<h1>") && !strings.Contains(w.Body.String(), "live dashboard") {
					t.Fatalf("GET %s: 200 with %q", p, w.Body)
				}
				if w.Code != 200 && w.Code != 404 && w.Code != 400 {
					t.Fatalf("GET %s: status %d", p, w.Code)
				}
			})
		}
	}
}

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestConsoleDir(t *testing.T) {
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"index.html":        "<!doctype html><h1>my app</h1>",
		"main.mjs":          `import { Client } from "./samsa.js";`,
		"data.json":         `{"a":1}`,
		"sub/index.html":    "<h1>sub</h1>",
		"empty/keep.txt":    "not an index",
		".env":              "SECRET=1",
		".git/config":       "[core]",
		"assets/.hidden.js": "hidden",
	})
	h := listener(t, mustConsoleFS(t, dir))
	runConsoleCases(t, h, []consoleCase{
		{name: "index", path: "/", status: 200, ctype: "text/html", body: []byte("<!doctype html><h1>my app</h1>"), check: func(t *testing.T, w *httptest.ResponseRecorder) {
			noCache(t, w)
			if w.Header().Get("Last-Modified") == "" {
				t.Fatal("no Last-Modified on a directory's file")
			}
			if w.Header().Get("ETag") != "" {
				t.Fatalf("a directory's file with the ETag %q", w.Header().Get("ETag"))
			}
		}},
		{name: "module", path: "/main.mjs", status: 200, ctype: "text/javascript"},
		{name: "json", path: "/data.json", status: 200, ctype: "application/json"},
		{name: "bundle falls back to the embedded one", path: "/samsa.js", status: 200, ctype: "text/javascript", body: samsajs.Bundle(), check: func(t *testing.T, w *httptest.ResponseRecorder) {
			noCache(t, w)
			if w.Header().Get("ETag") == "" {
				t.Fatal("the embedded bundle without an ETag")
			}
		}},
		{name: "built-in dashboard not served", path: "/app.js", status: 404},
		{name: "subdirectory index", path: "/sub/", status: 200, body: []byte("<h1>sub</h1>")},
		{name: "subdirectory redirect", path: "/sub", status: 301},
		{name: "no directory listing", path: "/empty/", status: 404},
		{name: "file in a directory without index", path: "/empty/keep.txt", status: 200, ctype: "text/plain"},
		{name: "dotfile", path: "/.env", status: 404},
		{name: "dot directory", path: "/.git/config", status: 404},
		{name: "hidden file in a directory", path: "/assets/.hidden.js", status: 404},
		{name: "ws keeps its handler", path: "/ws", status: 400},
		{name: "api keeps its handler", path: "/api/v1/bindings", status: 503, ctype: "application/json"},
	})

	// Edits show on the next request (nothing is cached in the broker),
	// and the directory's own samsa.js wins over the embedded one.
	writeFiles(t, dir, map[string]string{"index.html": "<h1>edited</h1>", "samsa.js": "export const mine = 1;"})
	runConsoleCases(t, h, []consoleCase{
		{name: "edited index", path: "/", status: 200, body: []byte("<h1>edited</h1>")},
		{name: "own bundle", path: "/samsa.js", status: 200, ctype: "text/javascript", body: []byte("export const mine = 1;"), check: func(t *testing.T, w *httptest.ResponseRecorder) {
			if w.Header().Get("ETag") != "" {
				t.Fatal("the directory's samsa.js with the embedded bundle's ETag")
			}
		}},
	})

	// A directory without index.html: / is 404, no listing.
	bare := t.TempDir()
	writeFiles(t, bare, map[string]string{"app.js": "1"})
	runConsoleCases(t, listener(t, mustConsoleFS(t, bare)), []consoleCase{
		{name: "no index", path: "/", status: 404},
		{name: "its files", path: "/app.js", status: 200, ctype: "text/javascript"},
	})
}

func TestConsoleOff(t *testing.T) {
	h := listener(t, nil)
	runConsoleCases(t, h, []consoleCase{
		{name: "root", path: "/", status: 404},
		{name: "page file", path: "/app.js", status: 404},
		{name: "bundle", path: "/samsa.js", status: 404},
		{name: "ws", path: "/ws", status: 400},
		{name: "healthz", path: "/healthz", status: 200},
	})
}

func TestConsoleFSErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "index.html")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, dir, want string
	}{
		{"missing", filepath.Join(t.TempDir(), "nope"), "no such file or directory"},
		{"a file", file, "not a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ConsoleFS(tt.dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.dir) {
				t.Fatalf("ConsoleFS(%q): %v, want an error naming it with %q", tt.dir, err, tt.want)
			}
		})
	}
}

// Over a real connection: the page, its module and the bundle come from
// the console, and a WebSocket upgrade of /ws still reaches the
// transport (101 with the samsa.v1 subprotocol).
func TestConsoleOverTheWire(t *testing.T) {
	srv := httptest.NewServer(listener(t, mustConsoleFS(t, "")))
	defer srv.Close()
	for _, p := range []string{"/", "/app.js", "/samsa.js", "/style.css"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(body) == 0 {
			t.Fatalf("GET %s: %d, %d bytes", p, resp.StatusCode, len(body))
		}
	}

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req := "GET /ws HTTP/1.1\r\nHost: " + srv.Listener.Addr().String() + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: samsa.v1\r\n\r\n"
	if _, err := conn.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Protocol") != "samsa.v1" {
		t.Fatalf("upgrade of /ws: %s, protocol %q", resp.Status, resp.Header.Get("Sec-WebSocket-Protocol"))
	}
}

// With auth on, the console's files are public (the page authenticates
// over /ws itself), while the admin API and profiles still need
// credentials, and /ws still reaches the transport.
func TestConsolePublicWithAuth(t *testing.T) {
	f := newAuth(t)
	b := consoleBroker(t)
	ws := websocket.New(b, websocket.Options{Auth: f.a})
	t.Cleanup(func() { ws.Close() })
	h := Handler(b, nil, WithWebSocket(ws), WithAuth(f.a), WithConsole(mustConsoleFS(t, "")))
	runConsoleCases(t, h, []consoleCase{
		{name: "index", path: "/", status: 200, contains: "live dashboard"},
		{name: "app", path: "/app.js", status: 200, ctype: "text/javascript"},
		{name: "bundle", path: "/samsa.js", status: 200, ctype: "text/javascript"},
		{name: "missing file", path: "/nope.html", status: 404},
		{name: "admin api", path: "/api/v1/filters", status: 401},
		{name: "admin api unknown path", path: "/api/nope", status: 401},
		{name: "pprof", path: "/debug/pprof/", status: 401},
		{name: "ws", path: "/ws", status: 400},
		{name: "healthz", path: "/healthz", status: 200},
	})
}
