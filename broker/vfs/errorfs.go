package vfs

import (
	"fmt"
	"os"
)

// Op identifies a filesystem operation, for error injection.
type Op int

// The operations an ErrorFS can fail.
const (
	OpCreate        Op = iota // FS.Create
	OpOpen                    // FS.Open
	OpOpenReadWrite           // FS.OpenReadWrite
	OpOpenDir                 // FS.OpenDir
	OpRemove                  // FS.Remove
	OpRemoveAll               // FS.RemoveAll
	OpRename                  // FS.Rename (path is the old name)
	OpMkdirAll                // FS.MkdirAll
	OpList                    // FS.List
	OpStat                    // FS.Stat and File.Stat
	OpRead                    // File.Read and File.ReadAt
	OpWrite                   // File.Write and File.WriteAt
	OpSync                    // File.Sync, of files and of directories
	OpTruncate                // File.Truncate
	OpClose                   // File.Close
	OpPreallocate             // File.Preallocate
)

var opNames = [...]string{"create", "open", "open-rw", "open-dir", "remove", "remove-all", "rename",
	"mkdir-all", "list", "stat", "read", "write", "sync", "truncate", "close", "preallocate"}

// String returns the operation's name.
func (o Op) String() string {
	if o >= 0 && int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", int(o))
}

// PartialWriteError, returned by an ErrorFS injector for OpWrite, makes the
// write store its first N bytes and then fail with Err, as a write that fills
// the disk does.
type PartialWriteError struct {
	N   int
	Err error
}

func (e *PartialWriteError) Error() string {
	return fmt.Sprintf("partial write of %d bytes: %v", e.N, e.Err)
}

// Unwrap returns the underlying error.
func (e *PartialWriteError) Unwrap() error { return e.Err }

// NewErrorFS wraps inner so that each operation first asks inject; a non-nil
// error from inject is returned instead of performing the operation (after
// performing part of it for a *PartialWriteError on a write). inject may be
// called concurrently. An inject that always returns nil makes a convenient
// hook for counting operations.
func NewErrorFS(inner FS, inject func(op Op, path string) error) FS {
	return &errorFS{inner: inner, inject: inject}
}

type errorFS struct {
	inner  FS
	inject func(Op, string) error
}

type errorFile struct {
	File
	name string
	fs   *errorFS
}

func (e *errorFS) wrap(name string, f File, err error) (File, error) {
	if err != nil {
		return nil, err
	}
	return &errorFile{File: f, name: name, fs: e}, nil
}

func (e *errorFS) Create(name string) (File, error) {
	if err := e.inject(OpCreate, name); err != nil {
		return nil, err
	}
	f, err := e.inner.Create(name)
	return e.wrap(name, f, err)
}

func (e *errorFS) Open(name string) (File, error) {
	if err := e.inject(OpOpen, name); err != nil {
		return nil, err
	}
	f, err := e.inner.Open(name)
	return e.wrap(name, f, err)
}

func (e *errorFS) OpenReadWrite(name string) (File, error) {
	if err := e.inject(OpOpenReadWrite, name); err != nil {
		return nil, err
	}
	f, err := e.inner.OpenReadWrite(name)
	return e.wrap(name, f, err)
}

func (e *errorFS) OpenDir(name string) (File, error) {
	if err := e.inject(OpOpenDir, name); err != nil {
		return nil, err
	}
	f, err := e.inner.OpenDir(name)
	return e.wrap(name, f, err)
}

func (e *errorFS) Remove(name string) error {
	if err := e.inject(OpRemove, name); err != nil {
		return err
	}
	return e.inner.Remove(name)
}

func (e *errorFS) RemoveAll(name string) error {
	if err := e.inject(OpRemoveAll, name); err != nil {
		return err
	}
	return e.inner.RemoveAll(name)
}

func (e *errorFS) Rename(oldname, newname string) error {
	if err := e.inject(OpRename, oldname); err != nil {
		return err
	}
	return e.inner.Rename(oldname, newname)
}

func (e *errorFS) MkdirAll(dir string, perm os.FileMode) error {
	if err := e.inject(OpMkdirAll, dir); err != nil {
		return err
	}
	return e.inner.MkdirAll(dir, perm)
}

func (e *errorFS) List(dir string) ([]string, error) {
	if err := e.inject(OpList, dir); err != nil {
		return nil, err
	}
	return e.inner.List(dir)
}

func (e *errorFS) Stat(name string) (os.FileInfo, error) {
	if err := e.inject(OpStat, name); err != nil {
		return nil, err
	}
	return e.inner.Stat(name)
}

func (f *errorFile) Read(p []byte) (int, error) {
	if err := f.fs.inject(OpRead, f.name); err != nil {
		return 0, err
	}
	return f.File.Read(p)
}

func (f *errorFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.fs.inject(OpRead, f.name); err != nil {
		return 0, err
	}
	return f.File.ReadAt(p, off)
}

// partial handles an injected error for a write of p at off (off < 0: at
// the current position).
func (f *errorFile) partial(err error, p []byte, off int64) (int, error) {
	pw, ok := err.(*PartialWriteError)
	if !ok || pw.N <= 0 {
		return 0, err
	}
	n := min(pw.N, len(p))
	var werr error
	if off < 0 {
		n, werr = f.File.Write(p[:n])
	} else {
		n, werr = f.File.WriteAt(p[:n], off)
	}
	if werr != nil {
		return n, werr
	}
	return n, pw.Err
}

func (f *errorFile) Write(p []byte) (int, error) {
	if err := f.fs.inject(OpWrite, f.name); err != nil {
		return f.partial(err, p, -1)
	}
	return f.File.Write(p)
}

func (f *errorFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.inject(OpWrite, f.name); err != nil {
		return f.partial(err, p, off)
	}
	return f.File.WriteAt(p, off)
}

func (f *errorFile) Sync() error {
	if err := f.fs.inject(OpSync, f.name); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *errorFile) Truncate(size int64) error {
	if err := f.fs.inject(OpTruncate, f.name); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

// Preallocate reserves space when the wrapped file can.
func (f *errorFile) Preallocate(size int64) error {
	if err := f.fs.inject(OpPreallocate, f.name); err != nil {
		return err
	}
	return Preallocate(f.File, size)
}

func (f *errorFile) Stat() (os.FileInfo, error) {
	if err := f.fs.inject(OpStat, f.name); err != nil {
		return nil, err
	}
	return f.File.Stat()
}

func (f *errorFile) Close() error {
	if err := f.fs.inject(OpClose, f.name); err != nil {
		f.File.Close()
		return err
	}
	return f.File.Close()
}
