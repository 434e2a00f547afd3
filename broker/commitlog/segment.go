package commitlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/samsa-broker/samsa/broker/record"
	"github.com/samsa-broker/samsa/broker/vfs"
)

const (
	logSuffix       = ".log"
	indexSuffix     = ".index"
	timeIndexSuffix = ".timeindex"
	indexEntrySize  = 8
	timeEntrySize   = 12
)

type indexEntry struct {
	rel uint32 // offset relative to the segment base
	pos uint32 // file position of the batch with that base offset
}

type timeEntry struct {
	ts  int64
	rel uint32
}

// segment is one .log file with its indexes. Mutable fields are written with
// both Log.appendMu and Log.mu held and read with either.
type segment struct {
	base int64
	f    vfs.File

	size            int64
	next            int64 // offset following the last batch
	maxTS           int64 // largest batch MaxTimestamp, -1 if none
	maxTSOffset     int64
	index           []indexEntry
	tindex          []timeEntry
	bytesSinceIndex int
	rollTime        time.Time // when the first batch was appended (zero if empty)
	// alloc is the file's size when space past size is preallocated (the
	// active segment only); the bytes in [size, alloc) are zeros.
	alloc int64

	refMu   sync.Mutex
	refs    int
	retired bool // removed from the log: close f when refs drops to zero
}

func segmentName(base int64) string { return fmt.Sprintf("%020d", base) }

func parseSegmentName(name, suffix string) (int64, bool) {
	s, ok := strings.CutSuffix(name, suffix)
	if !ok || len(s) != 20 {
		return 0, false
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil && v >= 0
}

func (s *segment) acquire() {
	s.refMu.Lock()
	s.refs++
	s.refMu.Unlock()
}

func (s *segment) release() {
	s.refMu.Lock()
	s.refs--
	closeNow := s.refs == 0 && s.retired
	s.refMu.Unlock()
	if closeNow {
		s.f.Close()
	}
}

// retire closes the segment's file once no reader uses it.
func (s *segment) retire() {
	s.refMu.Lock()
	s.retired = true
	closeNow := s.refs == 0
	s.refMu.Unlock()
	if closeNow {
		s.f.Close()
	}
}

// observe records a batch appended at file position pos in the in-memory
// indexes, as append and recovery both do.
func (s *segment) observe(h BatchHeader, pos int64, interval int) {
	if s.bytesSinceIndex >= interval && pos > 0 {
		rel := uint32(h.BaseOffset - s.base)
		s.index = append(s.index, indexEntry{rel: rel, pos: uint32(pos)})
		s.bytesSinceIndex = 0
		if s.maxTS >= 0 && (len(s.tindex) == 0 || s.maxTS > s.tindex[len(s.tindex)-1].ts) {
			s.tindex = append(s.tindex, timeEntry{ts: s.maxTS, rel: uint32(s.maxTSOffset - s.base)})
		}
	}
	s.bytesSinceIndex += int(h.Length)
	if h.MaxTimestamp > s.maxTS {
		s.maxTS = h.MaxTimestamp
		s.maxTSOffset = h.BaseOffset
	}
	s.size = pos + int64(h.Length)
	s.next = h.NextOffset()
}

// lookup returns the position from which to scan for offset off.
func (s *segment) lookup(index []indexEntry, off int64) int64 {
	rel := off - s.base
	if rel <= 0 {
		return 0
	}
	if rel > math.MaxUint32 {
		rel = math.MaxUint32
	}
	i := sort.Search(len(index), func(i int) bool { return int64(index[i].rel) > rel }) - 1
	if i < 0 {
		return 0
	}
	return int64(index[i].pos)
}

// finalTimeIndex is the time index to write when the segment is sealed or
// closed: the in-memory entries plus the segment's largest timestamp.
func (s *segment) finalTimeIndex() []timeEntry {
	t := s.tindex
	if s.maxTS >= 0 && (len(t) == 0 || s.maxTS > t[len(t)-1].ts) {
		t = append(t[:len(t):len(t)], timeEntry{ts: s.maxTS, rel: uint32(s.maxTSOffset - s.base)})
	}
	return t
}

func encodeIndex(idx []indexEntry) []byte {
	b := make([]byte, len(idx)*indexEntrySize)
	for i, e := range idx {
		binary.BigEndian.PutUint32(b[i*8:], e.rel)
		binary.BigEndian.PutUint32(b[i*8+4:], e.pos)
	}
	return b
}

func encodeTimeIndex(t []timeEntry) []byte {
	b := make([]byte, len(t)*timeEntrySize)
	for i, e := range t {
		binary.BigEndian.PutUint64(b[i*12:], uint64(e.ts))
		binary.BigEndian.PutUint32(b[i*12+8:], e.rel)
	}
	return b
}

func decodeIndex(b []byte, size int64) ([]indexEntry, error) {
	if len(b)%indexEntrySize != 0 {
		return nil, fmt.Errorf("size %d is not a multiple of %d", len(b), indexEntrySize)
	}
	idx := make([]indexEntry, len(b)/indexEntrySize)
	for i := range idx {
		e := indexEntry{rel: binary.BigEndian.Uint32(b[i*8:]), pos: binary.BigEndian.Uint32(b[i*8+4:])}
		if int64(e.pos) >= size {
			return nil, fmt.Errorf("entry %d points at %d, beyond the log's %d bytes", i, e.pos, size)
		}
		if i > 0 && (e.rel <= idx[i-1].rel || e.pos <= idx[i-1].pos) {
			return nil, fmt.Errorf("entry %d is not increasing", i)
		}
		idx[i] = e
	}
	return idx, nil
}

func decodeTimeIndex(b []byte) ([]timeEntry, error) {
	if len(b)%timeEntrySize != 0 {
		return nil, fmt.Errorf("size %d is not a multiple of %d", len(b), timeEntrySize)
	}
	t := make([]timeEntry, len(b)/timeEntrySize)
	for i := range t {
		e := timeEntry{ts: int64(binary.BigEndian.Uint64(b[i*12:])), rel: binary.BigEndian.Uint32(b[i*12+8:])}
		if i > 0 && (e.ts < t[i-1].ts || e.rel < t[i-1].rel) {
			return nil, fmt.Errorf("entry %d is not increasing", i)
		}
		t[i] = e
	}
	return t, nil
}

func readWhole(fsys vfs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(f)
}

// writeFileSync writes data to name and fsyncs it.
func writeFileSync(fsys vfs.FS, name string, data []byte) error {
	f, err := fsys.Create(name)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// reader reads a segment file through a window buffer.
type reader struct {
	f     vfs.File
	size  int64 // readable bytes
	buf   []byte
	start int64 // file position of buf[0]
	n     int   // valid bytes in buf
}

func newReader(f vfs.File, size int64, window int) *reader {
	return &reader{f: f, size: size, buf: make([]byte, 0, window)}
}

// at returns n bytes at pos, valid until the next call. It returns
// io.ErrUnexpectedEOF if fewer than n bytes remain before size.
func (r *reader) at(pos int64, n int) ([]byte, error) {
	if pos < 0 || n < 0 || pos+int64(n) > r.size {
		return nil, io.ErrUnexpectedEOF
	}
	if pos >= r.start && pos+int64(n) <= r.start+int64(r.n) {
		return r.buf[pos-r.start : pos-r.start+int64(n)], nil
	}
	want := max(n, cap(r.buf))
	want = int(min(int64(want), r.size-pos))
	if want > cap(r.buf) {
		r.buf = make([]byte, 0, want)
	}
	b := r.buf[:want]
	m, err := r.f.ReadAt(b, pos)
	if m < n {
		if err == nil || errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		r.n = 0
		return nil, err
	}
	r.start, r.n = pos, m
	return b[:n], nil
}

// header reads and checks the batch header at pos.
func (r *reader) header(pos int64) (BatchHeader, error) {
	b, err := r.at(pos, record.HeaderSize)
	if err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return BatchHeader{}, fmt.Errorf("%w: %d bytes left, less than a batch header", ErrCorruptBatch, r.size-pos)
		}
		return BatchHeader{}, err
	}
	h, _ := ParseHeader(b)
	if err := checkHeader(h); err != nil {
		return h, err
	}
	if pos+int64(h.Length) > r.size {
		return h, fmt.Errorf("%w: batch of %d bytes torn, %d bytes left", ErrCorruptBatch, h.Length, r.size-pos)
	}
	return h, nil
}

// scanResult is what walking a segment found.
type scanResult struct {
	validEnd int64 // position after the last good batch
	err      error // why the walk stopped before the end of the file, if it did
}

// walk validates batches from pos (whose batch must have base offset
// expected) to the end of the file, feeding each good batch to s.observe.
// With crc it also checks each batch's CRC. Offsets must be contiguous and
// stay below limit.
func (s *segment) walk(r *reader, pos, expected, limit int64, crc bool, interval int) scanResult {
	for pos < r.size {
		h, err := r.header(pos)
		if err != nil {
			return scanResult{validEnd: pos, err: err}
		}
		if h.BaseOffset != expected {
			return scanResult{validEnd: pos, err: fmt.Errorf("%w: base offset %d, expected %d", ErrCorruptBatch, h.BaseOffset, expected)}
		}
		if h.LastOffset() >= limit || h.LastOffset()-s.base > math.MaxUint32 {
			return scanResult{validEnd: pos, err: fmt.Errorf("%w: last offset %d beyond the segment's range (next segment at %d)", ErrCorruptBatch, h.LastOffset(), limit)}
		}
		if crc {
			b, err := r.at(pos, int(h.Length))
			if err != nil {
				return scanResult{validEnd: pos, err: err}
			}
			if err := checkCRC(b, h); err != nil {
				return scanResult{validEnd: pos, err: err}
			}
		}
		s.observe(h, pos, interval)
		expected = h.NextOffset()
		pos += int64(h.Length)
	}
	return scanResult{validEnd: pos}
}

func (l *Log) segPath(base int64, suffix string) string {
	return filepath.Join(l.dir, segmentName(base)+suffix)
}
