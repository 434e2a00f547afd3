package commitlog

import (
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/samsa-broker/samsa/broker/vfs"
)

// benchPayload is about 1 MiB of batches of 100-byte records.
func benchPayload() []byte {
	var b []byte
	for len(b) < 1<<20-16<<10 {
		b = append(b, makeSimpleBatch(150, 100, time.Now().UnixMilli(), 'x')...)
	}
	return b
}

func BenchmarkAppendSync(b *testing.B) {
	l := openT(b, vfs.OS(), b.TempDir(), Options{SegmentBytes: 128 << 20, RetentionBytes: 256 << 20})
	defer l.Close()
	s := NewSyncer(nil)
	defer s.Close()
	payload := benchPayload()
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, _, err := l.Append(payload); err != nil {
			b.Fatal(err)
		}
		if err := s.Sync(context.Background(), l); err != nil {
			b.Fatal(err)
		}
		if i%64 == 63 {
			b.StopTimer()
			l.ApplyRetention()
			b.StartTimer()
		}
	}
}

func BenchmarkRead(b *testing.B) {
	l := openT(b, vfs.OS(), b.TempDir(), Options{SegmentBytes: 32 << 20})
	defer l.Close()
	payload := benchPayload()
	for range 64 {
		if _, _, err := l.Append(payload); err != nil {
			b.Fatal(err)
		}
	}
	end := l.EndOffset()
	var n int64
	for b.Loop() {
		data, err := l.Read(rand.Int64N(end), 1<<20, end)
		if err != nil {
			b.Fatal(err)
		}
		n += int64(len(data))
	}
	b.SetBytes(n / int64(max(b.N, 1)))
}

func BenchmarkRecover(b *testing.B) {
	dir := b.TempDir()
	opts := Options{SegmentBytes: 1 << 30}
	l := openT(b, vfs.OS(), dir, opts)
	payload := benchPayload()
	for l.Size() < 256<<20 {
		if _, _, err := l.Append(payload); err != nil {
			b.Fatal(err)
		}
	}
	size := l.Size()
	if err := l.Close(); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		os.Remove(filepath.Join(dir, cleanMarker)) // an unclean stop
		b.StartTimer()
		l, err := Open(vfs.OS(), dir, opts)
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if l.Size() != size {
			b.Fatalf("recovered %d of %d bytes", l.Size(), size)
		}
		l.Close()
		b.StartTimer()
	}
}
