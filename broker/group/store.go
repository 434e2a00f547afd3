package group

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/samsa-broker/samsa/broker/commitlog"
	"github.com/samsa-broker/samsa/broker/record"
	"github.com/samsa-broker/samsa/broker/vfs"
)

// The offsets log holds one record per committed partition offset, keyed by
// (group, topic, partition): the last record of a key wins and a record with
// a null value (a tombstone) deletes the key. Formats, all big endian:
//
//	offset key:   kindOffset(1) u16 len, group, u16 len, topic, i32 partition
//	offset value: version(0) i64 offset, i32 leader epoch, i64 commit time ms,
//	              u32 len, metadata
//	marker key:   kindMarker(1), then anything; starts a snapshot, ignored
//
// Records of unknown kinds or value versions are skipped with a warning, so
// that a newer broker's log can still be read.
const (
	kindOffset byte = 1
	kindMarker byte = 2

	offsetValueVersion byte = 0

	snapshotBatchRecords = 2048
	loadReadBytes        = 1 << 20
)

// entry is one change to the committed offsets: a commit or, with del, a
// deletion.
type entry struct {
	group string
	tp    TopicPartition
	off   Offset
	at    int64 // commit time, ms since the epoch (0: when written)
	del   bool
}

// committed is a live committed offset and when it was committed (ms
// since the epoch), for offset expiry.
type committed struct {
	Offset
	at int64
}

// pendingWrite is an appended batch not yet known to be durable. Its entries
// become visible once the log's synced offset reaches next.
type pendingWrite struct {
	log     *commitlog.Log
	next    int64
	entries []entry
}

// store keeps the committed offsets in memory and in a commit log. Entries
// become visible (to fetches) only once durable, and always in log order,
// so that the memory state is always the replay of a durable log prefix.
type store struct {
	fs       vfs.FS
	dir      string
	logOpts  commitlog.Options
	logger   *slog.Logger
	syncer   *commitlog.Syncer
	ownSync  bool
	minBytes int64
	ratio    int64
	now      func() time.Time

	mu         sync.Mutex
	log        *commitlog.Log
	offsets    map[string]map[TopicPartition]committed
	live       int64 // keys in offsets
	pending    []pendingWrite
	needReopen bool
	closed     bool

	compactions int // for tests
	kick        chan struct{}
	done        chan struct{}
}

func openStore(o Options) (*store, error) {
	s := &store{
		fs:       o.FS,
		dir:      o.Dir,
		logger:   o.Logger,
		syncer:   o.Syncer,
		minBytes: o.CompactMinBytes,
		ratio:    int64(o.CompactRatio),
		now:      o.Now,
		logOpts: commitlog.Options{
			SegmentBytes: o.SegmentBytes,
			Now:          o.Now,
			Logger:       o.Logger,
		},
		kick: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	if err := s.openLog(); err != nil {
		return nil, err
	}
	if s.syncer == nil {
		s.syncer = commitlog.NewSyncer(o.Logger)
		s.ownSync = true
	}
	go s.compactLoop()
	return s, nil
}

// openLog opens the log and replays it into s.offsets. The caller holds
// s.mu or has s to itself.
func (s *store) openLog() error {
	l, err := commitlog.Open(s.fs, s.dir, s.logOpts)
	if err != nil {
		return fmt.Errorf("group: open offsets log: %w", err)
	}
	offsets := map[string]map[TopicPartition]committed{}
	var live, skipped int64
	apply := func(e entry) { live += applyEntry(offsets, e) }
	start, end := l.StartOffset(), l.EndOffset()
	for off := start; off < end; {
		b, err := l.Read(off, loadReadBytes, end)
		if err == nil && len(b) == 0 {
			err = fmt.Errorf("no batch at offset %d below the end offset %d", off, end)
		}
		if err == nil {
			err = record.DecodeBatches(b, 0, func(batch record.Batch) error {
				for _, r := range batch.Records {
					if r.Offset < start {
						continue
					}
					e, ok, derr := decodeEntry(r.Key, r.Value)
					if derr != nil {
						skipped++
						s.logger.Warn("group: skipping an unreadable offsets record", "offset", r.Offset, "err", derr)
						continue
					}
					if ok {
						apply(e)
					}
				}
				off = batch.LastOffset() + 1
				return nil
			})
		}
		if err != nil {
			l.Close()
			return fmt.Errorf("group: load offsets log %s: %w", s.dir, err)
		}
	}
	s.log, s.offsets, s.live, s.pending, s.needReopen = l, offsets, live, nil, false
	s.logger.Debug("group: loaded committed offsets", "groups", len(offsets), "keys", live,
		"records", end-start, "bytes", l.Size(), "skipped", skipped)
	return nil
}

// reopenLocked replaces a failed log by reopening it, which recovers what
// is on disk, and reloads the offsets from it.
func (s *store) reopenLocked() error {
	if s.log != nil {
		_ = s.log.Close()
		s.log = nil
	}
	if err := s.openLog(); err != nil {
		s.needReopen = true
		return err
	}
	s.logger.Warn("group: reopened the offsets log after a storage failure", "dir", s.dir)
	return nil
}

func storageError(err error) error {
	return fmt.Errorf("%w: offsets log: %v", ErrCoordinatorNotAvailable, err)
}

func isLogFailure(err error) bool {
	return errors.Is(err, commitlog.ErrLogFailed) || errors.Is(err, commitlog.ErrClosed)
}

// write appends entries as one batch, waits until it is durable (sharing
// fsyncs with concurrent writers), and applies it. On success every entry
// is visible to fetches.
func (s *store) write(entries []entry) error {
	if len(entries) == 0 {
		return nil
	}
	now := s.now().UnixMilli()
	for i := range entries {
		if entries[i].at == 0 {
			entries[i].at = now
		}
	}
	buf, err := encodeEntries(nil, entries, now)
	if err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("%w: coordinator closed", ErrCoordinatorNotAvailable)
	}
	if s.needReopen {
		if err := s.reopenLocked(); err != nil {
			s.mu.Unlock()
			return storageError(err)
		}
	}
	l := s.log
	_, next, err := l.Append(buf)
	if err != nil {
		if isLogFailure(err) {
			s.needReopen = true
		}
		s.mu.Unlock()
		return storageError(err)
	}
	s.pending = append(s.pending, pendingWrite{log: l, next: next, entries: entries})
	s.mu.Unlock()

	serr := s.syncer.Sync(context.Background(), l)

	s.mu.Lock()
	if serr != nil {
		if isLogFailure(serr) && s.log == l {
			s.needReopen = true
		}
		s.mu.Unlock()
		return storageError(serr)
	}
	s.applyDurableLocked()
	if s.shouldCompactLocked() {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	s.mu.Unlock()
	return nil
}

// applyDurableLocked applies, in log order, the pending writes that the log
// has made durable.
func (s *store) applyDurableLocked() {
	if len(s.pending) == 0 || s.log == nil {
		return
	}
	synced := s.log.SyncedOffset()
	i := 0
	for ; i < len(s.pending); i++ {
		p := s.pending[i]
		if p.log != s.log || p.next > synced {
			break
		}
		for _, e := range p.entries {
			s.applyLocked(e)
		}
		s.pending[i] = pendingWrite{}
	}
	s.pending = s.pending[i:]
}

func (s *store) applyLocked(e entry) { s.live += applyEntry(s.offsets, e) }

// applyEntry applies e to offsets and returns the change in live keys.
func applyEntry(offsets map[string]map[TopicPartition]committed, e entry) int64 {
	m := offsets[e.group]
	if e.del {
		if _, ok := m[e.tp]; !ok {
			return 0
		}
		delete(m, e.tp)
		if len(m) == 0 {
			delete(offsets, e.group)
		}
		return -1
	}
	if m == nil {
		m = map[TopicPartition]committed{}
		offsets[e.group] = m
	}
	_, had := m[e.tp]
	m[e.tp] = committed{Offset: e.off, at: e.at}
	if had {
		return 0
	}
	return 1
}

func (s *store) shouldCompactLocked() bool {
	if s.log == nil || s.closed {
		return false
	}
	recs := s.log.EndOffset() - s.log.StartOffset()
	return s.log.Size() > s.minBytes && recs > s.ratio*max(s.live, 1)
}

func (s *store) compactLoop() {
	defer close(s.done)
	for range s.kick {
		s.mu.Lock()
		if s.shouldCompactLocked() && !s.needReopen {
			if err := s.compactLocked(); err != nil {
				s.logger.Error("group: compacting the offsets log", "err", err)
			}
		}
		s.mu.Unlock()
	}
}

// compactLocked writes the live offsets as a snapshot in a new segment and
// deletes the segments before it. Replaying the log from any point of the
// way gives the same state: before the new start offset is persisted the
// snapshot only repeats live values, after it the snapshot is the state.
func (s *store) compactLocked() error {
	l := s.log
	if _, err := l.Sync(); err != nil {
		s.needReopen = true
		return err
	}
	s.applyDurableLocked()
	if len(s.pending) != 0 {
		return fmt.Errorf("%d writes still pending after a sync", len(s.pending))
	}
	oldSize, oldRecs := l.Size(), l.EndOffset()-l.StartOffset()
	now := s.now().UnixMilli()
	buf, err := record.AppendBatch(nil, []record.Record{{Timestamp: now, Key: []byte{kindMarker}, Value: nil}}, record.EncodeOptions{})
	if err != nil {
		return err
	}
	groups := make([]string, 0, len(s.offsets))
	for g := range s.offsets {
		groups = append(groups, g)
	}
	slices.Sort(groups)
	chunk := make([]entry, 0, snapshotBatchRecords)
	for _, g := range groups {
		for tp, o := range s.offsets[g] {
			chunk = append(chunk, entry{group: g, tp: tp, off: o.Offset, at: o.at})
			if len(chunk) == snapshotBatchRecords {
				if buf, err = encodeEntries(buf, chunk, now); err != nil {
					return err
				}
				chunk = chunk[:0]
			}
		}
	}
	if buf, err = encodeEntries(buf, chunk, now); err != nil {
		return err
	}
	start := l.EndOffset()
	// Put the snapshot at the start of a new segment, so that the
	// segments before it can all go.
	roll := s.logOpts
	roll.SegmentBytes = 1
	l.SetOptions(roll)
	_, _, err = l.Append(buf)
	l.SetOptions(s.logOpts)
	if err != nil {
		if isLogFailure(err) {
			s.needReopen = true
		}
		return err
	}
	if _, err := l.Sync(); err != nil {
		s.needReopen = true
		return err
	}
	if err := l.DeleteBefore(start); err != nil {
		return err
	}
	if _, err := l.Sync(); err != nil {
		s.needReopen = true
		return err
	}
	s.compactions++
	s.logger.Info("group: compacted the offsets log", "keys", s.live,
		"records_before", oldRecs, "bytes_before", oldSize,
		"records_after", l.EndOffset()-l.StartOffset(), "bytes_after", l.Size())
	return nil
}

func (s *store) close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.kick)
	s.mu.Unlock()
	<-s.done
	if s.ownSync {
		s.syncer.Close()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.log == nil {
		return nil
	}
	err := s.log.Close()
	s.log = nil
	return err
}

// fetch returns the committed offsets of group: of tps, or of every
// committed partition when tps is nil.
func (s *store) fetch(group string, tps []TopicPartition) []FetchedOffset {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.offsets[group]
	if tps == nil {
		out := make([]FetchedOffset, 0, len(m))
		for tp, o := range m {
			out = append(out, FetchedOffset{TopicPartition: tp, Offset: o.Offset})
		}
		slices.SortFunc(out, func(a, b FetchedOffset) int { return compareTP(a.TopicPartition, b.TopicPartition) })
		return out
	}
	out := make([]FetchedOffset, len(tps))
	for i, tp := range tps {
		o, ok := m[tp]
		if !ok {
			o.Offset = Offset{Offset: -1, LeaderEpoch: -1}
		}
		out[i] = FetchedOffset{TopicPartition: tp, Offset: o.Offset}
	}
	return out
}

func (s *store) hasOffsets(group string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.offsets[group]) > 0
}

func (s *store) groups() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.offsets))
	for g := range s.offsets {
		out = append(out, g)
	}
	return out
}

// expiredBefore returns the committed partitions of group committed before
// cutoff (ms since the epoch).
func (s *store) expiredBefore(group string, cutoff int64) []TopicPartition {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []TopicPartition
	for tp, o := range s.offsets[group] {
		if o.at < cutoff {
			out = append(out, tp)
		}
	}
	slices.SortFunc(out, compareTP)
	return out
}

// keys returns the committed partitions of group.
func (s *store) keys(group string) []TopicPartition {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.offsets[group]
	out := make([]TopicPartition, 0, len(m))
	for tp := range m {
		out = append(out, tp)
	}
	slices.SortFunc(out, compareTP)
	return out
}

func compareTP(a, b TopicPartition) int {
	if a.Topic != b.Topic {
		if a.Topic < b.Topic {
			return -1
		}
		return 1
	}
	return int(a.Partition) - int(b.Partition)
}

// encodeEntries appends entries as one record batch to dst.
func encodeEntries(dst []byte, entries []entry, nowMs int64) ([]byte, error) {
	if len(entries) == 0 {
		return dst, nil
	}
	recs := make([]record.Record, len(entries))
	var size int
	for _, e := range entries {
		size += 2*len(e.group) + 2*len(e.tp.Topic) + len(e.off.Metadata) + 48
	}
	mem := make([]byte, 0, size)
	for i, e := range entries {
		if len(e.group) > 0xffff || len(e.tp.Topic) > 0xffff {
			return dst, fmt.Errorf("%w: group or topic name too long", ErrInvalidGroupID)
		}
		k0 := len(mem)
		mem = append(mem, kindOffset)
		mem = binary.BigEndian.AppendUint16(mem, uint16(len(e.group)))
		mem = append(mem, e.group...)
		mem = binary.BigEndian.AppendUint16(mem, uint16(len(e.tp.Topic)))
		mem = append(mem, e.tp.Topic...)
		mem = binary.BigEndian.AppendUint32(mem, uint32(e.tp.Partition))
		recs[i] = record.Record{Timestamp: nowMs, Key: mem[k0:len(mem):len(mem)]}
		if e.del {
			continue
		}
		v0 := len(mem)
		mem = append(mem, offsetValueVersion)
		mem = binary.BigEndian.AppendUint64(mem, uint64(e.off.Offset))
		mem = binary.BigEndian.AppendUint32(mem, uint32(e.off.LeaderEpoch))
		at := e.at
		if at == 0 {
			at = nowMs
		}
		mem = binary.BigEndian.AppendUint64(mem, uint64(at))
		mem = binary.BigEndian.AppendUint32(mem, uint32(len(e.off.Metadata)))
		mem = append(mem, e.off.Metadata...)
		recs[i].Value = mem[v0:len(mem):len(mem)]
	}
	return record.AppendBatch(dst, recs, record.EncodeOptions{})
}

var errBadRecord = errors.New("malformed offsets record")

// decodeEntry decodes one record of the offsets log. ok is false for
// records that carry no offset (snapshot markers, unknown kinds).
func decodeEntry(key, value []byte) (e entry, ok bool, err error) {
	if len(key) == 0 {
		return e, false, errBadRecord
	}
	switch key[0] {
	case kindOffset:
	case kindMarker:
		return e, false, nil
	default:
		return e, false, fmt.Errorf("%w: unknown key kind %d", errBadRecord, key[0])
	}
	k := key[1:]
	str := func() (string, bool) {
		if len(k) < 2 {
			return "", false
		}
		n := int(binary.BigEndian.Uint16(k))
		if len(k) < 2+n {
			return "", false
		}
		v := string(k[2 : 2+n])
		k = k[2+n:]
		return v, true
	}
	var okG, okT bool
	e.group, okG = str()
	e.tp.Topic, okT = str()
	if !okG || !okT || len(k) != 4 {
		return e, false, fmt.Errorf("%w: bad key", errBadRecord)
	}
	e.tp.Partition = int32(binary.BigEndian.Uint32(k))
	if value == nil {
		e.del = true
		return e, true, nil
	}
	if len(value) < 1+8+4+8+4 || value[0] != offsetValueVersion {
		return e, false, fmt.Errorf("%w: bad value (%d bytes)", errBadRecord, len(value))
	}
	v := value[1:]
	e.off.Offset = int64(binary.BigEndian.Uint64(v))
	e.off.LeaderEpoch = int32(binary.BigEndian.Uint32(v[8:]))
	e.at = int64(binary.BigEndian.Uint64(v[12:]))
	n := int(binary.BigEndian.Uint32(v[20:]))
	if len(v) != 24+n {
		return e, false, fmt.Errorf("%w: bad metadata length", errBadRecord)
	}
	e.off.Metadata = string(v[24:])
	return e, true, nil
}
