package vfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MemFS is an in-memory filesystem that models power loss strictly. Every
// file has its current contents and the contents it had at its last Sync;
// every directory has its current entries and the entries it had at its last
// Sync (through OpenDir(dir).Sync()). Crash reverts everything to the synced
// state. A MemFS is safe for concurrent use.
type MemFS struct {
	mu    sync.Mutex
	root  *memNode
	locks map[string]bool // names held by Lock
}

type memNode struct {
	isDir   bool
	modTime time.Time
	// Directories.
	children map[string]*memNode
	synced   map[string]*memNode
	// Files.
	data       []byte
	syncedData []byte
}

func newDirNode() *memNode {
	return &memNode{isDir: true, modTime: time.Now(), children: map[string]*memNode{}, synced: map[string]*memNode{}}
}

// NewStrictMem returns an empty in-memory filesystem that forgets, at Crash,
// whatever was not synced: file data and directory entries alike.
func NewStrictMem() *MemFS { return &MemFS{root: newDirNode()} }

// Crash simulates a power loss: every directory reverts to the entries it had
// at its last sync and every file to the data it had at its last sync. A
// file or directory whose entry was never synced disappears. Files opened
// before the crash should not be used afterwards.
func (m *MemFS) Crash() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.locks = nil // the processes that held them are gone
	seen := map[*memNode]bool{}
	var walk func(n *memNode)
	walk = func(n *memNode) {
		if seen[n] {
			return
		}
		seen[n] = true
		if n.isDir {
			n.children = cloneEntries(n.synced)
			for _, c := range n.children {
				walk(c)
			}
			return
		}
		n.data = append([]byte(nil), n.syncedData...)
	}
	walk(m.root)
}

func cloneEntries(e map[string]*memNode) map[string]*memNode {
	c := make(map[string]*memNode, len(e))
	for k, v := range e {
		c[k] = v
	}
	return c
}

// split cleans name into path components relative to the root. Relative
// and absolute names are the same; ".." cannot climb above the root.
func split(name string) ([]string, error) {
	name = filepath.ToSlash(name)
	c := path.Clean("/" + name)
	if c == "/" {
		return nil, nil
	}
	return strings.Split(c[1:], "/"), nil
}

func pathErr(op, name string, err error) error { return &os.PathError{Op: op, Path: name, Err: err} }

// lookup finds the node for name. Callers hold m.mu.
func (m *MemFS) lookup(op, name string) (*memNode, error) {
	parts, err := split(name)
	if err != nil {
		return nil, pathErr(op, name, err)
	}
	n := m.root
	for _, p := range parts {
		if !n.isDir {
			return nil, pathErr(op, name, syscall.ENOTDIR)
		}
		c, ok := n.children[p]
		if !ok {
			return nil, pathErr(op, name, fs.ErrNotExist)
		}
		n = c
	}
	return n, nil
}

// lookupParent finds the directory holding name and name's base. Callers
// hold m.mu.
func (m *MemFS) lookupParent(op, name string) (*memNode, string, error) {
	parts, err := split(name)
	if err != nil {
		return nil, "", pathErr(op, name, err)
	}
	if len(parts) == 0 {
		return nil, "", pathErr(op, name, fs.ErrInvalid)
	}
	n := m.root
	for _, p := range parts[:len(parts)-1] {
		c, ok := n.children[p]
		if !ok {
			return nil, "", pathErr(op, name, fs.ErrNotExist)
		}
		if !c.isDir {
			return nil, "", pathErr(op, name, syscall.ENOTDIR)
		}
		n = c
	}
	return n, parts[len(parts)-1], nil
}

func (m *MemFS) openFile(op, name string, create, truncate, write bool) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var n *memNode
	if create {
		dir, base, err := m.lookupParent(op, name)
		if err != nil {
			return nil, err
		}
		n = dir.children[base]
		if n == nil {
			n = &memNode{modTime: time.Now()}
			dir.children[base] = n
			dir.modTime = time.Now()
		} else if n.isDir {
			return nil, pathErr(op, name, syscall.EISDIR)
		}
	} else {
		var err error
		if n, err = m.lookup(op, name); err != nil {
			return nil, err
		}
	}
	if truncate {
		n.data = nil
		n.modTime = time.Now()
	}
	return &memFile{fs: m, n: n, name: name, write: write}, nil
}

// Create implements FS.
func (m *MemFS) Create(name string) (File, error) {
	return m.openFile("create", name, true, true, true)
}

// Open implements FS.
func (m *MemFS) Open(name string) (File, error) {
	return m.openFile("open", name, false, false, false)
}

// OpenReadWrite implements FS.
func (m *MemFS) OpenReadWrite(name string) (File, error) {
	return m.openFile("open", name, true, false, true)
}

// OpenDir implements FS.
func (m *MemFS) OpenDir(name string) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookup("open", name)
	if err != nil {
		return nil, err
	}
	if !n.isDir {
		return nil, pathErr("open", name, syscall.ENOTDIR)
	}
	return &memFile{fs: m, n: n, name: name}, nil
}

// Remove implements FS.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.lookupParent("remove", name)
	if err != nil {
		return err
	}
	n, ok := dir.children[base]
	if !ok {
		return pathErr("remove", name, fs.ErrNotExist)
	}
	if n.isDir && len(n.children) > 0 {
		return pathErr("remove", name, syscall.ENOTEMPTY)
	}
	delete(dir.children, base)
	dir.modTime = time.Now()
	return nil
}

// RemoveAll implements FS.
func (m *MemFS) RemoveAll(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, base, err := m.lookupParent("removeall", name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	delete(dir.children, base)
	dir.modTime = time.Now()
	return nil
}

// Rename implements FS.
func (m *MemFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	od, ob, err := m.lookupParent("rename", oldname)
	if err != nil {
		return err
	}
	n, ok := od.children[ob]
	if !ok {
		return pathErr("rename", oldname, fs.ErrNotExist)
	}
	nd, nb, err := m.lookupParent("rename", newname)
	if err != nil {
		return err
	}
	if old, ok := nd.children[nb]; ok && old != n {
		switch {
		case old.isDir && !n.isDir:
			return pathErr("rename", newname, syscall.EISDIR)
		case !old.isDir && n.isDir:
			return pathErr("rename", newname, syscall.ENOTDIR)
		case old.isDir && len(old.children) > 0:
			return pathErr("rename", newname, syscall.ENOTEMPTY)
		}
	}
	delete(od.children, ob)
	nd.children[nb] = n
	od.modTime, nd.modTime = time.Now(), time.Now()
	return nil
}

// MkdirAll implements FS. Each directory it creates is a new entry in its
// parent, which needs a sync of the parent to survive a crash.
func (m *MemFS) MkdirAll(dir string, _ os.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	parts, err := split(dir)
	if err != nil {
		return pathErr("mkdir", dir, err)
	}
	n := m.root
	for _, p := range parts {
		c, ok := n.children[p]
		if !ok {
			c = newDirNode()
			n.children[p] = c
			n.modTime = time.Now()
		} else if !c.isDir {
			return pathErr("mkdir", dir, syscall.ENOTDIR)
		}
		n = c
	}
	return nil
}

// List implements FS.
func (m *MemFS) List(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookup("readdir", dir)
	if err != nil {
		return nil, err
	}
	if !n.isDir {
		return nil, pathErr("readdir", dir, syscall.ENOTDIR)
	}
	names := make([]string, 0, len(n.children))
	for k := range n.children {
		names = append(names, k)
	}
	sort.Strings(names)
	return names, nil
}

// Stat implements FS.
func (m *MemFS) Stat(name string) (os.FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.lookup("stat", name)
	if err != nil {
		return nil, err
	}
	return n.info(path.Base(filepath.ToSlash(name))), nil
}

func (n *memNode) info(name string) os.FileInfo {
	fi := memInfo{name: name, size: int64(len(n.data)), mode: 0o644, mod: n.modTime}
	if n.isDir {
		fi.size = 0
		fi.mode = fs.ModeDir | 0o755
	}
	return fi
}

type memInfo struct {
	name string
	size int64
	mode fs.FileMode
	mod  time.Time
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) Mode() fs.FileMode  { return i.mode }
func (i memInfo) ModTime() time.Time { return i.mod }
func (i memInfo) IsDir() bool        { return i.mode.IsDir() }
func (i memInfo) Sys() any           { return nil }

type memFile struct {
	fs     *MemFS
	n      *memNode
	name   string
	write  bool
	pos    int64
	closed bool
}

// check is called with fs.mu held.
func (f *memFile) check(op string, write bool) error {
	if f.closed {
		return pathErr(op, f.name, os.ErrClosed)
	}
	if f.n.isDir && op != "sync" && op != "stat" && op != "close" {
		return pathErr(op, f.name, syscall.EISDIR)
	}
	if write && !f.write {
		return pathErr(op, f.name, syscall.EBADF)
	}
	return nil
}

func (f *memFile) Read(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if f.pos >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[f.pos:])
	f.pos += int64(n)
	return n, nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, pathErr("read", f.name, fs.ErrInvalid)
	}
	if off >= int64(len(f.n.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.n.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Write(p []byte) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("write", true); err != nil {
		return 0, err
	}
	f.writeAt(p, f.pos)
	f.pos += int64(len(p))
	return len(p), nil
}

func (f *memFile) WriteAt(p []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("write", true); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, pathErr("write", f.name, fs.ErrInvalid)
	}
	f.writeAt(p, off)
	return len(p), nil
}

func (f *memFile) writeAt(p []byte, off int64) {
	end := off + int64(len(p))
	if end > int64(len(f.n.data)) {
		f.n.data = growTo(f.n.data, end)
	}
	copy(f.n.data[off:], p)
	f.n.modTime = time.Now()
}

// growTo extends b to size n with zeros.
func growTo(b []byte, n int64) []byte {
	if n <= int64(cap(b)) {
		old := len(b)
		b = b[:n]
		clear(b[old:])
		return b
	}
	nb := make([]byte, n, max(n, 2*int64(cap(b))))
	copy(nb, b)
	return nb
}

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if f.closed {
		return pathErr("close", f.name, os.ErrClosed)
	}
	f.closed = true
	return nil
}

func (f *memFile) Stat() (os.FileInfo, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("stat", false); err != nil {
		return nil, err
	}
	return f.n.info(path.Base(filepath.ToSlash(f.name))), nil
}

func (f *memFile) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("sync", false); err != nil {
		return err
	}
	if f.n.isDir {
		f.n.synced = cloneEntries(f.n.children)
		return nil
	}
	f.n.syncedData = append(f.n.syncedData[:0], f.n.data...)
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("truncate", true); err != nil {
		return err
	}
	if size < 0 {
		return pathErr("truncate", f.name, fs.ErrInvalid)
	}
	if size <= int64(len(f.n.data)) {
		f.n.data = f.n.data[:size]
	} else {
		f.n.data = growTo(f.n.data, size)
	}
	f.n.modTime = time.Now()
	return nil
}

// Preallocate extends the file with zeros up to size, like fallocate(2):
// the new bytes are not durable until the next Sync.
func (f *memFile) Preallocate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("preallocate", true); err != nil {
		return err
	}
	if size > int64(len(f.n.data)) {
		f.n.data = growTo(f.n.data, size)
		f.n.modTime = time.Now()
	}
	return nil
}

// Lock takes an exclusive lock on name within this MemFS (the file need not
// exist); Close releases it.
func (m *MemFS) Lock(name string) (io.Closer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.locks == nil {
		m.locks = make(map[string]bool)
	}
	if m.locks[name] {
		return nil, fmt.Errorf("%s: %w", name, ErrLocked)
	}
	m.locks[name] = true
	return memLock{m: m, name: name}, nil
}

type memLock struct {
	m    *MemFS
	name string
}

func (l memLock) Close() error {
	l.m.mu.Lock()
	delete(l.m.locks, l.name)
	l.m.mu.Unlock()
	return nil
}
