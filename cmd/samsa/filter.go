package main

// `samsa filter`: build, deploy, bind and test Wasm filters. The admin
// commands talk to the broker's HTTP admin API (--admin, $SAMSA_ADMIN); logs
// reads the _samsa_filter_logs topic over Kafka (--brokers); build and test
// run locally.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/samsa-broker/samsa/wasm"
)

const filterUsage = `usage: samsa filter <command> [flags]

commands:
  build DIR -o OUT.wasm          compile a filter (Go with GOOS=wasip1, or AssemblyScript)
  deploy NAME FILE.wasm          upload a module as the next version of NAME
  list                           deployed filters (latest version of each)
  describe NAME                  a filter's versions and bindings
  remove NAME                    delete every version of an unbound filter
  bind NAME --produce TOPIC      run NAME on the produce path of TOPIC
  bind NAME --view VIEW --topic SOURCE
                                 make VIEW a filtered view of SOURCE
  unbind ID                      remove a binding
  bindings                       list bindings
  logs NAME [-f]                 what the filter wrote to stdout and stderr
  test FILE.wasm --input RECORDS.jsonl
                                 run a module on sample records, no broker needed

The admin commands talk to --admin (default http://127.0.0.1:8080, or
$SAMSA_ADMIN); logs reads over Kafka from --brokers.
run 'samsa filter <command> -h' for a command's flags
`

const (
	defaultAdmin  = "http://127.0.0.1:8080"
	filterLogsTop = "_samsa_filter_logs"
)

// runFilter is `samsa filter`.
func runFilter(ctx context.Context, env *cliEnv, args []string) error {
	return runSubcommand(ctx, env, "filter", filterUsage, subcommands{
		"build":    filterBuild,
		"deploy":   filterDeploy,
		"list":     filterList,
		"ls":       filterList,
		"describe": filterDescribe,
		"desc":     filterDescribe,
		"remove":   filterRemove,
		"rm":       filterRemove,
		"bind":     filterBind,
		"unbind":   filterUnbind,
		"bindings": filterBindings,
		"logs":     filterLogs,
		"test":     filterTest,
	}, args)
}

// ---- the admin API client ----

// adminFlags are the flags of the commands that call the admin API.
type adminFlags struct {
	url     string
	timeout time.Duration
}

// newAdminFlagSet returns a flag set (see newFlagSet) with --admin
// registered on it, and --timeout unless the command gives that flag its own
// meaning (withTimeout false).
func newAdminFlagSet(env *cliEnv, name, usage string, withTimeout bool) (*flag.FlagSet, *adminFlags) {
	fs := newFlagSet(env, name, usage)
	af := &adminFlags{}
	fs.StringVar(&af.url, "admin", env.getenvOr("SAMSA_ADMIN", defaultAdmin), "base `URL` of the broker's HTTP listener (env SAMSA_ADMIN)")
	af.timeout = 60 * time.Second
	if withTimeout {
		fs.DurationVar(&af.timeout, "timeout", af.timeout, "how long to wait for the admin API (0 = no limit)")
	}
	return fs, af
}

// apiError is an error response of the admin API.
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("%s (HTTP %d, %s)", e.Message, e.Status, e.Code)
	}
	return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
}

type adminClient struct {
	base    *url.URL
	hc      *http.Client
	timeout time.Duration
}

func (af *adminFlags) client() (*adminClient, error) {
	raw := strings.TrimSpace(af.url)
	if raw == "" {
		return nil, errors.New("no admin URL given (use --admin or SAMSA_ADMIN)")
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("invalid --admin %q: want a URL such as %s", af.url, defaultAdmin)
	}
	u.Path = strings.TrimRight(u.Path, "/")
	return &adminClient{base: u, hc: &http.Client{}, timeout: af.timeout}, nil
}

// do calls the admin API; out (if not nil) receives the JSON answer.
func (c *adminClient) do(ctx context.Context, method, path string, body io.Reader, contentType string, out any) error {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	u := c.base.String() + "/api/v1" + path
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("admin API at %s: no answer within %s", c.base, c.timeout)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the method and URL are said already
		}
		return fmt.Errorf("admin API at %s: %w (is `samsa serve` running there? set --admin or SAMSA_ADMIN)", c.base, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("admin API at %s: reading the answer: %w", c.base, err)
	}
	if resp.StatusCode >= 400 {
		var ae struct {
			Error string `json:"error"`
			Code  string `json:"code"`
		}
		if json.Unmarshal(data, &ae) != nil || ae.Error == "" {
			ae.Error = strings.TrimSpace(string(data))
			if ae.Error == "" {
				ae.Error = http.StatusText(resp.StatusCode)
			}
		}
		return &apiError{Status: resp.StatusCode, Code: ae.Code, Message: ae.Error}
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("admin API at %s: bad answer to %s %s: %w", c.base, method, path, err)
		}
	}
	return nil
}

// moduleInfo is a module version as the admin API returns it.
type moduleInfo struct {
	Name    string    `json:"name"`
	Version int       `json:"version"`
	Size    int64     `json:"size"`
	SHA256  string    `json:"sha256"`
	Created time.Time `json:"created"`
}

// bindingInfo is a binding as the admin API returns it (the fields the CLI
// shows; stats are kept raw).
type bindingInfo struct {
	ID          string          `json:"id"`
	Filter      string          `json:"filter"`
	Version     int             `json:"version,omitempty"`
	Produce     string          `json:"produce,omitempty"`
	View        string          `json:"view,omitempty"`
	Topic       string          `json:"topic,omitempty"`
	Params      json.RawMessage `json:"params,omitempty"`
	OnError     string          `json:"on_error,omitempty"`
	MemoryPages uint32          `json:"memory_pages,omitempty"`
	TimeoutMs   int64           `json:"timeout_ms,omitempty"`
	Created     time.Time       `json:"created"`
	Stats       map[string]any  `json:"stats,omitempty"`
}

// bindingList is the admin API's answer to GET /bindings.
type bindingList struct {
	Bindings []bindingInfo `json:"bindings"`
}

func (b bindingInfo) where() string {
	if b.Produce != "" {
		return "produce " + b.Produce
	}
	return fmt.Sprintf("view %s over %s", b.View, b.Topic)
}

func (b bindingInfo) version() string {
	if b.Version == 0 {
		return "latest"
	}
	return strconv.Itoa(b.Version)
}

func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// onePos is oneArg for `samsa filter CMD`, except that an empty argument
// counts as a missing one.
func onePos(cmd, what string, pos []string) (string, error) {
	if len(pos) == 1 && pos[0] == "" {
		pos = nil
	}
	return oneArg("filter "+cmd, what, pos)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// ---- deploy, list, describe, remove ----

func filterDeploy(ctx context.Context, env *cliEnv, args []string) error {
	fs, af := newAdminFlagSet(env, "filter deploy", "filter deploy NAME FILE.wasm [flags]", true)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 2 || pos[0] == "" || pos[1] == "" {
		fs.Usage()
		return errors.New("filter deploy: want NAME and FILE.wasm")
	}
	name, file := pos[0], pos[1]
	module, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("filter deploy: %w", err)
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	var mi moduleInfo
	if err := c.do(ctx, http.MethodPost, "/filters/"+url.PathEscape(name), bytes.NewReader(module), "application/wasm", &mi); err != nil {
		return fmt.Errorf("filter deploy %s: %w", name, err)
	}
	fmt.Fprintf(env.stdout, "deployed %s version %d (%d bytes, sha256 %s)\n", mi.Name, mi.Version, mi.Size, shortSHA(mi.SHA256))
	return nil
}

func filterList(ctx context.Context, env *cliEnv, args []string) error {
	fs, af := newAdminFlagSet(env, "filter list", "filter list [flags]", true)
	asJSON := fs.Bool("json", false, "print the admin API's JSON")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs("filter list", pos); err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	var resp struct {
		Filters []moduleInfo `json:"filters"`
	}
	if err := c.do(ctx, http.MethodGet, "/filters", nil, "", &resp); err != nil {
		return fmt.Errorf("filter list: %w", err)
	}
	if *asJSON {
		return printJSON(env.stdout, resp)
	}
	var bresp bindingList
	if err := c.do(ctx, http.MethodGet, "/bindings", nil, "", &bresp); err != nil {
		return fmt.Errorf("filter list: %w", err)
	}
	bound := map[string]int{}
	for _, b := range bresp.Bindings {
		bound[b.Filter]++
	}
	tw := newTable(env.stdout)
	fmt.Fprintln(tw, "NAME\tVERSION\tSIZE\tSHA256\tBINDINGS\tDEPLOYED")
	for _, m := range resp.Filters {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%s\n", m.Name, m.Version, m.Size, shortSHA(m.SHA256), bound[m.Name], m.Created.Local().Format(time.RFC3339))
	}
	return tw.Flush()
}

func filterDescribe(ctx context.Context, env *cliEnv, args []string) error {
	fs, af := newAdminFlagSet(env, "filter describe", "filter describe NAME [flags]", true)
	asJSON := fs.Bool("json", false, "print the admin API's JSON")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	name, err := onePos("describe", "filter name", pos)
	if err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	var resp struct {
		Name     string        `json:"name"`
		Versions []moduleInfo  `json:"versions"`
		Bindings []bindingInfo `json:"bindings"`
	}
	if err := c.do(ctx, http.MethodGet, "/filters/"+url.PathEscape(name), nil, "", &resp); err != nil {
		return fmt.Errorf("filter describe %s: %w", name, err)
	}
	if *asJSON {
		return printJSON(env.stdout, resp)
	}
	fmt.Fprintf(env.stdout, "filter %s\n\nversions:\n", resp.Name)
	tw := newTable(env.stdout)
	fmt.Fprintln(tw, "  VERSION\tSIZE\tSHA256\tDEPLOYED")
	for _, m := range resp.Versions {
		fmt.Fprintf(tw, "  %d\t%d\t%s\t%s\n", m.Version, m.Size, m.SHA256, m.Created.Local().Format(time.RFC3339))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(resp.Bindings) == 0 {
		fmt.Fprintln(env.stdout, "\nbindings: none")
		return nil
	}
	fmt.Fprintln(env.stdout, "\nbindings:")
	return printBindings(env.stdout, resp.Bindings, "  ")
}

func printBindings(w io.Writer, bs []bindingInfo, indent string) error {
	tw := newTable(w)
	fmt.Fprintf(tw, "%sID\tFILTER\tVERSION\tON\tON-ERROR\tPARAMS\n", indent)
	for _, b := range bs {
		params := "-"
		if len(b.Params) > 0 {
			var buf bytes.Buffer
			if json.Compact(&buf, b.Params) == nil {
				params = buf.String()
			} else {
				params = string(b.Params)
			}
		}
		onErr := b.OnError
		if onErr == "" {
			onErr = "-"
		}
		fmt.Fprintf(tw, "%s%s\t%s\t%s\t%s\t%s\t%s\n", indent, b.ID, b.Filter, b.version(), b.where(), onErr, params)
	}
	return tw.Flush()
}

func filterRemove(ctx context.Context, env *cliEnv, args []string) error {
	fs, af := newAdminFlagSet(env, "filter remove", "filter remove NAME [flags]", true)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	name, err := onePos("remove", "filter name", pos)
	if err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	if err := c.do(ctx, http.MethodDelete, "/filters/"+url.PathEscape(name), nil, "", nil); err != nil {
		return fmt.Errorf("filter remove %s: %w", name, err)
	}
	fmt.Fprintf(env.stdout, "removed filter %s\n", name)
	return nil
}

// ---- bind, unbind, bindings ----

// parseOnError checks an --on-error value.
func parseOnError(s string) (string, error) {
	switch {
	case s == "", s == "reject", s == "drop", s == "pass":
		return s, nil
	case strings.HasPrefix(s, "dead-letter:") && len(s) > len("dead-letter:"):
		return s, nil
	}
	return "", fmt.Errorf("invalid --on-error %q (want reject, drop, pass or dead-letter:TOPIC)", s)
}

func filterBind(ctx context.Context, env *cliEnv, args []string) error {
	fs, af := newAdminFlagSet(env, "filter bind", "filter bind NAME (--produce TOPIC | --view VIEW --topic SOURCE) [flags]", false)
	produce := fs.String("produce", "", "run the filter on the produce path of `TOPIC`")
	view := fs.String("view", "", "create the filtered view `VIEW` (a virtual topic) ...")
	topic := fs.String("topic", "", "... over the source `TOPIC`")
	onError := fs.String("on-error", "", "what a failure of the filter does: reject, drop, pass or dead-letter:TOPIC (default: reject on produce, pass on views)")
	params := fs.String("params", "", "the filter's parameters, a `JSON` document (at most 64 KiB)")
	paramsFile := fs.String("params-file", "", "read the parameters from `FILE`")
	version := fs.Int("version", 0, "pin this module `VERSION` (0: follow the latest deploy)")
	pages := fs.Uint("memory-pages", 0, "memory limit in 64 KiB `PAGES` (0: the broker's default, 256)")
	timeout := fs.Duration("timeout", 0, "time limit per batch (0: the broker's default, 100ms)")
	asJSON := fs.Bool("json", false, "print the binding as JSON")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	name, err := onePos("bind", "filter name", pos)
	if err != nil {
		return err
	}
	switch {
	case *produce == "" && *view == "":
		fs.Usage()
		return errors.New("filter bind: want --produce TOPIC, or --view VIEW with --topic SOURCE")
	case *produce != "" && (*view != "" || *topic != ""):
		return errors.New("filter bind: --produce cannot be combined with --view or --topic")
	case *view != "" && *topic == "":
		return errors.New("filter bind: --view needs --topic, the source topic")
	case *version < 0:
		return fmt.Errorf("filter bind: --version must be >= 0, got %d", *version)
	case *pages > 65536:
		return fmt.Errorf("filter bind: --memory-pages %d is over 65536 (4 GiB)", *pages)
	case *timeout < 0:
		return fmt.Errorf("filter bind: --timeout must not be negative")
	case *timeout > 0 && *timeout < time.Millisecond:
		return fmt.Errorf("filter bind: --timeout %s is under 1ms", *timeout)
	}
	oe, err := parseOnError(*onError)
	if err != nil {
		return fmt.Errorf("filter bind: %w", err)
	}
	var raw []byte
	switch {
	case *params != "" && *paramsFile != "":
		return errors.New("filter bind: give --params or --params-file, not both")
	case *params != "":
		raw = []byte(*params)
	case *paramsFile != "":
		if raw, err = os.ReadFile(*paramsFile); err != nil {
			return fmt.Errorf("filter bind: %w", err)
		}
	}
	if len(raw) > 0 {
		if !json.Valid(raw) {
			return fmt.Errorf("filter bind: --params is not valid JSON: %s", head(string(raw), 200))
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err == nil {
			raw = buf.Bytes()
		}
	}
	spec := map[string]any{"filter": name}
	if *produce != "" {
		spec["produce"] = *produce
	} else {
		spec["view"], spec["topic"] = *view, *topic
	}
	if len(raw) > 0 {
		spec["params"] = json.RawMessage(raw)
	}
	if oe != "" {
		spec["on_error"] = oe
	}
	if *version > 0 {
		spec["version"] = *version
	}
	if *pages > 0 {
		spec["memory_pages"] = *pages
	}
	if *timeout > 0 {
		spec["timeout_ms"] = timeout.Milliseconds()
	}
	body, _ := json.Marshal(spec)
	c, err := af.client()
	if err != nil {
		return err
	}
	var b bindingInfo
	if err := c.do(ctx, http.MethodPost, "/bindings", bytes.NewReader(body), "application/json", &b); err != nil {
		return fmt.Errorf("filter bind %s: %w", name, err)
	}
	if *asJSON {
		return printJSON(env.stdout, b)
	}
	fmt.Fprintf(env.stdout, "bound %s (version %s) to %s: binding %s\n", b.Filter, b.version(), b.where(), b.ID)
	return nil
}

// head returns s cut to n bytes with an ellipsis.
func head(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func filterUnbind(ctx context.Context, env *cliEnv, args []string) error {
	fs, af := newAdminFlagSet(env, "filter unbind", "filter unbind ID [flags]", true)
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	id, err := onePos("unbind", "binding id (see samsa filter bindings)", pos)
	if err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	if err := c.do(ctx, http.MethodDelete, "/bindings/"+url.PathEscape(id), nil, "", nil); err != nil {
		return fmt.Errorf("filter unbind %s: %w", id, err)
	}
	fmt.Fprintf(env.stdout, "removed binding %s\n", id)
	return nil
}

func filterBindings(ctx context.Context, env *cliEnv, args []string) error {
	fs, af := newAdminFlagSet(env, "filter bindings", "filter bindings [flags]", true)
	asJSON := fs.Bool("json", false, "print the admin API's JSON (with each binding's counters)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs("filter bindings", pos); err != nil {
		return err
	}
	c, err := af.client()
	if err != nil {
		return err
	}
	var resp bindingList
	if err := c.do(ctx, http.MethodGet, "/bindings", nil, "", &resp); err != nil {
		return fmt.Errorf("filter bindings: %w", err)
	}
	if *asJSON {
		return printJSON(env.stdout, resp)
	}
	return printBindings(env.stdout, resp.Bindings, "")
}

// ---- logs ----

func filterLogs(ctx context.Context, env *cliEnv, args []string) error {
	fs, cf := newClientFlagSet(env, "filter logs", "filter logs NAME [-f] [--from beginning|end] [flags]")
	var follow bool
	fs.BoolVar(&follow, "f", false, "keep printing new lines until interrupted")
	fs.BoolVar(&follow, "follow", false, "same as -f")
	from := fs.String("from", "beginning", "where to start: beginning or end")
	verbose := fs.Bool("v", false, "also print each line's binding and module version")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	name, err := onePos("logs", "filter name", pos)
	if err != nil {
		return err
	}
	var start kgo.Offset
	switch *from {
	case "beginning", "start", "earliest":
		start = kgo.NewOffset().AtStart()
	case "end", "latest":
		start = kgo.NewOffset().AtEnd()
	default:
		return fmt.Errorf("filter logs: invalid --from %q (want beginning or end)", *from)
	}

	// Where the log ends now: without -f we stop there.
	s, err := cf.admin(ctx)
	if err != nil {
		return err
	}
	ends := map[int32]int64{}
	lo, err := s.adm.ListEndOffsets(s.ctx, filterLogsTop)
	if err == nil {
		err = lo.Error()
	}
	var starts kadm.ListedOffsets
	if err == nil {
		if starts, err = s.adm.ListStartOffsets(s.ctx, filterLogsTop); err == nil {
			err = starts.Error()
		}
	}
	s.close()
	missing := false
	if err != nil {
		if !errors.Is(err, kerr.UnknownTopicOrPartition) {
			return fmt.Errorf("filter logs: %w", cf.brokerErr(err))
		}
		missing = true
	} else {
		lo.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
		// A partition whose records retention deleted has nothing to read.
		starts.Each(func(o kadm.ListedOffset) {
			if o.Offset >= ends[o.Partition] {
				ends[o.Partition] = 0
			}
		})
	}
	if !follow {
		if missing || *from == "end" || *from == "latest" {
			return nil
		}
		pending := 0
		for _, e := range ends {
			if e > 0 {
				pending++
			}
		}
		if pending == 0 {
			return nil
		}
	}

	cl, err := cf.newClient(
		kgo.ConsumeTopics(filterLogsTop),
		kgo.ConsumeResetOffset(start),
		kgo.MetadataMinAge(250*time.Millisecond),
		kgo.MetadataMaxAge(2*time.Second),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	if err != nil {
		return err
	}
	defer cl.Close()
	pctx := ctx
	if !follow {
		var cancel context.CancelFunc
		pctx, cancel = cf.withTimeout(ctx)
		defer cancel()
	}
	done := map[int32]bool{}
	for p, e := range ends {
		if e == 0 {
			done[p] = true
		}
	}
	w := bufio.NewWriter(env.stdout)
	defer w.Flush()
	for {
		fetches := cl.PollFetches(pctx)
		if pctx.Err() != nil {
			w.Flush()
			if follow && ctx.Err() != nil {
				return nil // interrupted: the normal way out of -f
			}
			return fmt.Errorf("filter logs: %w", cf.brokerErr(pctx.Err()))
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if ferr == nil && !errors.Is(err, context.Canceled) {
				ferr = fmt.Errorf("filter logs: reading %s[%d]: %w", t, p, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		fetches.EachRecord(func(r *kgo.Record) {
			if !follow {
				if end, ok := ends[r.Partition]; !ok || r.Offset >= end {
					done[r.Partition] = true
					return
				}
				if r.Offset == ends[r.Partition]-1 {
					done[r.Partition] = true
				}
			}
			if string(r.Key) != name {
				return
			}
			printLogLine(w, r, *verbose)
		})
		w.Flush()
		if !follow && len(done) >= len(ends) {
			return nil
		}
	}
}

func printLogLine(w io.Writer, r *kgo.Record, verbose bool) {
	var stream, binding, version string
	for _, h := range r.Headers {
		switch h.Key {
		case "stream":
			stream = string(h.Value)
		case "binding":
			binding = string(h.Value)
		case "version":
			version = string(h.Value)
		}
	}
	if stream == "" {
		stream = "-"
	}
	ts := r.Timestamp.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	if verbose {
		fmt.Fprintf(w, "%s %-6s binding=%s version=%s %s\n", ts, stream, binding, version, r.Value)
		return
	}
	fmt.Fprintf(w, "%s %-6s %s\n", ts, stream, r.Value)
}

// ---- build ----

func filterBuild(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "filter build", "filter build DIR -o OUT.wasm")
	var out string
	fs.StringVar(&out, "o", "", "write the module to `FILE` (default: DIR's name + .wasm in the current directory)")
	fs.StringVar(&out, "out", "", "same as -o")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	dir, err := onePos("build", "source directory", pos)
	if err != nil {
		return err
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("filter build: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("filter build: %s is not a directory", dir)
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if out == "" {
		out = filepath.Base(absDir) + ".wasm"
	}
	absOut, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	kind, err := filterKind(absDir)
	if err != nil {
		return fmt.Errorf("filter build: %w", err)
	}
	switch kind {
	case "go":
		err = buildGo(ctx, env, absDir, absOut)
	case "assemblyscript":
		err = buildAS(ctx, env, absDir, absOut)
	}
	if err != nil {
		return fmt.Errorf("filter build: %w", err)
	}
	fi, err := os.Stat(absOut)
	if err != nil {
		return fmt.Errorf("filter build: the compiler wrote no %s: %w", out, err)
	}
	fmt.Fprintf(env.stdout, "built %s (%s, %d bytes)\n", out, kind, fi.Size())
	return nil
}

// filterKind tells what language the filter in dir is written in.
func filterKind(dir string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, "asconfig.json")); err == nil {
		return "assemblyscript", nil
	}
	if data, err := os.ReadFile(filepath.Join(dir, "package.json")); err == nil && bytes.Contains(data, []byte(`"assemblyscript"`)) {
		return "assemblyscript", nil
	}
	gos, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, g := range gos {
		if !strings.HasSuffix(g, "_test.go") {
			return "go", nil
		}
	}
	return "", fmt.Errorf("%s holds no filter sources: want Go files (package main, built with GOOS=wasip1) or an AssemblyScript project (package.json with assemblyscript, or asconfig.json)", dir)
}

// runTool runs a build tool in dir, streaming its output to stderr.
func runTool(ctx context.Context, env *cliEnv, dir string, extraEnv []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), extraEnv...)
	cmd.Stdout, cmd.Stderr = env.stderr, env.stderr
	fmt.Fprintf(env.stderr, "+ %s%s %s\n", strings.Join(extraEnv, " ")+map[bool]string{true: " ", false: ""}[len(extraEnv) > 0], filepath.Base(name), strings.Join(args, " "))
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s (in %s): %w", filepath.Base(name), strings.Join(args, " "), dir, err)
	}
	return nil
}

func buildGo(ctx context.Context, env *cliEnv, dir, out string) error {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return errors.New("go not found in PATH: install Go 1.24 or newer (https://go.dev/dl) to build Go filters")
	}
	// Run in DIR so that its own go.mod, or the enclosing module's, applies.
	return runTool(ctx, env, dir, []string{"GOOS=wasip1", "GOARCH=wasm"}, goBin, "build", "-buildmode=c-shared", "-o", out, ".")
}

func buildAS(ctx context.Context, env *cliEnv, dir, out string) error {
	npx, err := exec.LookPath("npx")
	if err != nil {
		return errors.New("npx not found in PATH: install Node.js 18 or newer (https://nodejs.org) to build AssemblyScript filters")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); errors.Is(err, os.ErrNotExist) {
		npm, err := exec.LookPath("npm")
		if err != nil {
			return errors.New("npm not found in PATH: install Node.js 18 or newer (https://nodejs.org) to build AssemblyScript filters")
		}
		install := "ci"
		if _, err := os.Stat(filepath.Join(dir, "package-lock.json")); err != nil {
			install = "install" // npm ci needs a lock file
		}
		if err := runTool(ctx, env, dir, nil, npm, install, "--no-audit", "--no-fund"); err != nil {
			return err
		}
	}
	return runTool(ctx, env, dir, nil, npx, asArgs(dir, out)...)
}

// asArgs is the asc command line for the project in dir, written to out:
// the project's own `npm run build` when that is an asc command (the
// examples' READMEs build that way), else its entry file (asconfig.json's
// "entries", else assembly/index.ts) as a release build (asconfig.json's
// "release" target when it has one).
func asArgs(dir, out string) []string {
	var pkg struct {
		Scripts map[string]string `json:"scripts"`
	}
	if data, err := os.ReadFile(filepath.Join(dir, "package.json")); err == nil && json.Unmarshal(data, &pkg) == nil {
		if f := strings.Fields(pkg.Scripts["build"]); len(f) > 0 && f[0] == "asc" && !strings.ContainsAny(pkg.Scripts["build"], "&|;") {
			return append(dropOutFile(f), "--outFile", out)
		}
	}
	entry := "assembly/index.ts"
	args := []string{"asc"}
	var cfg struct {
		Entries []string                   `json:"entries"`
		Targets map[string]json.RawMessage `json:"targets"`
	}
	if data, err := os.ReadFile(filepath.Join(dir, "asconfig.json")); err == nil && json.Unmarshal(data, &cfg) == nil {
		if len(cfg.Entries) > 0 {
			entry = "" // asc reads the entries from asconfig.json
		}
	}
	if entry != "" {
		args = append(args, entry)
	}
	if _, ok := cfg.Targets["release"]; ok {
		args = append(args, "--target", "release")
	} else {
		args = append(args, "--optimize")
	}
	return append(args, "--outFile", out)
}

// dropOutFile removes -o/--outFile and its value from asc arguments.
func dropOutFile(args []string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "-o" || a == "--outFile":
			i++
		case strings.HasPrefix(a, "--outFile="):
		default:
			out = append(out, a)
		}
	}
	return out
}

// ---- test ----

// testInput is one line of a `samsa filter test` input file.
type testInput struct {
	Key       json.RawMessage `json:"key"`
	Value     json.RawMessage `json:"value"`
	Headers   json.RawMessage `json:"headers"`
	Timestamp json.RawMessage `json:"timestamp"`
	Offset    *int64          `json:"offset"`
}

// jsonBytes turns a key, value or header value of the input into bytes: a
// JSON string is its text, null or absent is null, and any other JSON
// value (object, array, number, boolean) is its compact JSON encoding.
func jsonBytes(raw json.RawMessage) ([]byte, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] == '"' {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, err
		}
		return []byte(s), nil
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// parseTestRecord decodes one input line; n is its index, the default
// offset.
func parseTestRecord(line []byte, n int64, now time.Time) (wasm.Record, error) {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	var in testInput
	if err := dec.Decode(&in); err != nil {
		return wasm.Record{}, fmt.Errorf("want a JSON object with key, value, headers, timestamp: %w", err)
	}
	if dec.More() {
		return wasm.Record{}, errors.New("more than one JSON value on the line")
	}
	rec := wasm.Record{Offset: n, Timestamp: now.UnixMilli()}
	if in.Offset != nil {
		rec.Offset = *in.Offset
	}
	var err error
	if rec.Key, err = jsonBytes(in.Key); err != nil {
		return rec, fmt.Errorf("key: %w", err)
	}
	if rec.Value, err = jsonBytes(in.Value); err != nil {
		return rec, fmt.Errorf("value: %w", err)
	}
	if ts := bytes.TrimSpace(in.Timestamp); len(ts) > 0 && string(ts) != "null" {
		if ts[0] == '"' {
			var s string
			_ = json.Unmarshal(ts, &s)
			t, err := time.Parse(time.RFC3339Nano, s)
			if err != nil {
				return rec, fmt.Errorf("timestamp: want milliseconds since the epoch or RFC3339: %w", err)
			}
			rec.Timestamp = t.UnixMilli()
		} else if rec.Timestamp, err = strconv.ParseInt(string(ts), 10, 64); err != nil {
			return rec, fmt.Errorf("timestamp: want milliseconds since the epoch or RFC3339, got %s", ts)
		}
	}
	if h := bytes.TrimSpace(in.Headers); len(h) > 0 && string(h) != "null" {
		if rec.Headers, err = parseTestHeaders(h); err != nil {
			return rec, fmt.Errorf("headers: %w", err)
		}
	}
	return rec, nil
}

// parseTestHeaders reads a JSON object of headers in the order written.
func parseTestHeaders(raw []byte) ([]wasm.Header, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New(`want an object such as {"source": "sensor-1"}`)
	}
	var hs []wasm.Header
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, err
		}
		k, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		b, err := jsonBytes(v)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", k, err)
		}
		hs = append(hs, wasm.Header{Key: k, Value: b})
	}
	return hs, nil
}

// showBytes renders a key or value for a person: text as is, null as null,
// anything else as base64.
func showBytes(b []byte) string {
	switch {
	case b == nil:
		return "null"
	case utf8.Valid(b) && !bytes.ContainsAny(b, "\n\r"):
		return string(b)
	case utf8.Valid(b):
		return strconv.Quote(string(b))
	}
	return "base64:" + base64.StdEncoding.EncodeToString(b)
}

func showRewrite(d wasm.Decision) string {
	var sb strings.Builder
	if d.Key != nil {
		fmt.Fprintf(&sb, " key=%s", showBytes(d.Key))
	}
	fmt.Fprintf(&sb, " value=%s", showBytes(d.Value))
	if len(d.Headers) > 0 {
		sb.WriteString(" headers=")
		for i, h := range d.Headers {
			if i > 0 {
				sb.WriteByte(',')
			}
			fmt.Fprintf(&sb, "%s=%s", h.Key, showBytes(h.Value))
		}
	}
	return sb.String()
}

// describeDecision is the output line of one record.
func describeDecision(d wasm.Decision) string {
	switch d.Action {
	case wasm.Keep:
		return "keep"
	case wasm.Drop:
		return "drop"
	case wasm.Rewrite:
		return "rewrite →" + showRewrite(d)
	case wasm.Route:
		s := "route → " + strings.Join(d.Topics, ",")
		if d.Rewritten {
			s += " (rewritten:" + showRewrite(d) + ")"
		}
		return s
	case wasm.Reject:
		return "reject: " + d.Message
	}
	return fmt.Sprintf("unknown action %d", d.Action)
}

func filterTest(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "filter test", "filter test FILE.wasm --input RECORDS.jsonl [flags]")
	input := fs.String("input", "", "records to run, one JSON object a line: {\"key\": ..., \"value\": ..., \"headers\": {...}, \"timestamp\": ...} (- for stdin)")
	params := fs.String("params", "", "the filter's parameters, a `JSON` document")
	path := fs.String("path", "produce", "run as on the produce path or the consume path: produce or consume")
	topic := fs.String("topic", "test", "the topic name the filter is told")
	partition := fs.Int("partition", 0, "the partition number the filter is told")
	batch := fs.Int("batch", 0, "records per call (0: all records in one batch)")
	pages := fs.Uint("memory-pages", 0, "memory limit in 64 KiB pages (0: 256)")
	timeout := fs.Duration("timeout", 0, "time limit per batch (0: 100ms)")
	interp := fs.Bool("interpreter", false, "run on wazero's interpreter instead of compiling the module (starts at once, runs slower)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	file, err := onePos("test", "module file", pos)
	if err != nil {
		return err
	}
	if *input == "" {
		fs.Usage()
		return errors.New("filter test: --input is required")
	}
	var p wasm.Path
	switch *path {
	case "produce":
		p = wasm.ProducePath
	case "consume":
		p = wasm.ConsumePath
	default:
		return fmt.Errorf("filter test: invalid --path %q (want produce or consume)", *path)
	}
	if *params != "" && !json.Valid([]byte(*params)) {
		return fmt.Errorf("filter test: --params is not valid JSON: %s", head(*params, 200))
	}
	if *batch < 0 {
		return fmt.Errorf("filter test: --batch must be >= 0")
	}
	module, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("filter test: %w", err)
	}

	// Read every record first: a bad line fails before the module runs.
	r, closeInput, err := openInput(env, *input)
	if err != nil {
		return fmt.Errorf("filter test: %w", err)
	}
	defer closeInput()
	var recs []wasm.Record
	var lines []int
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	now := time.Now()
	for ln := 1; sc.Scan(); ln++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		off := int64(len(recs))
		rec, err := parseTestRecord(line, off, now)
		if err != nil {
			return fmt.Errorf("filter test: %s line %d: %w", *input, ln, err)
		}
		recs, lines = append(recs, rec), append(lines, ln)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("filter test: reading %s: %w", *input, err)
	}
	if len(recs) == 0 {
		return fmt.Errorf("filter test: %s holds no records", *input)
	}

	host, err := wasm.NewHost(ctx, wasm.Options{Interpreter: *interp})
	if err != nil {
		return fmt.Errorf("filter test: %w", err)
	}
	defer host.Close(context.WithoutCancel(ctx))
	var pr []byte
	if *params != "" {
		pr = []byte(*params)
	}
	pool, err := host.NewPoolFromBytes(ctx, module, pr, wasm.Limits{MemoryPages: uint32(*pages), Timeout: *timeout})
	if err != nil {
		return fmt.Errorf("filter test: %s: %w", file, err)
	}
	defer pool.Close()

	size := *batch
	if size == 0 {
		size = len(recs)
	}
	counts := map[string]int{}
	for i := 0; i < len(recs); i += size {
		j := min(i+size, len(recs))
		in := recs[i:j]
		if p == wasm.ProducePath && *batch > 0 {
			// On the produce path offsets are positions in the batch.
			in = append([]wasm.Record(nil), in...)
			for k := range in {
				in[k].Offset = int64(k)
			}
		}
		decisions, logs, err := pool.Run(ctx, p, *topic, int32(*partition), in)
		for _, l := range logs {
			fmt.Fprintf(env.stderr, "[%s] %s\n", l.Stream, l.Line)
		}
		if err != nil {
			return fmt.Errorf("filter test: records of lines %d to %d: %w", lines[i], lines[j-1], err)
		}
		if len(decisions) != len(in) {
			return fmt.Errorf("filter test: %d decisions for %d records", len(decisions), len(in))
		}
		for k, d := range decisions {
			fmt.Fprintf(env.stdout, "line %d: %s\n", lines[i+k], describeDecision(d))
			counts[strings.Fields(describeDecision(d))[0]]++
		}
	}
	parts := make([]string, 0, len(counts))
	for _, n := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%d %s", counts[n], strings.TrimSuffix(n, ":")))
	}
	fmt.Fprintf(env.stderr, "%d record%s: %s\n", len(recs), plural(len(recs)), strings.Join(parts, ", "))
	return nil
}
