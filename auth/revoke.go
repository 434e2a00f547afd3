package auth

import (
	"bufio"
	"bytes"
	"errors"
	"io/fs"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// revocation is the current revocation list and the state of its file.
type revocation struct {
	set atomic.Pointer[map[string]bool]

	mu    sync.Mutex // serializes reloads
	fi    fs.FileInfo
	known bool // fi describes the file last read (or its absence when nil)
}

func (r *revocation) init() {
	m := map[string]bool{}
	r.set.Store(&m)
}

// Revoked reports whether id (a user public key, an issuer key or a user
// name) is in the revocation file. Transports re-check long-lived
// connections with it, or subscribe with OnRevoke.
func (a *Authenticator) Revoked(id string) bool {
	if a == nil || id == "" {
		return false
	}
	return (*a.rev.set.Load())[id]
}

// revokedPrincipal reports whether p's key, name or issuer is revoked.
func (a *Authenticator) revokedPrincipal(p *Principal) bool {
	return a.Revoked(p.PublicKey) || a.Revoked(p.Name) || a.Revoked(p.Issuer)
}

// OnRevoke registers fn to be called with every identity (user public key,
// issuer key or user name, as written in the file) newly added to the
// revocation file, so that transports can close the connections
// authenticated as it. fn runs on the watcher goroutine and must not block
// for long. The returned function unregisters fn.
func (a *Authenticator) OnRevoke(fn func(id string)) (cancel func()) {
	a.subsMu.Lock()
	id := a.nextSub
	a.nextSub++
	a.subs[id] = fn
	a.subsMu.Unlock()
	return func() {
		a.subsMu.Lock()
		delete(a.subs, id)
		a.subsMu.Unlock()
	}
}

// ReloadRevocations re-reads the revocation file now if it changed (the
// watcher does it every Config.RevocationPoll).
func (a *Authenticator) ReloadRevocations() { a.reloadRevocations(true) }

func (a *Authenticator) watchRevocations() {
	defer a.wg.Done()
	t := time.NewTicker(a.cfg.RevocationPoll)
	defer t.Stop()
	for {
		select {
		case <-a.done:
			return
		case <-t.C:
			a.reloadRevocations(true)
		}
	}
}

// reloadRevocations reads the file when its size, mtime or identity
// changed, swaps the list in and, when notify, tells the OnRevoke
// subscribers about identities that were not revoked before.
func (a *Authenticator) reloadRevocations(notify bool) {
	r := &a.rev
	r.mu.Lock()
	path := a.cfg.RevocationFile
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		fi = nil
	case err != nil:
		r.mu.Unlock()
		a.log.Warn("auth: cannot stat the revocation file; keeping the current list", "file", path, "err", err)
		return
	}
	if r.known && sameFile(r.fi, fi) {
		r.mu.Unlock()
		return
	}
	next := map[string]bool{}
	if fi != nil {
		data, err := os.ReadFile(path)
		if err != nil {
			r.mu.Unlock()
			a.log.Warn("auth: cannot read the revocation file; keeping the current list", "file", path, "err", err)
			return
		}
		next = parseRevocations(data)
	} else if r.known || !notify {
		a.log.Warn("auth: the revocation file does not exist; nothing is revoked", "file", path)
	}
	r.fi, r.known = fi, true
	prev := *r.set.Load()
	r.set.Store(&next)
	r.mu.Unlock()

	var added []string
	for k := range next {
		if !prev[k] {
			added = append(added, k)
		}
	}
	sort.Strings(added)
	a.log.Info("auth: revocation list loaded", "file", path, "revoked", len(next), "new", len(added))
	if !notify || len(added) == 0 {
		return
	}
	a.subsMu.Lock()
	fns := make([]func(string), 0, len(a.subs))
	for _, fn := range a.subs {
		fns = append(fns, fn)
	}
	a.subsMu.Unlock()
	for _, k := range added {
		for _, fn := range fns {
			fn(k)
		}
	}
}

func sameFile(a, b fs.FileInfo) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return a.Size() == b.Size() && a.ModTime().Equal(b.ModTime()) && os.SameFile(a, b)
}

// parseRevocations reads one identity per line; '#' starts a comment and
// blank lines are ignored; surrounding whitespace is trimmed (a user name
// may contain spaces).
func parseRevocations(data []byte) map[string]bool {
	m := map[string]bool{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		if line = strings.TrimSpace(line); line != "" {
			m[line] = true
		}
	}
	return m
}
