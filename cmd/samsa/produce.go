package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// runProduce is `samsa produce TOPIC`: every line of stdin (or --file) becomes
// one record. Lines are read and produced as a stream: at most --max-buffered
// records are held in memory at a time, so inputs of any size work.
func runProduce(ctx context.Context, env *cliEnv, args []string) error {
	fs, cf := newClientFlagSet(env, "produce", "produce TOPIC [flags] < lines")
	file := fs.String("file", "", "read lines from `PATH` instead of stdin")
	keySep := fs.String("key-sep", "", "split each line into key and value at the first `SEP` (a line without SEP has no key)")
	partition := fs.Int("partition", -1, "produce every record to partition `N` (-1: the partitioner picks)")
	acks := fs.String("acks", "all", "acks to wait for: all, 1 or 0")
	compression := fs.String("compression", "none", "batch compression: none, gzip, snappy, lz4 or zstd")
	linger := fs.Duration("linger", 5*time.Millisecond, "how long a partition waits for more records before sending a batch")
	maxBuffered := fs.Int("max-buffered", 10000, "maximum records in flight (buffered or unacknowledged)")
	var headers kvList
	fs.Var(&headers, "header", "add header `key=value` to every record (repeatable)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] == "" {
		fs.Usage()
		return errors.New("produce: want exactly one topic name")
	}
	topic := pos[0]
	if *maxBuffered < 1 {
		return errors.New("produce: --max-buffered must be at least 1")
	}
	ackOpts, err := parseAcks(*acks)
	if err != nil {
		return err
	}
	codec, err := parseCompression(*compression)
	if err != nil {
		return err
	}

	in, closeIn, err := openInput(env, *file)
	if err != nil {
		return fmt.Errorf("produce: %w", err)
	}
	defer closeIn()
	if in == nil {
		return errors.New("produce: no input")
	}

	opts := append(ackOpts,
		kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(codec),
		kgo.ProducerLinger(*linger),
		kgo.MaxBufferedRecords(*maxBuffered),
		kgo.UnknownTopicRetries(2),
	)
	if *partition >= 0 {
		opts = append(opts, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	}
	cl, err := cf.newClient(opts...)
	if err != nil {
		return err
	}
	defer cl.Close()

	// Check the topic (and partition) first: a clear error beats a produce
	// that retries against a topic that is not there.
	lctx, lcancel := cf.withTimeout(ctx)
	ps, err := topicPartitions(lctx, kadm.NewClient(cl), topic)
	lcancel()
	if err != nil {
		return fmt.Errorf("produce: %w", cf.brokerErr(err))
	}
	if err := checkPartition(topic, *partition, ps); err != nil {
		return fmt.Errorf("produce: %w", err)
	}

	var hdrs []kgo.RecordHeader
	for _, k := range headers.keys {
		hdrs = append(hdrs, kgo.RecordHeader{Key: k, Value: []byte(headers.vals[k])})
	}

	var (
		sent, ok, failed atomic.Int64
		firstErrMu       sync.Mutex
		firstErr         error
	)
	promise := func(_ *kgo.Record, err error) {
		if err != nil {
			failed.Add(1)
			firstErrMu.Lock()
			if firstErr == nil {
				firstErr = err
			}
			firstErrMu.Unlock()
			return
		}
		ok.Add(1)
	}

	if isTerminal(in) {
		fmt.Fprintf(env.stderr, "producing to %q: one record per line, Ctrl-D to finish\n", topic)
	}
	sep := []byte(*keySep)
	lines, readErrc := readLines(ctx, in)
	var readErr error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case line, more := <-lines:
			if !more {
				readErr = <-readErrc
				break loop
			}
			r := &kgo.Record{Topic: topic, Value: line, Headers: hdrs}
			if len(sep) > 0 {
				if k, v, found := bytes.Cut(line, sep); found {
					r.Key, r.Value = k, v
				}
			}
			if *partition >= 0 {
				r.Partition = int32(*partition)
			}
			sent.Add(1)
			cl.Produce(ctx, r, promise) // blocks while --max-buffered records are in flight
		}
	}
	// Wait for everything sent so far, even after an interrupt, but do not
	// wait forever.
	fctx, fcancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout(cf.timeout))
	flushErr := cl.Flush(fctx)
	fcancel()

	n, good, bad := sent.Load(), ok.Load(), failed.Load()
	if pending := n - good - bad; pending > 0 {
		bad += pending
	}
	fmt.Fprintf(env.stderr, "%d record%s produced to %q", good, plural(int(good)), topic)
	if bad > 0 {
		fmt.Fprintf(env.stderr, ", %d failed", bad)
	}
	fmt.Fprintln(env.stderr)

	switch {
	case readErr != nil:
		return fmt.Errorf("produce: reading input: %w", readErr)
	case bad > 0:
		err := firstErr
		if err == nil {
			err = flushErr
		}
		if err == nil {
			err = ctx.Err()
		}
		return fmt.Errorf("produce: %d of %d records failed: %w", bad, n, cf.brokerErr(err))
	case ctx.Err() != nil:
		return fmt.Errorf("produce: interrupted after %d records: %w", n, ctx.Err())
	}
	return nil
}

// flushTimeout is how long produce waits for outstanding records at the end.
func flushTimeout(timeout time.Duration) time.Duration {
	if timeout <= 0 {
		return time.Minute
	}
	return max(timeout, 5*time.Second)
}

// trimEOL strips a trailing "\n" or "\r\n".
func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte("\n"))
	return bytes.TrimSuffix(b, []byte("\r"))
}

// readLines reads lines from r in a goroutine, so that an interrupt is seen
// even while a read from a terminal blocks. Each line comes without its line
// ending; a last line without a newline is still a line. After the channel is
// closed, errc yields the read error (nil at EOF).
func readLines(ctx context.Context, r io.Reader) (<-chan []byte, <-chan error) {
	lines := make(chan []byte, 256)
	errc := make(chan error, 1)
	go func() {
		defer close(lines)
		br := bufio.NewReaderSize(r, 256<<10)
		for {
			line, err := br.ReadBytes('\n')
			if len(line) > 0 {
				select {
				case lines <- trimEOL(line):
				case <-ctx.Done():
					errc <- ctx.Err()
					return
				}
			}
			if err != nil {
				if errors.Is(err, io.EOF) {
					err = nil
				}
				errc <- err
				return
			}
		}
	}()
	return lines, errc
}
