package e2e

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"

	"github.com/samsa-broker/samsa/auth"
)

// rawTOML is a config value written verbatim (arrays, inline tables).
type rawTOML string

func (r rawTOML) String() string { return string(r) }

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 and its
// key as PEM files; it returns their paths and a pool trusting the cert.
func writeSelfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "samsa e2e"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
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
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool = x509.NewCertPool()
	pool.AddCert(leaf)
	return certFile, keyFile, pool
}

// TestAuthKafkaKcat runs samsa with [auth] and [tls] and drives it with
// kcat (librdkafka) over SASL_SSL: PLAIN for a static user, SCRAM-SHA-256
// and SCRAM-SHA-512 for a user whose credentials an admin set through
// AlterUserScramCredentials; a wrong password, a forbidden topic and a
// plaintext client are refused.
func TestAuthKafkaKcat(t *testing.T) {
	kcat := requireTool(t, "kcat")
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile, pool := writeSelfSigned(t, dir)

	const adminPW, alicePW, carolPW = "admin-pw-7Hq", "alice-pw-3Kz", "carol-pw-9Wd"
	adminHash, err := auth.HashPassword(adminPW)
	if err != nil {
		t.Fatal(err)
	}
	aliceHash, err := auth.HashPassword(alicePW)
	if err != nil {
		t.Fatal(err)
	}
	// carol logs in with SCRAM credentials set at run time; her
	// permissions come from this static entry (an nkey identity).
	_, carolKey, err := auth.NewUserKey()
	if err != nil {
		t.Fatal(err)
	}
	_, issuerPub, err := auth.NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	users := fmt.Sprintf(`[
  { name = "admin", password_hash = %q, admin = true },
  { name = "alice", password_hash = %q, produce = ["orders.>"], consume = ["orders.>"], groups = ["kc"] },
  { name = "carol", nkey = %q, produce = ["orders.>"], consume = ["orders.>"] },
]`, adminHash, aliceHash, carolKey)
	b := startBroker(t,
		withConfig("auth", "enabled", true),
		withConfig("auth", "issuers", rawTOML(fmt.Sprintf("[%q]", issuerPub))),
		withConfig("auth", "users", rawTOML(users)),
		withConfig("tls", "cert_file", certFile),
		withConfig("tls", "key_file", keyFile),
	)
	caFile := filepath.Join(dir, "ca.pem")
	ca, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(caFile, ca, 0o644); err != nil {
		t.Fatal(err)
	}

	// The admin, over TLS with franz-go, creates the topics and sets
	// carol's SCRAM credentials.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admCl, err := kgo.NewClient(
		kgo.SeedBrokers(b.Addr()),
		kgo.DialTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}),
		kgo.SASL(plain.Auth{User: "admin", Pass: adminPW}.AsMechanism()),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	topics := []string{"orders.plain", "orders.scram256", "orders.scram512", "secret"}
	created, err := adm.CreateTopics(ctx, 1, 1, nil, topics...)
	if err == nil {
		err = created.Error()
	}
	if err != nil {
		t.Fatalf("admin creates topics: %v", err)
	}
	altered, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{
		{User: "carol", Mechanism: kadm.ScramSha256, Iterations: 4096, Password: carolPW},
		{User: "carol", Mechanism: kadm.ScramSha512, Iterations: 4096, Password: carolPW},
	})
	if err == nil {
		err = altered.Error()
	}
	if err != nil {
		t.Fatalf("admin sets carol's SCRAM credentials: %v", err)
	}

	kcatRun := func(stdin string, args ...string) (string, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, kcat, args...)
		cmd.Stdin = strings.NewReader(stdin)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if ctx.Err() != nil {
			err = fmt.Errorf("timed out: %w", err)
		}
		return stdout.String(), stderr.String(), err
	}
	saslArgs := func(mech, user, pw string) []string {
		return []string{
			"-b", b.Addr(),
			"-X", "security.protocol=SASL_SSL",
			"-X", "ssl.ca.location=" + caFile,
			"-X", "sasl.mechanisms=" + mech,
			"-X", "sasl.username=" + user,
			"-X", "sasl.password=" + pw,
		}
	}
	mustRun := func(t *testing.T, stdin string, args ...string) string {
		t.Helper()
		out, stderr, err := kcatRun(stdin, args...)
		if err == nil && (strings.Contains(stderr, "ERROR") || strings.Contains(stderr, "%3|")) {
			err = errors.New("errors on stderr")
		}
		if err != nil {
			t.Fatalf("kcat %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, head(out, 2000), head(stderr, 2000))
		}
		return out
	}

	for _, tc := range []struct {
		name, mech, user, pw, topic string
	}{
		{"PLAIN", "PLAIN", "alice", alicePW, "orders.plain"},
		{"SCRAM-SHA-256", "SCRAM-SHA-256", "carol", carolPW, "orders.scram256"},
		{"SCRAM-SHA-512", "SCRAM-SHA-512", "carol", carolPW, "orders.scram512"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := saslArgs(tc.mech, tc.user, tc.pw)
			mustRun(t, "one\ntwo\nthree\n", append(args, "-P", "-t", tc.topic)...)
			got := mustRun(t, "", append(args, "-C", "-t", tc.topic, "-o", "beginning", "-e", "-f", "%s %o\n")...)
			if want := "one 0\ntwo 1\nthree 2\n"; got != want {
				t.Fatalf("kcat -C as %s:\n%s\nwant:\n%s", tc.user, got, want)
			}
			// Metadata lists only the topics the user may describe.
			list := mustRun(t, "", append(args, "-L")...)
			if strings.Contains(list, `"secret"`) || !strings.Contains(list, `"orders.plain"`) {
				t.Fatalf("kcat -L as %s:\n%s", tc.user, list)
			}
		})
	}

	t.Run("wrong password", func(t *testing.T) {
		const wrong = "not-the-password-5Tr"
		out, stderr, err := kcatRun("", append(saslArgs("SCRAM-SHA-512", "carol", wrong), "-L", "-m", "5")...)
		if err == nil {
			t.Fatalf("kcat -L with a wrong password succeeded:\n%s", out)
		}
		if !strings.Contains(strings.ToLower(stderr), "authentication") {
			t.Fatalf("kcat stderr does not tell an authentication failure:\n%s", head(stderr, 2000))
		}
		if strings.Contains(b.out.String(), wrong) {
			t.Fatal("the server log shows the wrong password")
		}
	})
	t.Run("forbidden topic", func(t *testing.T) {
		_, stderr, err := kcatRun("x\n", append(saslArgs("PLAIN", "alice", alicePW), "-P", "-t", "secret")...)
		if err == nil && !strings.Contains(stderr, "authorization failed") {
			t.Fatalf("alice produced to secret; stderr:\n%s", head(stderr, 2000))
		}
		if !strings.Contains(strings.ToLower(stderr), "authorization failed") {
			t.Fatalf("kcat stderr does not tell an authorization failure:\n%s", head(stderr, 2000))
		}
	})
	t.Run("plaintext client", func(t *testing.T) {
		if out, _, err := kcatRun("", "-b", b.Addr(), "-L", "-m", "3"); err == nil {
			t.Fatalf("a plaintext client listed metadata:\n%s", out)
		}
	})
	t.Run("no SASL", func(t *testing.T) {
		// TLS without SASL: the broker closes the connection at the
		// first request after ApiVersions.
		out, _, err := kcatRun("", "-b", b.Addr(), "-X", "security.protocol=SSL", "-X", "ssl.ca.location="+caFile, "-L", "-m", "3")
		if err == nil {
			t.Fatalf("a client without SASL listed metadata:\n%s", out)
		}
	})
	b.Stop()
}
