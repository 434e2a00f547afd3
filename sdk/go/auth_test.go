package samsa

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"

	"github.com/samsa-broker/samsa/auth"
)

// authEnv is an in-process broker whose WebSocket transport requires
// authentication: it trusts one issuer and has one static nkey user.
type authEnv struct {
	ts         *testServer
	issuerSeed string
	static     testUser // the static user "device-1" of the config
}

// testUser is a user key pair, with a JWT when issued one.
type testUser struct {
	seed, pub, jwt string
}

// allowed is what test users may do: produce and consume allowed.>.
var allowed = auth.Permissions{Produce: []string{"allowed.>"}, Consume: []string{"allowed.>"}, Groups: []string{"g"}}

func startAuthServer(t *testing.T, tweak ...func(*serverConfig)) *authEnv {
	t.Helper()
	seed, pub, err := auth.NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	sseed, spub, err := auth.NewUserKey()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rev := filepath.Join(dir, "revoked")
	if err := os.WriteFile(rev, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{
		Enabled:             true,
		Issuers:             []string{pub},
		RevocationFile:      rev,
		FailedAuthPerMinute: 1000,
		Users:               []auth.StaticUser{{Name: "device-1", NKey: spub, Permissions: allowed}},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	ts := startServer(t, append([]func(*serverConfig){func(c *serverConfig) { c.auth = a }}, tweak...)...)
	return &authEnv{ts: ts, issuerSeed: seed, static: testUser{seed: sseed, pub: spub}}
}

// newUser creates a user key and issues it a JWT (bearer or not) valid
// for ttl.
func (e *authEnv) newUser(t *testing.T, ttl time.Duration, bearer bool) testUser {
	t.Helper()
	seed, pub, err := auth.NewUserKey()
	if err != nil {
		t.Fatal(err)
	}
	return testUser{seed: seed, pub: pub, jwt: e.issue(t, pub, ttl, bearer)}
}

func (e *authEnv) issue(t testing.TB, pub string, ttl time.Duration, bearer bool) string {
	t.Helper()
	tok, err := auth.IssueUserJWT(e.issuerSeed, pub, allowed, ttl, bearer, "sdk test")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// expiredJWT issues a JWT that expired a minute ago.
func (e *authEnv) expiredJWT(t *testing.T, pub string) string {
	t.Helper()
	kp, err := nkeys.FromSeed([]byte(e.issuerSeed))
	if err != nil {
		t.Fatal(err)
	}
	uc := jwt.NewUserClaims(pub)
	uc.Expires = time.Now().Add(-time.Minute).Unix()
	uc.Pub.Allow.Add("allowed.>")
	uc.Sub.Allow.Add("allowed.>")
	tok, err := uc.Encode(kp)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// roundTrip produces one record to topic and reads it back from a new
// subscription: the connection may produce and consume.
func roundTrip(t *testing.T, c *Client, topic string) {
	t.Helper()
	ctx := ctxT(t, 15*time.Second)
	v := fmt.Sprintf("v-%d", time.Now().UnixNano())
	ack, err := c.Produce(ctx, topic, Record{Value: []byte(v)})
	if err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
	sub, err := c.Subscribe(ctx, topic, SubscribeOptions{From: AtOffset(ack.Offset)})
	if err != nil {
		t.Fatalf("subscribe to %s: %v", topic, err)
	}
	defer sub.Close()
	r, err := sub.Next(ctx)
	if err != nil || string(r.Value) != v || r.Offset != ack.Offset {
		t.Fatalf("read back %s: %v %+v, want %q at %d", topic, err, r, v, ack.Offset)
	}
}

func TestAuthMethods(t *testing.T) {
	e := startAuthServer(t)
	nonceUser := e.newUser(t, time.Hour, false)
	bearerUser := e.newUser(t, time.Hour, true)
	credsFile, err := jwt.FormatUserConfig(nonceUser.jwt, []byte(nonceUser.seed))
	if err != nil {
		t.Fatal(err)
	}
	fromFile, err := ParseCreds(credsFile)
	if err != nil {
		t.Fatal(err)
	}
	var calls atomic.Int32
	tests := []struct {
		name     string
		opts     Options
		user     string
		expiring bool
	}{
		{name: "nonce", opts: Options{Credentials: &Credentials{JWT: nonceUser.jwt, Seed: nonceUser.seed}}, user: nonceUser.pub, expiring: true},
		{name: "nonce binary", opts: Options{Binary: true, Credentials: &Credentials{JWT: nonceUser.jwt, Seed: nonceUser.seed + "\n"}}, user: nonceUser.pub, expiring: true},
		{name: "creds file", opts: Options{Credentials: &fromFile}, user: nonceUser.pub, expiring: true},
		{name: "bearer", opts: Options{Credentials: &Credentials{Bearer: bearerUser.jwt}}, user: bearerUser.pub, expiring: true},
		{name: "static nkey", opts: Options{Binary: true, Credentials: &Credentials{Seed: e.static.seed}}, user: "device-1"},
		{name: "func", opts: Options{CredentialsFunc: func(ctx context.Context) (Credentials, error) {
			calls.Add(1)
			return Credentials{Bearer: bearerUser.jwt}, nil
		}}, user: bearerUser.pub, expiring: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dial(t, e.ts.url, tt.opts)
			ai := c.AuthInfo()
			if ai.User != tt.user {
				t.Fatalf("authenticated as %q, want %q", ai.User, tt.user)
			}
			if tt.expiring != !ai.Expires.IsZero() {
				t.Fatalf("expires %v, want expiring=%v", ai.Expires, tt.expiring)
			}
			if tt.expiring {
				if d := time.Until(ai.Expires); d < 50*time.Minute || d > 61*time.Minute {
					t.Fatalf("expires in %v, want about an hour", d)
				}
			}
			roundTrip(t, c, "allowed."+tt.name[:3])
		})
	}
	if calls.Load() != 1 {
		t.Errorf("CredentialsFunc called %d times for one connection", calls.Load())
	}
}

func TestAuthRefused(t *testing.T) {
	e := startAuthServer(t)
	u := e.newUser(t, time.Hour, false)
	other := e.newUser(t, time.Hour, false)
	bearer := e.newUser(t, time.Hour, true)
	stranger, _, err := auth.NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	untrusted, err := auth.IssueUserJWT(stranger, u.pub, allowed, time.Hour, false, "")
	if err != nil {
		t.Fatal(err)
	}
	unknownSeed, _, err := auth.NewUserKey()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		cr     *Credentials
		fn     func(context.Context) (Credentials, error)
		server bool // refused by the server (unauthorized), not by the client
	}{
		{name: "wrong key", cr: &Credentials{JWT: u.jwt, Seed: other.seed}, server: true},
		{name: "untrusted issuer", cr: &Credentials{JWT: untrusted, Seed: u.seed}, server: true},
		{name: "expired", cr: &Credentials{JWT: e.expiredJWT(t, u.pub), Seed: u.seed}, server: true},
		{name: "bearer JWT signed as nonce", cr: &Credentials{JWT: bearer.jwt, Seed: bearer.seed}, server: true},
		{name: "nonce JWT as bearer", cr: &Credentials{Bearer: u.jwt}, server: true},
		{name: "unknown static nkey", cr: &Credentials{Seed: unknownSeed}, server: true},
		{name: "func gives a refused token", fn: func(context.Context) (Credentials, error) {
			return Credentials{JWT: u.jwt, Seed: other.seed}, nil
		}, server: true},
		{name: "not a seed", cr: &Credentials{Seed: "SUNOTASEED"}},
		{name: "jwt without seed", cr: &Credentials{JWT: u.jwt}},
		{name: "nothing", cr: &Credentials{}},
		{name: "two forms", cr: &Credentials{Bearer: bearer.jwt, Seed: u.seed}},
		{name: "account seed", cr: &Credentials{Seed: e.issuerSeed}},
		{name: "both options", cr: &Credentials{Bearer: bearer.jwt}, fn: func(context.Context) (Credentials, error) {
			return Credentials{Bearer: bearer.jwt}, nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := ctxT(t, 10*time.Second)
			c, err := Dial(ctx, e.ts.url, Options{Credentials: tt.cr, CredentialsFunc: tt.fn})
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			if c != nil {
				t.Fatal("Dial returned a client with its error")
			}
			if tt.server {
				var perr *Error
				if !errors.Is(err, ErrUnauthorized) || !errors.As(err, &perr) || perr.Code != CodeUnauthorized {
					t.Fatalf("err = %v, want the typed unauthorized error", err)
				}
			} else if !errors.Is(err, ErrInvalidCredentials) {
				t.Fatalf("err = %v, want ErrInvalidCredentials", err)
			}
			if IsRetriable(err) {
				t.Fatalf("%v is retriable", err)
			}
		})
	}
}

// Without credentials the connection is up but every op but ping is
// refused as unauthorized.
func TestAuthMissing(t *testing.T) {
	e := startAuthServer(t)
	c := dial(t, e.ts.url, Options{})
	ctx := ctxT(t, 10*time.Second)
	if _, err := c.Ping(ctx); err != nil {
		t.Fatalf("ping: %v", err)
	}
	if _, err := c.Produce(ctx, "allowed.x", Record{Value: []byte("v")}); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("produce: %v, want unauthorized", err)
	}
	if _, err := c.Subscribe(ctx, "allowed.x", SubscribeOptions{}); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("subscribe: %v, want unauthorized", err)
	}
	if ai := c.AuthInfo(); ai != (AuthInfo{}) {
		t.Fatalf("AuthInfo %+v without authentication", ai)
	}
}

func TestAuthForbidden(t *testing.T) {
	e := startAuthServer(t)
	u := e.newUser(t, time.Hour, false)
	for _, binary := range []bool{false, true} {
		t.Run(fmt.Sprintf("binary=%v", binary), func(t *testing.T) {
			c := dial(t, e.ts.url, Options{Binary: binary, Credentials: &Credentials{JWT: u.jwt, Seed: u.seed}})
			ctx := ctxT(t, 15*time.Second)
			if _, err := c.Produce(ctx, "secret", Record{Value: []byte("x")}); !errors.Is(err, ErrForbidden) {
				t.Fatalf("produce to secret: %v, want forbidden", err)
			}
			if _, err := c.Subscribe(ctx, "secret", SubscribeOptions{From: Earliest()}); !errors.Is(err, ErrForbidden) {
				t.Fatalf("subscribe to secret: %v, want forbidden", err)
			}
			if _, err := c.Subscribe(ctx, "allowed.f", SubscribeOptions{Group: "not-mine"}); !errors.Is(err, ErrForbidden) {
				t.Fatalf("subscribe in group not-mine: %v, want forbidden", err)
			}
			// Forbidden and allowed records queued together: each gets its
			// own outcome.
			var wg sync.WaitGroup
			var okN, forbiddenN atomic.Int32
			for i := range 20 {
				topic := "allowed.f"
				if i%2 == 1 {
					topic = "secret"
				}
				wg.Add(1)
				c.ProduceAsync(ctx, topic, Record{Value: []byte("v")}, func(_ Ack, err error) {
					defer wg.Done()
					switch {
					case err == nil:
						okN.Add(1)
					case errors.Is(err, ErrForbidden):
						forbiddenN.Add(1)
					default:
						t.Errorf("produce to %s: %v", topic, err)
					}
				})
			}
			wg.Wait()
			if okN.Load() != 10 || forbiddenN.Load() != 10 {
				t.Fatalf("ok %d forbidden %d, want 10 and 10", okN.Load(), forbiddenN.Load())
			}
			// The client keeps working on the same connection.
			roundTrip(t, c, "allowed.f")
			if n := c.Connections(); n != 1 {
				t.Fatalf("%d connections, want 1", n)
			}
		})
	}
}

// credsCounter is a CredentialsFunc that issues fresh bearer tokens of a
// lifetime and counts its calls.
type credsCounter struct {
	e     *authEnv
	t     *testing.T
	pub   string
	ttl   time.Duration
	calls atomic.Int32
}

func (cc *credsCounter) fn(context.Context) (Credentials, error) {
	cc.calls.Add(1)
	tok, err := auth.IssueUserJWT(cc.e.issuerSeed, cc.pub, allowed, cc.ttl, true, "")
	if err != nil {
		return Credentials{}, err
	}
	return Credentials{Bearer: tok}, nil
}

// Connections dropped by the server: both clients reconnect, authenticate
// again through their CredentialsFunc, and the subscription resumes with
// every record once.
func TestAuthReconnectResumes(t *testing.T) {
	e := startAuthServer(t)
	u := e.newUser(t, time.Hour, false)
	cc := &credsCounter{e: e, t: t, pub: u.pub, ttl: time.Hour}
	opts := Options{Binary: true, CredentialsFunc: cc.fn, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
	prod := dial(t, e.ts.url, opts)
	cons := dial(t, e.ts.url, opts)
	ctx := ctxT(t, 60*time.Second)
	const topic, N, drops = "allowed.resume", 2000, 3

	sub, err := cons.Subscribe(ctx, topic, SubscribeOptions{From: Earliest(), Credit: 100})
	if err != nil {
		t.Fatal(err)
	}
	// The producer: one record at a time, retried when the connection is
	// lost with it in flight (it may then be appended twice, at two
	// offsets); acked[offset] = value.
	var mu sync.Mutex
	acked := map[int64]string{}
	prodDone := make(chan error, 1)
	go func() {
		for i := 0; i < N; i++ {
			v := fmt.Sprintf("r%05d", i)
			ack, err := prod.Produce(ctx, topic, Record{Value: []byte(v)})
			if errors.Is(err, ErrDisconnected) {
				i--
				continue
			}
			if err != nil {
				prodDone <- fmt.Errorf("record %d: %w", i, err)
				return
			}
			mu.Lock()
			acked[ack.Offset] = v
			mu.Unlock()
			time.Sleep(500 * time.Microsecond) // keep producing across the drops
		}
		prodDone <- nil
	}()

	seen := map[string]bool{}
	var next int64
	dropped := 0
	for len(seen) < N {
		r, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("after %d records: %v", next, err)
		}
		if r.Offset != next {
			t.Fatalf("offset %d after %d: a gap or a duplicate", r.Offset, next-1)
		}
		next++
		seen[string(r.Value)] = true
		if dropped < drops && len(seen) >= (dropped+1)*N/(drops+1) {
			if e.ts.dropConns() == 0 {
				t.Fatal("no connection to drop")
			}
			dropped++
		}
	}
	if err := <-prodDone; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	// Every acked record is where its ack said; nothing else was
	// delivered past the last acked offset.
	var maxOff int64 = -1
	for off := range acked {
		maxOff = max(maxOff, off)
	}
	if next != maxOff+1 {
		t.Fatalf("delivered offsets 0..%d, last ack at %d", next-1, maxOff)
	}
	for off, v := range acked {
		if !seen[v] {
			t.Fatalf("acked record %s at %d never delivered", v, off)
		}
	}
	for _, c := range []*Client{prod, cons} {
		if c.Connections() < drops+1 {
			t.Errorf("%d connections, want at least %d", c.Connections(), drops+1)
		}
		if c.AuthInfo().User != u.pub {
			t.Errorf("after reconnects authenticated as %q", c.AuthInfo().User)
		}
	}
	if n := int(cc.calls.Load()); n < 2*(drops+1) {
		t.Errorf("CredentialsFunc called %d times for at least %d connections", n, 2*(drops+1))
	}
}

// A token refreshed through CredentialsFunc keeps the connection alive
// past the first token's expiry, and records keep flowing.
func TestAuthRefresh(t *testing.T) {
	e := startAuthServer(t)
	u := e.newUser(t, time.Hour, false)
	cc := &credsCounter{e: e, t: t, pub: u.pub, ttl: 3 * time.Second}
	c := dial(t, e.ts.url, Options{Binary: true, CredentialsFunc: cc.fn})
	firstExpiry := c.AuthInfo().Expires
	if firstExpiry.IsZero() {
		t.Fatal("no expiry reported")
	}
	ctx := ctxT(t, 30*time.Second)
	const topic = "allowed.refresh"
	sub, err := c.Subscribe(ctx, topic, SubscribeOptions{From: Latest()})
	if err != nil {
		t.Fatal(err)
	}
	// Produce and consume until two token lifetimes after the first
	// expiry.
	end := firstExpiry.Add(2 * 3 * time.Second)
	n := 0
	for time.Now().Before(end) {
		v := fmt.Sprint(n)
		if _, err := c.Produce(ctx, topic, Record{Value: []byte(v)}); err != nil {
			t.Fatalf("produce %d at %v (first expiry %v): %v", n, time.Now(), firstExpiry, err)
		}
		r, err := sub.Next(ctx)
		if err != nil || string(r.Value) != v {
			t.Fatalf("record %d: %v %q", n, err, r.Value)
		}
		n++
		time.Sleep(50 * time.Millisecond)
	}
	if got := c.Connections(); got != 1 {
		t.Fatalf("%d connections: the connection did not survive its first token", got)
	}
	if calls := cc.calls.Load(); calls < 3 {
		t.Fatalf("CredentialsFunc called %d times over three token lifetimes", calls)
	}
	if exp := c.AuthInfo().Expires; !exp.After(firstExpiry) {
		t.Fatalf("expiry %v not moved past the first %v", exp, firstExpiry)
	}
}

// When refreshing fails, the server closes the connection with 4001 at
// expiry; with a CredentialsFunc the client reconnects with fresh
// credentials and the subscription resumes.
func TestAuthExpiredReconnects(t *testing.T) {
	e := startAuthServer(t)
	u := e.newUser(t, time.Hour, false)
	var calls atomic.Int32
	var closed4001 atomic.Bool
	fn := func(context.Context) (Credentials, error) {
		switch {
		case calls.Add(1) == 1:
			return Credentials{Bearer: e.issue(t, u.pub, 2*time.Second, true)}, nil
		case !closed4001.Load():
			return Credentials{}, errors.New("token service unavailable")
		}
		return Credentials{Bearer: e.issue(t, u.pub, time.Hour, true)}, nil
	}
	c := dial(t, e.ts.url, Options{CredentialsFunc: fn, MinBackoff: 10 * time.Millisecond, OnDisconnect: func(err error) {
		var ce *CloseError
		if errors.As(err, &ce) && ce.Code == CloseUnauthorized {
			closed4001.Store(true)
		}
	}})
	ctx := ctxT(t, 30*time.Second)
	const topic = "allowed.expiry"
	sub, err := c.Subscribe(ctx, topic, SubscribeOptions{From: Earliest()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Produce(ctx, topic, Record{Value: []byte("before")}); err != nil {
		t.Fatal(err)
	}
	for !closed4001.Load() {
		if ctx.Err() != nil {
			t.Fatal("no 4001 close")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := c.Produce(ctx, topic, Record{Value: []byte("after")}); err != nil {
		t.Fatalf("produce after the reconnect: %v", err)
	}
	for i, want := range []string{"before", "after"} {
		r, err := sub.Next(ctx)
		if err != nil || string(r.Value) != want || r.Offset != int64(i) {
			t.Fatalf("record %d: %v %+v, want %q", i, err, r, want)
		}
	}
	if c.Connections() != 2 {
		t.Fatalf("%d connections, want 2", c.Connections())
	}
	if d := time.Until(c.AuthInfo().Expires); d < 50*time.Minute {
		t.Fatalf("new token expires in %v", d)
	}
}

// Static credentials cannot be refreshed: at expiry the client ends with
// the 4001 close instead of reconnecting with the expired token.
func TestAuthStaticExpirySurfaces(t *testing.T) {
	e := startAuthServer(t)
	u := e.newUser(t, 2*time.Second, false)
	c := dial(t, e.ts.url, Options{Credentials: &Credentials{JWT: u.jwt, Seed: u.seed}, MinBackoff: 10 * time.Millisecond})
	ctx := ctxT(t, 20*time.Second)
	sub, err := c.Subscribe(ctx, "allowed.static", SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = sub.Next(ctx)
	var ce *CloseError
	if !errors.As(err, &ce) || ce.Code != CloseUnauthorized {
		t.Fatalf("Next: %v, want the 4001 close", err)
	}
	if _, err := c.Produce(ctx, "allowed.static", Record{Value: []byte("x")}); !errors.As(err, &ce) || ce.Code != CloseUnauthorized {
		t.Fatalf("Produce after expiry: %v, want the 4001 close", err)
	}
	if c.Connections() != 1 {
		t.Fatalf("%d connections: reconnected with an expired token", c.Connections())
	}
}

// A bearer JWT in the configured cookie authenticates the connection
// without credentials in Options; AuthInfo reports it.
func TestAuthCookie(t *testing.T) {
	e := startAuthServer(t, func(c *serverConfig) { c.authCookie = "samsa_token" })
	u := e.newUser(t, time.Hour, true)
	c := dial(t, e.ts.url, Options{Header: http.Header{"Cookie": {"samsa_token=" + u.jwt}}})
	ctx := ctxT(t, 10*time.Second)
	// The cookie's "authenticated" comes right after hello, before the pong.
	if _, err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if ai := c.AuthInfo(); ai.User != u.pub || ai.Expires.IsZero() {
		t.Fatalf("AuthInfo %+v, want %s with an expiry", ai, u.pub)
	}
	roundTrip(t, c, "allowed.cookie")
}
