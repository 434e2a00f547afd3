package main

// Shared helpers of the client subcommands (topic, produce, consume, bench):
// the connection flags, flag parsing that allows flags after positional
// arguments, and small parsers for flag values.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/oauth"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

const defaultBrokers = "127.0.0.1:9092"

// clientFlags are the connection flags every client subcommand accepts.
type clientFlags struct {
	brokers     string
	tls         bool
	tlsCA       string
	tlsInsecure bool
	sasl        string
	user        string
	password    string
	token       string
	timeout     time.Duration
	getenv      func(string) string
}

// defaultClientTimeout is the default --timeout of the client subcommands.
const defaultClientTimeout = 30 * time.Second

// newClientFlagSet returns a flag set (see newFlagSet) with the connection
// flags registered on it, --timeout defaulting to defaultClientTimeout.
func newClientFlagSet(env *cliEnv, name, usage string) (*flag.FlagSet, *clientFlags) {
	fs := newFlagSet(env, name, usage)
	cf := &clientFlags{}
	addClientFlags(fs, env, cf, defaultClientTimeout)
	return fs, cf
}

// addClientFlags registers the connection flags on fs. Defaults come from the
// environment (SAMSA_BROKERS, SAMSA_SASL_MECHANISM, SAMSA_USER,
// SAMSA_PASSWORD, SAMSA_TOKEN, SAMSA_TLS_CA) so that secrets need not be
// typed on the command line.
func addClientFlags(fs *flag.FlagSet, env *cliEnv, cf *clientFlags, timeout time.Duration) {
	get := env.getenvOr
	fs.StringVar(&cf.brokers, "brokers", get("SAMSA_BROKERS", defaultBrokers), "comma-separated list of seed brokers (env SAMSA_BROKERS)")
	fs.BoolVar(&cf.tls, "tls", get("SAMSA_TLS", "") != "", "connect with TLS (env SAMSA_TLS)")
	fs.StringVar(&cf.tlsCA, "tls-ca", get("SAMSA_TLS_CA", ""), "PEM file of CA certificates to trust (implies --tls; env SAMSA_TLS_CA)")
	fs.BoolVar(&cf.tlsInsecure, "tls-insecure", false, "do not verify the broker's certificate (implies --tls)")
	fs.StringVar(&cf.sasl, "sasl", get("SAMSA_SASL_MECHANISM", ""), "SASL mechanism: plain, scram-sha-256, scram-sha-512 or oauthbearer (env SAMSA_SASL_MECHANISM)")
	fs.StringVar(&cf.user, "user", get("SAMSA_USER", ""), "SASL user name (env SAMSA_USER)")
	// Secrets are read from the environment after parsing, so that usage
	// output never prints them as defaults.
	fs.StringVar(&cf.password, "password", "", "SASL password (env SAMSA_PASSWORD)")
	fs.StringVar(&cf.token, "token", "", "bearer JWT for SASL OAUTHBEARER (env SAMSA_TOKEN)")
	cf.getenv = env.getenv
	fs.DurationVar(&cf.timeout, "timeout", timeout, "how long to wait for the broker before giving up (0 = no limit)")
}

// seeds returns the broker addresses of --brokers.
func (cf *clientFlags) seeds() ([]string, error) {
	var out []string
	for _, b := range strings.Split(cf.brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no brokers given (use --brokers or SAMSA_BROKERS)")
	}
	return out, nil
}

// opts returns the kgo options that connect to the brokers of cf.
func (cf *clientFlags) opts() ([]kgo.Opt, error) {
	seeds, err := cf.seeds()
	if err != nil {
		return nil, err
	}
	if cf.getenv != nil {
		if cf.password == "" {
			cf.password = cf.getenv("SAMSA_PASSWORD")
		}
		if cf.token == "" {
			cf.token = cf.getenv("SAMSA_TOKEN")
		}
	}
	opts := []kgo.Opt{kgo.SeedBrokers(seeds...), kgo.ClientID("samsa-cli")}
	if cf.timeout > 0 {
		opts = append(opts, kgo.DialTimeout(min(cf.timeout, 10*time.Second)))
	}
	if cf.tls || cf.tlsCA != "" || cf.tlsInsecure {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: cf.tlsInsecure} //nolint:gosec // opt-in flag
		if cf.tlsCA != "" {
			pem, err := os.ReadFile(cf.tlsCA)
			if err != nil {
				return nil, fmt.Errorf("reading --tls-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--tls-ca %s: no PEM certificates found", cf.tlsCA)
			}
			tc.RootCAs = pool
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	switch strings.ToLower(cf.sasl) {
	case "":
	case "plain":
		opts = append(opts, kgo.SASL(plain.Auth{User: cf.user, Pass: cf.password}.AsMechanism()))
	case "scram-sha-256":
		opts = append(opts, kgo.SASL(scram.Auth{User: cf.user, Pass: cf.password}.AsSha256Mechanism()))
	case "scram-sha-512":
		opts = append(opts, kgo.SASL(scram.Auth{User: cf.user, Pass: cf.password}.AsSha512Mechanism()))
	case "oauthbearer":
		if cf.token == "" {
			return nil, errors.New("--sasl oauthbearer needs --token or SAMSA_TOKEN")
		}
		opts = append(opts, kgo.SASL(oauth.Auth{Token: cf.token}.AsMechanism()))
	default:
		return nil, fmt.Errorf("unknown --sasl mechanism %q (want plain, scram-sha-256, scram-sha-512 or oauthbearer)", cf.sasl)
	}
	return opts, nil
}

// newClient creates a kgo client for cf with extra options appended.
func (cf *clientFlags) newClient(extra ...kgo.Opt) (*kgo.Client, error) {
	opts, err := cf.opts()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(opts, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("creating client: %w", err)
	}
	return cl, nil
}

// withTimeout bounds ctx by --timeout, if set.
func (cf *clientFlags) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if cf.timeout <= 0 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, cf.timeout)
}

// brokerErr makes errors from talking to the broker readable: a timeout says
// which brokers did not answer.
func (cf *clientFlags) brokerErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no answer from brokers %s within %s: %w", cf.brokers, cf.timeout, err)
	}
	return err
}

// newFlagSet returns a flag set that reports errors instead of exiting and
// writes its usage to env.stderr.
func newFlagSet(env *cliEnv, name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: samsa %s\n\nflags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// boolFlag is implemented by flag values that take no argument.
type boolFlag interface{ IsBoolFlag() bool }

// parseFlags parses args with flags and positional arguments in any order
// (so that `samsa produce TOPIC --key-sep :` works) and returns the
// positional arguments. "--" ends the flags; everything after it is
// positional.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var flags, pos []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			pos = append(pos, args[i+1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name := strings.TrimLeft(a, "-")
		if strings.Contains(name, "=") {
			continue
		}
		f := fs.Lookup(name)
		if f == nil {
			continue // fs.Parse reports it
		}
		if bf, ok := f.Value.(boolFlag); ok && bf.IsBoolFlag() {
			continue
		}
		if i+1 < len(args) {
			i++
			flags = append(flags, args[i])
		}
	}
	if err := fs.Parse(flags); err != nil {
		return nil, err
	}
	return pos, nil
}

// oneArg checks that the command cmd (such as "topic create") got exactly
// one positional argument, a non-empty what (such as "topic name"), and
// returns it.
func oneArg(cmd, what string, pos []string) (string, error) {
	switch {
	case len(pos) == 0:
		return "", fmt.Errorf("%s: missing %s", cmd, what)
	case len(pos) > 1:
		return "", fmt.Errorf("%s: want one %s, got %d arguments: %s", cmd, what, len(pos), strings.Join(pos, " "))
	case pos[0] == "":
		return "", fmt.Errorf("%s: empty %s", cmd, what)
	}
	return pos[0], nil
}

// noArgs checks that the command cmd (such as "topic list") got no
// positional arguments.
func noArgs(cmd string, pos []string) error {
	if len(pos) > 0 {
		return fmt.Errorf("%s: unexpected arguments: %s", cmd, strings.Join(pos, " "))
	}
	return nil
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

// kvList is a repeatable key=value flag that keeps the order given.
type kvList struct {
	keys []string
	vals map[string]string
}

func (kv *kvList) String() string {
	if kv == nil {
		return ""
	}
	parts := make([]string, 0, len(kv.keys))
	for _, k := range kv.keys {
		parts = append(parts, k+"="+kv.vals[k])
	}
	return strings.Join(parts, ",")
}

func (kv *kvList) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		return fmt.Errorf("want key=value, got %q", v)
	}
	if kv.vals == nil {
		kv.vals = map[string]string{}
	}
	if _, dup := kv.vals[k]; !dup {
		kv.keys = append(kv.keys, k)
	}
	kv.vals[k] = val
	return nil
}

func (kv *kvList) len() int { return len(kv.keys) }

// configMap returns the pairs as the map kadm.CreateTopic takes.
func (kv *kvList) configMap() map[string]*string {
	if kv.len() == 0 {
		return nil
	}
	m := make(map[string]*string, len(kv.keys))
	for _, k := range kv.keys {
		v := kv.vals[k]
		m[k] = &v
	}
	return m
}

// parseAcks turns --acks into kgo options. Anything but "all" needs the
// idempotent producer turned off.
func parseAcks(s string) ([]kgo.Opt, error) {
	switch strings.ToLower(s) {
	case "all", "-1":
		return []kgo.Opt{kgo.RequiredAcks(kgo.AllISRAcks())}, nil
	case "1", "leader":
		return []kgo.Opt{kgo.RequiredAcks(kgo.LeaderAck()), kgo.DisableIdempotentWrite()}, nil
	case "0", "none":
		return []kgo.Opt{kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite()}, nil
	}
	return nil, fmt.Errorf("invalid --acks %q (want all, 1 or 0)", s)
}

// parseCompression turns --compression into a kgo codec.
func parseCompression(s string) (kgo.CompressionCodec, error) {
	switch strings.ToLower(s) {
	case "", "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("invalid --compression %q (want none, gzip, snappy, lz4 or zstd)", s)
}

// topicNotFoundError says a topic does not exist. It unwraps to
// kerr.UnknownTopicOrPartition.
type topicNotFoundError struct{ topic string }

func (e *topicNotFoundError) Error() string { return fmt.Sprintf("topic %q does not exist", e.topic) }
func (e *topicNotFoundError) Unwrap() error { return kerr.UnknownTopicOrPartition }

// topicPartitions returns the sorted partition numbers of topic, or a
// *topicNotFoundError.
func topicPartitions(ctx context.Context, adm *kadm.Client, topic string) ([]int32, error) {
	tds, err := adm.ListTopics(ctx, topic)
	if err != nil {
		return nil, fmt.Errorf("looking up topic %q: %w", topic, err)
	}
	td, ok := tds[topic]
	if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
		return nil, &topicNotFoundError{topic}
	}
	if td.Err != nil {
		return nil, fmt.Errorf("looking up topic %q: %w", topic, td.Err)
	}
	ps := make([]int32, 0, len(td.Partitions))
	for p := range td.Partitions {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	if len(ps) == 0 {
		return nil, fmt.Errorf("topic %q has no partitions", topic)
	}
	return ps, nil
}

// checkPartition checks that --partition p (if >= 0) is one of ps.
func checkPartition(topic string, p int, ps []int32) error {
	if p < 0 {
		return nil
	}
	for _, q := range ps {
		if int(q) == p {
			return nil
		}
	}
	return fmt.Errorf("topic %q has no partition %d (it has %d partitions)", topic, p, len(ps))
}

// openInput opens the file that a flag such as --file names, or returns
// env.stdin for "" and "-". Call closeFn when done (a no-op for stdin).
func openInput(env *cliEnv, path string) (in io.Reader, closeFn func() error, err error) {
	if path == "" || path == "-" {
		return env.stdin, func() error { return nil }, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	return f, f.Close, nil
}

// newTable returns a writer that lines up the tab-separated columns of the
// CLI's tables, two spaces apart. Flush it when done.
func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// isTerminal reports whether f (an io.Reader or io.Writer) is a character
// device, that is a terminal.
func isTerminal(rw any) bool {
	f, ok := rw.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	if err != nil {
		return false
	}
	return st.Mode()&os.ModeCharDevice != 0
}

// parseByteSize parses a size such as 1048576, 512KiB, 1MiB, 1MB or 4k.
func parseByteSize(s string) (int64, error) {
	t := strings.TrimSpace(strings.ToLower(s))
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{
		{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30},
		{"kb", 1000}, {"mb", 1000 * 1000}, {"gb", 1000 * 1000 * 1000},
		{"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1},
	} {
		if strings.HasSuffix(t, u.suffix) {
			t = strings.TrimSpace(strings.TrimSuffix(t, u.suffix))
			mult = u.mult
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q", s)
	}
	return n * mult, nil
}

// byteSizeFlag is a flag holding a byte size like 1MiB.
type byteSizeFlag int64

func (b *byteSizeFlag) String() string { return strconv.FormatInt(int64(*b), 10) }
func (b *byteSizeFlag) Set(s string) error {
	n, err := parseByteSize(s)
	if err != nil {
		return err
	}
	*b = byteSizeFlag(n)
	return nil
}
