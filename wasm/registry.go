package wasm

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// registry is the set of stored module versions: on disk under
// dir/modules (NAME/VERSION.wasm and index.json), or in memory when dir is
// "". It is guarded by the Host's mutex.
type registry struct {
	dir   string // dir/modules, or ""
	index regIndex
	mem   map[string][]byte // name/version → bytes, when dir is ""
}

const indexFile = "index.json"

type regIndex struct {
	Format  int                  `json:"format"`
	Modules map[string]*regEntry `json:"modules"`
}

type regEntry struct {
	// Last is the highest version ever given to the name: versions are not
	// reused after a Remove.
	Last     int          `json:"last"`
	Versions []ModuleInfo `json:"versions"`
}

func checkName(name string) error {
	if len(name) == 0 || len(name) > 64 {
		return fmt.Errorf("%w: name %q must be 1 to 64 characters", ErrInvalidModule, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: name %q has %q; allowed are a-z A-Z 0-9 . _ -", ErrInvalidModule, name, c)
		}
	}
	if name == "." || name == ".." {
		return fmt.Errorf("%w: name %q is not allowed", ErrInvalidModule, name)
	}
	return nil
}

func openRegistry(dir string) (*registry, error) {
	r := &registry{index: regIndex{Format: 1, Modules: map[string]*regEntry{}}}
	if dir == "" {
		r.mem = map[string][]byte{}
		return r, nil
	}
	r.dir = filepath.Join(dir, "modules")
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		return nil, fmt.Errorf("wasm: registry: %w", err)
	}
	b, err := os.ReadFile(filepath.Join(r.dir, indexFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("wasm: registry index: %w", err)
	default:
		if err := json.Unmarshal(b, &r.index); err != nil {
			return nil, fmt.Errorf("wasm: registry index %s is corrupt: %w", filepath.Join(r.dir, indexFile), err)
		}
		if r.index.Format != 1 {
			return nil, fmt.Errorf("wasm: registry index format %d is not supported", r.index.Format)
		}
		if r.index.Modules == nil {
			r.index.Modules = map[string]*regEntry{}
		}
	}
	// Leftovers of interrupted writes.
	_ = filepath.WalkDir(r.dir, func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(d.Name(), ".tmp") {
			os.Remove(path)
		}
		return nil
	})
	return r, nil
}

func (r *registry) versions(name string) []ModuleInfo {
	e := r.index.Modules[name]
	if e == nil {
		return nil
	}
	return append([]ModuleInfo(nil), e.Versions...)
}

// has reports whether any stored version has the SHA-256 sum.
func (r *registry) has(sum string) bool {
	for _, e := range r.index.Modules {
		for _, v := range e.Versions {
			if v.SHA256 == sum {
				return true
			}
		}
	}
	return false
}

func (r *registry) latest() []ModuleInfo {
	var out []ModuleInfo
	for _, e := range r.index.Modules {
		if n := len(e.Versions); n > 0 {
			out = append(out, e.Versions[n-1])
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (r *registry) lookup(name string, version int) (ModuleInfo, error) {
	e := r.index.Modules[name]
	if e == nil || len(e.Versions) == 0 {
		return ModuleInfo{}, fmt.Errorf("%w: %q", ErrUnknownModule, name)
	}
	if version <= 0 {
		return e.Versions[len(e.Versions)-1], nil
	}
	for _, v := range e.Versions {
		if v.Version == version {
			return v, nil
		}
	}
	return ModuleInfo{}, fmt.Errorf("%w: %q has no version %d", ErrUnknownModule, name, version)
}

func (r *registry) path(name string, version int) string {
	return filepath.Join(r.dir, name, strconv.Itoa(version)+".wasm")
}

func memKey(name string, version int) string { return name + "/" + strconv.Itoa(version) }

// read returns a stored version's bytes, checked against its SHA-256.
func (r *registry) read(info ModuleInfo) ([]byte, error) {
	var b []byte
	if r.dir == "" {
		b = r.mem[memKey(info.Name, info.Version)]
		if b == nil {
			return nil, fmt.Errorf("%w: %q version %d was removed", ErrUnknownModule, info.Name, info.Version)
		}
		return b, nil
	}
	b, err := os.ReadFile(r.path(info.Name, info.Version))
	if err != nil {
		return nil, fmt.Errorf("wasm: reading stored module %s v%d: %w", info.Name, info.Version, err)
	}
	s := sha256.Sum256(b)
	if hex.EncodeToString(s[:]) != info.SHA256 {
		return nil, fmt.Errorf("wasm: stored module %s v%d does not match its SHA-256 (corrupt file %s)", info.Name, info.Version, r.path(info.Name, info.Version))
	}
	return b, nil
}

// add stores module as the next version of name.
func (r *registry) add(name string, module []byte, sum string, now time.Time) (ModuleInfo, error) {
	e := r.index.Modules[name]
	last := 0
	if e != nil {
		last = e.Last
	}
	info := ModuleInfo{Name: name, Version: last + 1, Size: int64(len(module)), SHA256: sum, Created: now.UTC().Round(time.Millisecond)}
	if r.dir == "" {
		r.mem[memKey(name, info.Version)] = append([]byte(nil), module...)
	} else {
		dir := filepath.Join(r.dir, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return ModuleInfo{}, fmt.Errorf("wasm: storing module: %w", err)
		}
		if err := syncDir(r.dir); err != nil {
			return ModuleInfo{}, fmt.Errorf("wasm: storing module: %w", err)
		}
		if err := writeFileAtomic(r.path(name, info.Version), module); err != nil {
			return ModuleInfo{}, fmt.Errorf("wasm: storing module: %w", err)
		}
	}
	ne := &regEntry{Last: info.Version}
	if e != nil {
		ne.Versions = append(ne.Versions, e.Versions...)
	}
	ne.Versions = append(ne.Versions, info)
	r.index.Modules[name] = ne
	if err := r.saveIndex(); err != nil {
		r.index.Modules[name] = e // the module file stays, unreferenced
		if e == nil {
			delete(r.index.Modules, name)
		}
		return ModuleInfo{}, err
	}
	return info, nil
}

// remove drops every version of name: first from the index (durably),
// then the files.
func (r *registry) remove(name string) error {
	e := r.index.Modules[name]
	if e == nil || len(e.Versions) == 0 {
		return fmt.Errorf("%w: %q", ErrUnknownModule, name)
	}
	old := e.Versions
	e.Versions = nil
	if err := r.saveIndex(); err != nil {
		e.Versions = old
		return err
	}
	if r.dir == "" {
		for _, v := range old {
			delete(r.mem, memKey(name, v.Version))
		}
		return nil
	}
	if err := os.RemoveAll(filepath.Join(r.dir, name)); err != nil {
		return fmt.Errorf("wasm: removing module files: %w", err)
	}
	return syncDir(r.dir)
}

func (r *registry) saveIndex() error {
	if r.dir == "" {
		return nil
	}
	b, err := json.MarshalIndent(&r.index, "", "  ")
	if err != nil {
		return fmt.Errorf("wasm: registry index: %w", err)
	}
	if err := writeFileAtomic(filepath.Join(r.dir, indexFile), b); err != nil {
		return fmt.Errorf("wasm: writing registry index: %w", err)
	}
	return nil
}

// writeFileAtomic writes path so that it holds either its old contents or
// b, also across a crash: a temporary file, fsync, rename, fsync of the
// directory.
func writeFileAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
