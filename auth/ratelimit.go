package auth

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// RateLimit returns ErrRateLimited when remoteIP has used up its failed
// authentication attempts (Config.FailedAuthPerMinute); call it before an
// attempt, and Failed after a failed one. remoteIP may carry a port. IPv6
// addresses share a bucket per /64.
func (a *Authenticator) RateLimit(remoteIP string) error {
	if a.rl.exhausted(rateKey(remoteIP), a.now()) {
		return ErrRateLimited
	}
	return nil
}

// Failed records a failed authentication attempt from remoteIP.
func (a *Authenticator) Failed(remoteIP string) {
	a.rl.take(rateKey(remoteIP), a.now())
}

// rateKey normalizes an address: without port, IPv4-mapped IPv6 as IPv4,
// other IPv6 cut to its /64.
func rateKey(s string) string {
	if host, _, err := net.SplitHostPort(s); err == nil {
		s = host
	}
	ip, err := netip.ParseAddr(s)
	if err != nil {
		return s
	}
	ip = ip.Unmap()
	if ip.Is6() {
		if p, err := ip.WithZone("").Prefix(64); err == nil {
			return p.String()
		}
	}
	return ip.String()
}

// rateLimiter is a token bucket per key: capacity n, refilled at n per
// minute; each failure takes a token, and a key with less than one token
// left is limited.
type rateLimiter struct {
	mu      sync.Mutex
	n       float64
	perSec  float64
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newRateLimiter(perMinute int) *rateLimiter {
	return &rateLimiter{n: float64(perMinute), perSec: float64(perMinute) / 60, buckets: map[string]*bucket{}}
}

// refill brings b up to date; the caller holds mu.
func (r *rateLimiter) refill(b *bucket, now time.Time) {
	if d := now.Sub(b.last).Seconds(); d > 0 {
		b.tokens = min(r.n, b.tokens+d*r.perSec)
	}
	b.last = now
}

func (r *rateLimiter) exhausted(key string, now time.Time) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.buckets[key]
	if b == nil {
		return false
	}
	r.refill(b, now)
	return b.tokens < 1
}

func (r *rateLimiter) take(key string, now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	b := r.buckets[key]
	if b == nil {
		b = &bucket{tokens: r.n, last: now}
		r.buckets[key] = b
	}
	r.refill(b, now)
	b.tokens = max(b.tokens-1, 0)
}

// sweep forgets buckets that are full again.
func (r *rateLimiter) sweep(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for k, b := range r.buckets {
		r.refill(b, now)
		if b.tokens >= r.n {
			delete(r.buckets, k)
		}
	}
}
