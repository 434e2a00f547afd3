package websocket

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"
	"github.com/nats-io/nkeys"

	"github.com/samsa-broker/samsa/auth"
	"github.com/samsa-broker/samsa/broker"
)

// authTest is a WebSocket server with auth on, trusting one issuer.
type authTest struct {
	*testEnv
	a          *auth.Authenticator
	issuerSeed string
	revoked    string // the revocation file
}

func startAuthServer(t *testing.T, tweak ...func(*auth.Config, *Options)) *authTest {
	t.Helper()
	seed, pub, err := auth.NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cfg := auth.Config{
		Enabled:             true,
		Issuers:             []string{pub},
		RevocationFile:      filepath.Join(dir, "revoked"),
		ScramFile:           filepath.Join(dir, "scram.json"),
		FailedAuthPerMinute: 1000,
	}
	if err := os.WriteFile(cfg.RevocationFile, []byte("# revoked user keys\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var wsOpts Options
	for _, f := range tweak {
		f(&cfg, &wsOpts)
	}
	a, err := auth.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	env := startServer(t, func(_ *broker.Options, o *Options) {
		o.Auth = a
		o.AuthCookie = wsOpts.AuthCookie
		if wsOpts.AuthTimeout > 0 {
			o.AuthTimeout = wsOpts.AuthTimeout
		}
	})
	return &authTest{testEnv: env, a: a, issuerSeed: seed, revoked: cfg.RevocationFile}
}

// user is a user key pair and a JWT for it.
type user struct {
	seed, pub string
	kp        nkeys.KeyPair
	jwt       string
}

var testPerms = auth.Permissions{
	Produce: []string{"allowed.>"},
	Consume: []string{"allowed.>"},
	Groups:  []string{"g1"},
}

func (e *authTest) newUser(t *testing.T, perms auth.Permissions, ttl time.Duration, bearer bool) *user {
	t.Helper()
	seed, pub, err := auth.NewUserKey()
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auth.IssueUserJWT(e.issuerSeed, pub, perms, ttl, bearer, "tester")
	if err != nil {
		t.Fatal(err)
	}
	return &user{seed: seed, pub: pub, kp: kp, jwt: tok}
}

// signNonce signs the hello nonce of c with kp.
func signNonce(t testing.TB, c *client, kp nkeys.KeyPair) string {
	t.Helper()
	nonce, err := base64.StdEncoding.DecodeString(c.hello["nonce"].(string))
	if err != nil {
		t.Fatalf("hello nonce: %v", err)
	}
	sig, err := kp.Sign(nonce)
	if err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(sig)
}

// login authenticates c by nonce signing and returns the reply.
func (u *user) login(t *testing.T, c *client) map[string]any {
	t.Helper()
	c.send(map[string]any{"op": "auth", "id": "a1", "jwt": u.jwt, "sig": signNonce(t, c, u.kp)})
	return c.next()
}

func expectError(t testing.TB, m map[string]any, code string) {
	t.Helper()
	if m["type"] != "error" || m["code"] != code {
		t.Fatalf("want error %s, got %v", code, m)
	}
}

// expectClose reads until the connection ends and returns the close code.
func expectClose(t testing.TB, c *client, within time.Duration) int {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		_ = c.ws.SetReadDeadline(deadline)
		_, _, err := c.ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *gws.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		t.Fatalf("connection ended without a close frame: %v", err)
	}
}

func TestAuthNonceSigning(t *testing.T) {
	e := startAuthServer(t)
	u := e.newUser(t, testPerms, time.Hour, false)
	c := e.dial(t)
	defer c.close()
	if c.hello["auth"] != "required" {
		t.Fatalf("hello auth = %v, want required", c.hello["auth"])
	}
	m := u.login(t, c)
	if m["type"] != "authenticated" || m["id"] != "a1" || m["user"] != u.pub {
		t.Fatalf("auth reply %v", m)
	}
	exp, _ := m["expires"].(float64)
	if d := time.Until(time.UnixMilli(int64(exp))); d < 59*time.Minute || d > 61*time.Minute {
		t.Fatalf("expires %v is %v away, want about an hour", m["expires"], d)
	}
	ack := c.produce("allowed.t", 1, map[string]any{"value": 1})
	if ack["id"] != float64(1) {
		t.Fatalf("ack %v", ack)
	}
	c.send(map[string]any{"op": "subscribe", "id": 2, "sub": "s", "topic": "allowed.t", "from": "earliest"})
	c.expect("subscribed")
	if recs := records(c.expect("records")); len(recs) != 1 {
		t.Fatalf("records %v", recs)
	}
}

func TestAuthBearer(t *testing.T) {
	e := startAuthServer(t)
	u := e.newUser(t, testPerms, time.Hour, true)
	c := e.dial(t)
	defer c.close()
	c.send(map[string]any{"op": "auth", "id": 1, "bearer": u.jwt})
	m := c.expect("authenticated")
	if m["user"] != u.pub || m["id"] != float64(1) {
		t.Fatalf("auth reply %v", m)
	}
	c.produce("allowed.x", 2, map[string]any{"value": "v", "encoding": "text"})
}

func TestAuthRefused(t *testing.T) {
	e := startAuthServer(t)
	nonceUser := e.newUser(t, testPerms, time.Hour, false)
	bearerUser := e.newUser(t, testPerms, time.Hour, true)
	other := e.newUser(t, testPerms, time.Hour, false)

	// Flip one character of the payload: the issuer's signature no
	// longer matches.
	parts := strings.Split(nonceUser.jwt, ".")
	p := []byte(parts[1])
	i := len(p) / 2
	if p[i] == 'A' {
		p[i] = 'B'
	} else {
		p[i] = 'A'
	}
	tampered := parts[0] + "." + string(p) + "." + parts[2]

	expired := e.newUser(t, testPerms, time.Second, false)
	expiredBearer := e.newUser(t, testPerms, time.Second, true)
	time.Sleep(2100 * time.Millisecond)

	cases := []struct {
		name string
		req  func(c *client) map[string]any
	}{
		{"tampered jwt", func(c *client) map[string]any {
			return map[string]any{"op": "auth", "id": 1, "jwt": tampered, "sig": signNonce(t, c, nonceUser.kp)}
		}},
		{"wrong signature", func(c *client) map[string]any {
			return map[string]any{"op": "auth", "id": 1, "jwt": nonceUser.jwt, "sig": signNonce(t, c, other.kp)}
		}},
		{"signature of another nonce", func(c *client) map[string]any {
			sig, _ := nonceUser.kp.Sign([]byte("not the nonce"))
			return map[string]any{"op": "auth", "id": 1, "jwt": nonceUser.jwt, "sig": base64.StdEncoding.EncodeToString(sig)}
		}},
		{"expired", func(c *client) map[string]any {
			return map[string]any{"op": "auth", "id": 1, "jwt": expired.jwt, "sig": signNonce(t, c, expired.kp)}
		}},
		{"expired bearer", func(c *client) map[string]any {
			return map[string]any{"op": "auth", "id": 1, "bearer": expiredBearer.jwt}
		}},
		{"bearer used as nonce jwt", func(c *client) map[string]any {
			return map[string]any{"op": "auth", "id": 1, "jwt": bearerUser.jwt, "sig": signNonce(t, c, bearerUser.kp)}
		}},
		{"nonce jwt used as bearer", func(c *client) map[string]any {
			return map[string]any{"op": "auth", "id": 1, "bearer": nonceUser.jwt}
		}},
		{"garbage bearer", func(c *client) map[string]any {
			return map[string]any{"op": "auth", "id": 1, "bearer": "not-a-jwt"}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := e.dial(t)
			defer c.close()
			c.send(tc.req(c))
			m := c.next()
			expectError(t, m, codeUnauthorized)
			if m["id"] != float64(1) {
				t.Fatalf("error without the request's id: %v", m)
			}
			if strings.Contains(m["message"].(string), nonceUser.seed) || strings.Contains(m["message"].(string), "eyJ") {
				t.Fatalf("error message leaks a secret: %v", m)
			}
			// Still unauthenticated.
			c.send(map[string]any{"op": "subscribe", "id": 2, "sub": "s", "topic": "allowed.t"})
			expectError(t, c.next(), codeUnauthorized)
		})
	}
	t.Run("bad requests", func(t *testing.T) {
		c := e.dial(t)
		defer c.close()
		c.send(map[string]any{"op": "auth", "id": 1})
		expectError(t, c.next(), codeBadRequest)
		c.send(map[string]any{"op": "auth", "id": 2, "jwt": nonceUser.jwt})
		expectError(t, c.next(), codeBadRequest)
		c.send(map[string]any{"op": "auth", "id": 3, "jwt": nonceUser.jwt, "sig": "!!!"})
		expectError(t, c.next(), codeBadRequest)
	})
}

func TestAuthOpsBeforeAuth(t *testing.T) {
	e := startAuthServer(t)
	c := e.dial(t)
	defer c.close()
	c.send(map[string]any{"op": "ping", "id": 1})
	c.expect("pong")
	for i, op := range []map[string]any{
		{"op": "produce", "topic": "allowed.t", "records": []any{map[string]any{"value": 1}}},
		{"op": "subscribe", "sub": "s", "topic": "allowed.t"},
		{"op": "commit", "group": "g1", "topic": "allowed.t", "offsets": []any{map[string]any{"partition": 0, "offset": 0}}},
		{"op": "credit", "sub": "s", "records": 1},
		{"op": "unsubscribe", "sub": "s"},
		{"op": "nonsense"},
	} {
		op["id"] = 10 + i
		c.send(op)
		m := c.next()
		expectError(t, m, codeUnauthorized)
		if m["id"] != float64(10+i) {
			t.Fatalf("%v: reply %v", op["op"], m)
		}
	}
	// A binary produce gets a binary ack with code 8 (unauthorized).
	f := []byte{kindProduce}
	f = binary.LittleEndian.AppendUint32(f, 77)
	f = binary.LittleEndian.AppendUint16(f, uint16(len("allowed.t")))
	f = append(f, "allowed.t"...)
	f = binary.LittleEndian.AppendUint32(f, 1)
	f = binary.LittleEndian.AppendUint32(f, 0xffffffff) // partition -1
	f = binary.LittleEndian.AppendUint32(f, 0xffffffff) // null key
	f = binary.LittleEndian.AppendUint32(f, 1)
	f = append(f, 'x')
	f = binary.LittleEndian.AppendUint16(f, 0)
	c.sendRaw(gws.BinaryMessage, f)
	m := c.next()
	b, _ := m["binary"].([]byte)
	if len(b) < 7 || b[0] != kindAck || binary.LittleEndian.Uint32(b[1:]) != 77 || binary.LittleEndian.Uint16(b[5:]) != 8 {
		t.Fatalf("binary produce before auth: %v", m)
	}
	if hwm := e.b.Topics(); len(hwm) != 0 {
		t.Fatalf("topics were created before auth: %v", hwm)
	}
}

func TestAuthForbidden(t *testing.T) {
	e := startAuthServer(t)
	u := e.newUser(t, auth.Permissions{Produce: []string{"allowed.>"}, Consume: []string{"allowed.*", "readonly"}, Groups: []string{"g1"}}, time.Hour, false)
	c := e.dial(t)
	defer c.close()
	if m := u.login(t, c); m["type"] != "authenticated" {
		t.Fatalf("login: %v", m)
	}
	c.send(map[string]any{"op": "produce", "id": 1, "topic": "other", "records": []any{map[string]any{"value": 1}}})
	expectError(t, c.next(), codeForbidden)
	c.send(map[string]any{"op": "produce", "id": 2, "topic": "readonly", "records": []any{map[string]any{"value": 1}}})
	expectError(t, c.next(), codeForbidden)
	c.produce("allowed.a", 3, map[string]any{"value": 1})

	c.send(map[string]any{"op": "subscribe", "id": 4, "sub": "s1", "topic": "other"})
	expectError(t, c.next(), codeForbidden)
	c.send(map[string]any{"op": "subscribe", "id": 5, "sub": "s2", "topic": "allowed.a", "group": "g2"})
	expectError(t, c.next(), codeForbidden)
	c.send(map[string]any{"op": "subscribe", "id": 6, "sub": "s3", "topic": "other", "filter": map[string]any{"name": "f"}})
	expectError(t, c.next(), codeForbidden)
	c.send(map[string]any{"op": "commit", "id": 7, "group": "g2", "topic": "allowed.a", "offsets": []any{map[string]any{"partition": 0, "offset": 1}}})
	expectError(t, c.next(), codeForbidden)
	c.send(map[string]any{"op": "commit", "id": 8, "group": "g1", "topic": "other", "offsets": []any{map[string]any{"partition": 0, "offset": 1}}})
	expectError(t, c.next(), codeForbidden)

	c.send(map[string]any{"op": "commit", "id": 9, "group": "g1", "topic": "allowed.a", "offsets": []any{map[string]any{"partition": 0, "offset": 1}}})
	c.expect("committed")
	c.send(map[string]any{"op": "subscribe", "id": 10, "sub": "s4", "topic": "allowed.a", "group": "g1", "from": "earliest"})
	c.expect("subscribed")
	if _, err := e.b.Topic("other"); err == nil {
		t.Fatal("a forbidden produce created the topic")
	}

	// Another user's token on this connection is refused.
	u2 := e.newUser(t, testPerms, time.Hour, true)
	c.send(map[string]any{"op": "auth", "id": 11, "bearer": u2.jwt})
	for {
		m := c.next()
		if m["id"] == float64(11) {
			expectError(t, m, codeForbidden)
			break
		}
	}
}

func TestAuthExpiryCloses(t *testing.T) {
	e := startAuthServer(t)
	u := e.newUser(t, testPerms, 2*time.Second, false)
	c := e.dial(t)
	defer c.close()
	start := time.Now()
	m := u.login(t, c)
	if m["type"] != "authenticated" {
		t.Fatalf("login: %v", m)
	}
	c.send(map[string]any{"op": "subscribe", "id": 2, "sub": "s", "topic": "allowed.t"})
	c.expect("subscribed")
	if code := expectClose(t, c, 6*time.Second); code != CloseUnauthorized {
		t.Fatalf("close code %d, want %d", code, CloseUnauthorized)
	}
	exp := time.UnixMilli(int64(m["expires"].(float64)))
	if now := time.Now(); now.Before(exp) || now.Sub(start) > 4*time.Second {
		t.Fatalf("closed at %v, token expires %v (started %v)", now, exp, start)
	}
}

func TestAuthRevocationCloses(t *testing.T) {
	e := startAuthServer(t)
	u := e.newUser(t, testPerms, time.Hour, false)
	keep := e.newUser(t, testPerms, time.Hour, true)
	c := e.dial(t)
	defer c.close()
	if m := u.login(t, c); m["type"] != "authenticated" {
		t.Fatalf("login: %v", m)
	}
	c2 := e.dial(t)
	defer c2.close()
	c2.send(map[string]any{"op": "auth", "bearer": keep.jwt})
	c2.expect("authenticated")

	if err := os.WriteFile(e.revoked, []byte("# revoked\n"+u.pub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The file is polled every few seconds.
	if code := expectClose(t, c, 15*time.Second); code != CloseUnauthorized {
		t.Fatalf("close code %d, want %d", code, CloseUnauthorized)
	}
	// The other user's connection lives on.
	c2.send(map[string]any{"op": "ping", "id": 1})
	c2.expect("pong")
	// And the revoked key cannot come back.
	c3 := e.dial(t)
	defer c3.close()
	expectError(t, u.login(t, c3), codeUnauthorized)
}

func TestAuthCookie(t *testing.T) {
	e := startAuthServer(t, func(_ *auth.Config, o *Options) { o.AuthCookie = "samsa_token" })
	u := e.newUser(t, testPerms, time.Hour, true)
	d := gws.Dialer{Subprotocols: []string{Subprotocol}, HandshakeTimeout: 5 * time.Second}
	h := http.Header{}
	h.Set("Cookie", "other=1; samsa_token="+u.jwt)
	ws, _, err := d.Dial(e.url, h)
	if err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, ws: ws}
	defer c.close()
	c.expect("hello")
	m := c.expect("authenticated")
	if m["user"] != u.pub || m["via"] != "cookie" {
		t.Fatalf("cookie auth: %v", m)
	}
	c.produce("allowed.c", 1, map[string]any{"value": 1})

	// A nonce (non-bearer) JWT in the cookie does not authenticate.
	n := e.newUser(t, testPerms, time.Hour, false)
	h.Set("Cookie", "samsa_token="+n.jwt)
	ws2, _, err := d.Dial(e.url, h)
	if err != nil {
		t.Fatal(err)
	}
	c2 := &client{t: t, ws: ws2}
	defer c2.close()
	c2.expect("hello")
	expectError(t, c2.next(), codeUnauthorized)
	c2.send(map[string]any{"op": "subscribe", "id": 1, "sub": "s", "topic": "allowed.c"})
	expectError(t, c2.next(), codeUnauthorized)
}

func TestAuthRateLimit(t *testing.T) {
	e := startAuthServer(t, func(c *auth.Config, _ *Options) { c.FailedAuthPerMinute = 3 })
	u := e.newUser(t, testPerms, time.Hour, true)
	c := e.dial(t)
	defer c.close()
	for i := range 3 {
		c.send(map[string]any{"op": "auth", "id": i, "bearer": "bogus"})
		expectError(t, c.next(), codeUnauthorized)
	}
	// Over the limit even a good token is refused, on a new connection too.
	c.send(map[string]any{"op": "auth", "id": 9, "bearer": u.jwt})
	m := c.next()
	expectError(t, m, codeUnauthorized)
	if !strings.Contains(m["message"].(string), "too many") {
		t.Fatalf("want a rate-limit message, got %v", m)
	}
	c2 := e.dial(t)
	defer c2.close()
	c2.send(map[string]any{"op": "auth", "id": 1, "bearer": u.jwt})
	expectError(t, c2.next(), codeUnauthorized)
}

func TestAuthTimeout(t *testing.T) {
	e := startAuthServer(t, func(_ *auth.Config, o *Options) { o.AuthTimeout = 300 * time.Millisecond })
	c := e.dial(t)
	defer c.close()
	if code := expectClose(t, c, 5*time.Second); code != CloseUnauthorized {
		t.Fatalf("close code %d, want %d", code, CloseUnauthorized)
	}
}

func TestAuthOffHello(t *testing.T) {
	e := startServer(t)
	c := e.dial(t)
	defer c.close()
	if c.hello["auth"] != "none" {
		t.Fatalf("hello auth = %v", c.hello["auth"])
	}
	c.send(map[string]any{"op": "auth", "id": 1, "bearer": "whatever"})
	c.expect("authenticated")
	c.produce("any", 2, map[string]any{"value": 1})
}

func TestAuthRefresh(t *testing.T) {
	e := startAuthServer(t)
	u := e.newUser(t, testPerms, 2*time.Second, false)
	c := e.dial(t)
	defer c.close()
	if m := u.login(t, c); m["type"] != "authenticated" {
		t.Fatalf("login: %v", m)
	}
	c.send(map[string]any{"op": "subscribe", "id": 1, "sub": "a", "topic": "allowed.a"})
	c.expect("subscribed")
	c.send(map[string]any{"op": "subscribe", "id": 2, "sub": "b", "topic": "allowed.b"})
	c.expect("subscribed")
	// A fresh token of the same user, for an hour, that no longer allows
	// allowed.a: the subscription ends, the connection lives on.
	tok, err := auth.IssueUserJWT(e.issuerSeed, u.pub, auth.Permissions{Consume: []string{"allowed.b"}}, time.Hour, true, "tester")
	if err != nil {
		t.Fatal(err)
	}
	c.send(map[string]any{"op": "auth", "id": 3, "bearer": tok})
	var ended, refreshed bool
	for !ended || !refreshed {
		m := c.next()
		switch {
		case m["type"] == "error" && m["sub"] == "a":
			expectError(t, m, codeForbidden)
			ended = true
		case m["type"] == "authenticated" && m["id"] == float64(3):
			refreshed = true
		default:
			t.Fatalf("unexpected %v", m)
		}
	}
	time.Sleep(2500 * time.Millisecond)
	c.send(map[string]any{"op": "ping", "id": 4})
	c.expect("pong")
	c.send(map[string]any{"op": "unsubscribe", "id": 5, "sub": "b"})
	c.expect("unsubscribed")
}

func TestAuthStaticNKeyUser(t *testing.T) {
	seed, pub, err := auth.NewUserKey()
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromSeed([]byte(seed))
	if err != nil {
		t.Fatal(err)
	}
	e := startAuthServer(t, func(c *auth.Config, _ *Options) {
		c.Users = []auth.StaticUser{{Name: "sensor-7", NKey: pub, Permissions: auth.Permissions{Produce: []string{"sensors.7"}}}}
	})
	c := e.dial(t)
	defer c.close()
	c.send(map[string]any{"op": "auth", "id": 1, "nkey": pub, "sig": signNonce(t, c, kp)})
	m := c.expect("authenticated")
	if m["user"] != "sensor-7" || m["expires"] != nil {
		t.Fatalf("auth reply %v", m)
	}
	c.produce("sensors.7", 2, map[string]any{"value": 1})
	c.send(map[string]any{"op": "produce", "id": 3, "topic": "sensors.8", "records": []any{map[string]any{"value": 1}}})
	expectError(t, c.next(), codeForbidden)
}

// TestAuthAutoCreate: a missing topic is created on first use only by a
// user who may produce to it (the same rule as over Kafka); subscribing
// with consume permission alone creates nothing.
func TestAuthAutoCreate(t *testing.T) {
	e := startAuthServer(t)
	reader := e.newUser(t, auth.Permissions{Consume: []string{"new.>"}}, time.Hour, false)
	writer := e.newUser(t, auth.Permissions{Produce: []string{"new.>"}, Consume: []string{"new.>"}}, time.Hour, false)
	rc, wc := e.dial(t), e.dial(t)
	defer rc.close()
	defer wc.close()
	if m := reader.login(t, rc); m["type"] != "authenticated" {
		t.Fatalf("reader login: %v", m)
	}
	if m := writer.login(t, wc); m["type"] != "authenticated" {
		t.Fatalf("writer login: %v", m)
	}
	rc.send(map[string]any{"op": "subscribe", "id": 1, "sub": "s", "topic": "new.a"})
	expectError(t, rc.next(), codeUnknownTopic)
	if _, err := e.b.Topic("new.a"); err == nil {
		t.Fatal("a consume-only subscription created the topic")
	}
	wc.send(map[string]any{"op": "subscribe", "id": 1, "sub": "s", "topic": "new.a"})
	wc.expect("subscribed")
	if _, err := e.b.Topic("new.a"); err != nil {
		t.Fatalf("subscription with produce permission: %v", err)
	}
	wc.produce("new.b", 2, map[string]any{"value": 1})
	if _, err := e.b.Topic("new.b"); err != nil {
		t.Fatalf("produce did not create the topic: %v", err)
	}
	// Now that it exists, the reader may subscribe.
	rc.send(map[string]any{"op": "subscribe", "id": 3, "sub": "s", "topic": "new.b", "from": "earliest"})
	rc.expect("subscribed")
}
