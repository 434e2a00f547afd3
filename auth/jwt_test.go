package auth

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nkeys"
)

var (
	jsonMarshal   = json.Marshal
	jsonUnmarshal = json.Unmarshal
)

// syncBuffer is a log sink safe for the watcher goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fixture struct {
	a          *Authenticator
	cfg        Config
	issuerSeed string
	issuerPub  string
	logs       *syncBuffer
}

func newFixture(t testing.TB, tweak ...func(*Config)) *fixture {
	t.Helper()
	seed, pub, err := NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := Config{
		Enabled:             true,
		Issuers:             []string{pub},
		ScramFile:           filepath.Join(dir, "auth", "scram.json"),
		RevocationFile:      filepath.Join(dir, "revoked"),
		RevocationPoll:      20 * time.Millisecond,
		FailedAuthPerMinute: 1000,
	}
	for _, f := range tweak {
		f(&cfg)
	}
	logs := &syncBuffer{}
	a, err := New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return &fixture{a: a, cfg: cfg, issuerSeed: seed, issuerPub: pub, logs: logs}
}

type testUser struct {
	seed, pub string
	kp        nkeys.KeyPair
}

func newUser(t testing.TB) testUser {
	t.Helper()
	seed, pub, err := NewUserKey()
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		t.Fatal(err)
	}
	return testUser{seed, pub, kp}
}

func (f *fixture) issue(t testing.TB, pub string, perms Permissions, ttl time.Duration, bearer bool) string {
	t.Helper()
	tok, err := IssueUserJWT(f.issuerSeed, pub, perms, ttl, bearer, "tester")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// encodeWith signs claims for u with the account key kp via the jwt library,
// after edit changes them.
func encodeWith(t testing.TB, kp nkeys.KeyPair, sub string, edit func(*jwt.UserClaims)) string {
	t.Helper()
	uc := jwt.NewUserClaims(sub)
	uc.Pub.Allow.Add("t")
	if edit != nil {
		edit(uc)
	}
	tok, err := uc.Encode(kp)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestJWTRoundTrip(t *testing.T) {
	f := newFixture(t)
	opSeed, opPub, err := NewOperatorIssuer()
	if err != nil {
		t.Fatal(err)
	}
	f2 := newFixture(t, func(c *Config) { c.Issuers = []string{opPub} })
	perms := Permissions{
		Produce:     []string{"sensors.>", "Orders"},
		Consume:     []string{"alerts.*"},
		ConsumeDeny: []string{"alerts.private"},
		Groups:      []string{"Dash.*", "g1"},
		Admin:       true,
		Filters:     true,
	}
	for _, tc := range []struct {
		name   string
		a      *Authenticator
		seed   string
		issuer string
		perms  Permissions
		bearer bool
	}{
		{"account issuer", f.a, f.issuerSeed, f.issuerPub, perms, false},
		{"account issuer bearer", f.a, f.issuerSeed, f.issuerPub, perms, true},
		{"operator issuer", f2.a, opSeed, opPub, perms, false},
		{"no permissions", f.a, f.issuerSeed, f.issuerPub, Permissions{}, true},
		{"only groups", f.a, f.issuerSeed, f.issuerPub, Permissions{Groups: []string{">"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := newUser(t)
			before := time.Now().Truncate(time.Second)
			tok, err := IssueUserJWT(tc.seed, u.pub, tc.perms, time.Hour, tc.bearer, "alice")
			if err != nil {
				t.Fatal(err)
			}
			p, err := tc.a.VerifyJWT(tok)
			if err != nil {
				t.Fatalf("VerifyJWT: %v", err)
			}
			if p.Name != u.pub || p.PublicKey != u.pub || p.Issuer != tc.issuer || p.JWTName != "alice" || p.Bearer != tc.bearer || p.Mechanism != MechOAuthBearer {
				t.Fatalf("principal %+v", p)
			}
			if !reflect.DeepEqual(normPerms(p.Perms), normPerms(tc.perms)) {
				t.Fatalf("perms = %+v, want %+v", p.Perms, tc.perms)
			}
			if exp := p.Expires.Sub(before); exp < time.Hour || exp > time.Hour+2*time.Second {
				t.Fatalf("expires in %v, want about 1h", exp)
			}
			// The token is a nats v2 user JWT.
			uc, err := decodeClaims(tok)
			if err != nil {
				t.Fatal(err)
			}
			if uc.Subject != u.pub || uc.Issuer != tc.issuer || uc.IsBearerToken() != tc.bearer {
				t.Fatalf("claims %+v", uc)
			}
			if nkeys.IsValidPublicAccountKey(tc.issuer) {
				// NATS tooling reads it too.
				if _, err := jwt.DecodeUserClaims(tok); err != nil {
					t.Fatalf("jwt.DecodeUserClaims: %v", err)
				}
			}
		})
	}
}

// decodeClaims parses a token's claims without verifying it.
func decodeClaims(tok string) (*jwt.UserClaims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errors.New("not 3 parts")
	}
	b, err := b64url.DecodeString(parts[1])
	if err != nil {
		return nil, err
	}
	var uc jwt.UserClaims
	return &uc, jsonUnmarshal(b, &uc)
}

func normPerms(p Permissions) Permissions {
	n := func(s []string) []string {
		if len(s) == 0 {
			return nil
		}
		return s
	}
	p.Produce, p.Consume, p.Groups, p.ProduceDeny, p.ConsumeDeny = n(p.Produce), n(p.Consume), n(p.Groups), n(p.ProduceDeny), n(p.ConsumeDeny)
	return p
}

func TestJWTNSCStyle(t *testing.T) {
	// A token as nsc writes it: account-signed, lowercased tags, issuer
	// account set when signed by a signing key.
	f := newFixture(t)
	acct, _ := nkeys.FromSeed([]byte(f.issuerSeed))
	u := newUser(t)
	tok := encodeWith(t, acct, u.pub, func(uc *jwt.UserClaims) {
		uc.Sub.Allow.Add("a.>")
		uc.Tags.Add("SAMSA:Group:G1", "samsa:filters")
	})
	p, err := f.a.VerifyJWT(tok)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Allowed(JoinGroup, "g1") || !p.Allowed(DeployFilter, "x") || !p.Allowed(ConsumeTopic, "a.b") || !p.Allowed(ProduceTopic, "t") || p.Allowed(ClusterAdmin, "") {
		t.Fatalf("perms %+v", p.Perms)
	}
	if !p.Expires.IsZero() {
		t.Fatalf("no exp, got %v", p.Expires)
	}

	// Signed by an account signing key on behalf of an account.
	signer, _ := nkeys.CreateAccount()
	signerPub, _ := signer.PublicKey()
	ownerKP, _ := nkeys.CreateAccount()
	owner, _ := ownerKP.PublicKey()
	tok = encodeWith(t, signer, u.pub, func(uc *jwt.UserClaims) { uc.IssuerAccount = owner })
	for _, tc := range []struct {
		name    string
		issuers []string
		ok      bool
	}{
		{"neither trusted", []string{f.issuerPub}, false},
		{"only signing key trusted", []string{signerPub}, false},
		{"only account trusted", []string{owner}, false},
		{"both trusted", []string{signerPub, owner}, true},
	} {
		g := newFixture(t, func(c *Config) { c.Issuers = tc.issuers })
		_, err := g.a.VerifyJWT(tok)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v, want ok %v", tc.name, err, tc.ok)
		}
	}
}

func TestJWTTime(t *testing.T) {
	f := newFixture(t)
	acct, _ := nkeys.FromSeed([]byte(f.issuerSeed))
	u := newUser(t)
	now := time.Now()
	for _, tc := range []struct {
		name    string
		tok     string
		at      time.Time
		wantErr error
	}{
		{"valid", f.issue(t, u.pub, Permissions{}, time.Minute, true), now, nil},
		{"expired", f.issue(t, u.pub, Permissions{}, time.Minute, true), now.Add(2 * time.Minute), ErrExpired},
		{"expired long ago", encodeWith(t, acct, u.pub, func(uc *jwt.UserClaims) { uc.Expires = now.Add(-time.Hour).Unix() }), now, ErrExpired},
		{"no expiry", f.issue(t, u.pub, Permissions{}, 0, true), now.Add(24 * 365 * time.Hour), nil},
		{"not yet valid", encodeWith(t, acct, u.pub, func(uc *jwt.UserClaims) { uc.NotBefore = now.Add(time.Hour).Unix() }), now, ErrUnauthenticated},
		{"valid after nbf", encodeWith(t, acct, u.pub, func(uc *jwt.UserClaims) { uc.NotBefore = now.Add(time.Hour).Unix() }), now.Add(2 * time.Hour), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.a.now = func() time.Time { return tc.at }
			defer func() { f.a.now = time.Now }()
			_, err := f.a.VerifyJWT(tc.tok)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("VerifyJWT: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != ErrExpired && errors.Is(err, ErrExpired) {
				t.Fatalf("err = %v: not an expiry", err)
			}
		})
	}
}

// flip changes the character at i of s to another base64url character.
func flip(s string, i int) string {
	c := s[i]
	r := byte('A')
	if c == 'A' {
		r = 'B'
	}
	return s[:i] + string(r) + s[i+1:]
}

func TestJWTRefused(t *testing.T) {
	f := newFixture(t)
	u := newUser(t)
	good := f.issue(t, u.pub, Permissions{Produce: []string{"a"}}, time.Hour, true)
	if _, err := f.a.VerifyJWT(good); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, ".")
	hl, cl := len(parts[0]), len(parts[1])

	otherSeed, _, _ := NewIssuer()
	untrusted, err := IssueUserJWT(otherSeed, u.pub, Permissions{Produce: []string{"a"}}, time.Hour, true, "")
	if err != nil {
		t.Fatal(err)
	}
	// Same claims, signed by the untrusted key but claiming the trusted issuer.
	up := strings.Split(untrusted, ".")
	claims, _ := decodeClaims(good)
	claims.Issuer = f.issuerPub
	cb, _ := jsonMarshal(claims)
	otherKP, _ := nkeys.FromSeed([]byte(otherSeed))
	toSign := up[0] + "." + b64url.EncodeToString(cb)
	sig, _ := otherKP.Sign([]byte(toSign))
	forged := toSign + "." + b64url.EncodeToString(sig)

	// A user key is not an issuer.
	selfSigned := encodeUserSigned(t, u)

	for _, tc := range []struct{ name, tok string }{
		{"empty", ""},
		{"garbage", "not a token"},
		{"two parts", parts[0] + "." + parts[1]},
		{"four parts", good + ".x"},
		{"payload byte flipped", flip(good, hl+1+cl/2)},
		{"payload first byte flipped", flip(good, hl+1)},
		{"signature byte flipped", flip(good, hl+1+cl+1+10)},
		{"signature first byte flipped", flip(good, hl+1+cl+1)},
		{"header byte flipped", flip(good, 3)},
		{"signature truncated", good[:len(good)-4]},
		{"signature removed", parts[0] + "." + parts[1] + "."},
		{"signature padded", good + "="},
		{"newline in signature", good[:len(good)-5] + "\n" + good[len(good)-5:]},
		{"untrusted issuer", untrusted},
		{"forged issuer", forged},
		{"user-signed", selfSigned},
		{"alg none", b64url.EncodeToString([]byte(`{"typ":"JWT","alg":"none"}`)) + "." + parts[1] + "."},
		{"too large", strings.Repeat("a", maxTokenLen+1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := f.a.VerifyJWT(tc.tok)
			if err == nil {
				t.Fatalf("verified: %+v", p)
			}
			if !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("err = %v, want ErrUnauthenticated", err)
			}
			if _, err := f.a.VerifyBearer(tc.tok); err == nil {
				t.Fatal("VerifyBearer verified it")
			}
		})
	}
}

// encodeUserSigned returns a user JWT signed by the user itself.
func encodeUserSigned(t testing.TB, u testUser) string {
	t.Helper()
	uc := jwt.NewUserClaims(u.pub)
	uc.Issuer = u.pub
	uc.User.Type = jwt.UserClaim
	uc.User.Version = 2
	hb, _ := jsonMarshal(jwtHeader{Type: "JWT", Alg: algNKey})
	cb, _ := jsonMarshal(uc)
	toSign := b64url.EncodeToString(hb) + "." + b64url.EncodeToString(cb)
	sig, _ := u.kp.Sign([]byte(toSign))
	return toSign + "." + b64url.EncodeToString(sig)
}

func TestBearerAndNonce(t *testing.T) {
	static := newUser(t)
	f := newFixture(t, func(c *Config) {
		c.Users = []StaticUser{{Name: "device", NKey: static.pub, Permissions: Permissions{Produce: []string{"dev.>"}}}}
	})
	u := newUser(t)
	other := newUser(t)
	bearer := f.issue(t, u.pub, Permissions{Consume: []string{"x"}}, time.Hour, true)
	plain := f.issue(t, u.pub, Permissions{Consume: []string{"x"}}, time.Hour, false)
	nonce := []byte("0123456789abcdef")
	sig, _ := u.kp.Sign(nonce)
	wrongKeySig, _ := other.kp.Sign(nonce)
	otherNonceSig, _ := u.kp.Sign([]byte("another nonce!!!"))
	staticSig, _ := static.kp.Sign(nonce)

	t.Run("bearer", func(t *testing.T) {
		p, err := f.a.VerifyBearer(bearer)
		if err != nil || !p.Bearer || p.Mechanism != MechBearer {
			t.Fatalf("VerifyBearer(bearer) = %+v, %v", p, err)
		}
		if _, err := f.a.VerifyBearer(plain); !errors.Is(err, ErrUnauthenticated) {
			t.Fatalf("VerifyBearer(non-bearer) err = %v", err)
		}
	})
	for _, tc := range []struct {
		name  string
		tok   string
		nonce []byte
		sig   []byte
		ok    bool
		mech  string
	}{
		{"good", plain, nonce, sig, true, MechNKey},
		{"bearer token refused", bearer, nonce, sig, false, ""},
		{"wrong key", plain, nonce, wrongKeySig, false, ""},
		{"wrong nonce", plain, nonce, otherNonceSig, false, ""},
		{"empty sig", plain, nonce, nil, false, ""},
		{"empty nonce", plain, nil, sig, false, ""},
		{"truncated sig", plain, nonce, sig[:32], false, ""},
		{"static nkey user", static.pub, nonce, staticSig, true, MechNKey},
		{"static nkey user wrong sig", static.pub, nonce, sig, false, ""},
		{"unknown nkey user", other.pub, nonce, wrongKeySig, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := f.a.VerifyNonce(tc.tok, tc.nonce, tc.sig)
			if tc.ok {
				if err != nil {
					t.Fatalf("VerifyNonce: %v", err)
				}
				if p.Mechanism != tc.mech || p.Bearer {
					t.Fatalf("principal %+v", p)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrUnauthenticated) {
				t.Fatalf("VerifyNonce err = %v, want refusal", err)
			}
		})
	}
	p, err := f.a.VerifyNonce(static.pub, nonce, staticSig)
	if err != nil || p.Name != "device" || p.PublicKey != static.pub || !p.Allowed(ProduceTopic, "dev.a") || !p.Expires.IsZero() {
		t.Fatalf("static principal %+v, %v", p, err)
	}
}

func TestRevocation(t *testing.T) {
	f := newFixture(t)
	u := newUser(t)
	other := newUser(t)
	tok := f.issue(t, u.pub, Permissions{}, time.Hour, true)
	otherTok := f.issue(t, other.pub, Permissions{}, time.Hour, true)
	if _, err := f.a.VerifyJWT(tok); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	cancel := f.a.OnRevoke(func(id string) { got <- id })
	defer cancel()

	write := func(s string) {
		t.Helper()
		tmp := f.cfg.RevocationFile + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, f.cfg.RevocationFile); err != nil {
			t.Fatal(err)
		}
	}
	write("# revoked users\n\n" + u.pub + "  # lost laptop\n")
	select {
	case id := <-got:
		if id != u.pub {
			t.Fatalf("OnRevoke(%q), want %q", id, u.pub)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no OnRevoke after the file changed")
	}
	if !f.a.Revoked(u.pub) || f.a.Revoked(other.pub) {
		t.Fatal("Revoked wrong")
	}
	if _, err := f.a.VerifyJWT(tok); !errors.Is(err, ErrRevoked) {
		t.Fatalf("VerifyJWT after revocation: %v", err)
	}
	if _, err := f.a.VerifyBearer(tok); !errors.Is(err, ErrRevoked) {
		t.Fatalf("VerifyBearer after revocation: %v", err)
	}
	if _, err := f.a.VerifyJWT(otherTok); err != nil {
		t.Fatalf("another user: %v", err)
	}

	// Revoking the issuer revokes every token it signed.
	write(u.pub + "\n" + f.issuerPub + "\n")
	select {
	case id := <-got:
		if id != f.issuerPub {
			t.Fatalf("OnRevoke(%q), want the issuer", id)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no OnRevoke for the issuer")
	}
	if _, err := f.a.VerifyJWT(otherTok); !errors.Is(err, ErrRevoked) {
		t.Fatalf("token of a revoked issuer: %v", err)
	}

	// Un-revoking works too, and removing the file revokes nothing.
	if err := os.Remove(f.cfg.RevocationFile); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.a.Revoked(u.pub) {
		if time.Now().After(deadline) {
			t.Fatal("the removed file still revokes")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := f.a.VerifyJWT(tok); err != nil {
		t.Fatal(err)
	}
	select {
	case id := <-got:
		t.Fatalf("unexpected OnRevoke(%q)", id)
	default:
	}
}

func TestRevocationDefaultPoll(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for the 2s poll")
	}
	f := newFixture(t, func(c *Config) { c.RevocationPoll = 0 })
	u := newUser(t)
	tok := f.issue(t, u.pub, Permissions{}, time.Hour, true)
	if err := os.WriteFile(f.cfg.RevocationFile, []byte(u.pub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(6 * time.Second)
	for {
		_, err := f.a.VerifyJWT(tok)
		if errors.Is(err, ErrRevoked) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still accepted 6s after the revocation file changed: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
