package websocket

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	gws "github.com/gorilla/websocket"
	"github.com/nats-io/nkeys"

	"github.com/samsa-broker/samsa/auth"
	"github.com/samsa-broker/samsa/broker"
)

// BenchmarkConnect measures what starting a WebSocket connection costs,
// with and without authentication: each iteration dials (TCP + upgrade),
// reads hello, authenticates (nonce: signs hello's nonce with the user's
// key and sends the JWT; bearer: sends a bearer JWT), waits for
// "authenticated", does one ping round trip and closes. Client and server
// run in this process, so ns/op is the CPU of both sides plus the loopback
// round trips:
//
//	go test -run x -bench Connect -benchtime 2s ./transports/websocket/
func BenchmarkConnect(b *testing.B) {
	open := startServer(b)

	issuerSeed, issuerPub, err := auth.NewIssuer()
	if err != nil {
		b.Fatal(err)
	}
	rev := filepath.Join(b.TempDir(), "revoked")
	if err := os.WriteFile(rev, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	a, err := auth.New(auth.Config{Enabled: true, Issuers: []string{issuerPub}, RevocationFile: rev, FailedAuthPerMinute: 1000}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = a.Close() })
	secured := startServer(b, func(_ *broker.Options, o *Options) { o.Auth = a })

	userSeed, userPub, err := auth.NewUserKey()
	if err != nil {
		b.Fatal(err)
	}
	kp, err := nkeys.FromSeed([]byte(userSeed))
	if err != nil {
		b.Fatal(err)
	}
	perms := auth.Permissions{Produce: []string{"bench.>"}, Consume: []string{"bench.>"}}
	nonceJWT, err := auth.IssueUserJWT(issuerSeed, userPub, perms, 24*time.Hour, false, "bench")
	if err != nil {
		b.Fatal(err)
	}
	bearerJWT, err := auth.IssueUserJWT(issuerSeed, userPub, perms, 24*time.Hour, true, "bench")
	if err != nil {
		b.Fatal(err)
	}

	tests := []struct {
		name string
		url  string
		// auth returns the auth op for a connection's hello nonce; nil: none.
		auth func(nonce []byte) ([]byte, error)
	}{
		{"none", open.url, nil},
		{"nonce", secured.url, func(nonce []byte) ([]byte, error) {
			sig, err := kp.Sign(nonce)
			if err != nil {
				return nil, err
			}
			return json.Marshal(map[string]any{"op": "auth", "id": 1, "jwt": nonceJWT, "sig": base64.StdEncoding.EncodeToString(sig)})
		}},
		{"bearer", secured.url, func([]byte) ([]byte, error) {
			return json.Marshal(map[string]any{"op": "auth", "id": 1, "bearer": bearerJWT})
		}},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			connect := func() error {
				d := gws.Dialer{Subprotocols: []string{Subprotocol}, HandshakeTimeout: 10 * time.Second}
				ws, _, err := d.Dial(tt.url, nil)
				if err != nil {
					return err
				}
				defer ws.Close()
				_ = ws.SetReadDeadline(time.Now().Add(10 * time.Second))
				var hello struct {
					Type, Nonce, Auth string
				}
				if err := ws.ReadJSON(&hello); err != nil {
					return fmt.Errorf("hello: %w", err)
				}
				if tt.auth != nil {
					nonce, err := base64.StdEncoding.DecodeString(hello.Nonce)
					if err != nil {
						return err
					}
					op, err := tt.auth(nonce)
					if err != nil {
						return err
					}
					if err := ws.WriteMessage(gws.TextMessage, op); err != nil {
						return err
					}
					if err := expectType(ws, "authenticated"); err != nil {
						return err
					}
				} else if hello.Auth != "none" {
					return fmt.Errorf("hello auth %q on the open server", hello.Auth)
				}
				if err := ws.WriteMessage(gws.TextMessage, []byte(`{"op":"ping","id":2}`)); err != nil {
					return err
				}
				return expectType(ws, "pong")
			}
			if err := connect(); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := connect(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// expectType reads one text frame and checks its type.
func expectType(ws *gws.Conn, typ string) error {
	_, data, err := ws.ReadMessage()
	if err != nil {
		return fmt.Errorf("waiting for %s: %w", typ, err)
	}
	var m struct{ Type string }
	if err := json.Unmarshal(data, &m); err != nil || m.Type != typ {
		return fmt.Errorf("want %s, got %s", typ, data)
	}
	return nil
}
