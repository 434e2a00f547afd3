package auth

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/json"
	"errors"
	"hash"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// scramClient is the client side of RFC 5802, written from the RFC.
type scramClient struct {
	h          func() hash.Hash
	user, pass string
	gs2        string
	cnonce     string
	bare       string
	authMsg    string
	salted     []byte

	// tamper, when set, changes the client-final message before sending.
	tamper func(final string) string
}

func (c *scramClient) first() []byte {
	if c.gs2 == "" {
		c.gs2 = "n,,"
	}
	if c.cnonce == "" {
		c.cnonce = "fyko+d2lbbFgONRv9qkxdawL"
	}
	name := strings.NewReplacer("=", "=3D", ",", "=2C").Replace(c.user)
	c.bare = "n=" + name + ",r=" + c.cnonce
	return []byte(c.gs2 + c.bare)
}

func (c *scramClient) final(serverFirst []byte) ([]byte, error) {
	attrs := map[string]string{}
	for _, kv := range strings.Split(string(serverFirst), ",") {
		attrs[kv[:1]] = kv[2:]
	}
	if !strings.HasPrefix(attrs["r"], c.cnonce) || len(attrs["r"]) == len(c.cnonce) {
		return nil, errors.New("bad server nonce")
	}
	salt, err := base64.StdEncoding.DecodeString(attrs["s"])
	if err != nil {
		return nil, err
	}
	iter, err := strconv.Atoi(attrs["i"])
	if err != nil {
		return nil, err
	}
	size := c.h().Size()
	c.salted, err = pbkdf2.Key(c.h, c.pass, salt, iter, size)
	if err != nil {
		return nil, err
	}
	withoutProof := "c=" + base64.StdEncoding.EncodeToString([]byte(c.gs2)) + ",r=" + attrs["r"]
	c.authMsg = c.bare + "," + string(serverFirst) + "," + withoutProof
	clientKey := hmacSum(c.h, c.salted, "Client Key")
	sig := hmacSum(c.h, hashSum(c.h, clientKey), c.authMsg)
	proof := make([]byte, size)
	for i := range proof {
		proof[i] = clientKey[i] ^ sig[i]
	}
	final := withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)
	if c.tamper != nil {
		final = c.tamper(final)
	}
	return []byte(final), nil
}

func (c *scramClient) verifyServer(serverFinal []byte) error {
	want := "v=" + base64.StdEncoding.EncodeToString(hmacSum(c.h, hmacSum(c.h, c.salted, "Server Key"), c.authMsg))
	if !hmac.Equal([]byte(want), serverFinal) {
		return errors.New("server signature does not verify")
	}
	return nil
}

// converse runs a whole conversation; it returns the principal or the
// server's error.
func converse(t *testing.T, a *Authenticator, mech string, c *scramClient) (*Principal, error) {
	t.Helper()
	conv, err := a.ScramServer(mech)
	if err != nil {
		t.Fatal(err)
	}
	sf, done, err := conv.Step(c.first())
	if err != nil {
		return nil, err
	}
	if done {
		t.Fatal("done after client-first")
	}
	cf, err := c.final(sf)
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	sfin, done, err := conv.Step(cf)
	if err != nil {
		if conv.Principal() != nil {
			t.Fatal("principal after a failure")
		}
		return nil, err
	}
	if !done {
		t.Fatal("not done after client-final")
	}
	if err := c.verifyServer(sfin); err != nil {
		t.Fatalf("client: %v", err)
	}
	if _, _, err := conv.Step([]byte("more")); err == nil {
		t.Fatal("Step after done succeeded")
	}
	return conv.Principal(), nil
}

func TestScram(t *testing.T) {
	f := newFixture(t, func(c *Config) {
		hash, err := HashPasswordWithIterations("static-pw", 1000)
		if err != nil {
			t.Fatal(err)
		}
		c.Users = []StaticUser{{Name: "carol", PasswordHash: hash, Permissions: Permissions{Consume: []string{"c.>"}}}}
	})
	const pw = "pencil, =x"
	for _, m := range []struct {
		name string
		h    func() hash.Hash
	}{{MechScramSHA256, sha256.New}, {MechScramSHA512, sha512.New}} {
		if err := f.a.UpsertScramPassword("user,=1", m.name, pw, 4096); err != nil {
			t.Fatal(err)
		}
	}
	// carol has SCRAM credentials too: she gets her static permissions.
	if err := f.a.UpsertScramPassword("carol", MechScramSHA256, "carol-scram", 0); err != nil {
		t.Fatal(err)
	}
	for _, m := range []struct {
		name string
		h    func() hash.Hash
	}{{MechScramSHA256, sha256.New}, {MechScramSHA512, sha512.New}} {
		t.Run(m.name, func(t *testing.T) {
			for _, tc := range []struct {
				name   string
				c      scramClient
				ok     bool
				revoke bool
			}{
				{name: "good", c: scramClient{user: "user,=1", pass: pw}, ok: true},
				{name: "authzid equal to user", c: scramClient{user: "user,=1", pass: pw, gs2: "n,a=user=2C=3D1,"}, ok: true},
				{name: "y flag", c: scramClient{user: "user,=1", pass: pw, gs2: "y,,"}, ok: true},
				{name: "wrong password", c: scramClient{user: "user,=1", pass: "pencil"}},
				{name: "unknown user", c: scramClient{user: "nobody", pass: pw}},
				{name: "other authzid", c: scramClient{user: "user,=1", pass: pw, gs2: "n,a=admin,"}},
				{name: "channel binding", c: scramClient{user: "user,=1", pass: pw, gs2: "p=tls-unique,,"}},
				{name: "tampered proof", c: scramClient{user: "user,=1", pass: pw, tamper: func(s string) string {
					i := strings.Index(s, ",p=") + 5
					return flip(s, i)
				}}},
				{name: "tampered nonce", c: scramClient{user: "user,=1", pass: pw, tamper: func(s string) string {
					return strings.Replace(s, ",r=fyko", ",r=fyka", 1)
				}}},
				{name: "tampered channel binding", c: scramClient{user: "user,=1", pass: pw, tamper: func(s string) string {
					return strings.Replace(s, "c=biws", "c=eSws", 1)
				}}},
				{name: "no proof", c: scramClient{user: "user,=1", pass: pw, tamper: func(s string) string {
					return s[:strings.Index(s, ",p=")]
				}}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					c := tc.c
					c.h = m.h
					p, err := converse(t, f.a, m.name, &c)
					if !tc.ok {
						if err == nil || !errors.Is(err, ErrUnauthenticated) {
							t.Fatalf("err = %v, want a refusal", err)
						}
						if strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), c.pass) {
							t.Fatalf("error %q holds the password", err)
						}
						return
					}
					if err != nil {
						t.Fatalf("conversation: %v", err)
					}
					if p.Name != "user,=1" || p.Mechanism != m.name || p.Allowed(ProduceTopic, "x") {
						t.Fatalf("principal %+v", p)
					}
				})
			}
		})
	}
	t.Run("static permissions", func(t *testing.T) {
		p, err := converse(t, f.a, MechScramSHA256, &scramClient{h: sha256.New, user: "carol", pass: "carol-scram"})
		if err != nil {
			t.Fatal(err)
		}
		if !p.Allowed(ConsumeTopic, "c.1") {
			t.Fatalf("carol: %+v", p)
		}
		// No SHA-512 credential for carol.
		if _, err := converse(t, f.a, MechScramSHA512, &scramClient{h: sha512.New, user: "carol", pass: "carol-scram"}); err == nil {
			t.Fatal("SHA-512 without a credential succeeded")
		}
	})
	t.Run("scram file permissions", func(t *testing.T) {
		if err := f.a.SetScramPermissions("user,=1", &Permissions{Produce: []string{"x"}}); err != nil {
			t.Fatal(err)
		}
		defer f.a.SetScramPermissions("user,=1", nil)
		p, err := converse(t, f.a, MechScramSHA512, &scramClient{h: sha512.New, user: "user,=1", pass: pw})
		if err != nil {
			t.Fatal(err)
		}
		if !p.Allowed(ProduceTopic, "x") {
			t.Fatalf("perms %+v", p.Perms)
		}
	})
	t.Run("franz-go client", func(t *testing.T) {
		for _, mech := range []sasl.Mechanism{
			scram.Auth{User: "user,=1", Pass: pw}.AsSha256Mechanism(),
			scram.Auth{User: "user,=1", Pass: pw}.AsSha512Mechanism(),
		} {
			conv, err := f.a.ScramServer(mech.Name())
			if err != nil {
				t.Fatal(err)
			}
			sess, msg, err := mech.Authenticate(context.Background(), "broker:9092")
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; ; i++ {
				resp, sdone, err := conv.Step(msg)
				if err != nil {
					t.Fatalf("%s: server: %v", mech.Name(), err)
				}
				cdone, next, err := sess.Challenge(resp)
				if err != nil {
					t.Fatalf("%s: client: %v", mech.Name(), err)
				}
				if sdone != cdone {
					t.Fatalf("%s: server done %v, client done %v", mech.Name(), sdone, cdone)
				}
				if sdone {
					break
				}
				if i > 3 {
					t.Fatal("too many steps")
				}
				msg = next
			}
			if p := conv.Principal(); p == nil || p.Name != "user,=1" {
				t.Fatalf("principal %+v", p)
			}
		}
	})
	t.Run("unknown mechanism", func(t *testing.T) {
		if _, err := f.a.ScramServer("SCRAM-SHA-1"); !errors.Is(err, ErrUnsupportedMechanism) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("malformed", func(t *testing.T) {
		for _, msg := range []string{"", "n", "n,,", "x,,n=a,r=b", "n,,r=b,n=a", "n,,m=x,n=a,r=b", "n,,n=a", "n,,n=,r=b", "n,,n=a=,r=b", "n,,n=a,r=", "n,,n=a,r=b,tokenauth=true", "n,b,n=a,r=x"} {
			conv, _ := f.a.ScramServer(MechScramSHA256)
			if _, _, err := conv.Step([]byte(msg)); err == nil {
				t.Errorf("client-first %q accepted", msg)
			}
		}
	})
}

func TestScramUnknownUserLooksKnown(t *testing.T) {
	f := newFixture(t)
	first := func(user string) string {
		conv, _ := f.a.ScramServer(MechScramSHA256)
		out, _, err := conv.Step([]byte("n,,n=" + user + ",r=abc"))
		if err != nil {
			t.Fatal(err)
		}
		s := string(out)
		return s[strings.Index(s, ",s="):]
	}
	// Stable salt and iterations for the same unknown user, different for another.
	if a, b := first("ghost"), first("ghost"); a != b {
		t.Fatalf("fake salt changes: %q vs %q", a, b)
	}
	if a, b := first("ghost"), first("ghost2"); a == b {
		t.Fatal("same fake salt for two users")
	}
}

func TestScramAdmin(t *testing.T) {
	f := newFixture(t)
	salt := []byte("0123456789abcdef")
	sp256, _ := pbkdf2.Key(sha256.New, "pw", salt, 4096, 32)
	sp512, _ := pbkdf2.Key(sha512.New, "pw", salt, 8192, 64)
	for _, tc := range []struct {
		name, user, mech string
		iter             int
		salt, sp         []byte
		want             error
	}{
		{"ok 256", "alice", MechScramSHA256, 4096, salt, sp256, nil},
		{"ok 512", "alice", MechScramSHA512, 8192, salt, sp512, nil},
		{"ok lowercase mech", "bob", "scram-sha-256", 4096, salt, sp256, nil},
		{"too few iterations", "x", MechScramSHA256, 4095, salt, sp256, ErrUnacceptableCredential},
		{"too many iterations", "x", MechScramSHA256, 16385, salt, sp256, ErrUnacceptableCredential},
		{"empty salt", "x", MechScramSHA256, 4096, nil, sp256, ErrUnacceptableCredential},
		{"wrong length", "x", MechScramSHA512, 4096, salt, sp256, ErrUnacceptableCredential},
		{"empty user", "", MechScramSHA256, 4096, salt, sp256, ErrUnacceptableCredential},
		{"unknown mechanism", "x", "PLAIN", 4096, salt, sp256, ErrUnsupportedMechanism},
	} {
		err := f.a.UpsertScram(tc.user, tc.mech, tc.iter, tc.salt, tc.sp)
		if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
	got := f.a.DescribeScram()
	want := map[string][]ScramCredentialInfo{
		"alice": {{MechScramSHA256, 4096}, {MechScramSHA512, 8192}},
		"bob":   {{MechScramSHA256, 4096}},
	}
	if !equalJSON(got, want) {
		t.Fatalf("DescribeScram() = %v, want %v", got, want)
	}
	if got := f.a.DescribeScram("bob", "nobody"); !equalJSON(got, map[string][]ScramCredentialInfo{"bob": want["bob"]}) {
		t.Fatalf("DescribeScram(bob, nobody) = %v", got)
	}

	// The file is 0600, holds no password or salted password, and a new
	// Authenticator reads it.
	fi, err := os.Stat(f.cfg.ScramFile)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("scram file mode %v", fi.Mode())
	}
	data, _ := os.ReadFile(f.cfg.ScramFile)
	for _, secret := range [][]byte{sp256, sp512} {
		if strings.Contains(string(data), base64.StdEncoding.EncodeToString(secret)) {
			t.Fatal("the salted password is in the file")
		}
	}
	b, err := New(f.cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, mech := range []struct {
		name string
		h    func() hash.Hash
	}{{MechScramSHA256, sha256.New}, {MechScramSHA512, sha512.New}} {
		if _, err := converse(t, b, mech.name, &scramClient{h: mech.h, user: "alice", pass: "pw"}); err != nil {
			t.Fatalf("%s after reload: %v", mech.name, err)
		}
	}

	if err := f.a.DeleteScram("alice", MechScramSHA512); err != nil {
		t.Fatal(err)
	}
	if err := f.a.DeleteScram("alice", MechScramSHA512); !errors.Is(err, ErrNoCredential) {
		t.Fatalf("second delete: %v", err)
	}
	if err := f.a.DeleteScram("bob", MechScramSHA256); err != nil {
		t.Fatal(err)
	}
	if got := f.a.DescribeScram(); !equalJSON(got, map[string][]ScramCredentialInfo{"alice": {{MechScramSHA256, 4096}}}) {
		t.Fatalf("after deletes: %v", got)
	}
	if _, err := converse(t, f.a, MechScramSHA512, &scramClient{h: sha512.New, user: "alice", pass: "pw"}); err == nil {
		t.Fatal("deleted credential still works")
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(strings.TrimSuffix(f.cfg.ScramFile, "/scram.json"))
	if len(entries) != 1 {
		t.Fatalf("files next to the SCRAM file: %v", entries)
	}
}

func TestScramFileErrors(t *testing.T) {
	dir := t.TempDir()
	bad := dir + "/bad.json"
	for _, content := range []string{"{", `{"version":2,"users":{}}`, `{"version":1,"users":{"a":{"credentials":{"SCRAM-SHA-256":{"salt":"YQ==","iterations":4096,"stored_key":"YQ==","server_key":"YQ=="}}}}}`} {
		if err := os.WriteFile(bad, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if a, err := New(Config{ScramFile: bad}, nil); err == nil {
			a.Close()
			t.Errorf("New accepted SCRAM file %q", content)
		}
	}
	// A file that cannot be written leaves the credentials unchanged.
	ro := dir + "/ro"
	if err := os.Mkdir(ro, 0o500); err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{ScramFile: ro + "/scram.json"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if os.Geteuid() != 0 {
		if err := a.UpsertScramPassword("u", MechScramSHA256, "pw", 4096); err == nil {
			t.Fatal("upsert into a read-only directory succeeded")
		}
		if len(a.DescribeScram()) != 0 {
			t.Fatal("a failed upsert changed the credentials")
		}
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestPlain(t *testing.T) {
	hash, err := HashPasswordWithIterations("static-pw", 1000)
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, func(c *Config) {
		c.Users = []StaticUser{
			{Name: "ops", PasswordHash: hash, Permissions: Permissions{Admin: true}},
			{Name: "both", PasswordHash: hash, Permissions: Permissions{Produce: []string{"b"}}},
		}
	})
	if err := f.a.UpsertScramPassword("app", MechScramSHA512, "scram-pw", 4096); err != nil {
		t.Fatal(err)
	}
	if err := f.a.UpsertScramPassword("both", MechScramSHA256, "other-pw", 4096); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, user, pw string
		ok             bool
		check          func(*Principal) bool
	}{
		{"static", "ops", "static-pw", true, func(p *Principal) bool { return p.Allowed(ClusterAdmin, "") }},
		{"static again (cached)", "ops", "static-pw", true, nil},
		{"static wrong", "ops", "static-pW", false, nil},
		{"static empty password", "ops", "", false, nil},
		{"scram user", "app", "scram-pw", true, func(p *Principal) bool { return !p.Allowed(ProduceTopic, "x") && p.Name == "app" }},
		{"scram user wrong", "app", "static-pw", false, nil},
		{"static name, static password", "both", "static-pw", true, func(p *Principal) bool { return p.Allowed(ProduceTopic, "b") }},
		{"static name, scram password", "both", "other-pw", true, func(p *Principal) bool { return p.Allowed(ProduceTopic, "b") }},
		{"unknown", "nobody", "static-pw", false, nil},
		{"empty user", "", "static-pw", false, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := f.a.Plain(tc.user, tc.pw)
			if !tc.ok {
				if !errors.Is(err, ErrUnauthenticated) {
					t.Fatalf("err = %v, want a refusal", err)
				}
				if tc.pw != "" && strings.Contains(err.Error(), tc.pw) {
					t.Fatalf("error %q holds the password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Mechanism != MechPlain || p.Name != tc.user || (tc.check != nil && !tc.check(p)) {
				t.Fatalf("principal %+v", p)
			}
		})
	}
	// Revoking a user name refuses it after its password checked out.
	if err := os.WriteFile(f.cfg.RevocationFile, []byte("app\nops\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.a.ReloadRevocations()
	for _, u := range [][2]string{{"app", "scram-pw"}, {"ops", "static-pw"}} {
		if _, err := f.a.Plain(u[0], u[1]); !errors.Is(err, ErrRevoked) {
			t.Fatalf("revoked %s: %v", u[0], err)
		}
	}
	if _, err := f.a.Plain("app", "wrong"); errors.Is(err, ErrRevoked) {
		t.Fatal("revocation shown without the password")
	}
	if _, err := converse(t, f.a, MechScramSHA512, &scramClient{h: sha512.New, user: "app", pass: "scram-pw"}); !errors.Is(err, ErrRevoked) {
		t.Fatalf("SCRAM for a revoked user: %v", err)
	}
}

func TestPasswordHash(t *testing.T) {
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "pbkdf2-sha256$600000$") || strings.Contains(h, "correct horse") {
		t.Fatalf("hash %q", h)
	}
	if !CheckPassword(h, "correct horse") {
		t.Fatal("the password does not check")
	}
	// The rest with fewer iterations: 600000 are slow under -race.
	h, _ = HashPasswordWithIterations("correct horse", 1000)
	h2, _ := HashPasswordWithIterations("correct horse", 1000)
	if h == h2 {
		t.Fatal("same salt twice")
	}
	if _, err := HashPasswordWithIterations("x", 0); err == nil {
		t.Fatal("0 iterations accepted")
	}
	for _, tc := range []struct {
		hash, pw string
		ok       bool
	}{
		{h, "correct horse", true},
		{h, "correct horsE", false},
		{h, "", false},
		{"", "correct horse", false},
		{"pbkdf2-sha256$x$AAAA$AAAA", "a", false},
		{"pbkdf2-sha256$0$AAAA$AAAAAAAAAAAAAAAAAAAAAA", "a", false},
		{"pbkdf2-sha256$99999999999$AAAA$AAAAAAAAAAAAAAAAAAAAAA", "a", false},
		{"bcrypt$1$AAAA$AAAA", "a", false},
		{"pbkdf2-sha256$1000$!!$AAAAAAAAAAAAAAAAAAAAAA", "a", false},
	} {
		if got := CheckPassword(tc.hash, tc.pw); got != tc.ok {
			t.Errorf("CheckPassword(%q, %q) = %v", tc.hash, tc.pw, got)
		}
	}
	// Padded base64 and other iteration counts are accepted.
	salt := []byte("saltsalt")
	dk, _ := pbkdf2.Key(sha256.New, "pw", salt, 1000, 32)
	padded := "pbkdf2-sha256$1000$" + base64.StdEncoding.EncodeToString(salt) + "$" + base64.StdEncoding.EncodeToString(dk)
	if !CheckPassword(padded, "pw") {
		t.Fatal("padded hash refused")
	}
}

func TestRateLimit(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.FailedAuthPerMinute = 3 })
	now := time.Unix(1_700_000_000, 0)
	f.a.now = func() time.Time { return now }
	for i := range 3 {
		if err := f.a.RateLimit("10.0.0.1:5555"); err != nil {
			t.Fatalf("attempt %d limited: %v", i, err)
		}
		f.a.Failed("10.0.0.1:5555")
	}
	for _, tc := range []struct {
		ip      string
		limited bool
	}{
		{"10.0.0.1", true},
		{"10.0.0.1:6000", true},
		{"::ffff:10.0.0.1", true},
		{"10.0.0.2", false},
		{"2001:db8::1", false},
	} {
		if err := f.a.RateLimit(tc.ip); (err != nil) != tc.limited || (err != nil && !errors.Is(err, ErrRateLimited)) {
			t.Errorf("RateLimit(%s) = %v, want limited %v", tc.ip, err, tc.limited)
		}
	}
	// Successes cost nothing.
	for range 10 {
		if err := f.a.RateLimit("10.0.0.2"); err != nil {
			t.Fatal(err)
		}
	}
	// One token comes back every 60s/3.
	now = now.Add(19 * time.Second)
	if f.a.RateLimit("10.0.0.1") == nil {
		t.Fatal("refilled too early")
	}
	now = now.Add(2 * time.Second)
	if err := f.a.RateLimit("10.0.0.1"); err != nil {
		t.Fatalf("not refilled after 21s: %v", err)
	}
	f.a.Failed("10.0.0.1")
	if f.a.RateLimit("10.0.0.1") == nil {
		t.Fatal("not limited again")
	}
	// IPv6 addresses share a bucket per /64.
	for range 3 {
		f.a.Failed("[2001:db8:1:2::1]:9092")
	}
	if f.a.RateLimit("2001:db8:1:2:ffff::7") == nil {
		t.Fatal("same /64 not limited")
	}
	if f.a.RateLimit("2001:db8:1:3::1") != nil {
		t.Fatal("another /64 limited")
	}
	// Full buckets are forgotten.
	now = now.Add(time.Hour)
	f.a.rl.sweep(now)
	if n := len(f.a.rl.buckets); n != 0 {
		t.Fatalf("%d buckets left after a sweep", n)
	}
}

// TestNoSecretsInErrorsOrLogs runs failing and succeeding operations with
// secrets in them and checks that no error string or log line holds one.
func TestNoSecretsInErrorsOrLogs(t *testing.T) {
	const pw = "Sup3r-Secret-Passw0rd"
	hash, _ := HashPasswordWithIterations(pw, 1000)
	f := newFixture(t, func(c *Config) {
		c.Users = []StaticUser{{Name: "ops", PasswordHash: hash, Permissions: Permissions{Admin: true}}}
	})
	u := newUser(t)
	tok := f.issue(t, u.pub, Permissions{Produce: []string{"a"}}, time.Hour, false)
	parts := strings.Split(tok, ".")
	secrets := []string{pw, f.issuerSeed, u.seed, parts[1], parts[2], hash}

	var errs []error
	record := func(_ any, err error) { errs = append(errs, err) }
	record(f.a.Plain("ops", pw+"x"))
	record(f.a.Plain("nobody", pw))
	record(f.a.Plain("ops", pw))
	record(f.a.VerifyBearer(tok))
	record(f.a.VerifyJWT(flip(tok, len(parts[0])+5)))
	record(f.a.VerifyNonce(tok, []byte("nonce"), []byte("sig")))
	record(IssueUserJWT(u.seed, u.pub, Permissions{}, time.Hour, false, ""))            // a user seed is no issuer
	record(IssueUserJWT(f.issuerSeed[:20], u.pub, Permissions{}, time.Hour, false, "")) // a broken seed
	record(IssueUserJWT(f.issuerSeed, u.seed, Permissions{}, time.Hour, false, ""))     // a seed where the public key goes
	record(PublicKeyOf(u.seed + "x"))
	record(New(Config{Users: []StaticUser{{Name: "x", PasswordHash: hash + "x$y"}}}, nil))
	record(New(Config{Issuers: []string{f.issuerSeed}}, nil))
	record(nil, f.a.UpsertScramPassword("x", MechScramSHA256, pw, 1))
	conv, _ := f.a.ScramServer(MechScramSHA256)
	record(nil, func() error { _, _, err := conv.Step([]byte("n,,n=ops,r=" + pw)); return err }())
	record(nil, func() error { _, _, err := conv.Step([]byte("c=biws,r=x,p=" + pw)); return err }())

	var n int
	for _, err := range errs {
		if err == nil {
			continue
		}
		n++
		for _, s := range secrets {
			if s != "" && strings.Contains(err.Error(), s) {
				t.Errorf("error %q holds a secret", err)
			}
		}
		// A seed's prefix is as telling as the seed.
		if strings.Contains(err.Error(), f.issuerSeed[:20]) || strings.Contains(err.Error(), u.seed[:20]) {
			t.Errorf("error %q holds part of a seed", err)
		}
	}
	if n < 10 {
		t.Fatalf("only %d errors", n)
	}
	logs := f.logs.String()
	for _, s := range secrets {
		if strings.Contains(logs, s) {
			t.Errorf("the log holds a secret: %s", logs)
		}
	}
}
