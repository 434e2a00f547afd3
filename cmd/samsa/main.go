// Command samsa is the single binary of the samsa event broker: it runs the
// broker (serve) and the client subcommands that talk to one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"slices"
	"syscall"
)

// command is one subcommand of the samsa binary.
type command struct {
	summary string
	run     func(ctx context.Context, env *cliEnv, args []string) error
}

// cliEnv carries what a subcommand reads and writes, so tests can run
// subcommands in-process.
type cliEnv struct {
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	getenv func(string) string
}

// getenvOr returns the environment variable key, or def when it is unset or
// empty.
func (env *cliEnv) getenvOr(key, def string) string {
	if env.getenv != nil {
		if v := env.getenv(key); v != "" {
			return v
		}
	}
	return def
}

// subcommands maps the names (and aliases) of a command group's
// subcommands, such as `samsa topic create`, to what runs them.
type subcommands map[string]func(ctx context.Context, env *cliEnv, args []string) error

// runSubcommand runs the subcommand that args[0] names in the command group
// group (such as "topic"). With no subcommand, or an unknown one, it prints
// usage to stderr and fails; -h, --help and help print usage and succeed.
func runSubcommand(ctx context.Context, env *cliEnv, group, usage string, subs subcommands, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(env.stderr, usage)
		return fmt.Errorf("%s: no command given", group)
	}
	sub, rest := args[0], args[1:]
	if run, ok := subs[sub]; ok {
		return run(ctx, env, rest)
	}
	fmt.Fprint(env.stderr, usage)
	switch sub {
	case "-h", "--help", "help":
		return nil
	}
	return fmt.Errorf("%s: unknown command %q", group, sub)
}

func commands() map[string]command {
	return map[string]command{
		"serve":   {"run the broker", runServe},
		"topic":   {"create, list, describe, alter and delete topics", runTopic},
		"produce": {"produce lines from stdin or a file to a topic", runProduce},
		"consume": {"consume records from a topic", runConsume},
		"bench":   {"measure produce, consume and end-to-end throughput and latency", runBench},
		"group":   {"list, describe, delete consumer groups and reset their offsets", runGroup},
		"filter":  {"build, deploy, bind and test Wasm filters", runFilter},
		"auth":    {"create the issuer key for broker.toml", runAuth},
		"key":     {"generate user nkeys and print public keys", runKey},
		"token":   {"issue user JWTs", runToken},
		"user":    {"add SCRAM users", runUser},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	env := &cliEnv{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, getenv: os.Getenv}
	err := run(ctx, env, os.Args[1:])
	stop()
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "samsa:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, env *cliEnv, args []string) error {
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(env.stderr, cmds)
		if len(args) == 0 {
			return errors.New("no command given")
		}
		return nil
	}
	c, ok := cmds[args[0]]
	if !ok {
		usage(env.stderr, cmds)
		return fmt.Errorf("unknown command %q", args[0])
	}
	return c.run(ctx, env, args[1:])
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: samsa <command> [flags]\n\ncommands:")
	for _, n := range slices.Sorted(maps.Keys(cmds)) {
		fmt.Fprintf(w, "  %-8s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nrun 'samsa <command> -h' for a command's flags")
}
