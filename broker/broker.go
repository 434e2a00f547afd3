// Package broker is the core of samsa: topics, partitions and the Broker API
// that every transport calls. It owns the commit logs (broker/commitlog),
// group commit, long-poll waiters, idempotent producer state and retention.
// Transports never touch files; they call the methods of *Broker.
package broker

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/samsa-broker/samsa/broker/commitlog"
	"github.com/samsa-broker/samsa/broker/group"
	"github.com/samsa-broker/samsa/broker/vfs"
	"github.com/samsa-broker/samsa/wasm"
)

// Options configure a Broker.
type Options struct {
	DataDir string
	// FS is the filesystem the broker stores everything on; nil is the OS.
	FS vfs.FS
	// NodeID is this broker's id in Metadata responses.
	NodeID int32
	// ClusterID is reported to clients; empty generates one at first start
	// and keeps it in the data dir.
	ClusterID string
	// AutoCreateTopics creates unknown topics on Metadata and Produce.
	AutoCreateTopics bool
	// DefaultPartitions is the partition count of auto-created topics and of
	// CreateTopics requests that leave it to the broker.
	DefaultPartitions int32
	// Defaults is the topic config that topic overrides start from.
	Defaults TopicConfig
	// IndexIntervalBytes is the spacing of sparse offset index entries.
	IndexIntervalBytes int
	// MaxDiskBytes bounds the bytes of all partitions together; when it is
	// exceeded the oldest segments of any topic are deleted, and when nothing
	// can be deleted produce fails with ErrDiskFull. 0 is unlimited.
	MaxDiskBytes int64
	// RetentionCheckInterval is how often retention and the disk guard run.
	RetentionCheckInterval time.Duration
	// Groups configures the consumer group coordinator; its FS, Dir,
	// Logger, Syncer and CheckPartition are set by the broker.
	Groups group.Options
	// Filters is the Wasm host that runs filters (the broker does not
	// create or close it); nil turns filters off: the filter methods then
	// return ErrFiltersDisabled.
	Filters *wasm.Host
	// OpenFilters, when Filters is nil, opens the filter host once the
	// data directory is locked, so that a second process given the same
	// directory fails before it touches <data_dir>/filters. A host opened
	// this way belongs to the broker, which closes it last in Close.
	OpenFilters func() (*wasm.Host, error)
	// Now is the clock; nil is time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// TopicInfo describes a topic.
type TopicInfo struct {
	Name       string
	ID         [16]byte
	Partitions int32
	Config     TopicConfig
	// Overrides are the config keys set on this topic.
	Overrides map[string]string
	// Source is set on a filtered view (see Views): the topic it reads.
	Source string
}

// Broker is a running broker: a set of topics on one data dir.
// All methods are safe for concurrent use.
type Broker struct {
	opts   Options
	fs     vfs.FS
	logger *slog.Logger
	syncer *commitlog.Syncer
	meta   *metaStore
	groups *group.Coordinator
	lock   io.Closer // the data dir's lock file, held while open

	ownedHost *wasm.Host // the filter host opened by OpenFilters

	mu     sync.RWMutex
	topics map[string]*topic
	byID   map[[16]byte]*topic

	producers *producerIDs
	diskMu    sync.Mutex
	// bufs recycles fetch read buffers (*[]byte).
	bufs sync.Pool

	// fmu serializes changes to the filter bindings; fset is the current
	// bindings, nil when there are none (see filterSet).
	fmu      sync.Mutex
	fset     atomic.Pointer[filterSet]
	flog     *filterLogger
	retiring sync.WaitGroup
	// subs holds the pools of per-subscription consume filters.
	subs subFilters

	ctx    context.Context
	cancel context.CancelFunc
	bg     sync.WaitGroup
	closed bool
}

type topic struct {
	name       string
	id         [16]byte
	overrides  map[string]string
	cfg        TopicConfig
	partitions []*partition
}

func (t *topic) info() TopicInfo {
	ov := make(map[string]string, len(t.overrides))
	for k, v := range t.overrides {
		ov[k] = v
	}
	return TopicInfo{Name: t.name, ID: t.id, Partitions: int32(len(t.partitions)), Config: t.cfg, Overrides: ov}
}

// Open opens (or creates) the broker's data dir, recovers every partition and
// starts background work (retention, interval flushes). Close stops it.
func Open(opts Options) (*Broker, error) {
	if opts.DataDir == "" {
		return nil, errors.New("broker: DataDir is required")
	}
	if opts.FS == nil {
		opts.FS = vfs.OS()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.DefaultPartitions <= 0 {
		opts.DefaultPartitions = 1
	}
	if opts.Defaults == (TopicConfig{}) {
		opts.Defaults = DefaultTopicConfig()
	}
	if opts.IndexIntervalBytes <= 0 {
		opts.IndexIntervalBytes = 4096
	}
	if opts.RetentionCheckInterval <= 0 {
		opts.RetentionCheckInterval = time.Minute
	}
	b := &Broker{
		opts:   opts,
		fs:     opts.FS,
		logger: opts.Logger,
		topics: make(map[string]*topic),
		byID:   make(map[[16]byte]*topic),
	}
	if err := mkdirDurable(b.fs, opts.DataDir); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	lock, err := vfs.Lock(b.fs, path.Join(opts.DataDir, lockFile))
	if err != nil {
		if errors.Is(err, vfs.ErrLocked) {
			return nil, fmt.Errorf("data dir %s is in use by another samsa process: %w", opts.DataDir, err)
		}
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	b.lock = lock
	opened := false
	defer func() {
		if !opened {
			b.closeOwnedHost()
			lock.Close()
		}
	}()
	if opts.Filters == nil && opts.OpenFilters != nil {
		h, err := opts.OpenFilters()
		if err != nil {
			return nil, fmt.Errorf("filter host: %w", err)
		}
		opts.Filters, b.opts.Filters, b.ownedHost = h, h, h
	}
	meta, state, err := openMeta(b.fs, opts.DataDir)
	if err != nil {
		return nil, err
	}
	b.meta = meta
	if state.ClusterID == "" {
		state.ClusterID = opts.ClusterID
		if state.ClusterID == "" {
			state.ClusterID = newClusterID()
		}
		if err := meta.save(state); err != nil {
			return nil, err
		}
	}
	b.opts.ClusterID = state.ClusterID
	b.producers, err = openProducerIDs(b.fs, opts.DataDir)
	if err != nil {
		return nil, err
	}
	b.syncer = commitlog.NewSyncer(b.logger)
	for _, mt := range state.Topics {
		cfg, err := applyOverrides(opts.Defaults, mt.Overrides)
		if err != nil {
			b.closePartitions()
			return nil, fmt.Errorf("topic %q: %w", mt.Name, err)
		}
		t := &topic{name: mt.Name, id: mt.ID, overrides: mt.Overrides, cfg: cfg}
		for i := int32(0); i < mt.Partitions; i++ {
			p, err := b.openPartition(t, i)
			if err != nil {
				b.closePartitions()
				return nil, err
			}
			t.partitions = append(t.partitions, p)
		}
		b.topics[t.name] = t
		b.byID[t.id] = t
	}
	gopts := opts.Groups
	gopts.FS, gopts.Dir, gopts.Logger, gopts.Syncer = b.fs, path.Join(opts.DataDir, groupsDir), b.logger, b.syncer
	b.restoreBindings(state.Bindings)
	gopts.CheckPartition = func(topic string, partition int32) error {
		// Groups commit offsets on views too: a view's offsets are its
		// source's.
		if _, _, err := b.readPartition(topic, partition); err != nil {
			return fmt.Errorf("%w: %v", group.ErrUnknownTopic, err)
		}
		return nil
	}
	if gopts.Now == nil {
		gopts.Now = opts.Now
	}
	if b.groups, err = group.Open(gopts); err != nil {
		b.closeFilters()
		b.closePartitions()
		b.syncer.Close()
		return nil, fmt.Errorf("open group coordinator: %w", err)
	}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.bg.Add(1)
	go b.background()
	if opts.Filters != nil {
		b.flog = newFilterLogger(b)
		b.bg.Add(1)
		go b.flog.run(b.ctx)
	}
	opened = true
	return b, nil
}

// lockFile is locked while a broker has the data dir open.
const lockFile = ".lock"

// groupsDir is the directory, under the data dir, of the committed offsets
// log. It has no "-N" suffix, so no topic partition can collide with it.
const groupsDir = "__consumer_offsets"

// Groups is the consumer group coordinator.
func (b *Broker) Groups() *group.Coordinator { return b.groups }

func newClusterID() string {
	var id [16]byte
	_, _ = rand.Read(id[:])
	return base64.RawURLEncoding.EncodeToString(id[:])
}

func partitionDir(dataDir, topic string, partition int32) string {
	return path.Join(dataDir, fmt.Sprintf("%s-%d", topic, partition))
}

func (b *Broker) logOptions(cfg TopicConfig) commitlog.Options {
	o := commitlog.Options{
		SegmentBytes:       cfg.SegmentBytes,
		SegmentAge:         time.Duration(cfg.SegmentMs) * time.Millisecond,
		IndexIntervalBytes: b.opts.IndexIntervalBytes,
		RetentionBytes:     cfg.RetentionBytes,
		Now:                b.opts.Now,
		Logger:             b.logger,
	}
	if cfg.RetentionMs > 0 {
		o.RetentionAge = time.Duration(cfg.RetentionMs) * time.Millisecond
	}
	return o
}

func (b *Broker) openPartition(t *topic, idx int32) (*partition, error) {
	dir := partitionDir(b.opts.DataDir, t.name, idx)
	l, err := commitlog.Open(b.fs, dir, b.logOptions(t.cfg))
	if err != nil {
		return nil, fmt.Errorf("open partition %s-%d: %w", t.name, idx, err)
	}
	p := newPartition(t.name, idx, l, t.cfg.Flush)
	if err := p.loadProducerState(); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("partition %s-%d: rebuild producer state: %w", t.name, idx, err)
	}
	return p, nil
}

// Close stops background work, fsyncs and closes every partition cleanly so
// that the next start skips recovery.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	b.closeFilters()
	b.bg.Wait()
	gerr := b.groups.Close()
	b.syncer.Close()
	perr := b.closePartitions()
	b.closeOwnedHost()
	return errors.Join(gerr, perr, b.lock.Close())
}

// closeOwnedHost closes the filter host the broker opened (OpenFilters).
func (b *Broker) closeOwnedHost() {
	if b.ownedHost == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.ownedHost.Close(ctx); err != nil {
		b.logger.Warn("close filter host", "err", err)
	}
	b.ownedHost = nil
}

func (b *Broker) closePartitions() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var errs []error
	for _, t := range b.topics {
		for _, p := range t.partitions {
			if err := p.close(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// NodeID is this broker's node id.
func (b *Broker) NodeID() int32 { return b.opts.NodeID }

// ClusterID is the cluster id kept in the data dir.
func (b *Broker) ClusterID() string { return b.opts.ClusterID }

// DefaultPartitions is the partition count used when a request leaves it to
// the broker.
func (b *Broker) DefaultPartitions() int32 { return b.opts.DefaultPartitions }

// Topics lists every topic, sorted by name.
func (b *Broker) Topics() []TopicInfo {
	b.mu.RLock()
	defer b.mu.RUnlock()
	out := make([]TopicInfo, 0, len(b.topics))
	for _, t := range b.topics {
		out = append(out, t.info())
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Topic describes one topic, or returns ErrUnknownTopic.
func (b *Broker) Topic(name string) (TopicInfo, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t, ok := b.topics[name]
	if !ok {
		return TopicInfo{}, fmt.Errorf("topic %q: %w", name, ErrUnknownTopic)
	}
	return t.info(), nil
}

// TopicByID describes the topic with the given id, or returns ErrUnknownTopic.
func (b *Broker) TopicByID(id [16]byte) (TopicInfo, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t, ok := b.byID[id]
	if !ok {
		return TopicInfo{}, fmt.Errorf("topic id %x: %w", id, ErrUnknownTopic)
	}
	return t.info(), nil
}

// AutoCreate returns the topic, creating it with the default partition count
// when it does not exist and auto-creation is on. With auto-creation off it
// returns ErrUnknownTopic. The topic is ready when AutoCreate returns.
func (b *Broker) AutoCreate(name string) (TopicInfo, error) {
	if info, err := b.Topic(name); err == nil {
		return info, nil
	}
	if err := b.viewError(name); err != nil {
		return TopicInfo{}, err
	}
	if !b.opts.AutoCreateTopics {
		return TopicInfo{}, fmt.Errorf("topic %q: %w", name, ErrUnknownTopic)
	}
	info, err := b.CreateTopic(name, -1, nil, false)
	if errors.Is(err, ErrTopicExists) {
		return b.Topic(name)
	}
	return info, err
}

// AutoCreateEnabled reports whether unknown topics are created on use.
func (b *Broker) AutoCreateEnabled() bool { return b.opts.AutoCreateTopics }

// ValidTopicName reports why name cannot be a topic name, or nil.
func ValidTopicName(name string) error {
	if name == "" || name == "." || name == ".." {
		return fmt.Errorf("%w: %q", ErrInvalidTopic, name)
	}
	if len(name) > 249 {
		return fmt.Errorf("%w: %q is longer than 249 characters", ErrInvalidTopic, name)
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Errorf("%w: %q: only ASCII letters, digits, '.', '_' and '-' are allowed", ErrInvalidTopic, name)
		}
	}
	return nil
}

// CreateTopic creates a topic with the given partition count (-1 or 0: the
// default) and config overrides. With validateOnly it only checks.
func (b *Broker) CreateTopic(name string, partitions int32, overrides map[string]string, validateOnly bool) (TopicInfo, error) {
	if err := ValidTopicName(name); err != nil {
		return TopicInfo{}, err
	}
	if partitions <= 0 {
		if partitions < -1 || partitions == 0 {
			return TopicInfo{}, fmt.Errorf("%w: %d", ErrInvalidPartitions, partitions)
		}
		partitions = b.opts.DefaultPartitions
	}
	if partitions > 100000 {
		return TopicInfo{}, fmt.Errorf("%w: %d is more than 100000", ErrInvalidPartitions, partitions)
	}
	cfg, err := applyOverrides(b.opts.Defaults, overrides)
	if err != nil {
		return TopicInfo{}, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return TopicInfo{}, ErrClosed
	}
	if _, ok := b.topics[name]; ok {
		return TopicInfo{}, fmt.Errorf("topic %q: %w", name, ErrTopicExists)
	}
	if b.viewBinding(name) != nil {
		return TopicInfo{}, fmt.Errorf("topic %q: a filtered view has that name: %w", name, ErrTopicExists)
	}
	ov := make(map[string]string, len(overrides))
	for k, v := range overrides {
		ov[k] = v
	}
	t := &topic{name: name, overrides: ov, cfg: cfg}
	_, _ = rand.Read(t.id[:])
	if validateOnly {
		t.partitions = make([]*partition, partitions)
		return t.info(), nil
	}
	for i := int32(0); i < partitions; i++ {
		// A leftover directory from a deleted topic must not leak old records.
		_ = b.fs.RemoveAll(partitionDir(b.opts.DataDir, name, i))
		p, err := b.openPartition(t, i)
		if err != nil {
			for _, p := range t.partitions {
				_ = p.delete()
			}
			return TopicInfo{}, err
		}
		t.partitions = append(t.partitions, p)
	}
	b.topics[name] = t
	b.byID[t.id] = t
	if err := b.saveMetaLocked(); err != nil {
		delete(b.topics, name)
		delete(b.byID, t.id)
		for _, p := range t.partitions {
			_ = p.delete()
		}
		return TopicInfo{}, err
	}
	b.logger.Info("topic created", "topic", name, "partitions", partitions)
	return t.info(), nil
}

// DeleteTopic deletes a topic, all its records and every group's committed
// offsets of it.
func (b *Broker) DeleteTopic(name string) error {
	if err := b.deleteTopic(name); err != nil {
		return err
	}
	// Committed offsets of the topic go with it, as in Kafka (outside
	// b.mu: the coordinator calls back into the broker).
	if err := b.groups.DeleteTopicOffsets(name); err != nil {
		return fmt.Errorf("topic %q deleted, but not its committed offsets: %w", name, err)
	}
	return nil
}

func (b *Broker) deleteTopic(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.topics[name]
	if !ok {
		return fmt.Errorf("topic %q: %w", name, ErrUnknownTopic)
	}
	delete(b.topics, name)
	delete(b.byID, t.id)
	if err := b.saveMetaLocked(); err != nil {
		b.topics[name] = t
		b.byID[t.id] = t
		return err
	}
	var errs []error
	for _, p := range t.partitions {
		if err := p.delete(); err != nil {
			errs = append(errs, err)
		}
	}
	b.logger.Info("topic deleted", "topic", name)
	return errors.Join(errs...)
}

// CreatePartitions grows a topic to count partitions.
func (b *Broker) CreatePartitions(name string, count int32, validateOnly bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.topics[name]
	if !ok {
		return fmt.Errorf("topic %q: %w", name, ErrUnknownTopic)
	}
	have := int32(len(t.partitions))
	if count <= have {
		return fmt.Errorf("%w: topic %q has %d partitions; the count can only grow", ErrInvalidPartitions, name, have)
	}
	if count > 100000 {
		return fmt.Errorf("%w: %d is more than 100000", ErrInvalidPartitions, count)
	}
	if validateOnly {
		return nil
	}
	added := t.partitions
	for i := have; i < count; i++ {
		_ = b.fs.RemoveAll(partitionDir(b.opts.DataDir, name, i))
		p, err := b.openPartition(t, i)
		if err != nil {
			for _, p := range added[have:] {
				_ = p.delete()
			}
			return err
		}
		added = append(added, p)
	}
	old := t.partitions
	t.partitions = added
	if err := b.saveMetaLocked(); err != nil {
		for _, p := range added[have:] {
			_ = p.delete()
		}
		t.partitions = old
		return err
	}
	return nil
}

// DescribeTopicConfig lists every config key of a topic with its value.
func (b *Broker) DescribeTopicConfig(name string) ([]ConfigEntry, error) {
	info, err := b.Topic(name)
	if err != nil {
		return nil, err
	}
	var out []ConfigEntry
	for _, k := range topicConfigKeys() {
		_, set := info.Overrides[k.name]
		out = append(out, ConfigEntry{Name: k.name, Value: k.get(&info.Config), IsDefault: !set, Doc: k.doc})
	}
	return out, nil
}

// AlterTopicConfig sets or deletes topic config overrides. The change is
// validated whole before any of it applies, and takes effect at once.
func (b *Broker) AlterTopicConfig(name string, ops []ConfigOp, validateOnly bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	t, ok := b.topics[name]
	if !ok {
		return fmt.Errorf("topic %q: %w", name, ErrUnknownTopic)
	}
	ov := make(map[string]string, len(t.overrides))
	for k, v := range t.overrides {
		ov[k] = v
	}
	for _, op := range ops {
		if _, ok := lookupConfigKey(op.Name); !ok {
			return fmt.Errorf("%w: unknown topic config key %q", ErrInvalidConfig, op.Name)
		}
		switch op.Op {
		case ConfigSet:
			ov[op.Name] = op.Value
		case ConfigDelete:
			delete(ov, op.Name)
		default:
			return fmt.Errorf("%w: operation %d on %q is not supported", ErrInvalidConfig, op.Op, op.Name)
		}
	}
	cfg, err := applyOverrides(b.opts.Defaults, ov)
	if err != nil {
		return err
	}
	if validateOnly {
		return nil
	}
	oldOv, oldCfg := t.overrides, t.cfg
	t.overrides, t.cfg = ov, cfg
	if err := b.saveMetaLocked(); err != nil {
		t.overrides, t.cfg = oldOv, oldCfg
		return err
	}
	for _, p := range t.partitions {
		p.setConfig(cfg.Flush, b.logOptions(cfg))
	}
	return nil
}

// partition returns a partition, or ErrUnknownTopic.
func (b *Broker) partition(topicName string, idx int32) (*partition, TopicConfig, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	t, ok := b.topics[topicName]
	if !ok {
		return nil, TopicConfig{}, fmt.Errorf("topic %q: %w", topicName, ErrUnknownTopic)
	}
	if idx < 0 || int(idx) >= len(t.partitions) {
		return nil, TopicConfig{}, fmt.Errorf("partition %d of topic %q: %w", idx, topicName, ErrUnknownTopic)
	}
	return t.partitions[idx], t.cfg, nil
}

func (b *Broker) saveMetaLocked() error {
	return b.saveMetaWith(b.bindingList())
}

// saveMetaWith saves the topics and the given bindings; b.mu is held.
func (b *Broker) saveMetaWith(bindings []*binding) error {
	st := metaState{ClusterID: b.opts.ClusterID, Bindings: bindingsMeta(bindings)}
	for _, t := range b.topics {
		st.Topics = append(st.Topics, metaTopic{Name: t.name, ID: t.id, Partitions: int32(len(t.partitions)), Overrides: t.overrides})
	}
	sort.Slice(st.Topics, func(i, j int) bool { return st.Topics[i].Name < st.Topics[j].Name })
	return b.meta.save(st)
}
