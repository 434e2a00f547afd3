//go:build !linux

package vfs

import "os"

// datasync flushes f with fsync (F_FULLFSYNC on darwin, via os.File.Sync).
func datasync(f *os.File) error { return f.Sync() }
