package http

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/samsa-broker/samsa/auth"
	"github.com/samsa-broker/samsa/broker"
)

type authFixture struct {
	a          *auth.Authenticator
	issuerSeed string
}

// newAuth returns an authenticator trusting one issuer, with static
// password users "ops" (admin), "dev" (filters) and "app" (produce only).
func newAuth(t *testing.T) *authFixture {
	t.Helper()
	seed, pub, err := auth.NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	hash, err := auth.HashPassword("s3cret-pw")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	a, err := auth.New(auth.Config{
		Enabled: true,
		Issuers: []string{pub},
		Users: []auth.StaticUser{
			{Name: "ops", PasswordHash: hash, Permissions: auth.Permissions{Admin: true}},
			{Name: "dev", PasswordHash: hash, Permissions: auth.Permissions{Filters: true}},
			{Name: "app", PasswordHash: hash, Permissions: auth.Permissions{Produce: []string{">"}}},
		},
		ScramFile:           filepath.Join(dir, "scram.json"),
		FailedAuthPerMinute: 1000,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return &authFixture{a: a, issuerSeed: seed}
}

func (f *authFixture) token(t *testing.T, perms auth.Permissions, bearer bool) string {
	t.Helper()
	_, pub, err := auth.NewUserKey()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := auth.IssueUserJWT(f.issuerSeed, pub, perms, time.Hour, bearer, "t")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type cred func(*http.Request)

func bearer(tok string) cred {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
}

func basic(user, pw string) cred { return func(r *http.Request) { r.SetBasicAuth(user, pw) } }

func do(t *testing.T, h http.Handler, method, path string, body []byte, c cred) (*httptest.ResponseRecorder, APIError) {
	t.Helper()
	r := httptest.NewRequest(method, path, bytes.NewReader(body))
	if c != nil {
		c(r)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var e APIError
	if w.Code >= 400 && strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(w.Body.Bytes(), &e)
	}
	return w, e
}

func TestAdminAuth(t *testing.T) {
	f := newAuth(t)
	h := AdminHandler(seeded(), AdminOptions{Auth: f.a})
	module := append(append([]byte(nil), wasmMagic...), 1, 2)
	filtersJWT := f.token(t, auth.Permissions{Filters: true}, true)
	adminJWT := f.token(t, auth.Permissions{Admin: true}, true)
	plainJWT := f.token(t, auth.Permissions{Consume: []string{">"}}, true)
	nonceJWT := f.token(t, auth.Permissions{Admin: true}, false)

	tests := []struct {
		name         string
		method, path string
		body         []byte
		cred         cred
		status       int
	}{
		{"no credentials", "GET", "/api/v1/filters", nil, nil, 401},
		{"no credentials unknown path", "GET", "/api/v1/nope", nil, nil, 401},
		{"garbage bearer", "GET", "/api/v1/filters", nil, bearer("nope"), 401},
		{"nonce jwt as bearer", "GET", "/api/v1/filters", nil, bearer(nonceJWT), 401},
		{"wrong password", "GET", "/api/v1/filters", nil, basic("ops", "wrong"), 401},
		{"unknown user", "GET", "/api/v1/filters", nil, basic("nobody", "s3cret-pw"), 401},
		{"unknown scheme", "GET", "/api/v1/filters", nil, func(r *http.Request) { r.Header.Set("Authorization", "Digest x") }, 401},

		{"read without permission (jwt)", "GET", "/api/v1/filters", nil, bearer(plainJWT), 403},
		{"read without permission (basic)", "GET", "/api/v1/bindings", nil, basic("app", "s3cret-pw"), 403},
		{"deploy without permission", "POST", "/api/v1/filters/x", module, bearer(plainJWT), 403},
		{"bind without permission", "POST", "/api/v1/bindings", []byte(`{"filter":"redact","produce":"orders"}`), basic("app", "s3cret-pw"), 403},
		{"unbind without permission", "DELETE", "/api/v1/bindings/b1", nil, bearer(plainJWT), 403},

		{"read with filters (jwt)", "GET", "/api/v1/filters", nil, bearer(filtersJWT), 200},
		{"read with admin (jwt)", "GET", "/api/v1/bindings", nil, bearer(adminJWT), 200},
		{"read with admin (basic)", "GET", "/api/v1/filters/redact", nil, basic("ops", "s3cret-pw"), 200},
		{"deploy with filters (jwt)", "POST", "/api/v1/filters/x", module, bearer(filtersJWT), 201},
		{"deploy with filters (basic)", "POST", "/api/v1/filters/y", module, basic("dev", "s3cret-pw"), 201},
		{"deploy with admin", "POST", "/api/v1/filters/z", module, basic("ops", "s3cret-pw"), 201},
		{"bind with filters", "POST", "/api/v1/bindings", []byte(`{"filter":"idle","produce":"sensors"}`), bearer(filtersJWT), 201},
		{"unknown path authenticated", "GET", "/api/v1/nope", nil, bearer(filtersJWT), 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, e := do(t, h, tt.method, tt.path, tt.body, tt.cred)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			switch tt.status {
			case 401:
				if e.Code != "unauthorized" || e.Error == "" {
					t.Fatalf("body %s", w.Body)
				}
				if ch := strings.Join(w.Header().Values("WWW-Authenticate"), ", "); !strings.Contains(ch, "Bearer") || !strings.Contains(ch, "Basic") {
					t.Fatalf("WWW-Authenticate %q", ch)
				}
				if strings.Contains(w.Body.String(), "s3cret") || strings.Contains(w.Body.String(), "eyJ") {
					t.Fatalf("401 body leaks a secret: %s", w.Body)
				}
			case 403:
				if e.Code != "forbidden" {
					t.Fatalf("body %s", w.Body)
				}
			}
		})
	}
}

func TestHandlerAuth(t *testing.T) {
	f := newAuth(t)
	bopts := broker.Options{DataDir: t.TempDir(), AutoCreateTopics: true, DefaultPartitions: 1, Defaults: broker.DefaultTopicConfig()}
	b, err := broker.Open(bopts)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	h := Handler(b, nil, WithAuth(f.a))
	get := func(path string, c cred) int {
		w, _ := do(t, h, "GET", path, nil, c)
		io.Copy(io.Discard, w.Body)
		return w.Code
	}
	if s := get("/healthz", nil); s != 200 {
		t.Fatalf("/healthz without credentials: %d", s)
	}
	if s := get("/debug/pprof/", nil); s != 401 {
		t.Fatalf("pprof without credentials: %d", s)
	}
	if s := get("/debug/pprof/", basic("dev", "s3cret-pw")); s != 403 {
		t.Fatalf("pprof without admin: %d", s)
	}
	if s := get("/debug/pprof/", basic("ops", "s3cret-pw")); s != 200 {
		t.Fatalf("pprof as admin: %d", s)
	}
	if s := get("/api/v1/filters", nil); s != 401 {
		t.Fatalf("api without credentials: %d", s)
	}

	// Auth off: everything open, as before.
	open := Handler(b, nil)
	if w, _ := do(t, open, "GET", "/debug/pprof/", nil, nil); w.Code != 200 {
		t.Fatalf("pprof with auth off: %d", w.Code)
	}
	if w, _ := do(t, open, "GET", "/api/v1/bindings", nil, nil); w.Code == 401 || w.Code == 403 {
		t.Fatalf("api with auth off: %d", w.Code)
	}
}
