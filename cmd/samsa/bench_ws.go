package main

// samsa bench ws: the WebSocket endpoint measured with the Go SDK (sdk/go),
// as an edge program sees it: produce throughput and ack latency, fan-out to
// many subscriber connections, and the cost of starting a connection (with
// and without authentication).

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	samsa "github.com/samsa-broker/samsa/sdk/go"
)

const benchWSUsage = `usage: samsa bench ws <produce|fanout|connect> [flags]

  produce  one client produces --records records (binary frames) as fast as
           acks allow; reports records/s, MiB/s and ack latency
  fanout   one producer at --rate records/s for --duration, delivered to
           --subscribers connections (binary deliveries, from latest); each
           record carries its send time: reports deliveries/s, delivery
           latency and missing/duplicate deliveries (every subscriber must
           see every record once)
  connect  --connections connections one after the other: dial, hello,
           auth (with credentials), first ping round trip; then close.
           Reports the connection-start time (close excluded)

credentials (when the broker has [auth] enabled): --jwt FILE --seed FILE
(nonce signing), --seed FILE alone (a static nkey user), --bearer FILE, or
--creds FILE (a NATS .creds file); "-" reads stdin.

run 'samsa bench ws produce -h' for the flags
`

// wsBenchConfig is what the bench ws flags say.
type wsBenchConfig struct {
	cpuProfile  string
	format      string
	mode        string
	url         string
	topic       string
	records     int64
	recordSize  int
	subscribers int
	rate        float64
	duration    time.Duration
	drain       time.Duration
	connections int
	maxBuffered int
	jwtFile     string
	seedFile    string
	bearerFile  string
	credsFile   string
	timeout     time.Duration
	json        bool

	creds    *samsa.Credentials
	authKind string // none, nonce, nkey, bearer
}

// runBenchWS is `samsa bench ws MODE [flags]`.
func runBenchWS(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(env.stderr, benchWSUsage)
		if len(args) == 0 {
			return errors.New("bench ws: no mode given (produce, fanout or connect)")
		}
		return nil
	}
	c := wsBenchConfig{mode: args[0]}
	switch c.mode {
	case "produce", "fanout", "connect":
	default:
		fmt.Fprint(env.stderr, benchWSUsage)
		return fmt.Errorf("bench ws: unknown mode %q (want produce, fanout or connect)", c.mode)
	}
	fs := newFlagSet(env, "bench ws "+c.mode, "bench ws "+c.mode+" [flags]")
	fs.StringVar(&c.url, "url", env.getenvOr("SAMSA_WS_URL", "ws://127.0.0.1:8080/ws"), "the broker's WebSocket endpoint (env SAMSA_WS_URL)")
	fs.StringVar(&c.topic, "topic", "bench-ws", "topic (auto-created by the broker on the first produce)")
	fs.Int64Var(&c.records, "records", 1_000_000, "produce: number of records")
	fs.IntVar(&c.recordSize, "record-size", 100, "value size in bytes (fanout: at least 24, the send time, sequence and run id)")
	fs.IntVar(&c.subscribers, "subscribers", 1000, "fanout: subscriber connections")
	fs.Float64Var(&c.rate, "rate", 1000, "fanout: records/s produced")
	fs.DurationVar(&c.duration, "duration", 10*time.Second, "fanout: how long to produce")
	fs.DurationVar(&c.drain, "drain", 30*time.Second, "fanout: how long to wait for the last deliveries after producing")
	fs.StringVar(&c.format, "format", "binary", "fanout: delivery format of the subscriptions, binary or json (what browsers get by default)")
	fs.IntVar(&c.connections, "connections", 1000, "connect: connections to start, one after the other")
	fs.IntVar(&c.maxBuffered, "max-buffered", 1<<18, "produce: records queued in the client before ProduceAsync blocks (the ack latency includes this queue)")
	fs.StringVar(&c.jwtFile, "jwt", "", "file holding a user JWT (samsa token issue); with --seed: nonce signing")
	fs.StringVar(&c.seedFile, "seed", "", "the user's seed file (samsa key gen); alone: a static nkey user of broker.toml")
	fs.StringVar(&c.bearerFile, "bearer", "", "file holding a bearer JWT (samsa token issue --bearer)")
	fs.StringVar(&c.credsFile, "creds", "", "a NATS credentials file (JWT and seed)")
	fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "bound of each dial and of each wait for the broker")
	fs.BoolVar(&c.json, "json", false, "print the result as one JSON object")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of this client to the file (go tool pprof)")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("bench ws %s: unexpected arguments %q", c.mode, pos)
	}
	if err := c.validate(); err != nil {
		return fmt.Errorf("bench ws %s: %w", c.mode, err)
	}
	if err := c.loadCredentials(env); err != nil {
		return fmt.Errorf("bench ws %s: %w", c.mode, err)
	}
	if c.mode != "produce" {
		raiseOpenFileLimit(env)
	}
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			return fmt.Errorf("bench ws %s: --cpuprofile: %w", c.mode, err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fmt.Errorf("bench ws %s: --cpuprofile: %w", c.mode, err)
		}
		defer pprof.StopCPUProfile()
	}
	var res *wsBenchResult
	switch c.mode {
	case "produce":
		res, err = c.runProduce(ctx)
	case "fanout":
		res, err = c.runFanout(ctx, env)
	case "connect":
		res, err = c.runConnect(ctx)
	}
	if res != nil {
		if perr := res.print(env.stdout, c.json); perr != nil && err == nil {
			err = perr
		}
	}
	if err != nil {
		return fmt.Errorf("bench ws %s: %w", c.mode, err)
	}
	return nil
}

func (c *wsBenchConfig) validate() error {
	switch {
	case !strings.HasPrefix(c.url, "ws://") && !strings.HasPrefix(c.url, "wss://"):
		return fmt.Errorf("--url %q: want ws://HOST:PORT/ws or wss://...", c.url)
	case c.topic == "" && c.mode != "connect":
		return errors.New("--topic must not be empty")
	case c.records < 1:
		return errors.New("--records must be at least 1")
	case c.recordSize < 0:
		return errors.New("--record-size must not be negative")
	case c.format != "binary" && c.format != "json":
		return fmt.Errorf("--format %q: want binary or json", c.format)
	case c.mode == "fanout" && c.recordSize < 24:
		return errors.New("--record-size must be at least 24 for fanout (send time, sequence number and run id are carried in the value)")
	case c.subscribers < 1:
		return errors.New("--subscribers must be at least 1")
	case c.rate <= 0:
		return errors.New("--rate must be positive")
	case c.duration <= 0:
		return errors.New("--duration must be positive")
	case c.mode == "fanout" && c.rate*c.duration.Seconds() < 1:
		return errors.New("--rate × --duration is less than one record")
	case c.connections < 1:
		return errors.New("--connections must be at least 1")
	case c.maxBuffered < 1:
		return errors.New("--max-buffered must be at least 1")
	case c.drain < 0:
		return errors.New("--drain must not be negative")
	case c.bearerFile != "" && (c.jwtFile != "" || c.seedFile != "" || c.credsFile != ""):
		return errors.New("give --bearer, or --jwt with --seed, or --seed alone, or --creds")
	case c.credsFile != "" && (c.jwtFile != "" || c.seedFile != ""):
		return errors.New("--creds holds the JWT and the seed: not with --jwt or --seed")
	case c.jwtFile != "" && c.seedFile == "":
		return errors.New("--jwt needs --seed (the user's seed signs the nonce); a bearer JWT goes in --bearer")
	}
	return nil
}

// loadCredentials reads the credential files. Errors never quote them.
func (c *wsBenchConfig) loadCredentials(env *cliEnv) error {
	read := func(flag, path string) (string, error) {
		s, err := readSeedFile(env, path)
		if err != nil {
			return "", fmt.Errorf("--%s: %w", flag, err)
		}
		s = strings.TrimSpace(s)
		if s == "" {
			return "", fmt.Errorf("--%s %s is empty", flag, path)
		}
		return s, nil
	}
	c.authKind = "none"
	var err error
	switch {
	case c.bearerFile != "":
		c.creds = &samsa.Credentials{}
		c.creds.Bearer, err = read("bearer", c.bearerFile)
		c.authKind = "bearer"
	case c.credsFile != "":
		data, rerr := read("creds", c.credsFile)
		if rerr != nil {
			return rerr
		}
		cr, perr := samsa.ParseCreds([]byte(data))
		if perr != nil {
			return fmt.Errorf("--creds %s: %w", c.credsFile, perr)
		}
		c.creds, c.authKind = &cr, "nonce"
	case c.seedFile != "":
		c.creds = &samsa.Credentials{}
		if c.creds.Seed, err = read("seed", c.seedFile); err != nil {
			return err
		}
		c.authKind = "nkey"
		if c.jwtFile != "" {
			c.creds.JWT, err = read("jwt", c.jwtFile)
			c.authKind = "nonce"
		}
	}
	return err
}

// clientOptions are the SDK options of every bench connection: binary
// frames, no reconnects (a lost connection is a failure of the bench).
func (c *wsBenchConfig) clientOptions() samsa.Options {
	return samsa.Options{
		Binary:             true,
		NoReconnect:        true,
		MaxBufferedRecords: c.maxBuffered,
		Credentials:        c.creds,
		HandshakeTimeout:   c.timeout,
		Logger:             slog.New(slog.DiscardHandler),
	}
}

func (c *wsBenchConfig) dial(ctx context.Context) (*samsa.Client, error) {
	dctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	cl, err := samsa.Dial(dctx, c.url, c.clientOptions())
	if err != nil {
		return nil, err
	}
	return cl, nil
}

// wsBenchResult is what bench ws prints, as text or as JSON.
type wsBenchResult struct {
	Mode       string  `json:"mode"`
	URL        string  `json:"url"`
	Auth       string  `json:"auth"`
	Topic      string  `json:"topic,omitempty"`
	RecordSize int     `json:"record_size,omitempty"`
	ElapsedSec float64 `json:"elapsed_sec"`

	// produce
	Records       int64           `json:"records,omitempty"`
	Failed        int64           `json:"failed"`
	RecordsPerSec float64         `json:"records_per_sec,omitempty"`
	MiBPerSec     float64         `json:"mib_per_sec,omitempty"`
	AckLatency    *latencySummary `json:"ack_latency_ms,omitempty"`

	// fanout
	Subscribers        int             `json:"subscribers,omitempty"`
	Rate               float64         `json:"rate,omitempty"`
	DurationSec        float64         `json:"duration_sec,omitempty"`
	SetupSec           float64         `json:"setup_sec,omitempty"`
	Deliveries         int64           `json:"deliveries,omitempty"`
	ExpectedDeliveries int64           `json:"expected_deliveries,omitempty"`
	Missing            int64           `json:"missing"`
	Duplicates         int64           `json:"duplicates"`
	DeliveriesPerSec   float64         `json:"deliveries_per_sec,omitempty"`
	DeliveryLatency    *latencySummary `json:"delivery_latency_ms,omitempty"`
	EndedSubscribers   int             `json:"ended_subscribers,omitempty"`

	// connect
	Connections       int             `json:"connections,omitempty"`
	ConnectionsPerSec float64         `json:"connections_per_sec,omitempty"`
	ConnectLatency    *latencySummary `json:"connect_ms,omitempty"`

	Machine machineInfo `json:"machine"`
}

func (c *wsBenchConfig) newResult(elapsed time.Duration) *wsBenchResult {
	return &wsBenchResult{
		Mode:       "ws " + c.mode,
		URL:        c.url,
		Auth:       c.authKind,
		ElapsedSec: elapsed.Seconds(),
		Machine:    thisMachine(),
	}
}

func (res *wsBenchResult) print(w io.Writer, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(res)
	}
	switch res.Mode {
	case "ws produce":
		fmt.Fprintf(w, "bench ws produce: topic %q via %s (auth %s), %d records of %d bytes", res.Topic, res.URL, res.Auth, res.Records, res.RecordSize)
		if res.Failed > 0 {
			fmt.Fprintf(w, ", %d FAILED", res.Failed)
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "  elapsed     %.3fs\n", res.ElapsedSec)
		fmt.Fprintf(w, "  throughput  %.0f records/s, %.2f MiB/s\n", res.RecordsPerSec, res.MiBPerSec)
		printLatency(w, "ack latency", res.AckLatency)
	case "ws fanout":
		fmt.Fprintf(w, "bench ws fanout: topic %q via %s (auth %s), %d subscribers, %.0f rec/s for %s, records of %d bytes\n",
			res.Topic, res.URL, res.Auth, res.Subscribers, res.Rate, time.Duration(res.DurationSec*float64(time.Second)), res.RecordSize)
		fmt.Fprintf(w, "  deliveries  %d of %d, missing %d, duplicates %d", res.Deliveries, res.ExpectedDeliveries, res.Missing, res.Duplicates)
		if res.Failed > 0 {
			fmt.Fprintf(w, ", %d records FAILED to produce", res.Failed)
		}
		if res.EndedSubscribers > 0 {
			fmt.Fprintf(w, ", %d subscribers ENDED early", res.EndedSubscribers)
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "  elapsed     %.3fs (subscribers set up in %.3fs)\n", res.ElapsedSec, res.SetupSec)
		fmt.Fprintf(w, "  throughput  %.0f deliveries/s\n", res.DeliveriesPerSec)
		printLatency(w, "delivery latency", res.DeliveryLatency)
	case "ws connect":
		fmt.Fprintf(w, "bench ws connect: %d connections via %s (auth %s), dial + hello + auth + first ping\n", res.Connections, res.URL, res.Auth)
		fmt.Fprintf(w, "  elapsed     %.3fs, %.0f connections/s\n", res.ElapsedSec, res.ConnectionsPerSec)
		printLatency(w, "connect", res.ConnectLatency)
	}
	return res.Machine.print(w)
}

// runProduce: one client, ProduceAsync in a loop; each record's ack
// latency is from its ProduceAsync call to its callback.
func (c *wsBenchConfig) runProduce(ctx context.Context) (*wsBenchResult, error) {
	cl, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	value := make([]byte, c.recordSize)
	for i := range value {
		value[i] = 'A' + byte(i%26)
	}
	hist := newLatencyHist()
	var ok, failed atomic.Int64
	var errOnce sync.Once
	var firstErr error
	start := time.Now()
	for range c.records {
		t := time.Now()
		cl.ProduceAsync(ctx, c.topic, samsa.Record{Value: value}, func(_ samsa.Ack, err error) {
			if err != nil {
				failed.Add(1)
				errOnce.Do(func() { firstErr = err })
				return
			}
			hist.record(int64(time.Since(t)))
			ok.Add(1)
		})
		if ctx.Err() != nil {
			break
		}
	}
	ferr := cl.Flush(ctx)
	elapsed := time.Since(start)
	res := c.newResult(elapsed)
	res.Topic, res.RecordSize = c.topic, c.recordSize
	res.Records, res.Failed = ok.Load(), failed.Load()
	if s := elapsed.Seconds(); s > 0 {
		res.RecordsPerSec = float64(res.Records) / s
		res.MiBPerSec = float64(res.Records) * float64(c.recordSize) / (1 << 20) / s
	}
	res.AckLatency = hist.summary()
	switch {
	case firstErr != nil:
		return res, fmt.Errorf("%d records failed; first: %w", res.Failed, firstErr)
	case ferr != nil:
		return res, ferr
	}
	return res, nil
}

// fanoutSub is one subscriber connection of the fanout bench.
type fanoutSub struct {
	cl   *samsa.Client
	sub  *samsa.Subscription
	seen []uint64 // bitset of the sequence numbers received
	n    int64    // distinct records received
	dups int64
	err  error // why its stream ended early
}

// runFanout: one producer at --rate, --subscribers connections from latest.
// A value is [send time ns][sequence][run id][padding], big-endian; a
// subscriber ignores records of other runs.
func (c *wsBenchConfig) runFanout(ctx context.Context, env *cliEnv) (*wsBenchResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	total := int64(c.rate * c.duration.Seconds())
	var runID [8]byte
	if _, err := rand.Read(runID[:]); err != nil {
		return nil, err
	}

	prod, err := c.dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	defer prod.Close()
	// A first record creates the topic, so that the subscribers find it.
	wctx, wcancel := context.WithTimeout(ctx, c.timeout)
	_, err = prod.Produce(wctx, c.topic, samsa.Record{Value: make([]byte, c.recordSize)})
	wcancel()
	if err != nil {
		return nil, fmt.Errorf("producer: creating the topic: %w", err)
	}

	// Subscribers: one connection each, set up 32 at a time.
	subs := make([]*fanoutSub, c.subscribers)
	t0 := time.Now()
	var (
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 32)
		emu  sync.Mutex
		serr error
	)
	for i := range subs {
		fs := &fanoutSub{seen: make([]uint64, (total+63)/64)}
		subs[i] = fs
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cl, err := c.dial(ctx)
			if err == nil {
				fs.cl = cl
				sctx, scancel := context.WithTimeout(ctx, c.timeout)
				fs.sub, err = cl.Subscribe(sctx, c.topic, samsa.SubscribeOptions{From: samsa.Latest(), Credit: 10000, Format: c.format})
				scancel()
			}
			if err != nil {
				emu.Lock()
				if serr == nil {
					serr = fmt.Errorf("subscriber %d: %w", i, err)
				}
				emu.Unlock()
			}
		}()
	}
	wg.Wait()
	defer func() {
		var cw sync.WaitGroup
		for _, fs := range subs {
			if fs.cl != nil {
				cw.Go(func() { fs.cl.Close() })
			}
		}
		cw.Wait()
	}()
	if serr != nil {
		return nil, serr
	}
	setup := time.Since(t0)
	if !c.json {
		fmt.Fprintf(env.stderr, "%d subscribers connected in %s; producing %d records at %.0f/s\n", c.subscribers, setup.Round(time.Millisecond), total, c.rate)
	}

	hist := newLatencyHist()
	var received, lastNs atomic.Int64
	var cg sync.WaitGroup
	for _, fs := range subs {
		cg.Go(func() {
			for {
				r, err := fs.sub.Next(ctx)
				if err != nil {
					if ctx.Err() == nil {
						fs.err = err
					}
					return
				}
				now := time.Now().UnixNano()
				v := r.Value
				if len(v) < 24 || string(v[16:24]) != string(runID[:]) {
					continue // not this run's
				}
				seq := binary.BigEndian.Uint64(v[8:])
				if seq >= uint64(total) {
					continue
				}
				hist.record(now - int64(binary.BigEndian.Uint64(v)))
				w, bit := seq/64, uint64(1)<<(seq%64)
				if fs.seen[w]&bit != 0 {
					fs.dups++
				} else {
					fs.seen[w] |= bit
					fs.n++
				}
				received.Add(1)
				for {
					l := lastNs.Load()
					if now <= l || lastNs.CompareAndSwap(l, now) {
						break
					}
				}
			}
		})
	}

	// Produce at the rate on an absolute schedule.
	var failed atomic.Int64
	var errOnce sync.Once
	var prodErr error
	cb := func(_ samsa.Ack, err error) {
		if err != nil {
			failed.Add(1)
			errOnce.Do(func() { prodErr = err })
		}
	}
	interval := time.Duration(float64(time.Second) / c.rate)
	start := time.Now()
	for i := range total {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		v := make([]byte, c.recordSize)
		binary.BigEndian.PutUint64(v, uint64(time.Now().UnixNano()))
		binary.BigEndian.PutUint64(v[8:], uint64(i))
		copy(v[16:24], runID[:])
		prod.ProduceAsync(ctx, c.topic, samsa.Record{Value: v}, cb)
		if ctx.Err() != nil {
			break
		}
	}
	if err := prod.Flush(ctx); err != nil && prodErr == nil {
		prodErr = err
	}

	// Wait for every delivery, up to --drain.
	want := total * int64(c.subscribers)
	want -= failed.Load() * int64(c.subscribers)
	deadline := time.Now().Add(c.drain)
	for received.Load() < want && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	cg.Wait()

	res := c.newResult(0)
	res.Topic, res.RecordSize = c.topic, c.recordSize
	res.Subscribers, res.Rate, res.DurationSec, res.SetupSec = c.subscribers, c.rate, c.duration.Seconds(), setup.Seconds()
	res.Failed = failed.Load()
	res.ExpectedDeliveries = total * int64(c.subscribers)
	var firstEnd error
	for _, fs := range subs {
		res.Deliveries += fs.n + fs.dups
		res.Duplicates += fs.dups
		res.Missing += total - fs.n
		if fs.err != nil {
			res.EndedSubscribers++
			if firstEnd == nil {
				firstEnd = fs.err
			}
		}
	}
	elapsed := time.Duration(lastNs.Load() - start.UnixNano())
	if elapsed <= 0 {
		elapsed = time.Since(start)
	}
	res.ElapsedSec = elapsed.Seconds()
	res.DeliveriesPerSec = float64(res.Deliveries) / elapsed.Seconds()
	res.DeliveryLatency = hist.summary()
	switch {
	case prodErr != nil:
		return res, fmt.Errorf("producer: %d records failed; first: %w", res.Failed, prodErr)
	case firstEnd != nil:
		return res, fmt.Errorf("%d subscribers ended early; first: %w", res.EndedSubscribers, firstEnd)
	case res.Missing > 0 || res.Duplicates > 0:
		return res, fmt.Errorf("fan-out incomplete: %d deliveries missing, %d duplicated", res.Missing, res.Duplicates)
	}
	return res, nil
}

// runConnect starts --connections connections one after the other; each
// one's time is from Dial (TCP, upgrade, hello, auth) to its first pong.
func (c *wsBenchConfig) runConnect(ctx context.Context) (*wsBenchResult, error) {
	hist := newLatencyHist()
	start := time.Now()
	var measured time.Duration
	for i := range c.connections {
		t := time.Now()
		cl, err := c.dial(ctx)
		if err != nil {
			return nil, fmt.Errorf("connection %d: %w", i, err)
		}
		pctx, pcancel := context.WithTimeout(ctx, c.timeout)
		_, err = cl.Ping(pctx)
		pcancel()
		d := time.Since(t)
		cl.Close()
		if err != nil {
			return nil, fmt.Errorf("connection %d: ping: %w", i, err)
		}
		hist.record(int64(d))
		measured += d
	}
	res := c.newResult(time.Since(start))
	res.Connections = c.connections
	if measured > 0 {
		res.ConnectionsPerSec = float64(c.connections) / measured.Seconds()
	}
	res.ConnectLatency = hist.summary()
	return res, nil
}
