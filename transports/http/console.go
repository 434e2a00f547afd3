package http

// The console: static files at / of the HTTP listener. By default the
// built-in browser dashboard (examples/browser-dashboard, embedded in the
// binary) with the JS SDK's bundle at /samsa.js (sdk/js/dist/samsa.js,
// embedded too); [http] console_dir serves a directory instead.
//
// Only GET and HEAD of paths the other handlers (/ws, /api/, /healthz,
// /debug/) do not take reach it. The files are public: a page
// authenticates over /ws itself (PROTOCOL.md §9). Directories are never
// listed (a directory without index.html is 404), names with a component
// starting with '.' are never served (a checkout's .git, an editor's
// swap files), and every response says Cache-Control: no-cache, so an
// edited page shows on the next load; the embedded files carry an ETag,
// a directory's files their modification time, so a reload that changed
// nothing costs a 304.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"

	dashboard "github.com/samsa-broker/samsa/examples/browser-dashboard"
	samsajs "github.com/samsa-broker/samsa/sdk/js"
)

// consoleType fixes the content types of the files a console is made of;
// the system's MIME tables (which mime.TypeByExtension also reads) differ
// between machines. For other extensions it returns "", leaving the
// standard library's guess.
func consoleType(ext string) string {
	switch strings.ToLower(ext) {
	case ".html", ".htm":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".json", ".map":
		return "application/json"
	case ".webmanifest":
		return "application/manifest+json"
	case ".svg":
		return "image/svg+xml"
	case ".wasm":
		return "application/wasm"
	case ".txt":
		return "text/plain; charset=utf-8"
	}
	return ""
}

// ConsoleFS returns the files the console serves: the directory dir, or
// the built-in dashboard when dir is "". Either way samsa.js, when the
// files have none, is the JS SDK's bundle embedded in the binary. dir
// must be an existing directory; a relative dir is taken from the
// working directory.
func ConsoleFS(dir string) (fs.FS, error) {
	bundle := samsajs.FS()
	if dir == "" {
		cf := &consoleFiles{primary: dashboard.FS(), bundle: bundle, builtin: true}
		etags, err := hashFiles(cf)
		if err != nil {
			return nil, fmt.Errorf("built-in console: %w", err)
		}
		cf.etags = etags
		return cf, nil
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("console directory %s: %w", dir, err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("console directory: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("console directory %s: not a directory", abs)
	}
	cf := &consoleFiles{primary: os.DirFS(abs), bundle: bundle, dir: abs}
	tag, err := hashFile(bundle, samsajs.BundleName)
	if err != nil {
		return nil, fmt.Errorf("built-in %s: %w", samsajs.BundleName, err)
	}
	cf.etags = map[string]string{samsajs.BundleName: tag}
	return cf, nil
}

// WithConsole serves fsys at / (see ConsoleFS): GET and HEAD of every
// path the other handlers do not take. Without it / is 404.
func WithConsole(fsys fs.FS) Option {
	return func(o *handlerOptions) { o.console = fsys }
}

// consoleFiles is the console's file system: primary (the directory or
// the built-in dashboard) with the bundle as samsa.js when primary has
// none. It hides dot names and directories without an index.html, so
// that http.FileServerFS, which cleans paths and refuses "..", never
// lists a directory.
type consoleFiles struct {
	primary fs.FS
	bundle  fs.FS
	builtin bool
	dir     string // the served directory, "" when builtin
	// etags are of embedded files (which have no modification time), by
	// name: every file when builtin, else the bundle.
	etags map[string]string
}

func (c *consoleFiles) String() string {
	if c.builtin {
		return "built-in dashboard"
	}
	return c.dir
}

func notExist(name string) error {
	return &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

// hidden reports whether a path has a component starting with '.'.
func hidden(name string) bool {
	if name == "." {
		return false
	}
	for elem := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(elem, ".") {
			return true
		}
	}
	return false
}

// Open implements fs.FS.
func (c *consoleFiles) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) || hidden(name) || strings.ContainsAny(name, "\\\x00") {
		return nil, notExist(name)
	}
	f, err := c.primary.Open(name)
	if errors.Is(err, fs.ErrNotExist) && name == samsajs.BundleName {
		return c.bundle.Open(name)
	}
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if st.IsDir() {
		if _, err := fs.Stat(c.primary, path.Join(name, "index.html")); err != nil {
			f.Close()
			return nil, notExist(name)
		}
	}
	return f, nil
}

// etag returns the ETag of the file served for name when it is embedded.
func (c *consoleFiles) etag(name string) string {
	if c.builtin {
		return c.etags[name]
	}
	if name == samsajs.BundleName {
		if _, err := fs.Stat(c.primary, name); errors.Is(err, fs.ErrNotExist) {
			return c.etags[name]
		}
	}
	return ""
}

func hashFiles(fsys fs.FS) (map[string]string, error) {
	tags := map[string]string{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		tag, err := hashFile(fsys, p)
		tags[p] = tag
		return err
	})
	if err != nil {
		return nil, err
	}
	// The bundle is not in the walk when the dashboard has none.
	if _, ok := tags[samsajs.BundleName]; !ok {
		if tags[samsajs.BundleName], err = hashFile(fsys, samsajs.BundleName); err != nil {
			return nil, err
		}
	}
	return tags, nil
}

func hashFile(fsys fs.FS, name string) (string, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return `"` + hex.EncodeToString(h.Sum(nil)[:12]) + `"`, nil
}

// consoleHandler serves the console's files with http.FileServerFS,
// setting the headers it does not: content type, no-cache, ETag.
type consoleHandler struct {
	files http.Handler
	etag  func(name string) string
}

func newConsoleHandler(fsys fs.FS) *consoleHandler {
	h := &consoleHandler{files: http.FileServerFS(fsys), etag: func(string) string { return "" }}
	if cf, ok := fsys.(*consoleFiles); ok {
		h.etag = cf.etag
	}
	return h
}

func (c *consoleHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, fmt.Sprintf("%s is not allowed on %s (allowed: GET, HEAD)", r.Method, r.URL.Path), http.StatusMethodNotAllowed)
		return
	}
	// The name FileServerFS will serve (it serves index.html for a
	// directory, or answers 404, or redirects).
	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if name == "" || strings.HasSuffix(r.URL.Path, "/") {
		name = path.Join(name, "index.html")
	}
	h := w.Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Content-Type-Options", "nosniff")
	if ct := consoleType(path.Ext(name)); ct != "" {
		h.Set("Content-Type", ct)
	}
	if tag := c.etag(name); tag != "" {
		h.Set("ETag", tag)
	}
	c.files.ServeHTTP(w, r)
}
