package commitlog

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/samsa-broker/samsa/broker/record"
	"github.com/samsa-broker/samsa/broker/vfs"
)

// Errors returned by Log methods.
var (
	// ErrOffsetOutOfRange reports an offset below the log start offset or
	// above the log end offset.
	ErrOffsetOutOfRange = errors.New("commitlog: offset out of range")
	// ErrLogFailed reports a log that can no longer append or sync because
	// an fsync (or a write it cannot undo) failed. After a failed fsync the
	// state of the page cache is unknown, so only reopening the log, which
	// recovers from what is on disk, clears it.
	ErrLogFailed = errors.New("commitlog: log failed, reopen required")
	// ErrClosed reports use of a closed log.
	ErrClosed = errors.New("commitlog: log closed")
	// ErrNoDeletableSegment reports that only the active segment is left.
	ErrNoDeletableSegment = errors.New("commitlog: no segment other than the active one")
)

const (
	cleanMarker    = ".clean-shutdown"
	checkpointName = "log-start-offset.checkpoint"
	tmpSuffix      = ".tmp"
	recoverWindow  = 1 << 20
	readWindow     = 8 << 10
)

// Options configure a Log.
type Options struct {
	// SegmentBytes rolls the active segment when the next append would make
	// it larger than this (default 1 GiB). A segment also rolls before it
	// would pass 4 GiB, the reach of the index's 32-bit file positions.
	SegmentBytes int64
	// SegmentAge rolls the active segment when its first batch was appended
	// longer ago than this (0 = never).
	SegmentAge time.Duration
	// IndexIntervalBytes is the number of bytes of log between sparse index
	// entries (default 4096).
	IndexIntervalBytes int
	// RetentionAge deletes segments whose largest timestamp is older than
	// this; <= 0 keeps them forever.
	RetentionAge time.Duration
	// RetentionBytes deletes the oldest segments while the log would still
	// hold at least this many bytes without them; <= 0 is unlimited.
	RetentionBytes int64
	// Now is the clock (nil: time.Now).
	Now func() time.Time
	// Logger receives recovery and maintenance messages (nil: discard).
	Logger *slog.Logger
}

func (o Options) withDefaults() Options {
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 1 << 30
	}
	if o.IndexIntervalBytes <= 0 {
		o.IndexIntervalBytes = 4096
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o
}

// Log is the segmented commit log of one partition. Appends are serialized;
// reads run concurrently with appends and with each other.
type Log struct {
	fs     vfs.FS
	dir    string
	logger *slog.Logger

	appendMu sync.Mutex // serializes Append, roll, retention, SetOptions, Close; guards opts and hdrs
	syncMu   sync.Mutex // serializes Sync
	opts     Options
	hdrs     []BatchHeader

	mu           sync.RWMutex // guards what follows and segment fields
	segs         []*segment
	start        int64
	end          int64
	synced       int64
	size         int64
	dirGen       uint64 // bumped when directory entries change
	syncedDirGen uint64
	failed       error
	closed       bool
}

// Open opens the log in dir, creating dir if it does not exist (and syncing
// its parent so that it survives a power loss). Without the clean-shutdown
// marker that Close writes, Open recovers: it validates every batch of the
// last segment (and of any segment whose index files are missing or
// invalid), truncates at the first torn or invalid batch and rebuilds the
// indexes.
func Open(fsys vfs.FS, dir string, opts Options) (*Log, error) {
	opts = opts.withDefaults()
	l := &Log{fs: fsys, dir: dir, opts: opts, logger: opts.Logger.With("dir", dir)}
	if err := l.ensureDir(); err != nil {
		return nil, fmt.Errorf("commitlog: open %s: %w", dir, err)
	}
	if err := l.load(); err != nil {
		for _, s := range l.segs {
			s.f.Close()
		}
		return nil, fmt.Errorf("commitlog: open %s: %w", dir, err)
	}
	return l, nil
}

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

// ensureDir creates l.dir and any missing parents, syncing the parent of
// each directory it creates.
func (l *Log) ensureDir() error {
	fi, err := l.fs.Stat(l.dir)
	if err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", l.dir)
		}
		return nil
	}
	if !isNotExist(err) {
		return err
	}
	var missing []string
	for d := filepath.Clean(l.dir); ; {
		if _, err := l.fs.Stat(d); err == nil {
			break
		} else if !isNotExist(err) {
			return err
		}
		missing = append(missing, d)
		p := filepath.Dir(d)
		if p == d {
			break
		}
		d = p
	}
	if err := l.fs.MkdirAll(l.dir, 0o755); err != nil {
		return err
	}
	for _, d := range missing {
		if err := syncDir(l.fs, filepath.Dir(d)); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(fsys vfs.FS, dir string) error {
	d, err := fsys.OpenDir(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}

func (l *Log) remove(name string) {
	if err := l.fs.Remove(name); err != nil && !isNotExist(err) {
		l.logger.Warn("commitlog: remove failed", "file", name, "err", err)
	}
}

func (l *Log) removeSegmentFiles(base int64) {
	l.remove(l.segPath(base, logSuffix))
	l.remove(l.segPath(base, indexSuffix))
	l.remove(l.segPath(base, timeIndexSuffix))
}

func (l *Log) load() error {
	names, err := l.fs.List(l.dir)
	if err != nil {
		return err
	}
	clean := false
	var bases []int64
	logs := map[int64]bool{}
	for _, n := range names {
		if b, ok := parseSegmentName(n, logSuffix); ok {
			bases = append(bases, b)
			logs[b] = true
		}
	}
	for _, n := range names {
		switch {
		case n == cleanMarker:
			clean = true
		case strings.HasSuffix(n, tmpSuffix):
			l.remove(filepath.Join(l.dir, n))
		default:
			for _, suf := range []string{indexSuffix, timeIndexSuffix} {
				if b, ok := parseSegmentName(n, suf); ok && !logs[b] {
					l.remove(filepath.Join(l.dir, n))
				}
			}
		}
	}
	sort.Slice(bases, func(i, j int) bool { return bases[i] < bases[j] })
	ckpt, hasCkpt := l.readCheckpoint()
	if !clean && len(bases) > 0 {
		l.logger.Info("commitlog: no clean shutdown marker, recovering", "segments", len(bases))
	}
	for i, base := range bases {
		last := i == len(bases)-1
		limit := int64(math.MaxInt64)
		if !last {
			limit = bases[i+1]
		}
		s, truncated, err := l.loadSegment(base, last, clean, limit)
		if err != nil {
			return err
		}
		l.segs = append(l.segs, s)
		if truncated && !last {
			l.logger.Warn("commitlog: sealed segment truncated, removing the segments after it", "segment", segmentName(base), "removed", len(bases)-i-1)
			for _, b := range bases[i+1:] {
				l.removeSegmentFiles(b)
			}
			break
		}
	}
	start := int64(0)
	if hasCkpt {
		start = ckpt
	}
	if len(l.segs) == 0 {
		if err := l.newSegment(start); err != nil {
			return err
		}
	}
	start = max(start, l.segs[0].base)
	end := l.segs[len(l.segs)-1].next
	if start > end {
		l.logger.Warn("commitlog: log start offset beyond the recovered end, starting empty at it", "start", start, "end", end)
		for _, s := range l.segs {
			s.f.Close()
			l.removeSegmentFiles(s.base)
		}
		l.segs = nil
		if err := l.newSegment(start); err != nil {
			return err
		}
		end = start
	}
	for len(l.segs) > 1 && l.segs[0].next <= start {
		s := l.segs[0]
		l.segs = l.segs[1:]
		s.f.Close()
		l.removeSegmentFiles(s.base)
	}
	l.start, l.end, l.synced = start, end, end
	for _, s := range l.segs {
		l.size += s.size
	}
	if clean {
		if err := l.fs.Remove(filepath.Join(l.dir, cleanMarker)); err != nil && !isNotExist(err) {
			return err
		}
	}
	// Makes the marker's removal, new segments and removals durable.
	return syncDir(l.fs, l.dir)
}

// newSegment creates an empty segment at base and makes it active. The
// caller holds appendMu (or is Open) and bumps dirGen as needed.
func (l *Log) newSegment(base int64) error {
	l.remove(l.segPath(base, indexSuffix))
	l.remove(l.segPath(base, timeIndexSuffix))
	f, err := l.fs.Create(l.segPath(base, logSuffix))
	if err != nil {
		return err
	}
	s := &segment{base: base, f: f, next: base, maxTS: -1}
	l.mu.Lock()
	l.segs = append(l.segs, s)
	l.dirGen++
	l.mu.Unlock()
	return nil
}

func (l *Log) loadIndexes(base, size int64) ([]indexEntry, []timeEntry, error) {
	b, err := readWhole(l.fs, l.segPath(base, indexSuffix))
	if err != nil {
		return nil, nil, err
	}
	idx, err := decodeIndex(b, size)
	if err != nil {
		return nil, nil, fmt.Errorf("offset index: %w", err)
	}
	b, err = readWhole(l.fs, l.segPath(base, timeIndexSuffix))
	if err != nil {
		return nil, nil, err
	}
	t, err := decodeTimeIndex(b)
	if err != nil {
		return nil, nil, fmt.Errorf("time index: %w", err)
	}
	return idx, t, nil
}

// loadSegment opens the segment at base. limit is the base offset of the
// next segment. It reports whether it truncated the segment.
func (l *Log) loadSegment(base int64, last, clean bool, limit int64) (*segment, bool, error) {
	name := l.segPath(base, logSuffix)
	f, err := l.fs.OpenReadWrite(name)
	if err != nil {
		return nil, false, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, false, err
	}
	size := fi.Size()
	interval := l.opts.IndexIntervalBytes
	s := &segment{base: base, f: f}
	reset := func() {
		s.index, s.tindex, s.bytesSinceIndex = nil, nil, 0
		s.size, s.next, s.maxTS, s.maxTSOffset = 0, base, -1, 0
	}
	reset()
	full := last && !clean
	if !full {
		idx, tidx, err := l.loadIndexes(base, size)
		if err == nil {
			s.index, s.tindex = idx, tidx
			pos, expected := int64(0), base
			if n := len(idx); n > 0 {
				pos, expected = int64(idx[n-1].pos), base+int64(idx[n-1].rel)
			}
			if n := len(tidx); n > 0 {
				s.maxTS, s.maxTSOffset = tidx[n-1].ts, base+int64(tidx[n-1].rel)
			}
			s.size, s.next = pos, expected
			err = s.walk(newReader(f, size, recoverWindow), pos, expected, limit, !clean, interval).err
		}
		if err != nil {
			if !isNotExist(err) || clean {
				l.logger.Info("commitlog: rebuilding segment index", "segment", segmentName(base), "reason", err)
			}
			full = true
			reset()
		}
	}
	truncated := false
	if full {
		t0 := time.Now()
		res := s.walk(newReader(f, size, recoverWindow), 0, base, limit, true, interval)
		if res.validEnd < size {
			msg, level := "commitlog: truncating torn or invalid tail", slog.LevelWarn
			if zeroHeader(f, res.validEnd, size) {
				// Most likely the space preallocated past the last write.
				msg, level = "commitlog: truncating preallocated or zeroed tail", slog.LevelInfo
			}
			l.logger.Log(context.Background(), level, msg,
				"segment", segmentName(base), "valid_bytes", res.validEnd,
				"truncated_bytes", size-res.validEnd, "next_offset", s.next, "reason", res.err)
			if err := f.Truncate(res.validEnd); err != nil {
				f.Close()
				return nil, false, err
			}
			truncated = true
		}
		if !clean || truncated {
			if err := f.Sync(); err != nil {
				f.Close()
				return nil, false, err
			}
		}
		if !last {
			if err := l.writeIndexFiles(s); err != nil {
				l.logger.Warn("commitlog: writing index files", "segment", segmentName(base), "err", err)
			}
		}
		l.logger.Info("commitlog: recovered segment", "segment", segmentName(base),
			"bytes", s.size, "next_offset", s.next, "took", time.Since(t0))
	}
	if last && s.size > 0 {
		now := l.opts.Now()
		s.rollTime = now
		if b, err := newReader(f, s.size, record.HeaderSize).at(0, record.HeaderSize); err == nil {
			if h, _ := ParseHeader(b); h.MaxTimestamp >= 0 && time.UnixMilli(h.MaxTimestamp).Before(now) {
				s.rollTime = time.UnixMilli(h.MaxTimestamp)
			}
		}
	}
	return s, truncated, nil
}

// zeroHeader reports whether the bytes at pos (up to a batch header's worth)
// are all zeros.
func zeroHeader(f vfs.File, pos, size int64) bool {
	b := make([]byte, min(int64(record.HeaderSize), size-pos))
	if _, err := f.ReadAt(b, pos); err != nil {
		return false
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// writeIndexFiles writes and fsyncs the index files of s.
func (l *Log) writeIndexFiles(s *segment) error {
	err := writeFileSync(l.fs, l.segPath(s.base, indexSuffix), encodeIndex(s.index))
	if err == nil {
		err = writeFileSync(l.fs, l.segPath(s.base, timeIndexSuffix), encodeTimeIndex(s.finalTimeIndex()))
	}
	if err != nil {
		l.remove(l.segPath(s.base, indexSuffix))
		l.remove(l.segPath(s.base, timeIndexSuffix))
	}
	return err
}

func (l *Log) readCheckpoint() (int64, bool) {
	b, err := readWhole(l.fs, filepath.Join(l.dir, checkpointName))
	if err != nil {
		if !isNotExist(err) {
			l.logger.Warn("commitlog: reading log start offset checkpoint", "err", err)
		}
		return 0, false
	}
	if len(b) != 12 || crc32.Checksum(b[:8], castagnoli) != binary.BigEndian.Uint32(b[8:]) {
		l.logger.Warn("commitlog: ignoring corrupt log start offset checkpoint", "bytes", len(b))
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(b)), true
}

// writeCheckpoint durably records the log start offset.
func (l *Log) writeCheckpoint(off int64) error {
	b := make([]byte, 12)
	binary.BigEndian.PutUint64(b, uint64(off))
	binary.BigEndian.PutUint32(b[8:], crc32.Checksum(b[:8], castagnoli))
	name := filepath.Join(l.dir, checkpointName)
	if err := writeFileSync(l.fs, name+tmpSuffix, b); err != nil {
		return err
	}
	if err := l.fs.Rename(name+tmpSuffix, name); err != nil {
		return err
	}
	return syncDir(l.fs, l.dir)
}

// fail puts the log in the failed state and returns the error to report.
func (l *Log) fail(cause error) error {
	l.mu.Lock()
	if l.failed == nil {
		l.failed = cause
		l.logger.Error("commitlog: log failed, reopen required", "err", cause)
	}
	err := l.failed
	l.mu.Unlock()
	return fmt.Errorf("%w: %w", ErrLogFailed, err)
}

// usableLocked reports why the log cannot append or sync. Callers hold mu.
func (l *Log) usableLocked() error {
	if l.closed {
		return ErrClosed
	}
	if l.failed != nil {
		return fmt.Errorf("%w: %w", ErrLogFailed, l.failed)
	}
	return nil
}

// Append appends batches, one or more whole RecordBatch v2 batches already
// checked by ValidateBatches. It rewrites each batch's base offset in place
// (outside the CRC), assigning offsets from the log end offset, writes all
// of them at the end of the active segment in one write (rolling first if
// needed), and returns the base offset of the first batch and the new log
// end offset. After a failed write the segment is truncated back, so the log
// stays consistent and later appends can succeed.
func (l *Log) Append(batches []byte) (base, next int64, err error) {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.mu.RLock()
	err = l.usableLocked()
	base = l.end
	l.mu.RUnlock()
	if err != nil {
		return 0, 0, err
	}
	hs := l.hdrs[:0]
	var count int64
	for pos := 0; pos < len(batches); {
		h, err := ParseHeader(batches[pos:])
		if err == nil && (h.Length < record.HeaderSize || int64(h.Length) > int64(len(batches)-pos) || h.LastOffsetDelta < 0) {
			err = fmt.Errorf("%w: bad length %d or last offset delta %d", ErrCorruptBatch, h.Length, h.LastOffsetDelta)
		}
		if err != nil {
			return 0, 0, fmt.Errorf("commitlog: append: batch %d at byte %d: %w", len(hs), pos, err)
		}
		hs = append(hs, h)
		count += int64(h.LastOffsetDelta) + 1
		pos += int(h.Length)
	}
	l.hdrs = hs
	if len(hs) == 0 {
		return 0, 0, fmt.Errorf("commitlog: append: %w: no batches", ErrCorruptBatch)
	}
	if int64(len(batches)) > math.MaxUint32 || count-1 > math.MaxUint32 {
		return 0, 0, fmt.Errorf("commitlog: append: %w: %d bytes, %d offsets", ErrBatchTooLarge, len(batches), count)
	}
	now := l.opts.Now()
	s := l.segs[len(l.segs)-1]
	if s.size > 0 {
		n := int64(len(batches))
		if s.size+n > l.opts.SegmentBytes || s.size+n > math.MaxUint32 ||
			(l.opts.SegmentAge > 0 && now.Sub(s.rollTime) >= l.opts.SegmentAge) ||
			base+count-1-s.base > math.MaxUint32 {
			if err := l.roll(); err != nil {
				return 0, 0, err
			}
			s = l.segs[len(l.segs)-1]
		}
	}
	off := base
	for i, pos := 0, 0; i < len(hs); i++ {
		binary.BigEndian.PutUint64(batches[pos:], uint64(off))
		hs[i].BaseOffset = off
		off = hs[i].NextOffset()
		pos += int(hs[i].Length)
	}
	pos0 := s.size
	l.preallocate(s, pos0+int64(len(batches)))
	if n, err := s.f.WriteAt(batches, pos0); err != nil {
		if n > 0 || s.alloc > pos0 {
			s.alloc = 0
			if terr := s.f.Truncate(pos0); terr != nil {
				// Appends overwrite from pos0 and recovery truncates
				// whatever is left, so the log stays consistent.
				l.logger.Warn("commitlog: truncating after a failed write", "err", terr)
			}
		}
		return 0, 0, fmt.Errorf("commitlog: append to %s at byte %d: wrote %d of %d bytes: %w",
			segmentName(s.base), pos0, n, len(batches), err)
	}
	interval := l.opts.IndexIntervalBytes
	l.mu.Lock()
	pos := pos0
	for _, h := range hs {
		s.observe(h, pos, interval)
		pos += int64(h.Length)
	}
	if s.rollTime.IsZero() {
		s.rollTime = now
	}
	l.end = off
	l.size += int64(len(batches))
	l.mu.Unlock()
	return base, off, nil
}

// preallocChunk is how far ahead of the writes a segment's space is reserved.
const preallocChunk = 16 << 20

// preallocate reserves space in the active segment up to at least end, a
// chunk at a time, so that appends land in allocated space and an fdatasync
// has no file size to flush (on ext4 it is then several times faster).
// Without support, or on error, appends simply extend the file.
func (l *Log) preallocate(s *segment, end int64) {
	if end <= s.alloc {
		return
	}
	want := end + preallocChunk
	if lim := l.opts.SegmentBytes; want > lim {
		want = max(lim, end)
	}
	if err := vfs.Preallocate(s.f, want); err != nil {
		if !errors.Is(err, vfs.ErrPreallocateUnsupported) {
			l.logger.Debug("commitlog: preallocation failed; appending without it", "err", err)
		}
		return
	}
	s.alloc = want
}

// trimPreallocated cuts a segment file back to its records, dropping the
// preallocated zeros past them.
func trimPreallocated(s *segment) error {
	if s.alloc <= s.size {
		return nil
	}
	if err := s.f.Truncate(s.size); err != nil {
		return err
	}
	s.alloc = 0
	return nil
}

// roll seals the active segment (fsyncing it and writing its index files)
// and starts a new one at the log end offset. The caller holds appendMu.
func (l *Log) roll() error {
	old := l.segs[len(l.segs)-1]
	if err := trimPreallocated(old); err != nil {
		return l.fail(fmt.Errorf("trim sealed segment %s: %w", segmentName(old.base), err))
	}
	if err := old.f.Sync(); err != nil {
		return l.fail(fmt.Errorf("fsync of sealed segment %s: %w", segmentName(old.base), err))
	}
	if err := l.writeIndexFiles(old); err != nil {
		l.logger.Warn("commitlog: writing index files", "segment", segmentName(old.base), "err", err)
	}
	if err := l.newSegment(l.end); err != nil {
		return fmt.Errorf("commitlog: roll: %w", err)
	}
	l.logger.Debug("commitlog: rolled segment", "sealed", segmentName(old.base), "bytes", old.size, "new", segmentName(l.end))
	return nil
}

// Sync makes everything appended so far durable: it fsyncs the active
// segment (sealed segments are fsynced when they roll) and the directory if
// its entries changed. It returns the end offset that is now durable.
// Appends may run during a Sync. If an fsync fails the log enters the failed
// state and every later Append and Sync returns ErrLogFailed.
func (l *Log) Sync() (synced int64, err error) {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	return l.syncLocked()
}

func (l *Log) syncLocked() (int64, error) {
	l.mu.RLock()
	if err := l.usableLocked(); err != nil {
		l.mu.RUnlock()
		return 0, err
	}
	end, synced, gen := l.end, l.synced, l.dirGen
	needDir := gen != l.syncedDirGen
	s := l.segs[len(l.segs)-1]
	s.acquire()
	l.mu.RUnlock()
	var err error
	if end > synced {
		if err = s.f.Sync(); err != nil {
			err = fmt.Errorf("fsync of %s: %w", segmentName(s.base), err)
		}
	}
	s.release()
	if err == nil && needDir {
		if err = syncDir(l.fs, l.dir); err != nil {
			err = fmt.Errorf("fsync of directory: %w", err)
		}
	}
	if err != nil {
		return 0, l.fail(err)
	}
	l.mu.Lock()
	l.synced = max(l.synced, end)
	l.syncedDirGen = max(l.syncedDirGen, gen)
	l.mu.Unlock()
	return end, nil
}

// SyncedOffset returns the end offset known to be durable.
func (l *Log) SyncedOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.synced
}

// EndOffset returns the log end offset, the offset the next record gets.
func (l *Log) EndOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.end
}

// StartOffset returns the log start offset.
func (l *Log) StartOffset() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.start
}

// Size returns the bytes of all segments.
func (l *Log) Size() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.size
}

// Dir returns the log's directory.
func (l *Log) Dir() string { return l.dir }

// view is a snapshot of a segment taken under mu, holding a reference.
type view struct {
	s      *segment
	size   int64
	next   int64
	maxTS  int64
	index  []indexEntry
	tindex []timeEntry
}

// views snapshots the segments from the one holding offset from, taking a
// reference on each. Callers release them.
func (l *Log) viewsLocked(from int64) []view {
	i := sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > from }) - 1
	i = max(i, 0)
	vs := make([]view, 0, len(l.segs)-i)
	for _, s := range l.segs[i:] {
		s.acquire()
		vs = append(vs, view{s: s, size: s.size, next: s.next, maxTS: s.maxTS, index: s.index, tindex: s.tindex})
	}
	return vs
}

func releaseViews(vs []view) {
	for _, v := range vs {
		v.s.release()
	}
}

func (l *Log) outOfRange(offset, start, end int64) error {
	return fmt.Errorf("%w: offset %d, log holds [%d, %d)", ErrOffsetOutOfRange, offset, start, end)
}

// Read returns whole batches starting with the batch that contains offset,
// never including a batch whose base offset is >= limit (the exclusive
// visible end, e.g. the high watermark), adding batches while the total
// stays within maxBytes but always returning at least one whole batch if
// one is visible. It returns (nil, nil) when offset is at limit or at the
// end, and ErrOffsetOutOfRange when offset is below the start offset or
// above the end offset. A read never crosses a segment boundary.
func (l *Log) Read(offset int64, maxBytes int, limit int64) ([]byte, error) {
	b, err := l.ReadAppend(nil, offset, maxBytes, limit)
	if len(b) == 0 {
		b = nil
	}
	return b, err
}

// ReadAppend is Read that appends the batches to dst (reusing its spare
// capacity) and returns the extended slice, so that callers can recycle
// read buffers.
func (l *Log) ReadAppend(dst []byte, offset int64, maxBytes int, limit int64) ([]byte, error) {
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return dst, ErrClosed
	}
	start, end := l.start, l.end
	if offset < start || offset > end {
		l.mu.RUnlock()
		return dst, l.outOfRange(offset, start, end)
	}
	limit = min(limit, end)
	if offset >= limit {
		l.mu.RUnlock()
		return dst, nil
	}
	var v view
	found := false
	i := max(sort.Search(len(l.segs), func(i int) bool { return l.segs[i].base > offset })-1, 0)
	for ; i < len(l.segs); i++ {
		if s := l.segs[i]; s.next > offset {
			s.acquire()
			v = view{s: s, size: s.size, next: s.next, index: s.index}
			found = true
			break
		}
	}
	l.mu.RUnlock()
	if !found {
		return dst, nil
	}
	defer v.s.release()
	pos := v.s.lookup(v.index, offset)
	r := newReader(v.s.f, v.size, readWindow)
	var h BatchHeader
	for {
		if pos >= v.size {
			return dst, nil
		}
		var err error
		if h, err = r.header(pos); err != nil {
			return dst, fmt.Errorf("commitlog: read offset %d in %s at byte %d: %w", offset, segmentName(v.s.base), pos, err)
		}
		if h.LastOffset() >= offset {
			break
		}
		pos += int64(h.Length)
	}
	if h.BaseOffset >= limit {
		return dst, nil
	}
	want := min(max(int64(maxBytes), int64(h.Length)), v.size-pos)
	at := len(dst)
	dst = slices.Grow(dst, int(want))[:at+int(want)]
	buf := dst[at:]
	if n, err := v.s.f.ReadAt(buf, pos); n < len(buf) {
		dst = dst[:at]
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return dst, fmt.Errorf("commitlog: read %s at byte %d: %w", segmentName(v.s.base), pos, err)
	}
	n := 0
	for n+record.LengthFieldEnd <= len(buf) {
		bl := int(int32(binary.BigEndian.Uint32(buf[n+record.OffBatchLength:]))) + record.LengthFieldEnd
		if bl < record.HeaderSize || n+bl > len(buf) || int64(binary.BigEndian.Uint64(buf[n:])) >= limit ||
			(n > 0 && n+bl > maxBytes) {
			break
		}
		n += bl
	}
	return dst[:at+n], nil
}

// OffsetForTime returns the first batch whose MaxTimestamp is >= ts among
// the batches in the log (ending below EndOffset and not entirely below
// StartOffset), using the time index. found is false if there is none. The
// batch may start below StartOffset; callers clamp.
func (l *Log) OffsetForTime(ts int64) (batch []byte, found bool, err error) {
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return nil, false, ErrClosed
	}
	start := l.start
	vs := l.viewsLocked(start)
	l.mu.RUnlock()
	defer releaseViews(vs)
	for _, v := range vs {
		if v.size == 0 || v.maxTS < ts {
			continue
		}
		from := v.s.base
		if j := sort.Search(len(v.tindex), func(j int) bool { return v.tindex[j].ts >= ts }) - 1; j >= 0 {
			from += int64(v.tindex[j].rel)
		}
		r := newReader(v.s.f, v.size, readWindow)
		for pos := v.s.lookup(v.index, from); pos < v.size; {
			h, err := r.header(pos)
			if err != nil {
				return nil, false, fmt.Errorf("commitlog: scan %s at byte %d: %w", segmentName(v.s.base), pos, err)
			}
			if h.LastOffset() >= start && h.MaxTimestamp >= ts {
				b := make([]byte, h.Length)
				if _, err := v.s.f.ReadAt(b, pos); err != nil && !(err == io.EOF && pos+int64(h.Length) == v.size) {
					return nil, false, err
				}
				return b, true, nil
			}
			pos += int64(h.Length)
		}
	}
	return nil, false, nil
}

// MaxTimestamp returns the largest batch MaxTimestamp of the log (of what
// is appended, synced or not), or -1 when the log holds no batch.
func (l *Log) MaxTimestamp() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	m := int64(-1)
	for _, s := range l.segs {
		if s.size > 0 {
			m = max(m, s.maxTS)
		}
	}
	return m
}

// Scan calls fn with the header of every batch from the one containing from
// to the end of the log as of the call, in order. It stops at the first
// error fn returns and returns it. from below the start offset scans from
// the start.
func (l *Log) Scan(from int64, fn func(h BatchHeader) error) error {
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ErrClosed
	}
	from = max(from, l.start)
	if from > l.end {
		err := l.outOfRange(from, l.start, l.end)
		l.mu.RUnlock()
		return err
	}
	vs := l.viewsLocked(from)
	l.mu.RUnlock()
	defer releaseViews(vs)
	for i, v := range vs {
		pos := int64(0)
		if i == 0 {
			pos = v.s.lookup(v.index, from)
		}
		r := newReader(v.s.f, v.size, recoverWindow)
		for pos < v.size {
			h, err := r.header(pos)
			if err != nil {
				return fmt.Errorf("commitlog: scan %s at byte %d: %w", segmentName(v.s.base), pos, err)
			}
			if h.LastOffset() >= from {
				if err := fn(h); err != nil {
					return err
				}
			}
			pos += int64(h.Length)
		}
	}
	return nil
}

// SetOptions changes the log's options at runtime (retention, segment
// sizes, index interval for new entries, clock, logger).
func (l *Log) SetOptions(opts Options) {
	opts = opts.withDefaults()
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.opts = opts
	l.logger = opts.Logger.With("dir", l.dir)
}

// Close syncs the log, writes the active segment's index files, writes the
// clean-shutdown marker durably and closes the files. A failed log is
// closed without the marker so that the next Open recovers.
func (l *Log) Close() error {
	return l.close(true)
}

func (l *Log) close(clean bool) error {
	l.appendMu.Lock()
	defer l.appendMu.Unlock()
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	l.mu.RLock()
	closed, failed := l.closed, l.failed
	l.mu.RUnlock()
	if closed {
		return nil
	}
	var err error
	if clean && failed == nil {
		active := l.segs[len(l.segs)-1]
		trimmed := active.alloc > active.size
		err = trimPreallocated(active)
		if err == nil && trimmed {
			// The trim changed the file size: make it durable too.
			err = active.f.Sync()
		}
		if err == nil {
			_, err = l.syncLocked()
		}
		if err == nil {
			err = l.writeIndexFiles(l.segs[len(l.segs)-1])
		}
		if err == nil {
			err = writeFileSync(l.fs, filepath.Join(l.dir, cleanMarker), nil)
		}
		if err == nil {
			err = syncDir(l.fs, l.dir)
		}
	}
	l.mu.Lock()
	l.closed = true
	segs := l.segs
	l.mu.Unlock()
	for _, s := range segs {
		s.retire()
	}
	if err != nil {
		return fmt.Errorf("commitlog: close %s: %w", l.dir, err)
	}
	return nil
}

// Delete closes the log and removes its directory durably.
func (l *Log) Delete() error {
	l.close(false)
	if err := l.fs.RemoveAll(l.dir); err != nil {
		return fmt.Errorf("commitlog: delete %s: %w", l.dir, err)
	}
	if err := syncDir(l.fs, filepath.Dir(filepath.Clean(l.dir))); err != nil {
		return fmt.Errorf("commitlog: delete %s: %w", l.dir, err)
	}
	return nil
}
