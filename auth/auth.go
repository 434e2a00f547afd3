package auth

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nkeys"
)

// The errors of the package. Every authentication failure wraps
// ErrUnauthenticated (ErrExpired and ErrRevoked do too), so callers can test
// for it alone; the message says why in words that hold no secret.
var (
	ErrUnauthenticated = errors.New("authentication failed")
	ErrExpired         = fmt.Errorf("%w: token expired", ErrUnauthenticated)
	ErrRevoked         = fmt.Errorf("%w: revoked", ErrUnauthenticated)
	ErrRateLimited     = errors.New("too many failed authentications from this address; retry later")
	ErrForbidden       = errors.New("forbidden")

	// ErrUnacceptableCredential: a SCRAM upsertion with bad parameters
	// (Kafka's UNACCEPTABLE_CREDENTIAL).
	ErrUnacceptableCredential = errors.New("unacceptable credential")
	// ErrNoCredential: no SCRAM credential for that user and mechanism
	// (Kafka's RESOURCE_NOT_FOUND).
	ErrNoCredential = errors.New("no such SCRAM credential")
	// ErrUnsupportedMechanism: a SASL mechanism the package does not know.
	ErrUnsupportedMechanism = errors.New("unsupported SASL mechanism")
)

// Config is [auth] of broker.toml.
type Config struct {
	Enabled bool
	// Issuers are the trusted issuer public nkeys ("O..." operator or
	// "A..." account). A user JWT verifies when its iss is one of them; a
	// JWT whose issuer_account is set (signed by an account's signing key)
	// needs that account in Issuers too. Account JWTs vouched for by a
	// trusted operator are not resolved: list the account key itself.
	Issuers []string
	Users   []StaticUser // [[auth.users]]
	// RevocationFile lists revoked identities, one per line, '#' starts a
	// comment: user public keys ("U..."), issuer keys (revoking every JWT
	// they signed) or user names (static and SCRAM users). It is re-read
	// when it changes (a stat loop, every RevocationPoll); a missing file
	// revokes nothing.
	RevocationFile string
	// ScramFile holds the SCRAM credentials (JSON, written atomically).
	// Empty: credentials are kept in memory only.
	ScramFile string
	// FailedAuthPerMinute bounds failed authentications per client address
	// (IPv6 by /64): a token bucket of that size refilled at that rate per
	// minute. Default 20.
	FailedAuthPerMinute int
	// RevocationPoll is how often RevocationFile is checked; default 2s.
	RevocationPoll time.Duration
}

// StaticUser is a user listed in the configuration.
type StaticUser struct {
	Name         string
	NKey         string // "U..." public key: the user authenticates by signing a nonce (VerifyNonce with the key as token)
	PasswordHash string // "pbkdf2-sha256$ITER$SALT_B64$HASH_B64" (HashPassword)
	Permissions
}

// Authenticator verifies credentials. Its methods are safe for concurrent
// use.
type Authenticator struct {
	cfg     Config
	log     *slog.Logger
	issuers map[string]bool
	byName  map[string]*StaticUser
	byNKey  map[string]*StaticUser

	rl *rateLimiter

	// SCRAM credentials (scram.go).
	scramMu sync.RWMutex
	scram   scramDB
	fakeKey []byte // derives stable fake salts for unknown SCRAM users

	pwCache *pwCache // recent successful password checks (password.go)

	// Revocation (revoke.go).
	rev       revocation
	subsMu    sync.Mutex
	subs      map[int]func(string)
	nextSub   int
	closeOnce sync.Once
	done      chan struct{}
	wg        sync.WaitGroup

	now func() time.Time // tests
}

// New checks cfg, loads the SCRAM and revocation files and starts watching
// the revocation file. A nil logger discards.
func New(cfg Config, logger *slog.Logger) (*Authenticator, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.FailedAuthPerMinute <= 0 {
		cfg.FailedAuthPerMinute = 20
	}
	if cfg.RevocationPoll <= 0 {
		cfg.RevocationPoll = 2 * time.Second
	}
	// Own copies: the caller may reuse its slices.
	cfg.Issuers = append([]string(nil), cfg.Issuers...)
	users := make([]StaticUser, len(cfg.Users))
	for i, u := range cfg.Users {
		u.Permissions = clonePerms(u.Permissions)
		users[i] = u
	}
	cfg.Users = users
	a := &Authenticator{
		cfg:     cfg,
		log:     logger,
		issuers: map[string]bool{},
		byName:  map[string]*StaticUser{},
		byNKey:  map[string]*StaticUser{},
		rl:      newRateLimiter(cfg.FailedAuthPerMinute),
		subs:    map[int]func(string){},
		done:    make(chan struct{}),
		now:     time.Now,
		pwCache: newPWCache(),
		fakeKey: make([]byte, 32),
	}
	if _, err := rand.Read(a.fakeKey); err != nil {
		return nil, err
	}
	for i, k := range cfg.Issuers {
		if !nkeys.IsValidPublicOperatorKey(k) && !nkeys.IsValidPublicAccountKey(k) {
			return nil, fmt.Errorf("auth: issuers[%d] %s is not an operator (O...) or account (A...) public nkey", i, showKey(k))
		}
		a.issuers[k] = true
	}
	for i := range cfg.Users {
		u := &cfg.Users[i]
		name := u.Name
		if name == "" {
			name = u.NKey
		}
		if name == "" {
			return nil, fmt.Errorf("auth: users[%d] has neither a name nor an nkey", i)
		}
		if u.Name == "" {
			name = showKey(u.NKey)
		} else {
			name = quote(u.Name)
		}
		if u.NKey != "" {
			if !nkeys.IsValidPublicUserKey(u.NKey) {
				return nil, fmt.Errorf("auth: user %s: nkey %s is not a user public nkey (U...)", name, showKey(u.NKey))
			}
			if _, dup := a.byNKey[u.NKey]; dup {
				return nil, fmt.Errorf("auth: user %s: nkey %s is listed twice", name, u.NKey)
			}
			a.byNKey[u.NKey] = u
		}
		if u.PasswordHash != "" {
			if u.Name == "" {
				return nil, fmt.Errorf("auth: users[%d] has a password hash but no name to log in with", i)
			}
			if _, err := parseHash(u.PasswordHash); err != nil {
				return nil, fmt.Errorf("auth: user %s: password_hash: %w", name, err)
			}
		}
		if what, msg := u.Permissions.validate(); what != "" {
			return nil, fmt.Errorf("auth: user %s: %s: %s", name, what, msg)
		}
		if u.Name != "" {
			if _, dup := a.byName[u.Name]; dup {
				return nil, fmt.Errorf("auth: user %s is listed twice", quote(u.Name))
			}
			a.byName[u.Name] = u
		}
	}
	if err := a.loadScram(); err != nil {
		return nil, err
	}
	a.rev.init()
	if cfg.RevocationFile != "" {
		a.reloadRevocations(false)
		a.wg.Add(1)
		go a.watchRevocations()
	}
	a.wg.Add(1)
	go a.sweeper()
	return a, nil
}

// Close stops watching the revocation file.
func (a *Authenticator) Close() error {
	if a == nil {
		return nil
	}
	a.closeOnce.Do(func() { close(a.done) })
	a.wg.Wait()
	return nil
}

// Enabled reports whether authentication is required ([auth] enabled). A
// nil Authenticator is disabled.
func (a *Authenticator) Enabled() bool { return a != nil && a.cfg.Enabled }

// sweeper forgets idle rate-limit buckets and stale password-cache entries.
func (a *Authenticator) sweeper() {
	defer a.wg.Done()
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-a.done:
			return
		case <-t.C:
			now := a.now()
			a.rl.sweep(now)
			a.pwCache.sweep(now)
		}
	}
}

// staticPrincipal is the principal of a static user.
func staticPrincipal(u *StaticUser, mech string) *Principal {
	name := u.Name
	if name == "" {
		name = u.NKey
	}
	return &Principal{Name: name, PublicKey: u.NKey, Perms: clonePerms(u.Permissions), Mechanism: mech}
}

func clonePerms(p Permissions) Permissions {
	c := p
	c.Produce = append([]string(nil), p.Produce...)
	c.Consume = append([]string(nil), p.Consume...)
	c.Groups = append([]string(nil), p.Groups...)
	c.ProduceDeny = append([]string(nil), p.ProduceDeny...)
	c.ConsumeDeny = append([]string(nil), p.ConsumeDeny...)
	return c
}

// unauth returns an error wrapping ErrUnauthenticated with a reason.
func unauth(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrUnauthenticated}, args...)...)
}
