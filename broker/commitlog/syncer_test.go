package commitlog

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/samsa-broker/samsa/broker/vfs"
)

func TestSyncerSharesRounds(t *testing.T) {
	var fileSyncs atomic.Int64
	var slow atomic.Bool
	fsys := vfs.NewErrorFS(vfs.NewStrictMem(), func(op vfs.Op, path string) error {
		if op == vfs.OpSync && strings.HasSuffix(path, logSuffix) {
			fileSyncs.Add(1)
			if slow.Load() {
				time.Sleep(2 * time.Millisecond) // a disk that takes its time
			}
		}
		return nil
	})
	const nlogs, writers, perWriter = 4, 32, 40
	logs := make([]*Log, nlogs)
	for i := range logs {
		logs[i] = openT(t, fsys, fmt.Sprintf("p-%d", i), Options{})
		defer logs[i].Close()
	}
	s := NewSyncer(nil)
	defer s.Close()
	slow.Store(true)
	before := fileSyncs.Load()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				l := logs[(w+i)%nlogs]
				_, next, err := l.Append(makeSimpleBatch(1, 20, 1, byte(i)))
				if err != nil {
					t.Error(err)
					return
				}
				if err := s.Sync(context.Background(), l); err != nil {
					t.Error(err)
					return
				}
				if l.SyncedOffset() < next {
					t.Errorf("Sync returned with synced %d < %d", l.SyncedOffset(), next)
					return
				}
			}
		}()
	}
	wg.Wait()
	n := fileSyncs.Load() - before
	calls := int64(writers * perWriter)
	t.Logf("%d Sync calls over %d logs cost %d fsyncs", calls, nlogs, n)
	if n >= calls/4 {
		t.Fatalf("%d fsyncs for %d Sync calls: rounds are not shared", n, calls)
	}
	// Several logs in one call.
	for _, l := range logs {
		appendT(t, l, makeSimpleBatch(1, 1, 1, 1))
	}
	if err := s.Sync(context.Background(), logs...); err != nil {
		t.Fatal(err)
	}
	for _, l := range logs {
		if l.SyncedOffset() != l.EndOffset() {
			t.Fatal("log not synced")
		}
	}
	// Nothing pending: no fsync at all.
	before = fileSyncs.Load()
	if err := s.Sync(context.Background(), logs...); err != nil || fileSyncs.Load() != before {
		t.Fatalf("idle sync: %v, %d fsyncs", err, fileSyncs.Load()-before)
	}
}

func TestSyncerErrorsAndClose(t *testing.T) {
	var bad atomic.Bool
	fsys := vfs.NewErrorFS(vfs.NewStrictMem(), func(op vfs.Op, path string) error {
		if op == vfs.OpSync && bad.Load() && filepath.Dir(path) == "bad" && filepath.Ext(path) == logSuffix {
			return syscall.EIO
		}
		return nil
	})
	good := openT(t, fsys, "good", Options{})
	defer good.Close()
	failing := openT(t, fsys, "bad", Options{})
	defer failing.Close()
	s := NewSyncer(nil)
	appendT(t, good, makeSimpleBatch(1, 1, 1, 1))
	appendT(t, failing, makeSimpleBatch(1, 1, 1, 1))
	bad.Store(true)
	if err := s.Sync(context.Background(), good, failing); !errors.Is(err, ErrLogFailed) {
		t.Fatalf("err = %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	appendT(t, good, makeSimpleBatch(1, 1, 1, 1))
	bad.Store(false)
	if err := s.Sync(ctx, good); err != nil && !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: %v", err)
	}
	s.Close()
	s.Close()
	appendT(t, good, makeSimpleBatch(1, 1, 1, 1))
	if err := s.Sync(context.Background(), good); !errors.Is(err, ErrSyncerClosed) {
		t.Fatalf("after close: %v", err)
	}
}
