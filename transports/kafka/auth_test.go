package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"io"
	"maps"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/samsa-broker/samsa/auth"
	"github.com/samsa-broker/samsa/broker"
	"github.com/samsa-broker/samsa/wasm"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

const testPassword = "pw-Zq8#kLx2"

// limitedPerms is what the non-admin users (alice, bob, JWT users) may do.
var limitedPerms = auth.Permissions{Produce: []string{"orders.>"}, Consume: []string{"orders.>"}, Groups: []string{"g-ok"}}

// authFixture is a server with auth on: static PLAIN users admin and alice,
// SCRAM user bob (both mechanisms), and an issuer for JWT users.
type authFixture struct {
	*testEnv
	a          *auth.Authenticator
	issuerSeed string
	issuerPub  string
	revFile    string
}

// cheapHash is a password_hash with few iterations, so that tests (and
// -race) do not pay 600000 PBKDF2 rounds per login.
func cheapHash(t testing.TB, pw string) string {
	t.Helper()
	salt := []byte("0123456789abcdef")
	dk, err := pbkdf2.Key(sha256.New, pw, salt, 1000, 32)
	if err != nil {
		t.Fatal(err)
	}
	enc := base64.RawStdEncoding
	return "pbkdf2-sha256$1000$" + enc.EncodeToString(salt) + "$" + enc.EncodeToString(dk)
}

func startAuthServer(t *testing.T, cfgTweak func(*auth.Config), tweak ...func(*broker.Options, *Options)) *authFixture {
	t.Helper()
	seed, pub, err := auth.NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	rev := filepath.Join(t.TempDir(), "revoked")
	if err := os.WriteFile(rev, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := auth.Config{
		Enabled:        true,
		Issuers:        []string{pub},
		RevocationFile: rev,
		RevocationPoll: 50 * time.Millisecond,
		Users: []auth.StaticUser{
			{Name: "admin", PasswordHash: cheapHash(t, testPassword), Permissions: auth.Permissions{Admin: true}},
			{Name: "alice", PasswordHash: cheapHash(t, testPassword), Permissions: limitedPerms},
		},
	}
	if cfgTweak != nil {
		cfgTweak(&cfg)
	}
	a, err := auth.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close() }) // after the server's cleanup
	for _, m := range []string{auth.MechScramSHA256, auth.MechScramSHA512} {
		if err := a.UpsertScramPassword("bob", m, testPassword, 4096); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.SetScramPermissions("bob", &limitedPerms); err != nil {
		t.Fatal(err)
	}
	e := startServer(t, append(tweak, func(_ *broker.Options, o *Options) { o.Auth = a })...)
	for _, topic := range []string{"orders.a", "secret"} {
		if _, err := e.b.CreateTopic(topic, 1, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	return &authFixture{testEnv: e, a: a, issuerSeed: seed, issuerPub: pub, revFile: rev}
}

// userJWT issues a bearer JWT for a new user key; it returns the token and
// the user's public key.
func (f *authFixture) userJWT(t testing.TB, perms auth.Permissions, expires time.Duration) (string, string) {
	t.Helper()
	_, pub, err := auth.NewUserKey()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auth.IssueUserJWT(f.issuerSeed, pub, perms, expires, true, "test user")
	if err != nil {
		t.Fatal(err)
	}
	return tok, pub
}

func (f *authFixture) saslClient(t testing.TB, m sasl.Mechanism, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return f.client(t, append([]kgo.Opt{kgo.SASL(m), kgo.RetryTimeout(3 * time.Second)}, opts...)...)
}

func plainMech(user, pw string) sasl.Mechanism {
	return plain.Auth{User: user, Pass: pw}.AsMechanism()
}

func oauthMech(token string) sasl.Mechanism {
	return oauth.Auth{Token: token}.AsMechanism()
}

func oauthMessage(token string) []byte {
	return []byte("n,,\x01auth=Bearer " + token + "\x01\x01")
}

// saslConn is a raw connection that speaks SASL by hand.
type saslConn struct {
	*rawConn
	corr int32
}

func (f *authFixture) dialSASL(t testing.TB) *saslConn {
	return &saslConn{rawConn: f.dial(t)}
}

func (c *saslConn) roundTrip(req kmsg.Request, resp kmsg.Response) {
	c.t.Helper()
	c.corr++
	c.send(req, c.corr)
	resp.SetVersion(req.GetVersion())
	c.recv(c.corr, resp)
}

func (c *saslConn) handshake(version int16, mech string) *kmsg.SASLHandshakeResponse {
	c.t.Helper()
	req := kmsg.NewPtrSASLHandshakeRequest()
	req.Version, req.Mechanism = version, mech
	resp := kmsg.NewPtrSASLHandshakeResponse()
	c.roundTrip(req, resp)
	return resp
}

func (c *saslConn) authenticate(version int16, msg []byte) *kmsg.SASLAuthenticateResponse {
	c.t.Helper()
	req := kmsg.NewPtrSASLAuthenticateRequest()
	req.Version, req.SASLAuthBytes = version, msg
	resp := kmsg.NewPtrSASLAuthenticateResponse()
	c.roundTrip(req, resp)
	return resp
}

// login authenticates with one PLAIN or OAUTHBEARER message and fails the
// test unless it succeeds.
func (c *saslConn) login(mech string, msg []byte) *kmsg.SASLAuthenticateResponse {
	c.t.Helper()
	if hs := c.handshake(1, mech); hs.ErrorCode != 0 {
		c.t.Fatalf("SaslHandshake %s: error %d", mech, hs.ErrorCode)
	}
	resp := c.authenticate(2, msg)
	if resp.ErrorCode != 0 {
		c.t.Fatalf("SaslAuthenticate %s: error %d %s", mech, resp.ErrorCode, strOrEmpty(resp.ErrorMessage))
	}
	return resp
}

// metadataOK sends a Metadata request and fails the test unless it is
// answered.
func (c *saslConn) metadataOK() *kmsg.MetadataResponse {
	c.t.Helper()
	resp := kmsg.NewPtrMetadataResponse()
	c.roundTrip(metadataReq(12), resp)
	return resp
}

func produceConsume(t *testing.T, cl *kgo.Client, topic, value string) {
	t.Helper()
	ctx := testCtx(t)
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(value)}).FirstErr(); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
	cl.AddConsumeTopics(topic)
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consume %s: %v", topic, ctx.Err())
		}
		for _, fe := range fs.Errors() {
			t.Fatalf("fetch %s: %v", fe.Topic, fe.Err)
		}
		for _, r := range fs.Records() {
			if string(r.Value) == value {
				return
			}
		}
	}
}

// TestSASLMechanisms: franz-go authenticates with every mechanism and then
// produces and consumes within its permissions.
func TestSASLMechanisms(t *testing.T) {
	f := startAuthServer(t, nil)
	tok, _ := f.userJWT(t, limitedPerms, time.Hour)
	for _, tc := range []struct {
		name string
		mech sasl.Mechanism
	}{
		{"PLAIN static user", plainMech("alice", testPassword)},
		{"PLAIN SCRAM user", plainMech("bob", testPassword)},
		{"SCRAM-SHA-256", scram.Auth{User: "bob", Pass: testPassword}.AsSha256Mechanism()},
		{"SCRAM-SHA-512", scram.Auth{User: "bob", Pass: testPassword}.AsSha512Mechanism()},
		{"OAUTHBEARER JWT", oauthMech(tok)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := f.saslClient(t, tc.mech, kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			produceConsume(t, cl, "orders.a", tc.name)
		})
	}
	if !strings.Contains(f.logs.String(), "kafka client authenticated") {
		t.Fatal("no log line for the authentications")
	}
}

// TestSASLFailures: wrong passwords, unknown users and bad JWTs fail with
// SASL_AUTHENTICATION_FAILED, whose message holds no secret; the
// connection is closed after the answer.
func TestSASLFailures(t *testing.T) {
	f := startAuthServer(t, nil)
	good, _ := f.userJWT(t, limitedPerms, time.Hour)
	expired, _ := f.userJWT(t, limitedPerms, time.Second)
	other, err := func() (string, error) {
		seed, _, err := auth.NewIssuer()
		if err != nil {
			return "", err
		}
		_, pub, err := auth.NewUserKey()
		if err != nil {
			return "", err
		}
		return auth.IssueUserJWT(seed, pub, limitedPerms, time.Hour, true, "untrusted")
	}()
	if err != nil {
		t.Fatal(err)
	}
	// A non-bearer JWT proves nothing without a signed nonce: OAUTHBEARER
	// refuses it.
	_, nbPub, err := auth.NewUserKey()
	if err != nil {
		t.Fatal(err)
	}
	nonBearer, err := auth.IssueUserJWT(f.issuerSeed, nbPub, limitedPerms, time.Hour, false, "not bearer")
	if err != nil {
		t.Fatal(err)
	}
	// A tampered JWT: the claims say admin, the signature is the old one.
	parts := strings.Split(good, ".")
	claims, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(claims), `"tags":[`, `"tags":["samsa:admin",`, 1))) + "." + parts[2]
	if tampered == good {
		t.Fatal("tampering changed nothing")
	}
	time.Sleep(2100 * time.Millisecond) // expired expires

	wrong := "not-" + testPassword
	for _, tc := range []struct {
		name   string
		mech   sasl.Mechanism
		secret string
	}{
		{"PLAIN wrong password", plainMech("alice", wrong), wrong},
		{"PLAIN unknown user", plainMech("mallory", testPassword), testPassword},
		{"PLAIN SCRAM user wrong password", plainMech("bob", wrong), wrong},
		{"SCRAM-SHA-256 wrong password", scram.Auth{User: "bob", Pass: wrong}.AsSha256Mechanism(), wrong},
		{"SCRAM-SHA-512 unknown user", scram.Auth{User: "mallory", Pass: testPassword}.AsSha512Mechanism(), testPassword},
		{"OAUTHBEARER tampered JWT", oauthMech(tampered), tampered},
		{"OAUTHBEARER non-bearer JWT", oauthMech(nonBearer), nonBearer},
		{"OAUTHBEARER expired JWT", oauthMech(expired), expired},
		{"OAUTHBEARER untrusted issuer", oauthMech(other), other},
		{"OAUTHBEARER garbage", oauthMech("garbage.token.here"), "garbage.token.here"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := f.saslClient(t, tc.mech)
			err := cl.Ping(testCtx(t))
			if !errors.Is(err, kerr.SaslAuthenticationFailed) {
				t.Fatalf("ping: %v, want SASL_AUTHENTICATION_FAILED", err)
			}
			if strings.Contains(err.Error(), tc.secret) {
				t.Fatalf("the error shows the secret: %v", err)
			}
		})
	}
	// The exact answer, by hand.
	c := f.dialSASL(t)
	c.handshake(1, "PLAIN")
	resp := c.authenticate(1, []byte("\x00alice\x00"+wrong))
	if resp.ErrorCode != kerr.SaslAuthenticationFailed.Code || resp.ErrorMessage == nil || strings.Contains(*resp.ErrorMessage, wrong) {
		t.Fatalf("wrong password: code %d message %v", resp.ErrorCode, strOrEmpty(resp.ErrorMessage))
	}
	c.expectClosed()
	for _, secret := range []string{wrong, testPassword, tampered, expired, good, other} {
		if strings.Contains(f.logs.String(), secret) {
			t.Fatalf("the server log shows a secret")
		}
	}
}

// TestSASLRateLimit: beyond FailedAuthPerMinute failures from one address,
// even the right password is refused for a while.
func TestSASLRateLimit(t *testing.T) {
	f := startAuthServer(t, func(c *auth.Config) { c.FailedAuthPerMinute = 2 })
	for i := range 2 {
		c := f.dialSASL(t)
		c.handshake(1, "PLAIN")
		if resp := c.authenticate(1, []byte("\x00alice\x00wrong")); resp.ErrorCode != kerr.SaslAuthenticationFailed.Code {
			t.Fatalf("attempt %d: code %d", i, resp.ErrorCode)
		}
	}
	c := f.dialSASL(t)
	c.handshake(1, "PLAIN")
	resp := c.authenticate(1, []byte("\x00alice\x00"+testPassword))
	if resp.ErrorCode != kerr.SaslAuthenticationFailed.Code || !strings.Contains(strOrEmpty(resp.ErrorMessage), "too many") {
		t.Fatalf("rate limited attempt: code %d %q", resp.ErrorCode, strOrEmpty(resp.ErrorMessage))
	}
	c.expectClosed()
}

// TestSASLBeforeAuthentication: ApiVersions works and lists the SASL APIs;
// any other request before authenticating closes the connection.
func TestSASLBeforeAuthentication(t *testing.T) {
	f := startAuthServer(t, nil)
	c := f.dialSASL(t)
	av := kmsg.NewPtrApiVersionsResponse()
	c.roundTrip(apiVersionsReq(3), av)
	var keys []int16
	for _, k := range av.ApiKeys {
		keys = append(keys, k.ApiKey)
	}
	for _, k := range []int16{17, 36, 50, 51} {
		if !slices.Contains(keys, k) {
			t.Fatalf("ApiVersions does not list key %d: %v", k, keys)
		}
	}
	for _, req := range []kmsg.Request{metadataReq(1), produceReq(9, 1, "orders.a", 0, batch(t, "x")), kmsg.NewPtrDescribeUserSCRAMCredentialsRequest()} {
		c := f.dialSASL(t)
		c.send(req, 1)
		c.expectClosed()
	}
	if !strings.Contains(f.logs.String(), "before SASL authentication") {
		t.Fatal("no log line for the closed connections")
	}
	// A SaslAuthenticate without a handshake, and an unknown mechanism.
	c = f.dialSASL(t)
	if resp := c.authenticate(1, []byte("\x00alice\x00"+testPassword)); resp.ErrorCode != kerr.IllegalSaslState.Code {
		t.Fatalf("SaslAuthenticate without handshake: %d", resp.ErrorCode)
	}
	c.expectClosed()
	c = f.dialSASL(t)
	hs := c.handshake(1, "GSSAPI")
	if hs.ErrorCode != kerr.UnsupportedSaslMechanism.Code || len(hs.SupportedMechanisms) != 4 {
		t.Fatalf("GSSAPI handshake: %+v", hs)
	}
	c.login("PLAIN", []byte("\x00alice\x00"+testPassword)) // same connection, next mechanism
	c.metadataOK()

	// A franz-go client without SASL gets nowhere.
	cl := f.client(t, kgo.RetryTimeout(time.Second), kgo.RequestRetries(1))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := cl.Ping(ctx); err == nil {
		t.Fatal("ping without SASL succeeded")
	}
}

// TestSASLHandshakeV0: after SaslHandshake v0 the tokens come unframed.
func TestSASLHandshakeV0(t *testing.T) {
	f := startAuthServer(t, nil)
	rawToken := func(c *saslConn, tok []byte) {
		buf := binary.BigEndian.AppendUint32(nil, uint32(len(tok)))
		c.write(append(buf, tok...))
	}
	tok, _ := f.userJWT(t, limitedPerms, time.Hour)
	for _, tc := range []struct {
		mech string
		msg  []byte
	}{
		{"PLAIN", []byte("alice\x00alice\x00" + testPassword)},
		{"OAUTHBEARER", oauthMessage(tok)},
	} {
		t.Run(tc.mech, func(t *testing.T) {
			c := f.dialSASL(t)
			if hs := c.handshake(0, tc.mech); hs.ErrorCode != 0 {
				t.Fatalf("handshake v0: %d", hs.ErrorCode)
			}
			rawToken(c, tc.msg)
			_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			var size [4]byte
			if _, err := io.ReadFull(c.nc, size[:]); err != nil || binary.BigEndian.Uint32(size[:]) != 0 {
				t.Fatalf("raw answer: % x %v", size, err)
			}
			md := c.metadataOK()
			if len(md.Topics) != 1 || *md.Topics[0].Topic != "orders.a" {
				t.Fatalf("metadata after v0 authentication: %+v", md.Topics)
			}
		})
	}
	// A wrong password closes the connection without an answer.
	c := f.dialSASL(t)
	c.handshake(0, "PLAIN")
	rawToken(c, []byte("\x00alice\x00wrong"))
	c.expectClosed()
}

// TestSASLScramV0: SCRAM over unframed tokens, with franz-go speaking it
// (franz-go uses v0 when the broker offers SaslHandshake v0 only; here it
// is driven by hand through kgo's scram session).
func TestSASLScramV0(t *testing.T) {
	f := startAuthServer(t, nil)
	c := f.dialSASL(t)
	if hs := c.handshake(0, "SCRAM-SHA-256"); hs.ErrorCode != 0 {
		t.Fatalf("handshake: %d", hs.ErrorCode)
	}
	sess, msg, err := scram.Auth{User: "bob", Pass: testPassword}.AsSha256Mechanism().Authenticate(context.Background(), f.addr)
	if err != nil {
		t.Fatal(err)
	}
	for done := false; !done; {
		c.write(binary.BigEndian.AppendUint32(nil, uint32(len(msg))))
		c.write(msg)
		_ = c.nc.SetReadDeadline(time.Now().Add(5 * time.Second))
		var size [4]byte
		if _, err := io.ReadFull(c.nc, size[:]); err != nil {
			t.Fatal(err)
		}
		challenge := make([]byte, binary.BigEndian.Uint32(size[:]))
		if _, err := io.ReadFull(c.nc, challenge); err != nil {
			t.Fatal(err)
		}
		if done, msg, err = sess.Challenge(challenge); err != nil {
			t.Fatal(err)
		}
	}
	c.metadataOK()
}

// TestSASLReauthentication: KIP-368 re-authentication as the same
// principal works; as another principal it fails and closes.
func TestSASLReauthentication(t *testing.T) {
	f := startAuthServer(t, nil)
	tok, pub := f.userJWT(t, limitedPerms, time.Hour)
	c := f.dialSASL(t)
	resp := c.login("OAUTHBEARER", oauthMessage(tok))
	if ms := resp.SessionLifetimeMillis; ms <= 0 || ms > time.Hour.Milliseconds() {
		t.Fatalf("session lifetime %d ms", ms)
	}
	tok2, err := auth.IssueUserJWT(f.issuerSeed, pub, limitedPerms, 2*time.Hour, true, "refreshed")
	if err != nil {
		t.Fatal(err)
	}
	resp = c.login("OAUTHBEARER", oauthMessage(tok2))
	if resp.SessionLifetimeMillis <= time.Hour.Milliseconds() {
		t.Fatalf("refreshed session lifetime %d ms", resp.SessionLifetimeMillis)
	}
	c.metadataOK()
	c.handshake(1, "PLAIN")
	if resp := c.authenticate(2, []byte("\x00alice\x00"+testPassword)); resp.ErrorCode != kerr.SaslAuthenticationFailed.Code {
		t.Fatalf("re-authentication as another user: %d", resp.ErrorCode)
	}
	c.expectClosed()
	// Static users have no session lifetime.
	c = f.dialSASL(t)
	if resp := c.login("PLAIN", []byte("\x00alice\x00"+testPassword)); resp.SessionLifetimeMillis != 0 {
		t.Fatalf("static user session lifetime %d", resp.SessionLifetimeMillis)
	}
}

// TestSASLExpiryClosesConnection: a connection authenticated with a JWT
// that expires in about two seconds is closed when it does.
func TestSASLExpiryClosesConnection(t *testing.T) {
	f := startAuthServer(t, nil)
	tok, _ := f.userJWT(t, limitedPerms, 3*time.Second)
	c := f.dialSASL(t)
	start := time.Now()
	resp := c.login("OAUTHBEARER", oauthMessage(tok))
	if ms := resp.SessionLifetimeMillis; ms <= 0 || ms > 3000 {
		t.Fatalf("session lifetime %d ms", ms)
	}
	c.metadataOK()
	c.expectClosed()
	if d := time.Since(start); d < time.Second || d > 5*time.Second {
		t.Fatalf("closed after %v", d)
	}
	if !strings.Contains(f.logs.String(), "credentials expired") {
		t.Fatal("no log line for the expiry")
	}
}

// TestSASLRevocationClosesConnection: adding a user's key (or name) to the
// revocation file closes its connections, and it cannot log in again.
func TestSASLRevocationClosesConnection(t *testing.T) {
	f := startAuthServer(t, nil)
	tok, pub := f.userJWT(t, limitedPerms, time.Hour)
	jwtConn := f.dialSASL(t)
	jwtConn.login("OAUTHBEARER", oauthMessage(tok))
	scramConn := f.saslClient(t, scram.Auth{User: "bob", Pass: testPassword}.AsSha512Mechanism())
	if err := scramConn.Ping(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	other := f.dialSASL(t)
	other.login("PLAIN", []byte("\x00alice\x00"+testPassword))

	if err := os.WriteFile(f.revFile, []byte("# revoked\n"+pub+"\nbob\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	jwtConn.expectClosed()
	deadline := time.Now().Add(5 * time.Second)
	for strings.Count(f.logs.String(), "credentials revoked") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("revoked connections not closed")
		}
		time.Sleep(20 * time.Millisecond)
	}
	other.metadataOK() // alice is not revoked

	c := f.dialSASL(t)
	c.handshake(1, "OAUTHBEARER")
	if resp := c.authenticate(1, oauthMessage(tok)); resp.ErrorCode != kerr.SaslAuthenticationFailed.Code {
		t.Fatalf("revoked JWT: %d", resp.ErrorCode)
	}
	c = f.dialSASL(t)
	c.handshake(1, "PLAIN")
	if resp := c.authenticate(1, []byte("\x00bob\x00"+testPassword)); resp.ErrorCode != kerr.SaslAuthenticationFailed.Code {
		t.Fatalf("revoked SCRAM user: %d", resp.ErrorCode)
	}
}

// authRequest issues req through cl (authenticated) and fails on a transport
// error.
func authRequest[R kmsg.Response](t *testing.T, cl *kgo.Client, req kmsg.Request) R {
	t.Helper()
	resp, err := cl.Request(testCtx(t), req)
	if err != nil {
		t.Fatalf("%s: %v", keyName(req.Key()), err)
	}
	return resp.(R)
}

// TestAuthorization: every permission is checked, with the error codes
// Kafka uses.
func TestAuthorization(t *testing.T) {
	f := startAuthServer(t, func(c *auth.Config) {
		c.Users = append(c.Users, auth.StaticUser{Name: "reader", PasswordHash: cheapHash(t, testPassword), Permissions: auth.Permissions{Consume: []string{"orders.>"}}})
	})
	ctx := testCtx(t)
	admin := f.saslClient(t, plainMech("admin", testPassword))
	alice := f.saslClient(t, plainMech("alice", testPassword))
	adm := kadm.NewClient(admin)
	// Groups g-ok and g-bad exist (empty, with committed offsets).
	for _, g := range []string{"g-ok", "g-bad"} {
		offs := kadm.Offsets{}
		offs.Add(kadm.Offset{Topic: "orders.a", Partition: 0, At: 0, LeaderEpoch: -1})
		if err := adm.CommitAllOffsets(ctx, g, offs); err != nil {
			t.Fatalf("admin commit to %s: %v", g, err)
		}
	}
	if err := admin.ProduceSync(ctx, &kgo.Record{Topic: "secret", Value: []byte("s")}).FirstErr(); err != nil {
		t.Fatalf("admin produce to secret: %v", err)
	}

	// Requests go at exact versions over raw connections.
	aliceConn := f.dialSASL(t)
	aliceConn.login("PLAIN", []byte("\x00alice\x00"+testPassword))
	readerConn := f.dialSASL(t)
	readerConn.login("PLAIN", []byte("\x00reader\x00"+testPassword))
	adminConn := f.dialSASL(t)
	adminConn.login("PLAIN", []byte("\x00admin\x00"+testPassword))
	topicReq := func(topic string) kmsg.MetadataRequestTopic {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(topic)
		return rt
	}
	codes := func(t *testing.T, c *saslConn, req kmsg.Request) []int16 {
		c.t = t
		resp := req.ResponseKind()
		c.roundTrip(req, resp)
		var out []int16
		collectCodes(resp, &out)
		return out
	}
	for _, tc := range []struct {
		name string
		req  func() kmsg.Request
		want int16 // every error code in the response
		cl   *saslConn
	}{
		{"produce to an allowed topic", func() kmsg.Request { return produceReq(9, 1, "orders.a", 0, batch(t, "x")) }, 0, aliceConn},
		{"produce to a forbidden topic", func() kmsg.Request { return produceReq(9, 1, "secret", 0, batch(t, "x")) }, 29, aliceConn},
		{"fetch a forbidden topic", func() kmsg.Request { return fetchReq(11, "secret", 0, 0, 0) }, 29, aliceConn},
		{"fetch an allowed topic", func() kmsg.Request { return fetchReq(11, "orders.a", 0, 0, 0) }, 0, aliceConn},
		{"list offsets of a forbidden topic", func() kmsg.Request {
			req := kmsg.NewPtrListOffsetsRequest()
			req.Version = 4
			rt := kmsg.NewListOffsetsRequestTopic()
			rt.Topic = "secret"
			rp := kmsg.NewListOffsetsRequestTopicPartition()
			rp.Timestamp = -1
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			return req
		}, 29, aliceConn},
		{"offset for leader epoch of a forbidden topic", func() kmsg.Request {
			req := kmsg.NewPtrOffsetForLeaderEpochRequest()
			req.Version = 3
			req.ReplicaID = -1
			rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
			rt.Topic = "secret"
			rt.Partitions = append(rt.Partitions, kmsg.NewOffsetForLeaderEpochRequestTopicPartition())
			req.Topics = append(req.Topics, rt)
			return req
		}, 29, aliceConn},
		{"metadata of a forbidden topic", func() kmsg.Request {
			req := kmsg.NewPtrMetadataRequest()
			req.Version = 12
			req.Topics = append(req.Topics, topicReq("secret"))
			return req
		}, 29, aliceConn},
		{"metadata of a forbidden unknown topic", func() kmsg.Request {
			req := kmsg.NewPtrMetadataRequest()
			req.Version = 12
			req.Topics = append(req.Topics, topicReq("nope"))
			return req
		}, 29, aliceConn},
		{"metadata auto-creation without produce permission", func() kmsg.Request {
			req := kmsg.NewPtrMetadataRequest()
			req.Version = 12
			req.AllowAutoTopicCreation = true
			req.Topics = append(req.Topics, topicReq("orders.new"))
			return req
		}, kerr.UnknownTopicOrPartition.Code, readerConn},
		{"metadata auto-creation with produce permission", func() kmsg.Request {
			req := kmsg.NewPtrMetadataRequest()
			req.Version = 12
			req.AllowAutoTopicCreation = true
			req.Topics = append(req.Topics, topicReq("orders.created.by.alice"))
			return req
		}, 0, aliceConn},
		{"produce auto-creates with produce permission", func() kmsg.Request {
			return produceReq(9, 1, "orders.produced.by.alice", 0, batch(t, "x"))
		}, 0, aliceConn},
		{"create topics without admin", func() kmsg.Request {
			req := kmsg.NewPtrCreateTopicsRequest()
			req.Version = 5
			rt := kmsg.NewCreateTopicsRequestTopic()
			rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "orders.x", 1, 1
			req.Topics = append(req.Topics, rt)
			return req
		}, 29, aliceConn},
		{"delete topics without admin", func() kmsg.Request {
			req := kmsg.NewPtrDeleteTopicsRequest()
			req.Version = 5
			req.TopicNames = []string{"orders.a"}
			return req
		}, 29, aliceConn},
		{"create partitions without admin", func() kmsg.Request {
			req := kmsg.NewPtrCreatePartitionsRequest()
			req.Version = 2
			rt := kmsg.NewCreatePartitionsRequestTopic()
			rt.Topic, rt.Count = "orders.a", 3
			req.Topics = append(req.Topics, rt)
			return req
		}, 29, aliceConn},
		{"alter topic configs without admin", func() kmsg.Request {
			req := kmsg.NewPtrIncrementalAlterConfigsRequest()
			rr := kmsg.NewIncrementalAlterConfigsRequestResource()
			rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, "orders.a"
			rc := kmsg.NewIncrementalAlterConfigsRequestResourceConfig()
			rc.Name, rc.Value = "retention.ms", kmsg.StringPtr("1000")
			rr.Configs = append(rr.Configs, rc)
			req.Resources = append(req.Resources, rr)
			return req
		}, 29, aliceConn},
		{"describe broker configs without admin", func() kmsg.Request {
			req := kmsg.NewPtrDescribeConfigsRequest()
			rr := kmsg.NewDescribeConfigsRequestResource()
			rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeBroker, "0"
			req.Resources = append(req.Resources, rr)
			return req
		}, 31, aliceConn},
		{"describe configs of a forbidden topic", func() kmsg.Request {
			req := kmsg.NewPtrDescribeConfigsRequest()
			rr := kmsg.NewDescribeConfigsRequestResource()
			rr.ResourceType, rr.ResourceName = kmsg.ConfigResourceTypeTopic, "secret"
			req.Resources = append(req.Resources, rr)
			return req
		}, 29, aliceConn},
		{"delete records without admin", func() kmsg.Request {
			req := kmsg.NewPtrDeleteRecordsRequest()
			rt := kmsg.NewDeleteRecordsRequestTopic()
			rt.Topic = "orders.a"
			rp := kmsg.NewDeleteRecordsRequestTopicPartition()
			rp.Offset = 0
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			return req
		}, 29, aliceConn},
		{"find coordinator of a forbidden group", func() kmsg.Request {
			req := kmsg.NewPtrFindCoordinatorRequest()
			req.Version = 3
			req.CoordinatorKey = "g-bad"
			return req
		}, 30, aliceConn},
		{"join a forbidden group", func() kmsg.Request {
			req := kmsg.NewPtrJoinGroupRequest()
			req.Version = 5
			req.Group, req.ProtocolType, req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = "g-bad", "consumer", 10000, 10000
			p := kmsg.NewJoinGroupRequestProtocol()
			p.Name, p.Metadata = "range", []byte{}
			req.Protocols = append(req.Protocols, p)
			return req
		}, 30, aliceConn},
		{"heartbeat in a forbidden group", func() kmsg.Request {
			req := kmsg.NewPtrHeartbeatRequest()
			req.Group, req.MemberID = "g-bad", "m"
			return req
		}, 30, aliceConn},
		{"sync a forbidden group", func() kmsg.Request {
			req := kmsg.NewPtrSyncGroupRequest()
			req.Group, req.MemberID = "g-bad", "m"
			return req
		}, 30, aliceConn},
		{"leave a forbidden group", func() kmsg.Request {
			req := kmsg.NewPtrLeaveGroupRequest()
			req.Group, req.MemberID = "g-bad", "m"
			return req
		}, 30, aliceConn},
		{"commit to a forbidden group", func() kmsg.Request { return commitReq("g-bad", "orders.a") }, 30, aliceConn},
		{"commit a forbidden topic", func() kmsg.Request { return commitReq("g-ok", "secret") }, 29, aliceConn},
		{"commit an allowed topic", func() kmsg.Request { return commitReq("g-ok", "orders.a") }, 0, aliceConn},
		{"fetch offsets of a forbidden group", func() kmsg.Request {
			req := kmsg.NewPtrOffsetFetchRequest()
			req.Version = 7
			req.Group = "g-bad"
			return req
		}, 30, aliceConn},
		{"fetch offsets of a forbidden topic", func() kmsg.Request {
			req := kmsg.NewPtrOffsetFetchRequest()
			req.Version = 7
			req.Group = "g-ok"
			rt := kmsg.NewOffsetFetchRequestTopic()
			rt.Topic, rt.Partitions = "secret", []int32{0}
			req.Topics = append(req.Topics, rt)
			return req
		}, 29, aliceConn},
		{"describe a forbidden group", func() kmsg.Request {
			req := kmsg.NewPtrDescribeGroupsRequest()
			req.Groups = []string{"g-bad"}
			return req
		}, 30, aliceConn},
		{"delete a group without admin", func() kmsg.Request {
			req := kmsg.NewPtrDeleteGroupsRequest()
			req.Groups = []string{"g-ok"}
			return req
		}, 30, aliceConn},
		{"delete offsets without admin", func() kmsg.Request {
			req := kmsg.NewPtrOffsetDeleteRequest()
			req.Group = "g-ok"
			return req
		}, 30, aliceConn},
		{"describe SCRAM credentials without admin", func() kmsg.Request { return kmsg.NewPtrDescribeUserSCRAMCredentialsRequest() }, 31, aliceConn},
		{"alter SCRAM credentials without admin", func() kmsg.Request {
			req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
			d := kmsg.NewAlterUserSCRAMCredentialsRequestDeletion()
			d.Name, d.Mechanism = "bob", 1
			req.Deletions = append(req.Deletions, d)
			return req
		}, 31, aliceConn},
		{"init producer id", func() kmsg.Request { return kmsg.NewPtrInitProducerIDRequest() }, 0, aliceConn},
		{"describe cluster", func() kmsg.Request { return kmsg.NewPtrDescribeClusterRequest() }, 0, aliceConn},
		{"admin creates topics", func() kmsg.Request {
			req := kmsg.NewPtrCreateTopicsRequest()
			req.Version = 5
			rt := kmsg.NewCreateTopicsRequestTopic()
			rt.Topic, rt.NumPartitions, rt.ReplicationFactor = "orders.created", 1, 1
			req.Topics = append(req.Topics, rt)
			return req
		}, 0, adminConn},
		{"admin fetches a topic", func() kmsg.Request { return fetchReq(11, "secret", 0, 0, 0) }, 0, adminConn},
		{"admin joins any group", func() kmsg.Request { return commitReq("g-bad", "secret") }, 0, adminConn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := codes(t, tc.cl, tc.req())
			if len(got) == 0 {
				t.Fatal("no error codes in the response")
			}
			for _, c := range got {
				if c != tc.want {
					t.Fatalf("codes %v, want all %d", got, tc.want)
				}
			}
		})
	}

	t.Run("metadata lists only describable topics", func(t *testing.T) {
		req := kmsg.NewPtrMetadataRequest()
		req.Version = 12
		resp := authRequest[*kmsg.MetadataResponse](t, alice, req)
		var names []string
		for _, tp := range resp.Topics {
			names = append(names, *tp.Topic)
		}
		slices.Sort(names)
		if !slices.Equal(names, []string{"orders.a", "orders.created", "orders.created.by.alice", "orders.produced.by.alice"}) {
			t.Fatalf("alice sees %v", names)
		}
		if _, err := f.b.Topic("orders.new"); err == nil {
			t.Fatal("orders.new was auto-created for a user without produce permission")
		}
	})
	t.Run("list groups lists only describable groups", func(t *testing.T) {
		resp := authRequest[*kmsg.ListGroupsResponse](t, alice, kmsg.NewPtrListGroupsRequest())
		if len(resp.Groups) != 1 || resp.Groups[0].Group != "g-ok" {
			t.Fatalf("alice lists %+v", resp.Groups)
		}
		resp = authRequest[*kmsg.ListGroupsResponse](t, admin, kmsg.NewPtrListGroupsRequest())
		if len(resp.Groups) != 2 {
			t.Fatalf("admin lists %+v", resp.Groups)
		}
	})
	t.Run("a consumer is refused a forbidden topic", func(t *testing.T) {
		cl := f.saslClient(t, plainMech("alice", testPassword), kgo.ConsumeTopics("secret"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatal("no authorization error")
			}
			if len(fs.Records()) > 0 {
				t.Fatal("alice read secret records")
			}
			if errs := fs.Errors(); len(errs) > 0 {
				if !errors.Is(errs[0].Err, kerr.TopicAuthorizationFailed) {
					t.Fatalf("fetch error %v", errs[0].Err)
				}
				return
			}
		}
	})
	t.Run("a producer is refused a forbidden topic", func(t *testing.T) {
		err := alice.ProduceSync(testCtx(t), &kgo.Record{Topic: "secret", Value: []byte("x")}).FirstErr()
		if !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Fatalf("produce: %v", err)
		}
	})
	t.Run("a consumer group member is refused a forbidden group", func(t *testing.T) {
		cl := f.saslClient(t, plainMech("alice", testPassword), kgo.ConsumeTopics("orders.a"), kgo.ConsumerGroup("g-bad"))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				t.Fatal("no group authorization error")
			}
			if errs := fs.Errors(); len(errs) > 0 {
				if !errors.Is(errs[0].Err, kerr.GroupAuthorizationFailed) {
					t.Fatalf("group error %v", errs[0].Err)
				}
				return
			}
		}
	})
	t.Run("admin manages SCRAM credentials", func(t *testing.T) {
		if _, err := kadm.NewClient(alice).DescribeUserSCRAMs(testCtx(t)); !errors.Is(err, kerr.ClusterAuthorizationFailed) {
			t.Fatalf("alice describes SCRAM users: %v", err)
		}
		res, err := adm.AlterUserSCRAMs(testCtx(t), nil, []kadm.UpsertSCRAM{{User: "carol", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: "carol-pw"}})
		if err != nil || res.Error() != nil {
			t.Fatalf("upsert carol: %v %v", err, res.Error())
		}
		described, err := adm.DescribeUserSCRAMs(testCtx(t))
		if err != nil || described.Error() != nil {
			t.Fatalf("describe: %v %v", err, described.Error())
		}
		if d := described["carol"]; len(d.CredInfos) != 1 || d.CredInfos[0].Mechanism != kadm.ScramSha256 || d.CredInfos[0].Iterations != 4096 {
			t.Fatalf("carol: %+v", d)
		}
		if d := described["bob"]; len(d.CredInfos) != 2 {
			t.Fatalf("bob: %+v", d)
		}
		carol := f.saslClient(t, scram.Auth{User: "carol", Pass: "carol-pw"}.AsSha256Mechanism())
		if err := carol.Ping(testCtx(t)); err != nil {
			t.Fatalf("carol logs in: %v", err)
		}
		// carol has no permissions: she sees no topics.
		md := authRequest[*kmsg.MetadataResponse](t, carol, kmsg.NewPtrMetadataRequest())
		if len(md.Topics) != 0 {
			t.Fatalf("carol sees %d topics", len(md.Topics))
		}
		req := kmsg.NewPtrAlterUserSCRAMCredentialsRequest()
		for _, d := range []struct {
			name string
			mech int8
		}{{"carol", 1}, {"nobody", 2}} {
			del := kmsg.NewAlterUserSCRAMCredentialsRequestDeletion()
			del.Name, del.Mechanism = d.name, d.mech
			req.Deletions = append(req.Deletions, del)
		}
		up := kmsg.NewAlterUserSCRAMCredentialsRequestUpsertion()
		up.Name, up.Mechanism, up.Iterations, up.Salt, up.SaltedPassword = "dave", 2, 100, []byte("salt"), make([]byte, 64)
		req.Upsertions = append(req.Upsertions, up)
		up.Name, up.Mechanism, up.Iterations = "erin", 3, 4096
		req.Upsertions = append(req.Upsertions, up)
		adminConn.t = t
		ares := kmsg.NewPtrAlterUserSCRAMCredentialsResponse()
		adminConn.roundTrip(req, ares)
		got := map[string]int16{}
		for _, r := range ares.Results {
			got[r.User] = r.ErrorCode
		}
		want := map[string]int16{"carol": 0, "nobody": kerr.ResourceNotFound.Code, "dave": kerr.UnacceptableCredential.Code, "erin": kerr.UnsupportedSaslMechanism.Code}
		if !maps.Equal(got, want) {
			t.Fatalf("alter results %v, want %v", got, want)
		}
		described, err = adm.DescribeUserSCRAMs(testCtx(t), "carol")
		if err != nil || !errors.Is(described["carol"].Err, kerr.ResourceNotFound) {
			t.Fatalf("carol after deletion: %+v %v", described, err)
		}
	})
}

func commitReq(groupID, topic string) *kmsg.OffsetCommitRequest {
	req := kmsg.NewPtrOffsetCommitRequest()
	req.Version = 7
	req.Group, req.Generation = groupID, -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetCommitRequestTopicPartition()
	rp.Offset = 0
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// collectCodes gathers the ErrorCode fields of a response: the nested
// ones (topics, partitions, groups), and the top-level one when it is set
// or the only one.
func collectCodes(resp kmsg.Response, out *[]int16) {
	top := reflect.ValueOf(resp).Elem().FieldByName("ErrorCode")
	var walk func(v reflect.Value, depth int)
	walk = func(v reflect.Value, depth int) {
		switch v.Kind() {
		case reflect.Pointer:
			if !v.IsNil() {
				walk(v.Elem(), depth)
			}
		case reflect.Slice:
			for i := 0; i < v.Len(); i++ {
				walk(v.Index(i), depth+1)
			}
		case reflect.Struct:
			for i := 0; i < v.NumField(); i++ {
				if v.Type().Field(i).Name == "ErrorCode" && v.Field(i).Kind() == reflect.Int16 {
					if depth > 0 {
						*out = append(*out, int16(v.Field(i).Int()))
					}
					continue
				}
				walk(v.Field(i), depth)
			}
		}
	}
	walk(reflect.ValueOf(resp), 0)
	if top.IsValid() && (top.Int() != 0 || len(*out) == 0) {
		*out = append(*out, int16(top.Int()))
	}
}

// TestAuthViews: a view is consumed by its own name: consume permission on
// the view, not on its source topic.
func TestAuthViews(t *testing.T) {
	host, err := wasm.NewHost(context.Background(), wasm.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { host.Close(context.Background()) })
	viewer := auth.Permissions{Consume: []string{"tenth"}}
	f := startAuthServer(t, func(c *auth.Config) {
		c.Users = append(c.Users, auth.StaticUser{Name: "viewer", PasswordHash: cheapHash(t, testPassword), Permissions: viewer})
	}, func(o *broker.Options, _ *Options) { o.Filters = host })
	ctx := testCtx(t)
	if _, err := f.b.DeployFilter(ctx, "dropmost", guestModule(t, "dropmost")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.b.Bind(ctx, broker.BindingSpec{Filter: "dropmost", View: "tenth", Topic: "orders.a"}); err != nil {
		t.Fatal(err)
	}
	admin := f.saslClient(t, plainMech("admin", testPassword))
	if err := admin.ProduceSync(ctx, &kgo.Record{Topic: "orders.a", Value: []byte("0")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	v := f.dialSASL(t)
	v.login("PLAIN", []byte("\x00viewer\x00"+testPassword))
	md := kmsg.NewPtrMetadataResponse()
	all := kmsg.NewPtrMetadataRequest()
	all.Version = 12
	v.roundTrip(all, md)
	if len(md.Topics) != 1 || *md.Topics[0].Topic != "tenth" {
		t.Fatalf("viewer sees %+v", md.Topics)
	}
	for topic, want := range map[string]int16{"tenth": 0, "orders.a": 29} {
		resp := kmsg.NewPtrFetchResponse()
		v.roundTrip(fetchReq(11, topic, 0, 0, 0), resp)
		if got := resp.Topics[0].Partitions[0].ErrorCode; got != want {
			t.Fatalf("viewer fetches %s: %d, want %d", topic, got, want)
		}
	}
	alice := f.dialSASL(t)
	alice.login("PLAIN", []byte("\x00alice\x00"+testPassword))
	resp := kmsg.NewPtrFetchResponse()
	alice.roundTrip(fetchReq(11, "tenth", 0, 0, 0), resp)
	if got := resp.Topics[0].Partitions[0].ErrorCode; got != 29 {
		t.Fatalf("alice fetches the view: %d", got)
	}
}

// TestAuthOff: without auth (nil or disabled) nothing changes: the SASL
// APIs are neither listed nor served, and every request is allowed.
func TestAuthOff(t *testing.T) {
	disabled, err := auth.New(auth.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = disabled.Close() })
	for name, a := range map[string]*auth.Authenticator{"nil": nil, "disabled": disabled} {
		t.Run(name, func(t *testing.T) {
			e := startServer(t, func(_ *broker.Options, o *Options) { o.Auth = a })
			c := &saslConn{rawConn: e.dial(t)}
			av := kmsg.NewPtrApiVersionsResponse()
			c.roundTrip(apiVersionsReq(3), av)
			for _, k := range av.ApiKeys {
				if authOnlyKey(k.ApiKey) {
					t.Fatalf("ApiVersions lists %d with auth off", k.ApiKey)
				}
			}
			if hs := c.handshake(1, "PLAIN"); hs.ErrorCode != kerr.UnsupportedVersion.Code {
				t.Fatalf("SaslHandshake with auth off: %d", hs.ErrorCode)
			}
			c.metadataOK()
			cl := e.client(t, kgo.AllowAutoTopicCreation(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			produceConsume(t, cl, "any", "v")
		})
	}
}

// selfSigned returns a server certificate for 127.0.0.1 and a pool that
// trusts it.
func selfSigned(t testing.TB) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "samsa test"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// TestTLS: franz-go over TLS, with and without SASL; a plaintext client
// gets nowhere.
func TestTLS(t *testing.T) {
	cert, pool := selfSigned(t)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	clientTLS := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	withTLS := func(_ *broker.Options, o *Options) { o.TLS = serverTLS }

	t.Run("no auth", func(t *testing.T) {
		e := startServer(t, withTLS)
		cl := e.client(t, kgo.DialTLSConfig(clientTLS), kgo.AllowAutoTopicCreation(), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		produceConsume(t, cl, "tls", "over tls")
		plainCl := e.client(t, kgo.RetryTimeout(time.Second), kgo.RequestRetries(1))
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		if err := plainCl.Ping(ctx); err == nil {
			t.Fatal("a plaintext client talked to the TLS listener")
		}
	})
	for _, tc := range []struct {
		name string
		mech func(f *authFixture) sasl.Mechanism
	}{
		{"SASL PLAIN", func(*authFixture) sasl.Mechanism { return plainMech("alice", testPassword) }},
		{"SASL SCRAM-SHA-512", func(*authFixture) sasl.Mechanism {
			return scram.Auth{User: "bob", Pass: testPassword}.AsSha512Mechanism()
		}},
		{"SASL OAUTHBEARER", func(f *authFixture) sasl.Mechanism {
			tok, _ := f.userJWT(t, limitedPerms, time.Hour)
			return oauthMech(tok)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := startAuthServer(t, nil, withTLS)
			cl := f.saslClient(t, tc.mech(f), kgo.DialTLSConfig(clientTLS), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			produceConsume(t, cl, "orders.a", tc.name)
		})
	}
	t.Run("a silent client does not hold shutdown", func(t *testing.T) {
		e := startServer(t, withTLS)
		nc, err := net.Dial("tcp", e.addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = nc.Close() })
		time.Sleep(50 * time.Millisecond) // accepted, handshaking
	})
}

// TestKcatSASL: librdkafka (kcat) authenticates with PLAIN and SCRAM, in
// plain text and over TLS. librdkafka 2.0's SCRAM client-final message
// repeats the client nonce before the combined nonce, which Kafka accepts
// (it checks that the nonce ends with the server-first one).
func TestKcatSASL(t *testing.T) {
	kcat := requireKcat(t)
	cert, _ := selfSigned(t)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Certificate[0]}), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, useTLS := range []bool{false, true} {
		var tweak []func(*broker.Options, *Options)
		proto := "SASL_PLAINTEXT"
		if useTLS {
			proto = "SASL_SSL"
			tweak = append(tweak, func(_ *broker.Options, o *Options) {
				o.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
			})
		}
		f := startAuthServer(t, nil, tweak...)
		for _, tc := range []struct{ mech, user string }{
			{"PLAIN", "alice"},
			{"SCRAM-SHA-256", "bob"},
			{"SCRAM-SHA-512", "bob"},
		} {
			t.Run(proto+" "+tc.mech, func(t *testing.T) {
				args := []string{"-b", f.addr, "-X", "security.protocol=" + proto, "-X", "ssl.ca.location=" + caFile,
					"-X", "sasl.mechanisms=" + tc.mech, "-X", "sasl.username=" + tc.user, "-X", "sasl.password=" + testPassword}
				run := func(stdin string, extra ...string) string {
					t.Helper()
					ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
					defer cancel()
					cmd := exec.CommandContext(ctx, kcat, append(args, extra...)...)
					cmd.Stdin = strings.NewReader(stdin)
					var stdout, stderr strings.Builder
					cmd.Stdout, cmd.Stderr = &stdout, &stderr
					if err := cmd.Run(); err != nil || strings.Contains(stderr.String(), "%3|") {
						t.Fatalf("kcat %v: %v\n%s", extra, err, stderr.String())
					}
					return stdout.String()
				}
				run("a\nb\n", "-P", "-t", "orders.a")
				out := run("", "-C", "-t", "orders.a", "-o", "-2", "-e", "-f", "%s\n")
				if out != "a\nb\n" {
					t.Fatalf("consumed %q", out)
				}
			})
		}
	}
}
