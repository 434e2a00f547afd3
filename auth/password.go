package auth

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

const (
	hashPrefix = "pbkdf2-sha256"
	// HashIterations is the PBKDF2 iteration count of HashPassword.
	HashIterations = 600000
	hashSaltLen    = 16
	hashKeyLen     = 32
	maxHashIter    = 10_000_000
)

// HashPassword returns "pbkdf2-sha256$ITER$SALT_B64$HASH_B64" of pw with a
// random salt and HashIterations iterations, for a static user's
// password_hash.
func HashPassword(pw string) (string, error) {
	return HashPasswordWithIterations(pw, HashIterations)
}

// HashPasswordWithIterations is HashPassword with another iteration count
// (tests use few; CheckPassword reads the count from the hash).
func HashPasswordWithIterations(pw string, iterations int) (string, error) {
	if iterations < 1 || iterations > maxHashIter {
		return "", errors.New("bad iteration count")
	}
	salt := make([]byte, hashSaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	dk, err := pbkdf2.Key(sha256.New, pw, salt, iterations, hashKeyLen)
	if err != nil {
		return "", errors.New("hashing the password failed")
	}
	enc := base64.RawStdEncoding
	return hashPrefix + "$" + strconv.Itoa(iterations) + "$" + enc.EncodeToString(salt) + "$" + enc.EncodeToString(dk), nil
}

type parsedHash struct {
	iter       int
	salt, hash []byte
}

// parseHash parses a password hash; its errors never quote it.
func parseHash(h string) (parsedHash, error) {
	parts := strings.Split(h, "$")
	if len(parts) != 4 || parts[0] != hashPrefix {
		return parsedHash{}, errors.New("want pbkdf2-sha256$ITER$SALT_B64$HASH_B64")
	}
	iter, err := strconv.Atoi(parts[1])
	if err != nil || iter < 1 || iter > maxHashIter {
		return parsedHash{}, errors.New("bad iteration count")
	}
	salt, err := decodeB64Std(parts[2])
	if err != nil || len(salt) == 0 {
		return parsedHash{}, errors.New("bad salt")
	}
	sum, err := decodeB64Std(parts[3])
	if err != nil || len(sum) < 16 {
		return parsedHash{}, errors.New("bad hash")
	}
	return parsedHash{iter: iter, salt: salt, hash: sum}, nil
}

func decodeB64Std(s string) ([]byte, error) {
	return base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
}

// CheckPassword reports whether pw matches hash (from HashPassword).
func CheckPassword(hash, pw string) bool {
	ph, err := parseHash(hash)
	if err != nil {
		return false
	}
	dk, err := pbkdf2.Key(sha256.New, pw, ph.salt, ph.iter, len(ph.hash))
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(dk, ph.hash) == 1
}

// Plain authenticates a user name and password (SASL PLAIN, HTTP Basic):
// a static user with a password hash, or a SCRAM user (the password is
// checked against the stored SCRAM keys). The principal's Mechanism is
// "PLAIN".
func (a *Authenticator) Plain(user, password string) (*Principal, error) {
	if user == "" {
		return nil, unauth("no user name")
	}
	var p *Principal
	if u := a.byName[user]; u != nil && u.PasswordHash != "" && a.checkCached(user, u.PasswordHash, password) {
		p = staticPrincipal(u, MechPlain)
	} else {
		p = a.plainScram(user, password)
	}
	if p == nil {
		return nil, unauth("user %s: wrong user name or password", quote(user))
	}
	// Revocation is checked after the password, so that it tells nothing
	// to whoever does not know it.
	if a.revokedPrincipal(p) {
		return nil, fmt.Errorf("%w: user %s", ErrRevoked, quote(user))
	}
	return p, nil
}

// checkCached checks pw against hash, remembering a success for a few
// minutes (keyed by a keyed hash of user, hash and password) so that HTTP
// Basic clients do not pay the PBKDF2 cost on every request.
func (a *Authenticator) checkCached(user, hash, pw string) bool {
	k := a.pwCache.key(user, hash, pw)
	now := a.now()
	if a.pwCache.hit(k, now) {
		return true
	}
	if !CheckPassword(hash, pw) {
		return false
	}
	a.pwCache.put(k, now)
	return true
}

const (
	pwCacheTTL = 5 * time.Minute
	pwCacheMax = 4096
)

type pwCache struct {
	mac []byte
	mu  sync.Mutex
	m   map[[32]byte]time.Time
}

func newPWCache() *pwCache {
	c := &pwCache{mac: make([]byte, 32), m: map[[32]byte]time.Time{}}
	if _, err := rand.Read(c.mac); err != nil {
		panic(err) // crypto/rand does not fail
	}
	return c
}

func (c *pwCache) key(parts ...string) [32]byte {
	h := hmac.New(sha256.New, c.mac)
	for _, p := range parts {
		var n [8]byte
		l := uint64(len(p))
		for i := range n {
			n[i] = byte(l >> (8 * i))
		}
		h.Write(n[:])
		h.Write([]byte(p))
	}
	var k [32]byte
	copy(k[:], h.Sum(nil))
	return k
}

func (c *pwCache) hit(k [32]byte, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t, ok := c.m[k]
	if ok && now.Sub(t) > pwCacheTTL {
		delete(c.m, k)
		return false
	}
	return ok
}

func (c *pwCache) put(k [32]byte, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= pwCacheMax {
		c.sweepLocked(now)
		if len(c.m) >= pwCacheMax {
			clear(c.m)
		}
	}
	c.m[k] = now
}

func (c *pwCache) sweep(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sweepLocked(now)
}

func (c *pwCache) sweepLocked(now time.Time) {
	for k, t := range c.m {
		if now.Sub(t) > pwCacheTTL {
			delete(c.m, k)
		}
	}
}
