package kafka

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha256"
	"crypto/sha512"
	"hash"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/samsa-broker/samsa/auth"
	"github.com/samsa-broker/samsa/broker"
)

// BenchmarkConnect measures what starting a Kafka connection costs, with
// and without authentication: each iteration is a new franz-go client that
// connects (ApiVersions, then SaslHandshake and SaslAuthenticate with a
// mechanism), gets a Metadata response and closes. Client and server run
// in this process, so ns/op is the CPU of both sides plus the loopback
// round trips:
//
//	go test -run x -bench Connect -benchtime 2s ./transports/kafka/
//
// The PLAIN user has a default-strength password hash (HashPassword); the
// broker remembers a successful check for a few minutes, so only the
// warm-up login (outside the measurement) pays its PBKDF2. SCRAM users have
// 4096 iterations (Kafka's minimum), which the client computes on every
// login (franz-go keeps no salted-password cache).
func BenchmarkConnect(b *testing.B) {
	const password = "bench-Pw-7h2x"
	discard := slog.New(slog.DiscardHandler)
	quiet := func(bo *broker.Options, o *Options) { bo.Logger, o.Logger = discard, discard }

	open := startServer(b, quiet)

	issuerSeed, issuerPub, err := auth.NewIssuer()
	if err != nil {
		b.Fatal(err)
	}
	hash, err := auth.HashPassword(password)
	if err != nil {
		b.Fatal(err)
	}
	rev := filepath.Join(b.TempDir(), "revoked")
	if err := os.WriteFile(rev, nil, 0o644); err != nil {
		b.Fatal(err)
	}
	perms := auth.Permissions{Produce: []string{"bench.>"}, Consume: []string{"bench.>"}}
	a, err := auth.New(auth.Config{
		Enabled:             true,
		Issuers:             []string{issuerPub},
		RevocationFile:      rev,
		FailedAuthPerMinute: 1000,
		Users:               []auth.StaticUser{{Name: "plainuser", PasswordHash: hash, Permissions: perms}},
	}, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = a.Close() })
	for _, m := range []string{auth.MechScramSHA256, auth.MechScramSHA512} {
		if err := a.UpsertScramPassword("scramuser", m, password, auth.ScramMinIterations); err != nil {
			b.Fatal(err)
		}
	}
	if err := a.SetScramPermissions("scramuser", &perms); err != nil {
		b.Fatal(err)
	}
	secured := startServer(b, quiet, func(_ *broker.Options, o *Options) { o.Auth = a })
	_, userPub, err := auth.NewUserKey()
	if err != nil {
		b.Fatal(err)
	}
	token, err := auth.IssueUserJWT(issuerSeed, userPub, perms, 24*time.Hour, true, "bench")
	if err != nil {
		b.Fatal(err)
	}

	tests := []struct {
		name string
		addr string
		mech sasl.Mechanism
	}{
		{"none", open.addr, nil},
		{"plain", secured.addr, plainMech("plainuser", password)},
		{"scram-sha-256", secured.addr, scram.Auth{User: "scramuser", Pass: password}.AsSha256Mechanism()},
		{"scram-sha-512", secured.addr, scram.Auth{User: "scramuser", Pass: password}.AsSha512Mechanism()},
		{"oauthbearer", secured.addr, oauthMech(token)},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			connect := func() {
				opts := []kgo.Opt{kgo.SeedBrokers(tt.addr), kgo.RetryTimeout(10 * time.Second)}
				if tt.mech != nil {
					opts = append(opts, kgo.SASL(tt.mech))
				}
				cl, err := kgo.NewClient(opts...)
				if err != nil {
					b.Fatal(err)
				}
				defer cl.Close()
				resp, err := kmsg.NewPtrMetadataRequest().RequestWith(ctx, cl)
				if err != nil {
					b.Fatalf("metadata: %v", err)
				}
				if len(resp.Brokers) != 1 {
					b.Fatalf("metadata lists %d brokers", len(resp.Brokers))
				}
			}
			connect() // warm-up: the PLAIN hash check, code paths
			for b.Loop() {
				connect()
			}
		})
	}
}

// BenchmarkScramClientKey is the part of a SCRAM login that the client
// computes on every connection: SaltedPassword = PBKDF2(password, salt,
// 4096 iterations). The difference between BenchmarkConnect/scram-* and
// BenchmarkConnect/none is mostly this.
func BenchmarkScramClientKey(b *testing.B) {
	salt := []byte("0123456789abcdef0123456789abcdef")
	for _, tt := range []struct {
		name string
		h    func() hash.Hash
		size int
	}{{"sha256", sha256.New, sha256.Size}, {"sha512", sha512.New, sha512.Size}} {
		b.Run(tt.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := pbkdf2.Key(tt.h, "bench-Pw-7h2x", salt, auth.ScramMinIterations, tt.size); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
