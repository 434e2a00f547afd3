package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/samsa-broker/samsa/auth"
)

func TestAuthInit(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "issuer.nk")
	for _, tc := range []struct {
		args []string
		kind func(string) bool
	}{
		{[]string{"auth", "init", "--out", out}, nkeys.IsValidPublicAccountKey},
		{[]string{"auth", "init", "--out", out + ".op", "--operator"}, nkeys.IsValidPublicOperatorKey},
	} {
		r := mustRun(t, ctx, "", "", tc.args...)
		m := regexp.MustCompile(`(?m)^issuers = \["([A-Z0-9]+)"\]$`).FindStringSubmatch(r.stdout)
		if m == nil || !strings.Contains(r.stdout, "[auth]\nenabled = true\n") {
			t.Fatalf("stdout:\n%s", r.stdout)
		}
		if !tc.kind(m[1]) {
			t.Fatalf("issuer %s is not the right kind of key", m[1])
		}
		path := tc.args[3]
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Fatalf("seed file mode %v, want 0600", fi.Mode().Perm())
		}
		seed, _ := os.ReadFile(path)
		if pub, err := auth.PublicKeyOf(string(seed)); err != nil || pub != m[1] {
			t.Fatalf("seed file's public key %q (%v), want %s", pub, err, m[1])
		}
		if strings.Contains(r.stdout+r.stderr, strings.TrimSpace(string(seed))) {
			t.Fatal("the seed was printed")
		}
	}
	// Never overwrite.
	before, _ := os.ReadFile(out)
	r := runCLI(t, ctx, "", "", "auth", "init", "--out", out)
	if r.err == nil || !strings.Contains(r.err.Error(), "refusing to overwrite") {
		t.Fatalf("second init: %v", r.err)
	}
	if after, _ := os.ReadFile(out); string(after) != string(before) {
		t.Fatal("the seed file changed")
	}
	if r := runCLI(t, ctx, "", "", "auth", "bogus"); r.err == nil {
		t.Fatal("unknown subcommand accepted")
	}
}

func TestKeyGenPub(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()

	// To stdout.
	r := mustRun(t, ctx, "", "", "key", "gen")
	seed := strings.TrimSpace(r.stdout)
	pub := regexp.MustCompile(`public key: (U[A-Z0-9]+)`).FindStringSubmatch(r.stderr)
	if !strings.HasPrefix(seed, "SU") || pub == nil {
		t.Fatalf("stdout %q stderr %q", r.stdout, r.stderr)
	}
	path := filepath.Join(dir, "alice.nk")
	if err := os.WriteFile(path, []byte(seed+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = mustRun(t, ctx, "", "", "key", "pub", path)
	if got := strings.TrimSpace(r.stdout); got != pub[1] {
		t.Fatalf("key pub = %q, want %q", got, pub[1])
	}
	r = mustRun(t, ctx, "", seed, "key", "pub", "-")
	if got := strings.TrimSpace(r.stdout); got != pub[1] {
		t.Fatalf("key pub - = %q, want %q", got, pub[1])
	}

	// With --out: 0600, the public key on stdout, no overwrite.
	out := filepath.Join(dir, "bob.nk")
	r = mustRun(t, ctx, "", "", "key", "gen", "--out", out)
	bobPub := strings.TrimSpace(r.stdout)
	if !nkeys.IsValidPublicUserKey(bobPub) {
		t.Fatalf("stdout %q", r.stdout)
	}
	fi, err := os.Stat(out)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("seed file: %v %v", fi, err)
	}
	if r := mustRun(t, ctx, "", "", "key", "pub", out); strings.TrimSpace(r.stdout) != bobPub {
		t.Fatalf("key pub %s = %q, want %s", out, r.stdout, bobPub)
	}
	if r := runCLI(t, ctx, "", "", "key", "gen", "--out", out); r.err == nil {
		t.Fatal("overwrote the seed file")
	}

	// Not a seed: the error does not quote the file.
	bad := filepath.Join(dir, "bad.nk")
	os.WriteFile(bad, []byte("SUAGARBAGE-secretish\n"), 0o600)
	r = runCLI(t, ctx, "", "", "key", "pub", bad)
	if r.err == nil || strings.Contains(r.err.Error(), "GARBAGE") {
		t.Fatalf("key pub of garbage: %v", r.err)
	}
	for _, args := range [][]string{{"key", "pub"}, {"key", "pub", "a", "b"}, {"key", "gen", "extra"}, {"key"}} {
		if r := runCLI(t, ctx, "", "", args...); r.err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestKeyGenToRegularStdout(t *testing.T) {
	// `samsa key gen > alice.nk` leaves the file readable by its owner only.
	path := filepath.Join(t.TempDir(), "alice.nk")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var errb strings.Builder
	env := &cliEnv{stdin: strings.NewReader(""), stdout: f, stderr: &errb, getenv: func(string) string { return "" }}
	if err := run(testContext(t), env, []string{"key", "gen"}); err != nil {
		t.Fatal(err)
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600 (stderr %q)", fi.Mode().Perm(), errb.String())
	}
}

func TestTokenIssue(t *testing.T) {
	ctx := testContext(t)
	dir := t.TempDir()
	issuerFile := filepath.Join(dir, "issuer.nk")
	r := mustRun(t, ctx, "", "", "auth", "init", "--out", issuerFile)
	issuerPub := regexp.MustCompile(`issuers = \["([A-Z0-9]+)"\]`).FindStringSubmatch(r.stdout)[1]
	userFile := filepath.Join(dir, "alice.nk")
	userPub := strings.TrimSpace(mustRun(t, ctx, "", "", "key", "gen", "--out", userFile).stdout)

	a, err := auth.New(auth.Config{Enabled: true, Issuers: []string{issuerPub}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()

	for _, tc := range []struct {
		name   string
		args   []string
		perms  auth.Permissions
		ttl    time.Duration
		bearer bool
	}{
		{
			name:  "all permissions",
			args:  []string{"--user", userPub, "--produce", "sensors.>", "--produce", "alerts", "--consume", "alerts,logs.*", "--group", "dash.*", "--admin", "--filters", "--expires", "2h", "--name", "alice"},
			perms: auth.Permissions{Produce: []string{"sensors.>", "alerts"}, Consume: []string{"alerts", "logs.*"}, Groups: []string{"dash.*"}, Admin: true, Filters: true},
			ttl:   2 * time.Hour,
		},
		{
			name:   "bearer from a seed file",
			args:   []string{"--user", userFile, "--consume", "x", "--bearer", "--expires", "10m"},
			perms:  auth.Permissions{Consume: []string{"x"}},
			ttl:    10 * time.Minute,
			bearer: true,
		},
		{
			name:  "default expiry",
			args:  []string{"--user", userPub, "--group", ">"},
			perms: auth.Permissions{Groups: []string{">"}},
			ttl:   24 * time.Hour,
		},
		{
			name:  "never expires",
			args:  []string{"--user", userPub, "--produce", "p", "--expires", "0"},
			perms: auth.Permissions{Produce: []string{"p"}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"token", "issue", "--issuer-seed", issuerFile}, tc.args...)
			r := mustRun(t, ctx, "", "", args...)
			tok := strings.TrimSpace(r.stdout)
			p, err := a.VerifyJWT(tok)
			if err != nil {
				t.Fatalf("VerifyJWT: %v", err)
			}
			if p.PublicKey != userPub || p.Bearer != tc.bearer {
				t.Fatalf("principal %+v", p)
			}
			got := p.Perms
			if strings.Join(got.Produce, " ") != strings.Join(tc.perms.Produce, " ") ||
				strings.Join(got.Consume, " ") != strings.Join(tc.perms.Consume, " ") ||
				strings.Join(got.Groups, " ") != strings.Join(tc.perms.Groups, " ") ||
				got.Admin != tc.perms.Admin || got.Filters != tc.perms.Filters {
				t.Fatalf("perms %+v, want %+v", got, tc.perms)
			}
			if tc.ttl == 0 {
				if !p.Expires.IsZero() {
					t.Fatalf("expires %v, want never", p.Expires)
				}
			} else if d := time.Until(p.Expires); d < tc.ttl-time.Minute || d > tc.ttl+time.Second {
				t.Fatalf("expires in %v, want %v", d, tc.ttl)
			}
			if tc.bearer {
				if _, err := a.VerifyBearer(tok); err != nil {
					t.Fatal(err)
				}
			} else if _, err := a.VerifyBearer(tok); err == nil {
				t.Fatal("a non-bearer token passed VerifyBearer")
			}
		})
	}

	seed, _ := os.ReadFile(userFile)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no issuer", []string{"--user", userPub}, "--issuer-seed"},
		{"no user", []string{"--issuer-seed", issuerFile}, "--user"},
		{"bad pattern", []string{"--issuer-seed", issuerFile, "--user", userPub, "--produce", "a.>.b"}, "'>' must be the last token"},
		{"seed as user", []string{"--issuer-seed", issuerFile, "--user", strings.TrimSpace(string(seed))}, "not a seed"},
		{"issuer key as user", []string{"--issuer-seed", issuerFile, "--user", issuerFile}, "not a user key"},
		{"user seed as issuer", []string{"--issuer-seed", userFile, "--user", userPub}, "not an operator or account seed"},
		{"missing issuer file", []string{"--issuer-seed", filepath.Join(dir, "nope"), "--user", userPub}, "no such file"},
		{"negative expiry", []string{"--issuer-seed", issuerFile, "--user", userPub, "--expires", "-1h"}, "negative"},
	} {
		r := runCLI(t, ctx, "", "", append([]string{"token", "issue"}, tc.args...)...)
		if r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, r.err, tc.want)
		}
		if r.err != nil && strings.Contains(r.err.Error(), strings.TrimSpace(string(seed))) {
			t.Errorf("%s: the error holds a seed", tc.name)
		}
	}
}

func TestUserAddArgs(t *testing.T) {
	ctx := testContext(t)
	for _, tc := range []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"no name", "pw\n", []string{"--password-stdin"}, "exactly one user NAME"},
		{"two names", "pw\n", []string{"a", "b", "--password-stdin"}, "exactly one user NAME"},
		{"bad mechanism", "pw\n", []string{"a", "--mechanism", "PLAIN", "--password-stdin"}, "unknown --mechanism"},
		{"few iterations", "pw\n", []string{"a", "--iterations", "100", "--password-stdin"}, "--iterations"},
		{"no password source", "pw\n", []string{"a"}, "--password-stdin"},
		{"empty password", "\n", []string{"a", "--password-stdin"}, "empty"},
	} {
		r := runCLI(t, ctx, "127.0.0.1:1", tc.stdin, append([]string{"user", "add"}, tc.args...)...)
		if r.err == nil || !strings.Contains(r.err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, r.err, tc.want)
		}
	}
	// Good arguments parse without contacting a broker.
	var cf clientFlags
	env := &cliEnv{stdin: strings.NewReader("s3cret pw\r\nnext line\n"), stdout: &strings.Builder{}, stderr: &strings.Builder{}, getenv: func(string) string { return "" }}
	ua, err := parseUserAdd(env, []string{"alice", "--mechanism", "scram-sha-512", "--iterations", "4096", "--password-stdin", "--brokers", "h:1"}, &cf)
	if err != nil {
		t.Fatal(err)
	}
	if ua.name != "alice" || ua.mechName != auth.MechScramSHA512 || ua.iterations != 4096 || ua.password != "s3cret pw" || cf.brokers != "h:1" {
		t.Fatalf("parsed %+v, brokers %q", ua, cf.brokers)
	}
}

func TestUserAgainstKfake(t *testing.T) {
	ctx := testContext(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	brokers := strings.Join(c.ListenAddrs(), ",")
	r := mustRun(t, ctx, brokers, "pw-alice\n", "user", "add", "alice", "--mechanism", "SCRAM-SHA-512", "--password-stdin")
	if !strings.Contains(r.stdout, `set SCRAM-SHA-512 credential of user "alice"`) || strings.Contains(r.stdout+r.stderr, "pw-alice") {
		t.Fatalf("stdout %q stderr %q", r.stdout, r.stderr)
	}
	mustRun(t, ctx, brokers, "pw-bob\n", "user", "add", "bob", "--password-stdin", "--iterations", "4096")
	r = mustRun(t, ctx, brokers, "", "user", "list")
	for _, re := range []string{`(?m)^alice\s+SCRAM-SHA-512\s+8192$`, `(?m)^bob\s+SCRAM-SHA-256\s+4096$`} {
		if !regexp.MustCompile(re).MatchString(r.stdout) {
			t.Fatalf("user list:\n%s\nwant %s", r.stdout, re)
		}
	}
	mustRun(t, ctx, brokers, "", "user", "delete", "bob")
	r = mustRun(t, ctx, brokers, "", "user", "list")
	if strings.Contains(r.stdout, "bob") {
		t.Fatalf("bob still listed:\n%s", r.stdout)
	}
}

func TestUserHash(t *testing.T) {
	ctx := testContext(t)
	r := mustRun(t, ctx, "", "hunter2\n", "user", "hash", "--password-stdin")
	h := strings.TrimSpace(r.stdout)
	if !auth.CheckPassword(h, "hunter2") || auth.CheckPassword(h, "hunter3") {
		t.Fatalf("hash %q does not check", h)
	}
	if r := runCLI(t, ctx, "", "", "user", "hash", "hunter2"); r.err == nil {
		t.Fatal("a password argument was accepted")
	}
}
