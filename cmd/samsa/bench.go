package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/bits"
	"math/rand/v2"
	"os"
	"runtime"
	"sort"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

const benchUsage = `usage: samsa bench <produce|consume|e2e|ws> [flags]

  produce  produce --records records as fast as possible (or at --rate) and
           report throughput and produce latency (Produce call to ack)
  consume  read --records records from the start of the topic (producing
           the missing ones first) and report throughput
  e2e      produce and consume at once; latency is from send to receipt,
           measured with the send time carried in each value
  ws       the WebSocket endpoint with the Go SDK: samsa bench ws
           <produce|fanout|connect> (run 'samsa bench ws -h')

run 'samsa bench produce -h' for the flags
`

// benchConfig is what the bench flags say.
type benchConfig struct {
	mode        string
	cf          clientFlags
	topic       string
	partitions  int
	records     int64
	recordSize  int
	producers   int
	acks        string
	linger      time.Duration
	batchBytes  byteSizeFlag
	rate        float64
	compression string
	json        bool
	maxBuffered int
}

// runBench is `samsa bench produce|consume|e2e`, in the spirit of
// kafka-producer-perf-test and kafka-consumer-perf-test.
func runBench(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(env.stderr, benchUsage)
		if len(args) == 0 {
			return errors.New("bench: no mode given (produce, consume or e2e)")
		}
		return nil
	}
	if args[0] == "ws" {
		return runBenchWS(ctx, env, args[1:])
	}
	c := benchConfig{mode: args[0], batchBytes: 1 << 20}
	switch c.mode {
	case "produce", "consume", "e2e":
	default:
		fmt.Fprint(env.stderr, benchUsage)
		return fmt.Errorf("bench: unknown mode %q (want produce, consume or e2e)", c.mode)
	}
	fs := newFlagSet(env, "bench "+c.mode, "bench "+c.mode+" [flags]")
	addClientFlags(fs, env, &c.cf, defaultClientTimeout)
	fs.StringVar(&c.topic, "topic", "bench", "topic to use; created if missing")
	fs.IntVar(&c.partitions, "partitions", 1, "partitions of the topic if it is created")
	fs.Int64Var(&c.records, "records", 1_000_000, "number of records")
	fs.IntVar(&c.recordSize, "record-size", 100, "value size in bytes")
	fs.IntVar(&c.producers, "producers", 1, "concurrent producer clients")
	fs.StringVar(&c.acks, "acks", "all", "acks: all, 1 or 0")
	fs.DurationVar(&c.linger, "linger", 0, "producer linger (how long a batch waits for more records)")
	fs.Var(&c.batchBytes, "batch-bytes", "maximum batch size in bytes, e.g. 1MiB (default 1MiB)")
	fs.Float64Var(&c.rate, "rate", 0, "target records/s across all producers (0 = unlimited)")
	fs.StringVar(&c.compression, "compression", "none", "batch compression: none, gzip, snappy, lz4 or zstd")
	fs.BoolVar(&c.json, "json", false, "print the result as one JSON object")
	fs.IntVar(&c.maxBuffered, "max-buffered", 1<<18, "maximum records buffered per producer client")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("bench %s: unexpected arguments %q", c.mode, pos)
	}
	if err := c.validate(); err != nil {
		return fmt.Errorf("bench %s: %w", c.mode, err)
	}

	partitions, err := c.ensureTopic(ctx, env)
	if err != nil {
		return fmt.Errorf("bench %s: %w", c.mode, c.cf.brokerErr(err))
	}
	var res *benchResult
	switch c.mode {
	case "produce":
		res, err = c.runProduce(ctx, env)
	case "consume":
		res, err = c.runConsume(ctx, env)
	case "e2e":
		res, err = c.runE2E(ctx, env)
	}
	if res != nil {
		res.Partitions = partitions
		if perr := res.print(env.stdout, c.json); perr != nil && err == nil {
			err = perr
		}
	}
	if err != nil {
		return fmt.Errorf("bench %s: %w", c.mode, err)
	}
	return nil
}

func (c *benchConfig) validate() error {
	switch {
	case c.topic == "":
		return errors.New("--topic must not be empty")
	case c.partitions < 1:
		return errors.New("--partitions must be at least 1")
	case c.records < 1:
		return errors.New("--records must be at least 1")
	case c.recordSize < 0:
		return errors.New("--record-size must not be negative")
	case c.mode == "e2e" && c.recordSize < 8:
		return errors.New("--record-size must be at least 8 for e2e (the send time is carried in the value)")
	case c.producers < 1:
		return errors.New("--producers must be at least 1")
	case c.batchBytes < 1 || c.batchBytes > math.MaxInt32:
		return errors.New("--batch-bytes must be between 1 and 2GiB")
	case c.rate < 0:
		return errors.New("--rate must not be negative")
	case c.maxBuffered < 1:
		return errors.New("--max-buffered must be at least 1")
	case c.linger < 0:
		return errors.New("--linger must not be negative")
	}
	if _, err := parseAcks(c.acks); err != nil {
		return err
	}
	_, err := parseCompression(c.compression)
	return err
}

// ensureTopic creates the bench topic if it is missing and returns its
// partition count.
func (c *benchConfig) ensureTopic(ctx context.Context, env *cliEnv) (int, error) {
	s, err := c.cf.admin(ctx)
	if err != nil {
		return 0, err
	}
	defer s.close()
	ps, err := topicPartitions(s.ctx, s.adm, c.topic)
	if err == nil {
		if len(ps) != c.partitions && !c.json {
			fmt.Fprintf(env.stderr, "using existing topic %q with %d partition%s\n", c.topic, len(ps), plural(len(ps)))
		}
		return len(ps), nil
	}
	var nf *topicNotFoundError
	if !errors.As(err, &nf) {
		return 0, err
	}
	resp, err := s.adm.CreateTopic(s.ctx, int32(c.partitions), -1, nil, c.topic)
	if errors.Is(err, kerr.TopicAlreadyExists) {
		// Created concurrently; ask again with a fresh client, as this one
		// may answer from its metadata cache.
		s.close()
		if s, err = c.cf.admin(ctx); err != nil {
			return 0, err
		}
		defer s.close()
		ps, err := topicPartitions(s.ctx, s.adm, c.topic)
		return len(ps), err
	}
	if err != nil {
		return 0, fmt.Errorf("creating topic %q: %w", c.topic, err)
	}
	if !c.json {
		fmt.Fprintf(env.stderr, "created topic %q with %d partition%s\n", c.topic, c.partitions, plural(c.partitions))
	}
	if resp.NumPartitions > 0 {
		return int(resp.NumPartitions), nil
	}
	return c.partitions, nil
}

// producerOpts are the kgo options of one bench producer.
func (c *benchConfig) producerOpts() []kgo.Opt {
	opts, _ := parseAcks(c.acks) // validated
	codec, _ := parseCompression(c.compression)
	return append(opts,
		kgo.DefaultProduceTopic(c.topic),
		kgo.ProducerLinger(c.linger),
		kgo.ProducerBatchMaxBytes(int32(c.batchBytes)),
		kgo.ProducerBatchCompression(codec),
		kgo.MaxBufferedRecords(c.maxBuffered),
		kgo.UnknownTopicRetries(10),
	)
}

func (c *benchConfig) consumerOpts(offsets map[int32]kgo.Offset) []kgo.Opt {
	return []kgo.Opt{
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{c.topic: offsets}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(64 << 20),
		kgo.FetchMaxPartitionBytes(32 << 20),
		kgo.FetchMaxWait(100 * time.Millisecond),
	}
}

// benchRecord is a pooled record plus its send time. The record is the first
// field, so the *kgo.Record a promise gets back points at the benchRecord.
type benchRecord struct {
	rec   kgo.Record
	start int64 // nanoseconds since produceRun.t0
}

// produceRun produces records with several clients and counts the results.
type produceRun struct {
	c       *benchConfig
	value   []byte // shared value of every record (not with e2e)
	e2e     bool
	t0      time.Time
	pool    sync.Pool
	hist    *latencyHist // Produce call to ack; nil: not measured
	ok      atomic.Int64
	failed  atomic.Int64
	errOnce sync.Once
	err     error
}

func newProduceRun(c *benchConfig, e2e bool, measure bool) *produceRun {
	r := &produceRun{c: c, e2e: e2e, t0: time.Now()}
	r.value = make([]byte, c.recordSize)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range r.value {
		r.value[i] = 'A' + byte(rng.IntN(26))
	}
	if measure {
		r.hist = newLatencyHist()
	}
	r.pool.New = func() any {
		br := &benchRecord{}
		if e2e {
			br.rec.Value = append([]byte(nil), r.value...)
		}
		return br
	}
	return r
}

// promise is the produce callback shared by every record.
func (r *produceRun) promise(rec *kgo.Record, err error) {
	br := (*benchRecord)(unsafe.Pointer(rec))
	if err != nil {
		r.failed.Add(1)
		r.errOnce.Do(func() { r.err = err })
	} else {
		if r.hist != nil {
			r.hist.record(int64(time.Since(r.t0)) - br.start)
		}
		r.ok.Add(1)
	}
	v := br.rec.Value
	br.rec = kgo.Record{Value: v}
	r.pool.Put(br)
}

// run produces n records spread over the producers and waits for every ack.
func (r *produceRun) run(ctx context.Context, n int64) (time.Duration, error) {
	c := r.c
	clients := make([]*kgo.Client, c.producers)
	defer func() {
		for _, cl := range clients {
			if cl != nil {
				cl.Close()
			}
		}
	}()
	for i := range clients {
		cl, err := c.cf.newClient(c.producerOpts()...)
		if err != nil {
			return 0, err
		}
		clients[i] = cl
	}
	// Connect before the clock starts.
	for _, cl := range clients {
		if err := cl.Ping(ctx); err != nil {
			return 0, fmt.Errorf("connecting to %s: %w", c.cf.brokers, err)
		}
	}

	start := time.Now()
	var wg sync.WaitGroup
	for i, cl := range clients {
		share := n / int64(len(clients))
		if int64(i) < n%int64(len(clients)) {
			share++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.produce(ctx, cl, share)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if r.failed.Load() > 0 {
		return elapsed, fmt.Errorf("%d of %d records failed: %w", r.failed.Load(), n, r.err)
	}
	if err := ctx.Err(); err != nil {
		return elapsed, err
	}
	return elapsed, nil
}

// produce sends n records with one client, paced to its share of --rate.
func (r *produceRun) produce(ctx context.Context, cl *kgo.Client, n int64) {
	var interval time.Duration
	if r.c.rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(r.c.producers) / r.c.rate)
	}
	begin := time.Now()
	for i := int64(0); i < n; i++ {
		if ctx.Err() != nil {
			// Count what was never sent as failed so that the totals add up.
			r.failed.Add(n - i)
			r.errOnce.Do(func() { r.err = ctx.Err() })
			break
		}
		if interval > 0 {
			if wait := time.Duration(i)*interval - time.Since(begin); wait > time.Millisecond {
				time.Sleep(wait)
			}
		}
		br := r.pool.Get().(*benchRecord)
		br.rec.Topic = r.c.topic
		if r.e2e {
			binary.BigEndian.PutUint64(br.rec.Value, uint64(time.Now().UnixNano()))
		} else {
			br.rec.Value = r.value
		}
		br.start = int64(time.Since(r.t0))
		cl.Produce(ctx, &br.rec, r.promise)
	}
	_ = cl.Flush(context.WithoutCancel(ctx))
}

func (c *benchConfig) runProduce(ctx context.Context, env *cliEnv) (*benchResult, error) {
	r := newProduceRun(c, false, true)
	prog := startProgress(env.stderr, "produce", c.records, &r.ok)
	elapsed, err := r.run(ctx, c.records)
	prog.finish()
	res := c.newResult(r.ok.Load(), r.failed.Load(), elapsed)
	res.Latency = r.hist.summary()
	return res, err
}

func (c *benchConfig) runConsume(ctx context.Context, env *cliEnv) (*benchResult, error) {
	s, err := c.cf.admin(ctx)
	if err != nil {
		return nil, err
	}
	starts, err := s.adm.ListStartOffsets(s.ctx, c.topic)
	if err == nil {
		err = starts.Error()
	}
	var ends kadm.ListedOffsets
	if err == nil {
		ends, err = s.adm.ListEndOffsets(s.ctx, c.topic)
		if err == nil {
			err = ends.Error()
		}
	}
	s.close()
	if err != nil {
		return nil, fmt.Errorf("listing offsets of %q: %w", c.topic, c.cf.brokerErr(err))
	}
	var have int64
	ends.Each(func(o kadm.ListedOffset) {
		if so, ok := starts.Lookup(o.Topic, o.Partition); ok && o.Offset > so.Offset {
			have += o.Offset - so.Offset
		}
	})
	if missing := c.records - have; missing > 0 {
		if !c.json {
			fmt.Fprintf(env.stderr, "topic %q has %d records; producing %d more first\n", c.topic, have, missing)
		}
		r := newProduceRun(c, false, false)
		prog := startProgress(env.stderr, "fill", missing, &r.ok)
		_, err := r.run(ctx, missing)
		prog.finish()
		if err != nil {
			return nil, fmt.Errorf("filling topic %q: %w", c.topic, err)
		}
	}

	offsets := map[int32]kgo.Offset{}
	starts.Each(func(o kadm.ListedOffset) { offsets[o.Partition] = kgo.NewOffset().AtStart() })
	cl, err := c.cf.newClient(c.consumerOpts(offsets)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()

	var got atomic.Int64
	var bytes int64
	prog := startProgress(env.stderr, "consume", c.records, &got)
	defer prog.finish()
	begin := time.Now()
	for got.Load() < c.records {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := firstFetchErr(fetches); err != nil {
			return nil, err
		}
		// Count up to --records exactly; the last fetch may bring more.
		n, want := int64(0), c.records-got.Load()
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			for _, r := range p.Records {
				if n == want {
					return
				}
				n++
				bytes += int64(len(r.Value))
			}
		})
		got.Add(n)
	}
	elapsed := time.Since(begin)
	prog.finish()
	res := c.newResult(got.Load(), 0, elapsed)
	res.MiBPerSec = float64(bytes) / (1 << 20) / elapsed.Seconds()
	return res, nil
}

func firstFetchErr(fetches kgo.Fetches) error {
	var err error
	fetches.EachError(func(t string, p int32, e error) {
		if err == nil {
			err = fmt.Errorf("fetching %s[%d]: %w", t, p, e)
		}
	})
	return err
}

func (c *benchConfig) runE2E(ctx context.Context, env *cliEnv) (*benchResult, error) {
	// Start consuming exactly at today's end offsets, so nothing produced
	// below is missed and nothing older is counted.
	s, err := c.cf.admin(ctx)
	if err != nil {
		return nil, err
	}
	ends, err := s.adm.ListEndOffsets(s.ctx, c.topic)
	if err == nil {
		err = ends.Error()
	}
	s.close()
	if err != nil {
		return nil, fmt.Errorf("listing end offsets of %q: %w", c.topic, c.cf.brokerErr(err))
	}
	offsets := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) { offsets[o.Partition] = kgo.NewOffset().At(o.Offset) })
	cl, err := c.cf.newClient(c.consumerOpts(offsets)...)
	if err != nil {
		return nil, err
	}
	defer cl.Close()

	r := newProduceRun(c, true, true)
	e2e := newLatencyHist()
	var got atomic.Int64
	var produceErr error
	var produceElapsed time.Duration
	produced := make(chan struct{})

	cctx, ccancel := context.WithCancel(ctx)
	defer ccancel()
	begin := time.Now()
	go func() {
		defer close(produced)
		produceElapsed, produceErr = r.run(cctx, c.records)
	}()

	prog := startProgress(env.stderr, "e2e", c.records, &got)
	defer prog.finish()
	lastProgress := time.Now()
	producing := true
	var consumeErr error
	for {
		target := c.records
		if !producing {
			target = r.ok.Load()
		}
		if got.Load() >= target {
			break
		}
		pctx, pcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		fetches := cl.PollFetches(pctx)
		pcancel()
		if ctx.Err() != nil {
			consumeErr = ctx.Err()
			break
		}
		now := time.Now().UnixNano()
		var n int64
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			for _, rec := range p.Records {
				if len(rec.Value) >= 8 {
					e2e.record(now - int64(binary.BigEndian.Uint64(rec.Value)))
				}
			}
			n += int64(len(p.Records))
		})
		if n > 0 {
			got.Add(n)
			lastProgress = time.Now()
		}
		if err := firstFetchErr(fetches); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			consumeErr = err
			break
		}
		select {
		case <-produced:
			producing = false
		default:
		}
		if !producing && time.Since(lastProgress) > max(c.cf.timeout, 10*time.Second) {
			consumeErr = fmt.Errorf("only %d of %d acknowledged records arrived at the consumer", got.Load(), r.ok.Load())
			break
		}
	}
	elapsed := time.Since(begin)
	prog.finish()
	ccancel()
	<-produced

	res := c.newResult(got.Load(), r.failed.Load(), elapsed)
	res.Latency = e2e.summary()
	res.ProduceLatency = r.hist.summary()
	if produceElapsed > 0 {
		res.ProduceRecordsPerSec = float64(r.ok.Load()) / produceElapsed.Seconds()
	}
	if consumeErr != nil {
		return res, consumeErr
	}
	if produceErr != nil && !errors.Is(produceErr, context.Canceled) {
		return res, produceErr
	}
	return res, nil
}

// benchResult is what a bench prints, as text or as JSON.
type benchResult struct {
	Mode                 string          `json:"mode"`
	Topic                string          `json:"topic"`
	Partitions           int             `json:"partitions"`
	Producers            int             `json:"producers,omitempty"`
	Records              int64           `json:"records"`
	Failed               int64           `json:"failed"`
	RecordSize           int             `json:"record_size"`
	Acks                 string          `json:"acks,omitempty"`
	Compression          string          `json:"compression,omitempty"`
	LingerMs             float64         `json:"linger_ms"`
	BatchBytes           int64           `json:"batch_bytes,omitempty"`
	Rate                 float64         `json:"rate,omitempty"`
	ElapsedSec           float64         `json:"elapsed_sec"`
	RecordsPerSec        float64         `json:"records_per_sec"`
	MiBPerSec            float64         `json:"mib_per_sec"`
	ProduceRecordsPerSec float64         `json:"produce_records_per_sec,omitempty"`
	Latency              *latencySummary `json:"latency_ms,omitempty"`
	ProduceLatency       *latencySummary `json:"produce_latency_ms,omitempty"`
	Machine              machineInfo     `json:"machine"`
}

type machineInfo struct {
	NumCPU     int    `json:"num_cpu"`
	GOMAXPROCS int    `json:"gomaxprocs"`
	GOOS       string `json:"goos"`
	GOARCH     string `json:"goarch"`
	GoVersion  string `json:"go_version"`
	Hostname   string `json:"hostname,omitempty"`
}

// thisMachine describes the machine a bench runs on.
func thisMachine() machineInfo {
	host, _ := os.Hostname()
	return machineInfo{
		NumCPU:     runtime.NumCPU(),
		GOMAXPROCS: runtime.GOMAXPROCS(0),
		GOOS:       runtime.GOOS,
		GOARCH:     runtime.GOARCH,
		GoVersion:  runtime.Version(),
		Hostname:   host,
	}
}

// print writes the machine line of a bench report.
func (m machineInfo) print(w io.Writer) error {
	_, err := fmt.Fprintf(w, "  machine     %d CPUs (GOMAXPROCS %d), %s/%s, %s\n", m.NumCPU, m.GOMAXPROCS, m.GOOS, m.GOARCH, m.GoVersion)
	return err
}

func (c *benchConfig) newResult(records, failed int64, elapsed time.Duration) *benchResult {
	res := &benchResult{
		Mode:       c.mode,
		Topic:      c.topic,
		Records:    records,
		Failed:     failed,
		RecordSize: c.recordSize,
		ElapsedSec: elapsed.Seconds(),
		Machine:    thisMachine(),
	}
	if c.mode != "consume" {
		res.Producers = c.producers
		res.Acks = c.acks
		res.Compression = c.compression
		res.LingerMs = float64(c.linger) / float64(time.Millisecond)
		res.BatchBytes = int64(c.batchBytes)
		res.Rate = c.rate
	}
	if s := elapsed.Seconds(); s > 0 {
		res.RecordsPerSec = float64(records) / s
		res.MiBPerSec = float64(records) * float64(c.recordSize) / (1 << 20) / s
	}
	return res
}

func (res *benchResult) print(w io.Writer, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		return enc.Encode(res)
	}
	fmt.Fprintf(w, "bench %s: topic %q (%d partition%s), %d records of %d bytes",
		res.Mode, res.Topic, res.Partitions, plural(res.Partitions), res.Records, res.RecordSize)
	if res.Failed > 0 {
		fmt.Fprintf(w, ", %d FAILED", res.Failed)
	}
	fmt.Fprintln(w)
	if res.Mode != "consume" {
		fmt.Fprintf(w, "  producers %d, acks %s, compression %s, linger %s, batch %d bytes",
			res.Producers, res.Acks, res.Compression, time.Duration(res.LingerMs*float64(time.Millisecond)), res.BatchBytes)
		if res.Rate > 0 {
			fmt.Fprintf(w, ", rate %.0f rec/s", res.Rate)
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "  elapsed     %.3fs\n", res.ElapsedSec)
	fmt.Fprintf(w, "  throughput  %.0f records/s, %.2f MiB/s\n", res.RecordsPerSec, res.MiBPerSec)
	if res.ProduceRecordsPerSec > 0 {
		fmt.Fprintf(w, "  produced    %.0f records/s\n", res.ProduceRecordsPerSec)
	}
	label := "latency"
	if res.Mode == "e2e" {
		label = "e2e latency"
	}
	printLatency(w, label, res.Latency)
	printLatency(w, "produce latency", res.ProduceLatency)
	return res.Machine.print(w)
}

func printLatency(w io.Writer, label string, l *latencySummary) {
	if l == nil {
		return
	}
	fmt.Fprintf(w, "  %s ms: avg %.3f  p50 %.3f  p95 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n",
		label, l.Avg, l.P50, l.P95, l.P99, l.P999, l.Max)
}

// latencySummary is in milliseconds.
type latencySummary struct {
	Count int64   `json:"count"`
	Avg   float64 `json:"avg"`
	P50   float64 `json:"p50"`
	P95   float64 `json:"p95"`
	P99   float64 `json:"p99"`
	P999  float64 `json:"p99_9"`
	Max   float64 `json:"max"`
}

// latencyHist is a lock-free log-linear histogram of nanosecond durations:
// values below 2^subBits are exact, larger ones fall in buckets whose width
// is 1/2^(subBits-1) of their value (under 1.6% error with subBits = 7).
type latencyHist struct {
	counts [histBuckets]atomic.Int64
	n      atomic.Int64
	sum    atomic.Int64
	max    atomic.Int64
}

const (
	histSubBits = 7
	histHalf    = 1 << (histSubBits - 1)
	histBuckets = (64-histSubBits)*histHalf + 1<<histSubBits
)

func newLatencyHist() *latencyHist { return &latencyHist{} }

func histIndex(v uint64) int {
	l := bits.Len64(v)
	if l <= histSubBits {
		return int(v)
	}
	shift := l - histSubBits
	return shift*histHalf + int(v>>shift)
}

// histValue is the midpoint of bucket i.
func histValue(i int) float64 {
	if i < 1<<histSubBits {
		return float64(i)
	}
	shift := i/histHalf - 1
	mant := i - shift*histHalf
	lo := float64(uint64(mant) << shift)
	return lo + float64(uint64(1)<<shift)/2
}

func (h *latencyHist) record(ns int64) {
	if ns < 0 {
		ns = 0
	}
	h.counts[histIndex(uint64(ns))].Add(1)
	h.n.Add(1)
	h.sum.Add(ns)
	for {
		m := h.max.Load()
		if ns <= m || h.max.CompareAndSwap(m, ns) {
			break
		}
	}
}

// quantiles returns the value (ns) at each quantile q in qs (ascending).
func (h *latencyHist) quantiles(qs ...float64) []float64 {
	n := h.n.Load()
	out := make([]float64, len(qs))
	if n == 0 {
		return out
	}
	maxv := float64(h.max.Load())
	var seen int64
	j := 0
	for i := 0; i < histBuckets && j < len(qs); i++ {
		seen += h.counts[i].Load()
		for j < len(qs) && float64(seen) >= math.Ceil(qs[j]*float64(n)) && seen > 0 {
			out[j] = min(histValue(i), maxv)
			j++
		}
	}
	for ; j < len(qs); j++ {
		out[j] = maxv
	}
	return out
}

func (h *latencyHist) summary() *latencySummary {
	if h == nil || h.n.Load() == 0 {
		return nil
	}
	const ms = float64(time.Millisecond)
	q := h.quantiles(0.50, 0.95, 0.99, 0.999)
	sort.Float64s(q)
	n := h.n.Load()
	return &latencySummary{
		Count: n,
		Avg:   float64(h.sum.Load()) / float64(n) / ms,
		P50:   q[0] / ms,
		P95:   q[1] / ms,
		P99:   q[2] / ms,
		P999:  q[3] / ms,
		Max:   float64(h.max.Load()) / ms,
	}
}
