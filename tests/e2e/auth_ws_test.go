package e2e

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"
	"github.com/nats-io/nkeys"

	"github.com/samsa-broker/samsa/auth"
)

// tomlRaw is a value renderTOML writes verbatim (arrays).
type tomlRaw string

func (r tomlRaw) String() string { return string(r) }

// wsClient is a minimal samsa.v1 client.
type wsClient struct {
	t     *testing.T
	ws    *gws.Conn
	hello map[string]any
}

func dialWS(t *testing.T, httpAddr string) *wsClient {
	t.Helper()
	d := gws.Dialer{Subprotocols: []string{"samsa.v1"}, HandshakeTimeout: 5 * time.Second}
	ws, _, err := d.Dial("ws://"+httpAddr+"/ws", nil)
	if err != nil {
		t.Fatalf("dial /ws: %v", err)
	}
	t.Cleanup(func() { ws.Close() })
	c := &wsClient{t: t, ws: ws}
	c.hello = c.next()
	if c.hello["type"] != "hello" {
		t.Fatalf("first frame %v", c.hello)
	}
	return c
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	if err := c.ws.WriteJSON(v); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

func (c *wsClient) next() map[string]any {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, data, err := c.ws.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		c.t.Fatalf("bad JSON %q: %v", data, err)
	}
	return m
}

func (c *wsClient) expect(typ string) map[string]any {
	c.t.Helper()
	m := c.next()
	if m["type"] != typ {
		c.t.Fatalf("want %s, got %v", typ, m)
	}
	return m
}

// TestAuthWebSocketNonce runs samsa with [auth] on and a WebSocket client
// that signs the hello nonce with its user key (the seed never leaves the
// client), then produces and consumes within its permissions.
func TestAuthWebSocketNonce(t *testing.T) {
	issuerSeed, issuerPub, err := auth.NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	revoked := filepath.Join(t.TempDir(), "revoked")
	if err := os.WriteFile(revoked, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p := startBroker(t,
		withConfig("auth", "enabled", true),
		withConfig("auth", "issuers", tomlRaw(fmt.Sprintf("[%q]", issuerPub))),
		withConfig("auth", "revocation_file", revoked),
	)
	if out := p.out.String(); !strings.Contains(out, "auth=on") {
		t.Fatalf("serving line does not say auth=on:\n%s", out)
	}

	userSeed, userPub, err := auth.NewUserKey()
	if err != nil {
		t.Fatal(err)
	}
	perms := auth.Permissions{Produce: []string{"sensors.>"}, Consume: []string{"sensors.>"}, Groups: []string{"dash"}}
	jwt, err := auth.IssueUserJWT(issuerSeed, userPub, perms, time.Hour, false, "e2e")
	if err != nil {
		t.Fatal(err)
	}
	kp, err := nkeys.FromSeed([]byte(userSeed))
	if err != nil {
		t.Fatal(err)
	}

	c := dialWS(t, p.httpAddr)
	if c.hello["auth"] != "required" {
		t.Fatalf("hello auth = %v, want required", c.hello["auth"])
	}
	// Nothing but auth and ping before authenticating.
	c.send(map[string]any{"op": "produce", "id": 1, "topic": "sensors.a", "records": []any{map[string]any{"value": 1}}})
	if m := c.next(); m["type"] != "error" || m["code"] != "unauthorized" {
		t.Fatalf("produce before auth: %v", m)
	}

	nonce, err := base64.StdEncoding.DecodeString(c.hello["nonce"].(string))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := kp.Sign(nonce)
	if err != nil {
		t.Fatal(err)
	}
	c.send(map[string]any{"op": "auth", "id": 2, "jwt": jwt, "sig": base64.StdEncoding.EncodeToString(sig)})
	m := c.expect("authenticated")
	if m["user"] != userPub || m["expires"] == nil {
		t.Fatalf("authenticated %v", m)
	}

	c.send(map[string]any{"op": "produce", "id": 3, "topic": "sensors.a", "records": []any{map[string]any{"key": "k", "value": map[string]any{"t": 21.5}}}})
	c.expect("ack")
	c.send(map[string]any{"op": "produce", "id": 4, "topic": "other", "records": []any{map[string]any{"value": 1}}})
	if m := c.next(); m["type"] != "error" || m["code"] != "forbidden" {
		t.Fatalf("produce to a forbidden topic: %v", m)
	}
	c.send(map[string]any{"op": "subscribe", "id": 5, "sub": "s", "topic": "sensors.a", "group": "dash", "from": "earliest"})
	c.expect("subscribed")
	c.expect("assigned")
	recs := c.expect("records")["records"].([]any)
	if len(recs) != 1 || recs[0].(map[string]any)["key"] != "k" {
		t.Fatalf("records %v", recs)
	}

	// The admin API wants credentials too; /healthz does not.
	resp, err := http.Get("http://" + p.httpAddr + "/api/v1/filters")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("admin API without credentials: %s", resp.Status)
	}
	resp, err = http.Get("http://" + p.httpAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz: %s", resp.Status)
	}

	// Revoking the user's key closes its connection with 4001.
	if err := os.WriteFile(revoked, []byte(userPub+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		_ = c.ws.SetReadDeadline(deadline)
		_, _, err := c.ws.ReadMessage()
		if err == nil {
			continue
		}
		var ce *gws.CloseError
		if !errors.As(err, &ce) || ce.Code != 4001 {
			t.Fatalf("after revocation: %v, want close 4001", err)
		}
		break
	}
	p.Stop()
}
