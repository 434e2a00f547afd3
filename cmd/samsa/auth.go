package main

// The auth subcommands: `samsa auth init` (the issuer key), `samsa key`
// (user nkeys), `samsa token issue` (user JWTs) and `samsa user` (SCRAM
// users over the Kafka protocol, and password hashes for static users).
// Secrets (seeds, passwords) are written only to files created with mode
// 0600 or to stdout when asked for, and never taken as arguments.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nkeys"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/samsa-broker/samsa/auth"
)

const authUsage = `usage: samsa auth <command> [flags]

commands:
  init [--out issuer.nk] [--operator]   create the issuer key pair: the seed goes to --out
                                        (mode 0600), the [auth] lines for broker.toml to stdout
`

// runAuth is `samsa auth`.
func runAuth(ctx context.Context, env *cliEnv, args []string) error {
	return runSubcommand(ctx, env, "auth", authUsage, subcommands{"init": authInit}, args)
}

func authInit(_ context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "auth init", "auth init [--out issuer.nk] [--operator]")
	out := fs.String("out", "issuer.nk", "file to write the issuer seed to (created with mode 0600; never overwritten)")
	operator := fs.Bool("operator", false, "create an operator key (O...) instead of an account key (A...); NATS tools (nsc) sign user JWTs with account keys")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("auth init: unexpected argument %q", pos[0])
	}
	newKey := auth.NewIssuer
	if *operator {
		newKey = auth.NewOperatorIssuer
	}
	seed, pub, err := newKey()
	if err != nil {
		return err
	}
	if err := writeSecretFile(*out, []byte(seed+"\n")); err != nil {
		return fmt.Errorf("auth init: %w", err)
	}
	fmt.Fprintf(env.stdout, "# issuer seed written to %s (mode 0600): keep it secret, it signs user tokens\n", *out)
	fmt.Fprintf(env.stdout, "[auth]\nenabled = true\nissuers = [%q]\n", pub)
	fmt.Fprintf(env.stderr, "add the [auth] lines above to broker.toml; issue tokens with:\n  samsa key gen --out alice.nk\n  samsa token issue --issuer-seed %s --user alice.nk --produce 'sensors.>' --expires 24h\n", *out)
	return nil
}

// writeSecretFile creates path with mode 0600 and writes data, refusing to
// overwrite an existing file. "-" is not accepted: secrets go to stdout
// only where a command says so.
func writeSecretFile(path string, data []byte) error {
	if path == "" {
		return errors.New("no file name given")
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("%s already exists; refusing to overwrite it", path)
	}
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

const keyUsage = `usage: samsa key <command> [flags]

commands:
  gen [--out FILE]   create a user key pair: the seed goes to FILE (mode 0600) or stdout,
                     the public key (U...) to stdout (with --out) or stderr
  pub FILE           print the public key of a seed file ("-" reads stdin)
`

// runKey is `samsa key`.
func runKey(ctx context.Context, env *cliEnv, args []string) error {
	return runSubcommand(ctx, env, "key", keyUsage, subcommands{
		"gen":      keyGen,
		"generate": keyGen,
		"pub":      keyPub,
		"public":   keyPub,
	}, args)
}

func keyGen(_ context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "key gen", "key gen [--out FILE]")
	out := fs.String("out", "", "file to write the seed to (created with mode 0600; never overwritten); default stdout")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("key gen: unexpected argument %q", pos[0])
	}
	seed, pub, err := auth.NewUserKey()
	if err != nil {
		return err
	}
	if *out != "" {
		if err := writeSecretFile(*out, []byte(seed+"\n")); err != nil {
			return fmt.Errorf("key gen: %w", err)
		}
		fmt.Fprintln(env.stdout, pub)
		fmt.Fprintf(env.stderr, "seed written to %s (mode 0600)\n", *out)
		return nil
	}
	if f, ok := env.stdout.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o077 != 0 {
			// `samsa key gen > alice.nk`: the shell created the file with
			// the umask's mode; the seed is a secret.
			if err := f.Chmod(0o600); err != nil {
				fmt.Fprintf(env.stderr, "warning: stdout is a file others can read: chmod 600 it (%v)\n", err)
			} else {
				fmt.Fprintln(env.stderr, "note: stdout is a file: made it mode 0600")
			}
		}
	}
	if isTerminal(env.stdout) {
		fmt.Fprintln(env.stderr, "warning: printing a secret seed to the terminal; use --out FILE to keep it off screen")
	}
	fmt.Fprintln(env.stdout, seed)
	fmt.Fprintf(env.stderr, "public key: %s\n", pub)
	return nil
}

func keyPub(_ context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "key pub", "key pub FILE")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return errors.New("key pub: give exactly one seed file (or - for stdin)")
	}
	pub, err := publicKeyOfFile(env, pos[0])
	if err != nil {
		return fmt.Errorf("key pub: %w", err)
	}
	fmt.Fprintln(env.stdout, pub)
	return nil
}

// readSeedFile reads a seed file ("-": stdin). Its errors never quote the
// content.
func readSeedFile(env *cliEnv, path string) (string, error) {
	var data []byte
	var err error
	if path == "-" {
		data, err = io.ReadAll(io.LimitReader(env.stdin, 1<<20))
	} else {
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return "", err
	}
	return string(data), nil
}

func publicKeyOfFile(env *cliEnv, path string) (string, error) {
	seed, err := readSeedFile(env, path)
	if err != nil {
		return "", err
	}
	pub, err := auth.PublicKeyOf(seed)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return pub, nil
}

const tokenUsage = `usage: samsa token <command> [flags]

commands:
  issue --issuer-seed FILE --user PUBKEY|SEEDFILE [--produce PATTERN ...] [--consume PATTERN ...]
        [--group PATTERN ...] [--admin] [--filters] [--expires 24h] [--bearer] [--name NAME]
        print a user JWT signed by the issuer
`

// runToken is `samsa token`.
func runToken(ctx context.Context, env *cliEnv, args []string) error {
	return runSubcommand(ctx, env, "token", tokenUsage, subcommands{"issue": tokenIssue}, args)
}

// patternList is a repeatable flag of patterns; a value may also hold
// several, comma-separated.
type patternList []string

func (p *patternList) String() string { return strings.Join(*p, ",") }
func (p *patternList) Set(v string) error {
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if msg := auth.ValidPattern(s); msg != "" {
			return fmt.Errorf("pattern %q: %s", s, msg)
		}
		*p = append(*p, s)
	}
	return nil
}

func tokenIssue(_ context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "token issue", "token issue --issuer-seed FILE --user PUBKEY|SEEDFILE [flags]")
	var produce, consume, groups patternList
	issuerSeed := fs.String("issuer-seed", "", "issuer seed file (from samsa auth init; \"-\" reads stdin)")
	user := fs.String("user", "", "the user's public key (U...), or a seed file to take it from")
	fs.Var(&produce, "produce", "topic pattern the user may produce to (repeatable; '*' one token, '>' the rest)")
	fs.Var(&consume, "consume", "topic pattern the user may consume from (repeatable)")
	fs.Var(&groups, "group", "consumer group pattern the user may join (repeatable)")
	admin := fs.Bool("admin", false, "cluster admin: topics, configs, users, everything")
	filters := fs.Bool("filters", false, "may deploy and bind filters")
	expires := fs.Duration("expires", 24*time.Hour, "how long the token is valid (0 = never expires)")
	bearer := fs.Bool("bearer", false, "a bearer token: valid without proof of the user's key (for browsers); keep it short-lived")
	name := fs.String("name", "", "a display name for the token")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("token issue: unexpected argument %q", pos[0])
	}
	if *issuerSeed == "" {
		return errors.New("token issue: --issuer-seed FILE is required")
	}
	if *user == "" {
		return errors.New("token issue: --user PUBKEY (or a seed file) is required")
	}
	if *expires < 0 {
		return errors.New("token issue: --expires must not be negative")
	}
	userPub := *user
	if !nkeys.IsValidPublicUserKey(userPub) {
		if strings.HasPrefix(userPub, "S") && !fileExists(userPub) {
			return errors.New("token issue: --user wants a public key (U...) or a seed file, not a seed")
		}
		if !fileExists(userPub) {
			return fmt.Errorf("token issue: --user %q is neither a user public key (U...) nor a seed file", userPub)
		}
		if userPub, err = publicKeyOfFile(env, userPub); err != nil {
			return fmt.Errorf("token issue: --user: %w", err)
		}
		if !nkeys.IsValidPublicUserKey(userPub) {
			return fmt.Errorf("token issue: --user %s holds a %s key, not a user key", *user, keyKind(userPub))
		}
	}
	seed, err := readSeedFile(env, *issuerSeed)
	if err != nil {
		return fmt.Errorf("token issue: --issuer-seed: %w", err)
	}
	perms := auth.Permissions{Produce: produce, Consume: consume, Groups: groups, Admin: *admin, Filters: *filters}
	tok, err := auth.IssueUserJWT(seed, userPub, perms, *expires, *bearer, *name)
	if err != nil {
		return fmt.Errorf("token issue: %w", err)
	}
	fmt.Fprintln(env.stdout, tok)
	what := "token"
	if *bearer {
		what = "bearer token"
	}
	exp := "never expires"
	if *expires > 0 {
		exp = "expires " + time.Now().Add(*expires).UTC().Format(time.RFC3339)
	}
	if len(produce)+len(consume)+len(groups) == 0 && !*admin && !*filters {
		fmt.Fprintln(env.stderr, "warning: the token grants no permission (use --produce, --consume, --group, --admin or --filters)")
	}
	fmt.Fprintf(env.stderr, "%s for %s, %s\n", what, userPub, exp)
	return nil
}

func fileExists(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}

func keyKind(pub string) string {
	switch {
	case nkeys.IsValidPublicOperatorKey(pub):
		return "operator"
	case nkeys.IsValidPublicAccountKey(pub):
		return "account"
	case nkeys.IsValidPublicServerKey(pub):
		return "server"
	}
	return "non-user"
}

const userUsage = `usage: samsa user <command> [flags]

commands:
  add NAME [--mechanism SCRAM-SHA-256|SCRAM-SHA-512] [--iterations N] [--password-stdin]
        create or update a SCRAM user on the broker (AlterUserScramCredentials)
  delete NAME [--mechanism SCRAM-SHA-256|SCRAM-SHA-512]
        remove a user's SCRAM credential
  list [NAME ...]
        list SCRAM users and their mechanisms
  hash [--password-stdin]
        print a password_hash for a static user ([[auth.users]] in broker.toml)

The password is read from stdin with --password-stdin (one line), or
prompted for on a terminal; it is never taken as an argument.
`

// runUser is `samsa user`.
func runUser(ctx context.Context, env *cliEnv, args []string) error {
	return runSubcommand(ctx, env, "user", userUsage, subcommands{
		"add":    userAdd,
		"delete": userDelete,
		"rm":     userDelete,
		"list":   userList,
		"ls":     userList,
		"hash":   userHash,
	}, args)
}

func parseMechanism(s string) (kadm.ScramMechanism, string, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "SCRAM-SHA-256", "SHA-256", "SHA256":
		return kadm.ScramSha256, auth.MechScramSHA256, nil
	case "SCRAM-SHA-512", "SHA-512", "SHA512":
		return kadm.ScramSha512, auth.MechScramSHA512, nil
	}
	return 0, "", fmt.Errorf("unknown --mechanism %q (want SCRAM-SHA-256 or SCRAM-SHA-512)", s)
}

// userAddArgs are the checked arguments of `samsa user add`.
type userAddArgs struct {
	name       string
	mech       kadm.ScramMechanism
	mechName   string
	iterations int
	password   string
}

func parseUserAdd(env *cliEnv, args []string, cf *clientFlags) (*userAddArgs, error) {
	fs := newFlagSet(env, "user add", "user add NAME [--mechanism SCRAM-SHA-256|SCRAM-SHA-512] [--iterations N] [--password-stdin] [connection flags]")
	mech := fs.String("mechanism", auth.MechScramSHA256, "SCRAM mechanism: SCRAM-SHA-256 or SCRAM-SHA-512")
	iter := fs.Int("iterations", 8192, fmt.Sprintf("PBKDF2 iterations (%d to %d)", auth.ScramMinIterations, auth.ScramMaxIterations))
	fromStdin := fs.Bool("password-stdin", false, "read the new password from the first line of stdin")
	addClientFlags(fs, env, cf, defaultClientTimeout)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != 1 {
		return nil, errors.New("user add: give exactly one user NAME")
	}
	ua := &userAddArgs{name: pos[0], iterations: *iter}
	if ua.name == "" {
		return nil, errors.New("user add: the user name is empty")
	}
	if ua.mech, ua.mechName, err = parseMechanism(*mech); err != nil {
		return nil, fmt.Errorf("user add: %w", err)
	}
	if ua.iterations < auth.ScramMinIterations || ua.iterations > auth.ScramMaxIterations {
		return nil, fmt.Errorf("user add: --iterations must be between %d and %d", auth.ScramMinIterations, auth.ScramMaxIterations)
	}
	if ua.password, err = readNewPassword(env, *fromStdin); err != nil {
		return nil, fmt.Errorf("user add: %w", err)
	}
	return ua, nil
}

func userAdd(ctx context.Context, env *cliEnv, args []string) error {
	var cf clientFlags
	ua, err := parseUserAdd(env, args, &cf)
	if err != nil {
		return err
	}
	s, err := cf.admin(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	res, err := s.adm.AlterUserSCRAMs(s.ctx, nil, []kadm.UpsertSCRAM{{
		User: ua.name, Mechanism: ua.mech, Iterations: int32(ua.iterations), Password: ua.password,
	}})
	if err != nil {
		return fmt.Errorf("user add: %w", cf.brokerErr(err))
	}
	if err := alteredErr(res); err != nil {
		return fmt.Errorf("user add %q: %w", ua.name, err)
	}
	fmt.Fprintf(env.stdout, "set %s credential of user %q (%d iterations)\n", ua.mechName, ua.name, ua.iterations)
	return nil
}

func alteredErr(res kadm.AlteredUserSCRAMs) error {
	for _, r := range res.Sorted() {
		if r.Err != nil {
			if r.ErrMessage != "" {
				return fmt.Errorf("%w: %s", r.Err, r.ErrMessage)
			}
			return r.Err
		}
	}
	return nil
}

func userDelete(ctx context.Context, env *cliEnv, args []string) error {
	fs, cf := newClientFlagSet(env, "user delete", "user delete NAME [--mechanism SCRAM-SHA-256|SCRAM-SHA-512] [connection flags]")
	mech := fs.String("mechanism", auth.MechScramSHA256, "SCRAM mechanism: SCRAM-SHA-256 or SCRAM-SHA-512")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] == "" {
		return errors.New("user delete: give exactly one user NAME")
	}
	m, mechName, err := parseMechanism(*mech)
	if err != nil {
		return fmt.Errorf("user delete: %w", err)
	}
	s, err := cf.admin(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	res, err := s.adm.AlterUserSCRAMs(s.ctx, []kadm.DeleteSCRAM{{User: pos[0], Mechanism: m}}, nil)
	if err != nil {
		return fmt.Errorf("user delete: %w", cf.brokerErr(err))
	}
	if err := alteredErr(res); err != nil {
		return fmt.Errorf("user delete %q: %w", pos[0], err)
	}
	fmt.Fprintf(env.stdout, "deleted %s credential of user %q\n", mechName, pos[0])
	return nil
}

func userList(ctx context.Context, env *cliEnv, args []string) error {
	fs, cf := newClientFlagSet(env, "user list", "user list [NAME ...] [connection flags]")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	s, err := cf.admin(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	res, err := s.adm.DescribeUserSCRAMs(s.ctx, pos...)
	if err != nil {
		return fmt.Errorf("user list: %w", cf.brokerErr(err))
	}
	tw := newTable(env.stdout)
	fmt.Fprintln(tw, "USER\tMECHANISM\tITERATIONS")
	var firstErr error
	for _, n := range slices.Sorted(maps.Keys(res)) {
		d := res[n]
		if d.Err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("user %q: %w", n, d.Err)
			}
			continue
		}
		for _, ci := range d.CredInfos {
			fmt.Fprintf(tw, "%s\t%s\t%d\n", n, ci.Mechanism, ci.Iterations)
		}
	}
	tw.Flush()
	return firstErr
}

func userHash(_ context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "user hash", "user hash [--password-stdin]")
	fromStdin := fs.Bool("password-stdin", false, "read the password from the first line of stdin")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("user hash: unexpected argument %q (the password is never an argument)", pos[0])
	}
	pw, err := readNewPassword(env, *fromStdin)
	if err != nil {
		return fmt.Errorf("user hash: %w", err)
	}
	h, err := auth.HashPassword(pw)
	if err != nil {
		return fmt.Errorf("user hash: %w", err)
	}
	fmt.Fprintln(env.stdout, h)
	return nil
}

// readNewPassword reads a password: the first line of stdin with
// --password-stdin, else a prompt (twice, without echo) on a terminal.
func readNewPassword(env *cliEnv, fromStdin bool) (string, error) {
	var pw string
	switch {
	case fromStdin:
		line, err := bufio.NewReader(io.LimitReader(env.stdin, 64<<10)).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("reading the password from stdin: %w", err)
		}
		pw = strings.TrimRight(line, "\r\n")
	case isTerminal(env.stdin):
		a, err := promptPassword(env, "password: ")
		if err != nil {
			return "", err
		}
		b, err := promptPassword(env, "again: ")
		if err != nil {
			return "", err
		}
		if a != b {
			return "", errors.New("the passwords differ")
		}
		pw = a
	default:
		return "", errors.New("give the password on stdin with --password-stdin (it is never taken as an argument)")
	}
	if pw == "" {
		return "", errors.New("the password is empty")
	}
	return pw, nil
}

// promptPassword reads a line from the terminal on stdin with echo off
// (via stty).
func promptPassword(env *cliEnv, prompt string) (string, error) {
	f := env.stdin.(*os.File)
	stty := func(arg string) error {
		cmd := exec.Command("stty", arg)
		cmd.Stdin = f
		return cmd.Run()
	}
	if err := stty("-echo"); err != nil {
		return "", errors.New("cannot turn the terminal's echo off; use --password-stdin")
	}
	defer func() {
		stty("echo")
		fmt.Fprintln(env.stderr)
	}()
	fmt.Fprint(env.stderr, prompt)
	var b strings.Builder
	buf := make([]byte, 1)
	for b.Len() < 64<<10 {
		n, err := f.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				break
			}
			b.WriteByte(buf[0])
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return "", err
		}
	}
	return strings.TrimRight(b.String(), "\r"), nil
}
