package vfs

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"slices"
	"sync"
	"syscall"
	"testing"
)

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, fsys FS, name, data string, sync bool) {
	t.Helper()
	f, err := fsys.Create(name)
	must(t, err)
	_, err = f.Write([]byte(data))
	must(t, err)
	if sync {
		must(t, f.Sync())
	}
	must(t, f.Close())
}

func syncDir(t *testing.T, fsys FS, dir string) {
	t.Helper()
	d, err := fsys.OpenDir(dir)
	must(t, err)
	must(t, d.Sync())
	must(t, d.Close())
}

func readFile(fsys FS, name string) (string, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	return string(b), err
}

func TestMemFSCrash(t *testing.T) {
	type want struct {
		name string
		data string // "" with missing=true: must not exist
		gone bool
	}
	tests := []struct {
		name  string
		setup func(t *testing.T, m *MemFS)
		want  []want
	}{
		{
			name: "synced data and synced entry survive",
			setup: func(t *testing.T, m *MemFS) {
				must(t, m.MkdirAll("d", 0o755))
				syncDir(t, m, "/")
				writeFile(t, m, "d/a", "hello", true)
				syncDir(t, m, "d")
			},
			want: []want{{name: "d/a", data: "hello"}},
		},
		{
			name: "synced data without dir sync vanishes",
			setup: func(t *testing.T, m *MemFS) {
				must(t, m.MkdirAll("d", 0o755))
				syncDir(t, m, "/")
				writeFile(t, m, "d/a", "hello", true)
			},
			want: []want{{name: "d/a", gone: true}},
		},
		{
			name: "dir entry synced but data not: empty file",
			setup: func(t *testing.T, m *MemFS) {
				must(t, m.MkdirAll("d", 0o755))
				syncDir(t, m, "/")
				writeFile(t, m, "d/a", "hello", false)
				syncDir(t, m, "d")
			},
			want: []want{{name: "d/a", data: ""}},
		},
		{
			name: "unsynced appended tail is lost",
			setup: func(t *testing.T, m *MemFS) {
				writeFile(t, m, "a", "one", true)
				syncDir(t, m, "")
				f, err := m.OpenReadWrite("a")
				must(t, err)
				_, err = f.WriteAt([]byte("two"), 3)
				must(t, err)
				must(t, f.Close())
			},
			want: []want{{name: "a", data: "one"}},
		},
		{
			name: "mkdir needs a parent sync",
			setup: func(t *testing.T, m *MemFS) {
				must(t, m.MkdirAll("x/y", 0o755))
				writeFile(t, m, "x/y/f", "data", true)
				syncDir(t, m, "x/y")
				syncDir(t, m, "x") // root not synced: x vanishes
			},
			want: []want{{name: "x", gone: true}},
		},
		{
			name: "mkdir with all parents synced survives",
			setup: func(t *testing.T, m *MemFS) {
				must(t, m.MkdirAll("x/y", 0o755))
				writeFile(t, m, "x/y/f", "data", true)
				syncDir(t, m, "x/y")
				syncDir(t, m, "x")
				syncDir(t, m, ".")
			},
			want: []want{{name: "x/y/f", data: "data"}},
		},
		{
			name: "rename without dir sync reverts",
			setup: func(t *testing.T, m *MemFS) {
				writeFile(t, m, "old", "v1", true)
				syncDir(t, m, "/")
				must(t, m.Rename("old", "new"))
			},
			want: []want{{name: "old", data: "v1"}, {name: "new", gone: true}},
		},
		{
			name: "rename over existing with dir sync",
			setup: func(t *testing.T, m *MemFS) {
				writeFile(t, m, "cur", "v1", true)
				syncDir(t, m, "/")
				writeFile(t, m, "cur.tmp", "v2", true)
				must(t, m.Rename("cur.tmp", "cur"))
				syncDir(t, m, "/")
			},
			want: []want{{name: "cur", data: "v2"}, {name: "cur.tmp", gone: true}},
		},
		{
			name: "remove without dir sync reverts",
			setup: func(t *testing.T, m *MemFS) {
				writeFile(t, m, "a", "keep", true)
				syncDir(t, m, "/")
				must(t, m.Remove("a"))
			},
			want: []want{{name: "a", data: "keep"}},
		},
		{
			name: "remove with dir sync is durable",
			setup: func(t *testing.T, m *MemFS) {
				writeFile(t, m, "a", "keep", true)
				syncDir(t, m, "/")
				must(t, m.Remove("a"))
				syncDir(t, m, "/")
			},
			want: []want{{name: "a", gone: true}},
		},
		{
			name: "truncate after sync reverts to synced contents",
			setup: func(t *testing.T, m *MemFS) {
				writeFile(t, m, "a", "abcdef", true)
				syncDir(t, m, "/")
				f, err := m.OpenReadWrite("a")
				must(t, err)
				must(t, f.Truncate(2))
				must(t, f.Close())
			},
			want: []want{{name: "a", data: "abcdef"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewStrictMem()
			tt.setup(t, m)
			m.Crash()
			for _, w := range tt.want {
				got, err := readFile(m, w.name)
				if w.gone {
					if _, serr := m.Stat(w.name); !errors.Is(serr, fs.ErrNotExist) {
						t.Errorf("%s: exists after crash (stat err %v)", w.name, serr)
					}
					continue
				}
				if err != nil {
					t.Errorf("%s: %v", w.name, err)
				} else if got != w.data {
					t.Errorf("%s = %q, want %q", w.name, got, w.data)
				}
			}
		})
	}
}

func TestMemFSBasics(t *testing.T) {
	m := NewStrictMem()
	must(t, m.MkdirAll("/a/b", 0o755))
	writeFile(t, m, "a/b/z", "z", false)
	writeFile(t, m, "/a/b/y", "y", false)
	names, err := m.List("a/b")
	must(t, err)
	if !slices.Equal(names, []string{"y", "z"}) {
		t.Fatalf("List = %v", names)
	}
	if err := m.Remove("a/b"); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Fatalf("Remove non-empty dir: %v", err)
	}
	f, err := m.Open("a/b/z")
	must(t, err)
	if _, err := f.Write([]byte("x")); err == nil {
		t.Fatal("write to read-only file succeeded")
	}
	must(t, f.Close())
	if _, err := f.Read(make([]byte, 1)); !errors.Is(err, fs.ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	f, err = m.OpenReadWrite("a/b/z")
	must(t, err)
	_, err = f.WriteAt([]byte("q"), 4)
	must(t, err)
	buf := make([]byte, 8)
	n, err := f.ReadAt(buf, 0)
	if n != 5 || err != io.EOF || !bytes.Equal(buf[:n], []byte("z\x00\x00\x00q")) {
		t.Fatalf("ReadAt = %d %v %q", n, err, buf[:n])
	}
	fi, err := f.Stat()
	must(t, err)
	if fi.Size() != 5 || fi.Name() != "z" {
		t.Fatalf("Stat = %v %v", fi.Size(), fi.Name())
	}
	must(t, m.RemoveAll("a"))
	must(t, m.RemoveAll("a"))
	if _, err := m.Stat("a/b/z"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("stat after RemoveAll: %v", err)
	}
}

func TestMemFSConcurrent(t *testing.T) {
	m := NewStrictMem()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := string(rune('a' + i))
			f, err := m.Create(name)
			if err != nil {
				t.Error(err)
				return
			}
			for j := range 100 {
				f.WriteAt([]byte{byte(j)}, int64(j))
				f.ReadAt(make([]byte, 1), 0)
				if j%10 == 0 {
					f.Sync()
					m.List("/")
				}
			}
			f.Close()
		}()
	}
	wg.Add(1)
	go func() { defer wg.Done(); m.Crash() }()
	wg.Wait()
}

func TestOSFS(t *testing.T) {
	dir := t.TempDir()
	o := OS()
	must(t, o.MkdirAll(dir+"/x", 0o755))
	writeFile(t, o, dir+"/x/f", "abc", true)
	syncDir(t, o, dir+"/x")
	got, err := readFile(o, dir+"/x/f")
	must(t, err)
	if got != "abc" {
		t.Fatalf("got %q", got)
	}
	names, err := o.List(dir)
	must(t, err)
	if !slices.Equal(names, []string{"x"}) {
		t.Fatalf("List = %v", names)
	}
	must(t, o.Rename(dir+"/x/f", dir+"/x/g"))
	must(t, o.Remove(dir+"/x/g"))
	must(t, o.RemoveAll(dir+"/x"))
}

func TestErrorFS(t *testing.T) {
	tests := []struct {
		name    string
		inject  func(op Op, path string) error
		run     func(fsys FS) error
		wantErr error
		check   func(t *testing.T, inner FS)
	}{
		{
			name: "ENOSPC after partial write",
			inject: func(op Op, path string) error {
				if op == OpWrite {
					return &PartialWriteError{N: 3, Err: syscall.ENOSPC}
				}
				return nil
			},
			run: func(fsys FS) error {
				f, err := fsys.Create("f")
				if err != nil {
					return err
				}
				defer f.Close()
				n, err := f.WriteAt([]byte("abcdef"), 0)
				if n != 3 {
					return errors.New("wrong partial count")
				}
				return err
			},
			wantErr: syscall.ENOSPC,
			check: func(t *testing.T, inner FS) {
				if got, _ := readFile(inner, "f"); got != "abc" {
					t.Errorf("inner contents %q, want abc", got)
				}
			},
		},
		{
			name: "EIO on sync",
			inject: func(op Op, path string) error {
				if op == OpSync {
					return syscall.EIO
				}
				return nil
			},
			run: func(fsys FS) error {
				f, err := fsys.Create("f")
				if err != nil {
					return err
				}
				defer f.Close()
				f.Write([]byte("x"))
				return f.Sync()
			},
			wantErr: syscall.EIO,
		},
		{
			name: "rename fails for one path",
			inject: func(op Op, path string) error {
				if op == OpRename && path == "a" {
					return syscall.EACCES
				}
				return nil
			},
			run: func(fsys FS) error {
				f, _ := fsys.Create("a")
				f.Close()
				return fsys.Rename("a", "b")
			},
			wantErr: syscall.EACCES,
			check: func(t *testing.T, inner FS) {
				if _, err := inner.Stat("a"); err != nil {
					t.Error("a was renamed")
				}
			},
		},
		{
			name:    "no injection passes through",
			inject:  func(Op, string) error { return nil },
			run:     func(fsys FS) error { return fsys.MkdirAll("q/r", 0o755) },
			wantErr: nil,
			check: func(t *testing.T, inner FS) {
				if fi, err := inner.Stat("q/r"); err != nil || !fi.IsDir() {
					t.Errorf("q/r: %v", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inner := NewStrictMem()
			err := tt.run(NewErrorFS(inner, tt.inject))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil) != (err == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.check != nil {
				tt.check(t, inner)
			}
		})
	}
	if OpSync.String() != "sync" || Op(99).String() != "op(99)" {
		t.Error("Op.String")
	}
}
