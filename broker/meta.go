package broker

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/samsa-broker/samsa/broker/vfs"
)

// metaState is what the broker keeps about itself besides the logs: the
// cluster id and the topic definitions. It is small and rewritten whole.
type metaState struct {
	Version   int         `json:"version"`
	ClusterID string      `json:"cluster_id"`
	Topics    []metaTopic `json:"topics"`
	// Bindings are the filter bindings, in bind order.
	Bindings []metaBinding `json:"bindings,omitempty"`
}

type metaBinding struct {
	ID string `json:"id"`
	BindingSpec
	Created time.Time `json:"created"`
}

type metaTopic struct {
	Name       string            `json:"name"`
	ID         [16]byte          `json:"id"`
	Partitions int32             `json:"partitions"`
	Overrides  map[string]string `json:"overrides,omitempty"`
}

const metaFile = "meta.json"

// metaStore persists metaState atomically in the data dir.
type metaStore struct {
	fs  vfs.FS
	dir string
	mu  sync.Mutex
}

func openMeta(fsys vfs.FS, dir string) (*metaStore, metaState, error) {
	m := &metaStore{fs: fsys, dir: dir}
	var st metaState
	data, err := readFile(fsys, path.Join(dir, metaFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return m, st, nil
	case err != nil:
		return nil, st, fmt.Errorf("read %s: %w", metaFile, err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, st, fmt.Errorf("parse %s: %w", path.Join(dir, metaFile), err)
	}
	return m, st, nil
}

func (m *metaStore) save(st metaState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	st.Version = 1
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(m.fs, m.dir, metaFile, data)
}

func readFile(fsys vfs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, st.Size())
	if _, err := f.ReadAt(buf, 0); err != nil && len(buf) > 0 {
		return nil, err
	}
	return buf, nil
}

// writeFileAtomic replaces dir/name with data so that after a power loss the
// file holds either the old or the new contents: write a temporary file,
// fsync it, rename it over the old one, fsync the directory.
func writeFileAtomic(fsys vfs.FS, dir, name string, data []byte) error {
	tmp := path.Join(dir, name+".tmp")
	f, err := fsys.Create(tmp)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", name, err)
	}
	if err := fsys.Rename(tmp, path.Join(dir, name)); err != nil {
		return fmt.Errorf("rename %s: %w", name, err)
	}
	d, err := fsys.OpenDir(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// producerIDs hands out producer ids for idempotent producers. Ids are
// reserved durably in blocks so that a restart never reuses one.
type producerIDs struct {
	fs    vfs.FS
	dir   string
	mu    sync.Mutex
	next  int64
	limit int64
}

const (
	producerIDFile  = "producer-ids"
	producerIDBlock = 1000
)

func openProducerIDs(fsys vfs.FS, dir string) (*producerIDs, error) {
	// Ids start at 1: some encoders treat producer id 0 as "none".
	p := &producerIDs{fs: fsys, dir: dir, next: 1, limit: 1}
	data, err := readFile(fsys, path.Join(dir, producerIDFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", producerIDFile, err)
	default:
		n, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("parse %s: %q is not a producer id", path.Join(dir, producerIDFile), data)
		}
		p.next, p.limit = n, n
	}
	return p, nil
}

func (p *producerIDs) allocate() (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next >= p.limit {
		limit := p.next + producerIDBlock
		if err := writeFileAtomic(p.fs, p.dir, producerIDFile, []byte(strconv.FormatInt(limit, 10)+"\n")); err != nil {
			return 0, fmt.Errorf("%w: reserve producer ids: %v", ErrStorage, err)
		}
		p.limit = limit
	}
	id := p.next
	p.next++
	return id, nil
}

// mkdirDurable creates dir and its missing parents so that they survive a
// power loss: each new directory's entry is fsynced in its parent.
func mkdirDurable(fsys vfs.FS, dir string) error {
	var missing []string
	for d := path.Clean(dir); ; d = path.Dir(d) {
		if _, err := fsys.Stat(d); err == nil {
			break
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		missing = append(missing, d)
		if path.Dir(d) == d {
			break
		}
	}
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d, err := fsys.OpenDir(path.Dir(missing[i]))
		if err != nil {
			return err
		}
		err = d.Sync()
		d.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
