package main

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
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/samsa-broker/samsa/auth"
)

// syncBuffer is a goroutine-safe buffer for a server's log.
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

// serveInProcess runs `samsa serve args...` with config (a broker.toml
// body) until the returned stop is called; it returns the log once
// serving, or the error when serve ended first.
func serveInProcess(t *testing.T, config string, args ...string) (log *syncBuffer, stop func() error, err error) {
	t.Helper()
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "broker.toml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	log = &syncBuffer{}
	env := &cliEnv{stdin: strings.NewReader(""), stdout: log, stderr: log, getenv: func(string) string { return "" }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	all := append([]string{"serve", "--config", cfgPath, "--data-dir", filepath.Join(dir, "data")}, args...)
	go func() { done <- run(ctx, env, all) }()
	deadline := time.After(15 * time.Second)
	for !strings.Contains(log.String(), "msg=serving") {
		select {
		case err := <-done:
			cancel()
			return log, nil, err
		case <-deadline:
			cancel()
			t.Fatalf("serve did not start within 15s:\n%s", log)
		case <-time.After(10 * time.Millisecond):
		}
	}
	var once sync.Once
	var serr error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case serr = <-done:
			case <-time.After(15 * time.Second):
				serr = fmt.Errorf("serve did not stop within 15s")
			}
		})
		return serr
	}
	t.Cleanup(func() { _ = stop() })
	return log, stop, nil
}

func TestServeRefusesPublicListenerWithoutAuth(t *testing.T) {
	for _, args := range [][]string{
		{"--kafka-addr", "0.0.0.0:0", "--http-addr", "127.0.0.1:0"},
		{"--kafka-addr", "127.0.0.1:0", "--http-addr", ":0"},
	} {
		_, _, err := serveInProcess(t, "", args...)
		if err == nil {
			t.Fatalf("serve %v with auth off: started, want a refusal", args)
		}
		msg := err.Error()
		for _, want := range []string{"authentication off", "not a loopback address", "[auth] enabled = true", "--insecure"} {
			if !strings.Contains(msg, want) {
				t.Errorf("serve %v: error %q does not say %q", args, msg, want)
			}
		}
		if !strings.Contains(msg, "kafka.addr 0.0.0.0:0") && !strings.Contains(msg, "http.addr :0") {
			t.Errorf("serve %v: error %q does not name the listener", args, msg)
		}
	}
}

func TestServeInsecureStarts(t *testing.T) {
	log, stop, err := serveInProcess(t, "", "--kafka-addr", "0.0.0.0:0", "--http-addr", "127.0.0.1:0", "--insecure")
	if err != nil {
		t.Fatalf("serve --insecure: %v", err)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	out := log.String()
	if !strings.Contains(out, "auth=off") || !strings.Contains(out, "tls=off") {
		t.Errorf("serving line does not say auth=off and tls=off:\n%s", out)
	}
	if !strings.Contains(out, "--insecure") || !strings.Contains(out, "level=WARN") {
		t.Errorf("no warning about serving without authentication:\n%s", out)
	}
}

func TestServeLoopbackNeedsNoFlag(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:0", "localhost:0", "[::1]:0"} {
		if addr == "[::1]:0" {
			if ln, err := net.Listen("tcp", addr); err != nil {
				continue // no IPv6 loopback here
			} else {
				ln.Close()
			}
		}
		_, stop, err := serveInProcess(t, "", "--kafka-addr", addr, "--http-addr", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("serve on %s: %v", addr, err)
		}
		if err := stop(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:9092": true, "127.1.2.3:1": true, "localhost:8080": true, "LOCALHOST:1": true, "[::1]:9092": true,
		"0.0.0.0:9092": false, ":9092": false, "[::]:9092": false, "10.0.0.1:9092": false, "example.com:9092": false, "bad": false,
	} {
		if got := isLoopback(addr); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestServeWithAuthOnPublicListener(t *testing.T) {
	_, pub, err := auth.NewIssuer()
	if err != nil {
		t.Fatal(err)
	}
	config := fmt.Sprintf("[auth]\nenabled = true\nissuers = [%q]\n", pub)
	log, stop, err := serveInProcess(t, config, "--kafka-addr", "0.0.0.0:0", "--http-addr", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("serve with auth on: %v", err)
	}
	out := log.String()
	if !strings.Contains(out, "auth=on") {
		t.Errorf("serving line does not say auth=on:\n%s", out)
	}
	if strings.Contains(out, pub) {
		// Public keys are not secrets, but the serving line has no
		// business listing them either.
		t.Logf("log mentions the issuer key")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestServeTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile, pool := selfSigned(t, dir)
	config := fmt.Sprintf("[tls]\ncert_file = %q\nkey_file = %q\n", certFile, keyFile)
	log, stop, err := serveInProcess(t, config, "--kafka-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("serve with TLS: %v", err)
	}
	defer stop()
	out := log.String()
	if !strings.Contains(out, "tls=on") {
		t.Fatalf("serving line does not say tls=on:\n%s", out)
	}
	m := regexp.MustCompile(`http=(127\.0\.0\.1:\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no http address in the log:\n%s", out)
	}
	cl := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 5 * time.Second}
	resp, err := cl.Get("https://" + m[1] + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /healthz over TLS: %s", resp.Status)
	}
	// The Kafka listener speaks TLS too.
	km := regexp.MustCompile(`kafka=(127\.0\.0\.1:\d+)`).FindStringSubmatch(out)
	if km == nil {
		t.Fatalf("no kafka address in the log:\n%s", out)
	}
	kc, err := kgo.NewClient(kgo.SeedBrokers(km[1]), kgo.DialTLSConfig(&tls.Config{RootCAs: pool}))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	pctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := kc.Ping(pctx); err != nil {
		t.Fatalf("kafka over TLS: %v", err)
	}
	// Plain HTTP on the TLS listener does not work.
	plain := &http.Client{Timeout: 5 * time.Second}
	if resp, err := plain.Get("http://" + m[1] + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP got 200 from the TLS listener")
		}
	}

	// A missing key file is an error naming the keys.
	_, _, err = serveInProcess(t, fmt.Sprintf("[tls]\ncert_file = %q\nkey_file = %q\n", certFile, filepath.Join(dir, "nope.pem")),
		"--kafka-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	if err == nil || !strings.Contains(err.Error(), "tls.key_file") {
		t.Fatalf("missing key file: %v", err)
	}
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and returns
// the files and a pool trusting it.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "samsa test"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}
