package commitlog

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/samsa-broker/samsa/broker/record"
	"github.com/samsa-broker/samsa/broker/vfs"
)

func openT(t testing.TB, fsys vfs.FS, dir string, opts Options) *Log {
	t.Helper()
	l, err := Open(fsys, dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

func appendT(t testing.TB, l *Log, b []byte) (int64, int64) {
	t.Helper()
	base, next, err := l.Append(b)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return base, next
}

// stored is a batch the test appended, as written.
type stored struct {
	base, next int64
	data       []byte
}

// readAll reads every batch of the log from its start offset.
func readAll(t testing.TB, l *Log) [][]byte {
	t.Helper()
	var out [][]byte
	for off := l.StartOffset(); off < l.EndOffset(); {
		b, err := l.Read(off, 1<<20, l.EndOffset())
		if err != nil {
			t.Fatalf("Read(%d): %v", off, err)
		}
		if len(b) == 0 {
			t.Fatalf("Read(%d) returned nothing before end %d", off, l.EndOffset())
		}
		if _, err := ValidateBatches(b, 0); err != nil {
			t.Fatalf("Read(%d) returned invalid batches: %v", off, err)
		}
		for _, bb := range splitBatches(b) {
			h, _ := ParseHeader(bb)
			out = append(out, bb)
			off = h.NextOffset()
		}
	}
	return out
}

func checkContents(t testing.TB, l *Log, want []stored) {
	t.Helper()
	got := readAll(t, l)
	if len(got) != len(want) {
		t.Fatalf("log has %d batches, want %d", len(got), len(want))
	}
	for i := range want {
		if !bytes.Equal(got[i], want[i].data) {
			t.Fatalf("batch %d (offset %d) differs", i, want[i].base)
		}
	}
}

func TestValidateBatches(t *testing.T) {
	good := makeSimpleBatch(3, 10, 1000, 'a')
	two := append(append([]byte{}, good...), makeSimpleBatch(1, 5, 1000, 'b')...)
	mut := func(f func(b []byte) []byte) []byte { return f(append([]byte{}, good...)) }
	tests := []struct {
		name    string
		b       []byte
		max     int
		want    int
		wantErr error
	}{
		{"one batch", good, 0, 1, nil},
		{"two batches", two, 0, 2, nil},
		{"empty", nil, 0, 0, ErrCorruptBatch},
		{"trailing garbage", append(append([]byte{}, good...), 1, 2, 3), 0, 0, ErrCorruptBatch},
		{"truncated", good[:len(good)-1], 0, 0, ErrCorruptBatch},
		{"bad magic", mut(func(b []byte) []byte { b[record.OffMagic] = 1; return b }), 0, 0, ErrUnsupportedMagic},
		{"crc flip", mut(func(b []byte) []byte { b[len(b)-3] ^= 0xff; return b }), 0, 0, ErrCorruptBatch},
		{"too large", good, len(good) - 1, 0, ErrBatchTooLarge},
		{"exactly max", good, len(good), 1, nil},
		{"short length", mut(func(b []byte) []byte { b[record.OffBatchLength+3] = 10; b[record.OffBatchLength+2] = 0; return b }), 0, 0, ErrCorruptBatch},
		{"count mismatch", makeBatchRaw(good, func(b []byte) { b[record.OffRecordCount+3] = 7 }), 0, 0, ErrCorruptBatch},
		{"negative count", makeBatchRaw(good, func(b []byte) { copy(b[record.OffRecordCount:], []byte{0xff, 0xff, 0xff, 0xff}) }), 0, 0, ErrCorruptBatch},
		{"empty batch", makeBatch(5, nil), 0, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hs, err := ValidateBatches(tt.b, tt.max)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if len(hs) != tt.want {
				t.Fatalf("%d headers, want %d", len(hs), tt.want)
			}
		})
	}
	h, err := ParseHeader(good)
	if err != nil || h.RecordCount != 3 || h.LastOffsetDelta != 2 || h.Magic != 2 || int(h.Length) != len(good) || h.MaxTimestamp != 1000 {
		t.Fatalf("ParseHeader = %+v, %v", h, err)
	}
	if _, err := ParseHeader(good[:60]); !errors.Is(err, ErrCorruptBatch) {
		t.Fatalf("short ParseHeader: %v", err)
	}
}

// makeBatchRaw copies b, applies f and recomputes the CRC.
func makeBatchRaw(b []byte, f func([]byte)) []byte {
	c := append([]byte{}, b...)
	f(c)
	binaryPutCRC(c)
	return c
}

func TestAppendRead(t *testing.T) {
	l := openT(t, vfs.OS(), t.TempDir(), Options{IndexIntervalBytes: 256})
	defer l.Close()
	var want []stored
	for i := range 50 {
		b := makeSimpleBatch(1+i%5, 20+i, int64(1000+i), byte(i))
		base, next := appendT(t, l, b)
		if i == 0 && base != 0 {
			t.Fatalf("first base %d", base)
		}
		if len(want) > 0 && base != want[len(want)-1].next {
			t.Fatalf("base %d, want %d", base, want[len(want)-1].next)
		}
		want = append(want, stored{base, next, b})
		if got := baseOffsetOf(b); got != base {
			t.Fatalf("batch base offset rewritten to %d, want %d", got, base)
		}
	}
	checkContents(t, l, want)
	end := l.EndOffset()
	// Every offset, including those inside a batch, returns the containing batch first.
	for _, w := range want {
		for off := w.base; off < w.next; off++ {
			b, err := l.Read(off, 1, end)
			if err != nil || !bytes.Equal(b, w.data) {
				t.Fatalf("Read(%d, 1) = %d bytes, %v; want batch at %d", off, len(b), err, w.base)
			}
		}
	}
	w0, w1, w2 := want[10], want[11], want[12]
	tests := []struct {
		name     string
		off      int64
		maxBytes int
		limit    int64
		want     []byte
		wantErr  error
	}{
		{"max fits two", w0.base, len(w0.data) + len(w1.data), end, concat(w0.data, w1.data), nil},
		{"max one short of two", w0.base, len(w0.data) + len(w1.data) - 1, end, w0.data, nil},
		{"max zero still one", w2.base + 1, 0, end, w2.data, nil},
		{"limit cuts", w0.base, 1 << 20, w2.base, concat(w0.data, w1.data), nil},
		{"limit inside batch keeps it", w0.base, 1 << 20, w1.base + 1, concat(w0.data, w1.data), nil},
		{"offset at limit", w1.base, 1 << 20, w1.base, nil, nil},
		{"offset above limit", w2.base, 1 << 20, w1.base, nil, nil},
		{"offset at end", end, 1 << 20, end, nil, nil},
		{"above end", end + 1, 1 << 20, end + 5, nil, ErrOffsetOutOfRange},
		{"negative", -1, 1 << 20, end, nil, ErrOffsetOutOfRange},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := l.Read(tt.off, tt.maxBytes, tt.limit)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if !bytes.Equal(got, tt.want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
	var n int
	if err := l.Scan(want[6].base+1, func(h BatchHeader) error {
		if h.BaseOffset != want[6+n].base {
			return fmt.Errorf("scan %d: base %d want %d", n, h.BaseOffset, want[6+n].base)
		}
		n++
		return nil
	}); err != nil || n != len(want)-6 {
		t.Fatalf("Scan: %v, %d headers", err, n)
	}
}

func concat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

func TestRollAndReopen(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	clock := func() time.Time { return now }
	tests := []struct {
		name  string
		opts  Options
		step  func()
		batch func(i int) []byte
		segs  int
	}{
		{
			name:  "by size",
			opts:  Options{SegmentBytes: 4096, IndexIntervalBytes: 300, Now: clock},
			batch: func(i int) []byte { return makeSimpleBatch(3, 50, now.UnixMilli(), byte(i)) },
			segs:  -1, // computed below
		},
		{
			name:  "by age",
			opts:  Options{SegmentAge: time.Minute, IndexIntervalBytes: 300, Now: clock},
			step:  func() { now = now.Add(7 * time.Second) },
			batch: func(i int) []byte { return makeSimpleBatch(2, 30, now.UnixMilli(), byte(i)) },
			segs:  -2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "topic-0")
			l := openT(t, vfs.OS(), dir, tt.opts)
			var want []stored
			for i := range 100 {
				if tt.step != nil {
					tt.step()
				}
				b := tt.batch(i)
				base, next := appendT(t, l, b)
				want = append(want, stored{base, next, b})
			}
			nsegs := len(l.segs)
			switch tt.segs {
			case -1:
				for _, s := range l.segs {
					if s.size > 4096 {
						t.Errorf("segment %d has %d bytes", s.base, s.size)
					}
				}
				if nsegs < 5 {
					t.Errorf("only %d segments", nsegs)
				}
			case -2:
				// 7s per batch, 60s per segment: 9 batches each.
				if nsegs != 12 {
					t.Errorf("%d segments, want 12", nsegs)
				}
			}
			checkContents(t, l, want)
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = openT(t, vfs.OS(), dir, tt.opts)
			defer l.Close()
			if len(l.segs) != nsegs || l.EndOffset() != want[len(want)-1].next || l.SyncedOffset() != l.EndOffset() {
				t.Fatalf("after reopen: %d segments, end %d", len(l.segs), l.EndOffset())
			}
			checkContents(t, l, want)
			for _, w := range want {
				b, err := l.Read(w.next-1, 0, l.EndOffset())
				if err != nil || !bytes.Equal(b, w.data) {
					t.Fatalf("Read(%d) after reopen: %v", w.next-1, err)
				}
			}
			base, _ := appendT(t, l, tt.batch(1000))
			if base != want[len(want)-1].next {
				t.Fatalf("append after reopen at %d", base)
			}
		})
	}
}

func fileSize(t *testing.T, name string) int64 {
	t.Helper()
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func TestRecoveryOS(t *testing.T) {
	type corruption struct {
		name string
		// corrupt damages the active segment file; it returns the number of
		// intact batches expected to survive out of total.
		corrupt func(t *testing.T, path string, batches []stored, goodSize int64) int
	}
	tests := []corruption{
		{"garbage appended", func(t *testing.T, path string, bs []stored, good int64) int {
			appendFile(t, path, []byte("this is not a record batch, just garbage bytes........................."))
			return len(bs)
		}},
		{"torn last batch", func(t *testing.T, path string, bs []stored, good int64) int {
			if err := os.Truncate(path, good-int64(len(bs[len(bs)-1].data))/2); err != nil {
				t.Fatal(err)
			}
			return len(bs) - 1
		}},
		{"torn header", func(t *testing.T, path string, bs []stored, good int64) int {
			if err := os.Truncate(path, good-int64(len(bs[len(bs)-1].data))+20); err != nil {
				t.Fatal(err)
			}
			return len(bs) - 1
		}},
		{"crc flipped in the middle of the tail", func(t *testing.T, path string, bs []stored, good int64) int {
			// Damage batch len-5: it and everything after it go.
			pos := good
			for _, b := range bs[len(bs)-5:] {
				pos -= int64(len(b.data))
			}
			flipByte(t, path, pos+int64(len(bs[len(bs)-5].data))/2+30)
			return len(bs) - 5
		}},
		{"zeroed tail", func(t *testing.T, path string, bs []stored, good int64) int {
			appendFile(t, path, make([]byte, 4096))
			return len(bs)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			opts := Options{SegmentBytes: 64 << 10, IndexIntervalBytes: 512}
			l := openT(t, vfs.OS(), dir, opts)
			var want []stored
			for i := range 120 {
				b := makeSimpleBatch(1+i%4, 100, int64(i), byte(i))
				base, next := appendT(t, l, b)
				want = append(want, stored{base, next, b})
			}
			if _, err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			act := l.segs[len(l.segs)-1]
			path := l.segPath(act.base, logSuffix)
			// Abandon the log without Close (no clean marker).
			var inActive []stored
			for _, w := range want {
				if w.base >= act.base {
					inActive = append(inActive, w)
				}
			}
			if len(inActive) < 6 {
				t.Fatalf("only %d batches in the active segment", len(inActive))
			}
			// The file may run past the records into preallocated zeros;
			// cut it to the records so each case damages what it says.
			good := act.size
			if err := os.Truncate(path, good); err != nil {
				t.Fatal(err)
			}
			keep := tt.corrupt(t, path, inActive, good)
			kept := want[:len(want)-len(inActive)+keep]
			var wantSize int64
			for _, w := range inActive[:keep] {
				wantSize += int64(len(w.data))
			}
			l2 := openT(t, vfs.OS(), dir, opts)
			defer l2.Close()
			if got := fileSize(t, path); got != wantSize {
				t.Fatalf("segment truncated to %d bytes, want %d", got, wantSize)
			}
			if l2.EndOffset() != kept[len(kept)-1].next {
				t.Fatalf("end offset %d, want %d", l2.EndOffset(), kept[len(kept)-1].next)
			}
			checkContents(t, l2, kept)
			b := makeSimpleBatch(2, 10, 5, 'z')
			base, _ := appendT(t, l2, b)
			if base != kept[len(kept)-1].next {
				t.Fatalf("append after recovery at %d, want %d", base, kept[len(kept)-1].next)
			}
			checkContents(t, l2, append(kept, stored{data: b}))
		})
	}
}

func appendFile(t *testing.T, path string, b []byte) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(b); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func flipByte(t *testing.T, path string, pos int64) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, pos); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, pos); err != nil {
		t.Fatal(err)
	}
}

// TestIndexFilesRebuilt removes and damages index files of a cleanly closed
// log and checks it still opens and reads correctly.
func TestIndexFilesRebuilt(t *testing.T) {
	dir := t.TempDir()
	opts := Options{SegmentBytes: 8 << 10, IndexIntervalBytes: 256}
	l := openT(t, vfs.OS(), dir, opts)
	var want []stored
	for i := range 100 {
		b := makeSimpleBatch(2, 60, int64(i), byte(i))
		base, next := appendT(t, l, b)
		want = append(want, stored{base, next, b})
	}
	segs := len(l.segs)
	bases := []int64{l.segs[0].base, l.segs[1].base, l.segs[segs-1].base}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, segmentName(bases[0])+indexSuffix))
	os.WriteFile(filepath.Join(dir, segmentName(bases[1])+indexSuffix), []byte{1, 2, 3}, 0o644)
	os.WriteFile(filepath.Join(dir, segmentName(bases[2])+timeIndexSuffix), []byte{1, 2, 3, 4, 5}, 0o644)
	os.WriteFile(filepath.Join(dir, segmentName(999999)+indexSuffix), []byte{1}, 0o644) // orphan
	l = openT(t, vfs.OS(), dir, opts)
	defer l.Close()
	if len(l.segs) != segs {
		t.Fatalf("%d segments, want %d", len(l.segs), segs)
	}
	checkContents(t, l, want)
	for _, w := range want {
		if b, err := l.Read(w.base+1, 0, l.EndOffset()); err != nil || !bytes.Equal(b, w.data) {
			t.Fatalf("Read(%d): %v", w.base+1, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, segmentName(999999)+indexSuffix)); err == nil {
		t.Error("orphan index not removed")
	}
}

// powerLossRun appends to a log on the strict MemFS, syncing at random
// points, crashes, reopens and checks that every synced batch is intact.
func powerLossRun(t *testing.T, seed uint64, dir string, opts Options, preSyncDirs bool) {
	rng := rand.New(rand.NewPCG(seed, 1))
	m := vfs.NewStrictMem()
	if preSyncDirs {
		if err := m.MkdirAll("data", 0o755); err != nil {
			t.Fatal(err)
		}
		d, _ := m.OpenDir("/")
		d.Sync()
		d.Close()
	}
	l := openT(t, m, dir, opts)
	var all []stored
	synced := 0 // number of batches known durable
	for i := range 200 {
		var b []byte
		if rng.IntN(8) == 0 {
			b = concat(makeSimpleBatch(1+rng.IntN(5), rng.IntN(300), int64(i), byte(i)), makeSimpleBatch(1, 10, int64(i), 1))
		} else {
			b = makeSimpleBatch(1+rng.IntN(5), rng.IntN(300), int64(i), byte(i))
		}
		base, _, err := l.Append(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, bb := range splitBatches(b) {
			h, _ := ParseHeader(bb)
			all = append(all, stored{h.BaseOffset, h.NextOffset(), bb})
		}
		_ = base
		if rng.IntN(4) == 0 {
			end, err := l.Sync()
			if err != nil {
				t.Fatal(err)
			}
			for synced < len(all) && all[synced].next <= end {
				synced++
			}
		}
	}
	m.Crash()
	l2 := openT(t, m, dir, opts)
	defer l2.Close()
	got := readAll(t, l2)
	if len(got) < synced {
		t.Fatalf("seed %d: %d batches after crash, %d were synced", seed, len(got), synced)
	}
	for i, g := range got {
		if !bytes.Equal(g, all[i].data) {
			t.Fatalf("seed %d: batch %d differs after crash", seed, i)
		}
	}
	if l2.EndOffset() != all[len(got)-1].next {
		t.Fatalf("end %d", l2.EndOffset())
	}
	// The log keeps working.
	b := makeSimpleBatch(1, 5, 0, 0)
	if base, _, err := l2.Append(b); err != nil || base != l2.EndOffset()-1 {
		t.Fatalf("append after crash: %d %v", base, err)
	}
}

func TestPowerLoss(t *testing.T) {
	tests := []struct {
		name     string
		dir      string
		opts     Options
		preSync  bool
		attempts int
	}{
		{"single segment", "data/t-0", Options{IndexIntervalBytes: 512}, true, 20},
		{"across rolls", "data/t-0", Options{SegmentBytes: 4 << 10, IndexIntervalBytes: 256}, true, 20},
		{"fresh partition dir in fresh parent", "fresh/deeper/t-0", Options{SegmentBytes: 8 << 10}, false, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for seed := range uint64(tt.attempts) {
				powerLossRun(t, seed, tt.dir, tt.opts, tt.preSync)
			}
		})
	}
}

// TestPowerLossWithoutSyncLosesData shows that the MemFS really forgets:
// without Sync nothing survives a crash.
func TestPowerLossWithoutSyncLosesData(t *testing.T) {
	m := vfs.NewStrictMem()
	l := openT(t, m, "t-0", Options{})
	for i := range 50 {
		appendT(t, l, makeSimpleBatch(2, 50, int64(i), byte(i)))
	}
	if l.EndOffset() != 100 {
		t.Fatal(l.EndOffset())
	}
	m.Crash()
	l2 := openT(t, m, "t-0", Options{})
	defer l2.Close()
	if l2.EndOffset() != 0 {
		t.Fatalf("end offset %d after crash without sync; the MemFS kept unsynced data", l2.EndOffset())
	}
}

func TestPowerLossAfterCloseKeepsEverything(t *testing.T) {
	m := vfs.NewStrictMem()
	l := openT(t, m, "t-0", Options{SegmentBytes: 2048})
	var want []stored
	for i := range 50 {
		b := makeSimpleBatch(2, 50, int64(i), byte(i))
		base, next := appendT(t, l, b)
		want = append(want, stored{base, next, b})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	m.Crash()
	l = openT(t, m, "t-0", Options{})
	defer l.Close()
	checkContents(t, l, want)
}

func TestErrorFS(t *testing.T) {
	t.Run("ENOSPC with partial write", func(t *testing.T) {
		var full atomic.Bool
		fsys := vfs.NewErrorFS(vfs.NewStrictMem(), func(op vfs.Op, path string) error {
			if op == vfs.OpWrite && full.Load() && filepath.Ext(path) == logSuffix {
				return &vfs.PartialWriteError{N: 100, Err: syscall.ENOSPC}
			}
			return nil
		})
		l := openT(t, fsys, "p", Options{})
		defer l.Close()
		var want []stored
		add := func() {
			b := makeSimpleBatch(3, 80, 1, 'x')
			base, next := appendT(t, l, b)
			want = append(want, stored{base, next, b})
		}
		add()
		add()
		size := l.Size()
		full.Store(true)
		_, _, err := l.Append(makeSimpleBatch(3, 80, 1, 'y'))
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("err = %v, want ENOSPC", err)
		}
		if l.Size() != size || l.EndOffset() != want[1].next {
			t.Fatalf("size %d end %d after failed append", l.Size(), l.EndOffset())
		}
		if fi, _ := l.segs[0].f.Stat(); fi.Size() != size {
			t.Fatalf("file not truncated back: %d bytes, want %d", fi.Size(), size)
		}
		checkContents(t, l, want)
		full.Store(false)
		add()
		if _, err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		checkContents(t, l, want)
	})
	t.Run("fsync EIO fails the log", func(t *testing.T) {
		var bad atomic.Bool
		inner := vfs.NewStrictMem()
		fsys := vfs.NewErrorFS(inner, func(op vfs.Op, path string) error {
			if op == vfs.OpSync && bad.Load() {
				return syscall.EIO
			}
			return nil
		})
		l := openT(t, fsys, "p", Options{})
		appendT(t, l, makeSimpleBatch(1, 10, 1, 'a'))
		if _, err := l.Sync(); err != nil {
			t.Fatal(err)
		}
		appendT(t, l, makeSimpleBatch(1, 10, 1, 'b'))
		bad.Store(true)
		if _, err := l.Sync(); !errors.Is(err, ErrLogFailed) || !errors.Is(err, syscall.EIO) {
			t.Fatalf("Sync err = %v", err)
		}
		bad.Store(false)
		if _, err := l.Sync(); !errors.Is(err, ErrLogFailed) {
			t.Fatalf("Sync after failure: %v", err)
		}
		if _, _, err := l.Append(makeSimpleBatch(1, 10, 1, 'c')); !errors.Is(err, ErrLogFailed) {
			t.Fatalf("Append after failure: %v", err)
		}
		if l.SyncedOffset() != 1 {
			t.Fatalf("synced offset %d", l.SyncedOffset())
		}
		// Reads still work; Close skips the clean marker; reopen recovers.
		if b, err := l.Read(1, 100, 2); err != nil || len(b) == 0 {
			t.Fatalf("read on failed log: %v", err)
		}
		l.Close()
		l = openT(t, fsys, "p", Options{})
		defer l.Close()
		if _, _, err := l.Append(makeSimpleBatch(1, 10, 1, 'c')); err != nil {
			t.Fatal(err)
		}
		if _, err := l.Sync(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("fsync EIO at roll fails the log", func(t *testing.T) {
		var bad atomic.Bool
		fsys := vfs.NewErrorFS(vfs.NewStrictMem(), func(op vfs.Op, path string) error {
			if op == vfs.OpSync && bad.Load() {
				return syscall.EIO
			}
			return nil
		})
		l := openT(t, fsys, "p", Options{SegmentBytes: 200})
		defer l.Close()
		appendT(t, l, makeSimpleBatch(1, 100, 1, 'a'))
		bad.Store(true)
		if _, _, err := l.Append(makeSimpleBatch(1, 100, 1, 'b')); !errors.Is(err, ErrLogFailed) {
			t.Fatalf("Append: %v", err)
		}
	})
}

func TestRetention(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	clock := func() time.Time { return now }
	t.Run("age", func(t *testing.T) {
		l := openT(t, vfs.NewStrictMem(), "p", Options{SegmentBytes: 1000, RetentionAge: time.Hour, Now: clock})
		defer l.Close()
		// 11 segments of 3 batches, timestamps an hour apart per segment,
		// the last (active) one at now.
		for seg := range 11 {
			ts := now.Add(time.Duration(seg-10) * time.Hour).UnixMilli()
			for range 3 {
				appendT(t, l, makeSimpleBatch(2, 120, ts, 'a'))
			}
		}
		nsegs := len(l.segs)
		n, err := l.ApplyRetention()
		if err != nil {
			t.Fatal(err)
		}
		// Segments with max ts older than now-1h are deleted.
		if n != 9 || len(l.segs) != nsegs-n {
			t.Fatalf("deleted %d of %d", n, nsegs)
		}
		if _, maxTS, _, ok := l.OldestSegment(); !ok || maxTS < now.Add(-time.Hour).UnixMilli() {
			t.Fatalf("oldest segment maxTS %d", maxTS)
		}
		if l.StartOffset() != l.segs[0].base {
			t.Fatalf("start %d, first segment %d", l.StartOffset(), l.segs[0].base)
		}
		if _, err := l.Read(l.StartOffset()-1, 100, l.EndOffset()); !errors.Is(err, ErrOffsetOutOfRange) {
			t.Fatalf("read below start: %v", err)
		}
		// Everything expires, including the active segment.
		end := l.EndOffset()
		now = now.Add(48 * time.Hour)
		if _, err := l.ApplyRetention(); err != nil {
			t.Fatal(err)
		}
		if len(l.segs) != 1 || l.Size() != 0 || l.StartOffset() != end || l.EndOffset() != end {
			t.Fatalf("after full expiry: %d segs, size %d, start %d end %d", len(l.segs), l.Size(), l.StartOffset(), l.EndOffset())
		}
		if base, _ := appendT(t, l, makeSimpleBatch(1, 1, now.UnixMilli(), 'b')); base != end {
			t.Fatalf("append at %d", base)
		}
	})
	t.Run("size", func(t *testing.T) {
		l := openT(t, vfs.NewStrictMem(), "p", Options{SegmentBytes: 1000, RetentionBytes: 3000})
		defer l.Close()
		for i := range 40 {
			appendT(t, l, makeSimpleBatch(2, 120, int64(i), 'a'))
		}
		if _, err := l.ApplyRetention(); err != nil {
			t.Fatal(err)
		}
		if l.Size() < 3000 || l.Size()-l.segs[0].size >= 3000 {
			t.Fatalf("size %d, oldest %d", l.Size(), l.segs[0].size)
		}
		var sum int64
		for _, s := range l.segs {
			sum += s.size
		}
		if sum != l.Size() {
			t.Fatalf("Size %d, segments sum %d", l.Size(), sum)
		}
	})
	t.Run("disk guard", func(t *testing.T) {
		l := openT(t, vfs.NewStrictMem(), "p", Options{SegmentBytes: 500})
		defer l.Close()
		if _, _, _, ok := l.OldestSegment(); ok {
			t.Fatal("oldest segment with only the active one")
		}
		for i := range 10 {
			appendT(t, l, makeSimpleBatch(2, 120, int64(i), 'a'))
		}
		for {
			base, _, size, ok := l.OldestSegment()
			if !ok {
				break
			}
			before := l.Size()
			if err := l.DeleteOldestSegment(); err != nil {
				t.Fatal(err)
			}
			if l.Size() != before-size || l.StartOffset() <= base {
				t.Fatal("size or start offset not updated")
			}
		}
		if err := l.DeleteOldestSegment(); !errors.Is(err, ErrNoDeletableSegment) {
			t.Fatalf("err %v", err)
		}
	})
}

func TestDeleteBefore(t *testing.T) {
	m := vfs.NewStrictMem()
	opts := Options{SegmentBytes: 1000}
	l := openT(t, m, "p", opts)
	var want []stored
	for i := range 30 {
		b := makeSimpleBatch(3, 100, int64(i), 'a')
		base, next := appendT(t, l, b)
		want = append(want, stored{base, next, b})
	}
	if _, err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	nsegs := len(l.segs)
	cut := want[17].base + 1 // inside a batch
	if err := l.DeleteBefore(cut); err != nil {
		t.Fatal(err)
	}
	if l.StartOffset() != cut || len(l.segs) >= nsegs {
		t.Fatalf("start %d, %d segments (was %d)", l.StartOffset(), len(l.segs), nsegs)
	}
	if l.segs[0].base > cut || l.segs[0].next <= cut {
		t.Fatalf("first segment [%d,%d) does not hold %d", l.segs[0].base, l.segs[0].next, cut)
	}
	if b, err := l.Read(cut, 0, l.EndOffset()); err != nil || !bytes.Equal(b, want[17].data) {
		t.Fatalf("read at start: %v", err)
	}
	if err := l.DeleteBefore(l.EndOffset() + 1); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("beyond end: %v", err)
	}
	if err := l.DeleteBefore(3); err != nil || l.StartOffset() != cut {
		t.Fatal("DeleteBefore moved the start backwards")
	}
	// Durable across a power loss, without Close.
	m.Crash()
	l = openT(t, m, "p", opts)
	if l.StartOffset() != cut {
		t.Fatalf("start after crash %d, want %d", l.StartOffset(), cut)
	}
	if _, err := l.Read(cut-1, 0, l.EndOffset()); !errors.Is(err, ErrOffsetOutOfRange) {
		t.Fatalf("read below start after reopen: %v", err)
	}
	// DeleteBefore the end offset leaves an empty log starting there.
	end := l.EndOffset()
	if err := l.DeleteBefore(end); err != nil {
		t.Fatal(err)
	}
	l.Close()
	l = openT(t, m, "p", opts)
	defer l.Close()
	if l.StartOffset() != end || l.EndOffset() != end {
		t.Fatalf("start %d end %d, want %d", l.StartOffset(), l.EndOffset(), end)
	}
}

func TestOffsetForTime(t *testing.T) {
	l := openT(t, vfs.NewStrictMem(), "p", Options{SegmentBytes: 2000, IndexIntervalBytes: 200})
	defer l.Close()
	var want []stored
	ts := func(i int) int64 { return 1000 + int64(i)*10 } // batch i has max ts 1000+10i+5
	for i := range 60 {
		recs := []testRecord{{value: []byte("a"), tsDelta: 0}, {value: []byte("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"), tsDelta: 5}}
		b := makeBatch(ts(i), recs)
		base, next := appendT(t, l, b)
		want = append(want, stored{base, next, b})
	}
	tests := []struct {
		ts    int64
		batch int // -1: not found
	}{
		{0, 0}, {1005, 0}, {1006, 1}, {1015, 1}, {1016, 2}, {1000 + 33*10 + 2, 33}, {ts(59) + 5, 59}, {ts(59) + 6, -1},
	}
	for _, tt := range tests {
		b, found, err := l.OffsetForTime(tt.ts)
		if err != nil {
			t.Fatal(err)
		}
		if tt.batch < 0 {
			if found {
				t.Errorf("ts %d: found batch at %d", tt.ts, baseOffsetOf(b))
			}
			continue
		}
		if !found || !bytes.Equal(b, want[tt.batch].data) {
			t.Errorf("ts %d: found=%v batch %d, want %d", tt.ts, found, baseOffsetOf(b), want[tt.batch].base)
		}
	}
	// Segment-sealed time index files are used after reopen too: covered by
	// the same lookups on a closed-and-reopened log.
}

func TestConcurrentAppendRead(t *testing.T) {
	l := openT(t, vfs.OS(), t.TempDir(), Options{SegmentBytes: 16 << 10, IndexIntervalBytes: 512, RetentionBytes: 64 << 10})
	defer l.Close()
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				start, end := l.StartOffset(), l.EndOffset()
				if end == start {
					continue
				}
				off := start + rand.Int64N(end-start)
				b, err := l.Read(off, 4096, end)
				if errors.Is(err, ErrOffsetOutOfRange) {
					continue // retention moved the start
				}
				if err != nil {
					t.Error(err)
					return
				}
				if _, err := ValidateBatches(b, 0); err != nil {
					t.Error(err)
					return
				}
				if h, _ := ParseHeader(b); h.BaseOffset > off || h.LastOffset() < off {
					t.Errorf("read %d got batch [%d,%d]", off, h.BaseOffset, h.LastOffset())
					return
				}
			}
		}()
	}
	for i := range 2000 {
		appendT(t, l, makeSimpleBatch(1+i%3, 50, int64(i), byte(i)))
		if i%100 == 0 {
			if _, err := l.ApplyRetention(); err != nil {
				t.Fatal(err)
			}
			if _, err := l.Sync(); err != nil {
				t.Fatal(err)
			}
		}
	}
	close(stop)
	wg.Wait()
}

func TestDelete(t *testing.T) {
	m := vfs.NewStrictMem()
	l := openT(t, m, "data/p", Options{})
	appendT(t, l, makeSimpleBatch(1, 1, 1, 1))
	if err := l.Delete(); err != nil {
		t.Fatal(err)
	}
	m.Crash()
	if _, err := m.Stat("data/p"); !os.IsNotExist(err) {
		t.Fatalf("directory survived Delete: %v", err)
	}
	if _, _, err := l.Append(makeSimpleBatch(1, 1, 1, 1)); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after delete: %v", err)
	}
}

// Appends land in preallocated space; a clean close trims the file to its
// records, and an unclean stop leaves zeros that recovery cuts off.
func TestPreallocation(t *testing.T) {
	for _, clean := range []bool{true, false} {
		t.Run(fmt.Sprintf("clean=%v", clean), func(t *testing.T) {
			dir := t.TempDir()
			l := openT(t, vfs.OS(), dir, Options{})
			var want []stored
			var size int64
			for i := range 20 {
				b := makeSimpleBatch(3, 100, int64(i), byte(i))
				base, next := appendT(t, l, b)
				want = append(want, stored{base, next, b})
				size += int64(len(b))
			}
			if _, err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			path := l.segPath(0, logSuffix)
			if got := fileSize(t, path); got <= size {
				t.Fatalf("file is %d bytes for %d bytes of records: nothing was preallocated", got, size)
			}
			if clean {
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				if got := fileSize(t, path); got != size {
					t.Fatalf("after Close the file is %d bytes, want the %d bytes of records", got, size)
				}
			}
			l2 := openT(t, vfs.OS(), dir, Options{})
			defer l2.Close()
			if got := fileSize(t, path); got != size {
				t.Fatalf("after reopen the file is %d bytes, want %d", got, size)
			}
			checkContents(t, l2, want)
			if base, _ := appendT(t, l2, makeSimpleBatch(1, 10, 0, 'x')); base != want[len(want)-1].next {
				t.Fatalf("next append at %d, want %d", base, want[len(want)-1].next)
			}
		})
	}
}
