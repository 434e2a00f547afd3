package main

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// progress draws a one-line progress bar on a terminal while a long
// operation runs. On anything but a terminal it draws nothing.
type progress struct {
	w     io.Writer
	label string
	total int64
	count *atomic.Int64
	start time.Time
	stop  chan struct{}
	done  sync.WaitGroup
	once  sync.Once
}

// startProgress starts redrawing every 200ms; it returns nil (a no-op
// progress) when w is not a terminal.
func startProgress(w io.Writer, label string, total int64, count *atomic.Int64) *progress {
	if !isTerminal(w) {
		return nil
	}
	p := &progress{w: w, label: label, total: total, count: count, start: time.Now(), stop: make(chan struct{})}
	p.done.Add(1)
	go func() {
		defer p.done.Done()
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				fmt.Fprint(p.w, "\r\033[K")
				return
			case <-t.C:
				fmt.Fprint(p.w, "\r\033[K"+p.line(p.count.Load(), time.Since(p.start)))
			}
		}
	}()
	return p
}

// line renders the progress line for n of total done after d.
func (p *progress) line(n int64, d time.Duration) string {
	const width = 30
	frac := 0.0
	if p.total > 0 {
		frac = min(float64(n)/float64(p.total), 1)
	}
	filled := int(frac * width)
	rate := 0.0
	if s := d.Seconds(); s > 0 {
		rate = float64(n) / s
	}
	return fmt.Sprintf("%s [%s%s] %5.1f%% %d/%d %s rec/s", p.label,
		strings.Repeat("=", filled), strings.Repeat(" ", width-filled),
		frac*100, n, p.total, humanCount(rate))
}

// finish erases the line and stops redrawing. It is safe on a nil progress
// and safe to call more than once.
func (p *progress) finish() {
	if p == nil {
		return
	}
	p.once.Do(func() {
		close(p.stop)
		p.done.Wait()
	})
}

// humanCount formats n with a k/M/G suffix.
func humanCount(n float64) string {
	switch {
	case n >= 1e9:
		return fmt.Sprintf("%.2fG", n/1e9)
	case n >= 1e6:
		return fmt.Sprintf("%.2fM", n/1e6)
	case n >= 1e3:
		return fmt.Sprintf("%.1fk", n/1e3)
	}
	return fmt.Sprintf("%.0f", n)
}
