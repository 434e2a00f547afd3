package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// runConsume is `samsa consume TOPIC`: it reads partitions directly (no
// consumer group) from a start position and prints each record through a
// format template.
func runConsume(ctx context.Context, env *cliEnv, args []string) error {
	fs, cf := newClientFlagSet(env, "consume", "consume TOPIC [flags]")
	from := fs.String("from", "end", "where to start: beginning, end, an `OFFSET` (negative: that many before the end), an RFC3339 time, or a negative duration such as -10m (that long ago)")
	var count int64
	fs.Int64Var(&count, "n", 0, "stop after `N` records (0 = no limit)")
	fs.Int64Var(&count, "count", 0, "same as -n")
	var format string
	const formatHelp = "output template: %k key, %v value, %o offset, %t timestamp (RFC3339Nano, UTC), %T timestamp (unix ms), %p partition, %h headers, %K key size, %S value size, %% a percent sign; \\n, \\t, \\r, \\\\ escapes"
	fs.StringVar(&format, "format", `%v\n`, formatHelp)
	fs.StringVar(&format, "f", `%v\n`, "same as --format")
	var exitAtEnd bool
	fs.BoolVar(&exitAtEnd, "exit", false, "exit once the end of every partition (as of the start) is reached")
	fs.BoolVar(&exitAtEnd, "e", false, "same as --exit")
	partition := fs.Int("partition", -1, "consume only partition `N` (-1: all partitions)")
	quiet := fs.Bool("quiet", false, "do not print the summary to stderr")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || pos[0] == "" {
		fs.Usage()
		return errors.New("consume: want exactly one topic name")
	}
	topic := pos[0]
	if count < 0 {
		return fmt.Errorf("consume: -n must not be negative, got %d", count)
	}
	tmpl, err := parseFormat(format)
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	start, err := parseFrom(*from, time.Now())
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}

	// Resolve where every partition starts, and where it ends now, with an
	// admin client; then consume exactly from there.
	s, err := cf.admin(ctx)
	if err != nil {
		return err
	}
	offsets, ends, err := resolveStart(s.ctx, s.adm, topic, *partition, start)
	s.close()
	if err != nil {
		return fmt.Errorf("consume: %w", cf.brokerErr(err))
	}

	out := bufio.NewWriterSize(env.stdout, 64<<10)
	var consumed int64
	summary := func() {
		if !*quiet {
			fmt.Fprintf(env.stderr, "%d record%s consumed from %q\n", consumed, plural(int(consumed)), topic)
		}
	}

	// With --exit, a partition is finished once its next offset reaches the
	// end it had when we started.
	remaining := map[int32]bool{}
	kos := map[int32]kgo.Offset{}
	for p, o := range offsets {
		kos[p] = kgo.NewOffset().At(o)
		if o < ends[p] {
			remaining[p] = true
		}
	}
	if exitAtEnd && len(remaining) == 0 {
		summary()
		return nil
	}

	cl, err := cf.newClient(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: kos}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	if err != nil {
		return err
	}
	defer cl.Close()

	buf := make([]byte, 0, 4096)
	for {
		fetches := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			break
		}
		if fetches.IsClientClosed() {
			break
		}
		var ferr error
		fetches.EachError(func(t string, p int32, err error) {
			if ferr == nil && !errors.Is(err, context.Canceled) {
				ferr = fmt.Errorf("consuming %s[%d]: %w", t, p, err)
			}
		})
		if ferr != nil {
			out.Flush()
			return fmt.Errorf("consume: %w", ferr)
		}
		done := false
		fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
			if done {
				return
			}
			for _, r := range fp.Records {
				buf = tmpl.append(buf[:0], r)
				if _, err := out.Write(buf); err != nil {
					ferr = err
					done = true
					return
				}
				consumed++
				if count > 0 && consumed >= count {
					done = true
					return
				}
			}
			if n := len(fp.Records); n > 0 && fp.Records[n-1].Offset+1 >= ends[fp.Partition] {
				delete(remaining, fp.Partition)
			}
		})
		if ferr != nil {
			return fmt.Errorf("consume: writing output: %w", ferr)
		}
		if err := out.Flush(); err != nil {
			return fmt.Errorf("consume: writing output: %w", err)
		}
		if done || (exitAtEnd && len(remaining) == 0) {
			break
		}
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("consume: writing output: %w", err)
	}
	summary()
	return nil
}

// startPos is a parsed --from.
type startPos struct {
	kind   int // one of the from* constants
	offset int64
	millis int64
}

const (
	fromEnd = iota
	fromBeginning
	fromOffset     // offset >= 0: that offset; < 0: that many before the end
	fromTimeMillis // first record at or after millis
)

// parseFrom parses --from: beginning, end, an offset, an RFC3339 time or a
// negative duration relative to now.
func parseFrom(s string, now time.Time) (startPos, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "end", "latest", "newest", "":
		return startPos{kind: fromEnd}, nil
	case "beginning", "start", "earliest", "oldest":
		return startPos{kind: fromBeginning}, nil
	}
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return startPos{kind: fromOffset, offset: n}, nil
	}
	if strings.HasPrefix(s, "-") {
		if d, err := time.ParseDuration(s[1:]); err == nil {
			return startPos{kind: fromTimeMillis, millis: now.Add(-d).UnixMilli()}, nil
		}
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return startPos{kind: fromTimeMillis, millis: t.UnixMilli()}, nil
		}
	}
	return startPos{}, fmt.Errorf("invalid --from %q (want beginning, end, an offset, an RFC3339 time or a duration like -10m)", s)
}

// resolveStart returns, per partition to consume, the offset to start at and
// the partition's current end offset.
func resolveStart(ctx context.Context, adm *kadm.Client, topic string, partition int, sp startPos) (starts, ends map[int32]int64, err error) {
	ps, err := topicPartitions(ctx, adm, topic)
	if err != nil {
		return nil, nil, err
	}
	if err := checkPartition(topic, partition, ps); err != nil {
		return nil, nil, err
	}
	lso, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = lso.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("listing start offsets of %q: %w", topic, err)
	}
	leo, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = leo.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("listing end offsets of %q: %w", topic, err)
	}
	var byTime kadm.ListedOffsets
	if sp.kind == fromTimeMillis {
		byTime, err = adm.ListOffsetsAfterMilli(ctx, sp.millis, topic)
		if err == nil {
			err = byTime.Error()
		}
		if err != nil {
			return nil, nil, fmt.Errorf("listing offsets of %q by time: %w", topic, err)
		}
	}
	starts, ends = map[int32]int64{}, map[int32]int64{}
	for _, p := range ps {
		if partition >= 0 && int(p) != partition {
			continue
		}
		lo, _ := lso.Lookup(topic, p)
		hi, _ := leo.Lookup(topic, p)
		first, end := max(lo.Offset, 0), max(hi.Offset, 0)
		var at int64
		switch sp.kind {
		case fromBeginning:
			at = first
		case fromEnd:
			at = end
		case fromOffset:
			at = sp.offset
			if at < 0 {
				at = end + at
			}
		case fromTimeMillis:
			at = end
			if o, ok := byTime.Lookup(topic, p); ok && o.Offset >= 0 {
				at = o.Offset
			}
		}
		starts[p] = min(max(at, first), end)
		ends[p] = end
	}
	return starts, ends, nil
}

// recordFormat is a compiled --format template.
type recordFormat []formatPart

type formatPart struct {
	lit  []byte
	verb byte // 0 for a literal
}

// parseFormat compiles a template with %-verbs and backslash escapes.
func parseFormat(s string) (recordFormat, error) {
	var f recordFormat
	var lit []byte
	flush := func() {
		if len(lit) > 0 {
			f = append(f, formatPart{lit: lit})
			lit = nil
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			if i+1 == len(s) {
				return nil, errors.New("format ends with a lone backslash")
			}
			i++
			switch s[i] {
			case 'n':
				lit = append(lit, '\n')
			case 't':
				lit = append(lit, '\t')
			case 'r':
				lit = append(lit, '\r')
			case '0':
				lit = append(lit, 0)
			case '\\':
				lit = append(lit, '\\')
			default:
				return nil, fmt.Errorf("unknown escape \\%c in format", s[i])
			}
		case '%':
			if i+1 == len(s) {
				return nil, errors.New("format ends with a lone %")
			}
			i++
			v := s[i]
			switch v {
			case '%':
				lit = append(lit, '%')
			case 'k', 'v', 'o', 't', 'T', 'p', 'h', 'K', 'S':
				flush()
				f = append(f, formatPart{verb: v})
			default:
				return nil, fmt.Errorf("unknown verb %%%c in format (want %%k %%v %%o %%t %%T %%p %%h %%K %%S or %%%%)", v)
			}
		default:
			lit = append(lit, c)
		}
	}
	flush()
	return f, nil
}

// append renders r through the template onto b.
func (f recordFormat) append(b []byte, r *kgo.Record) []byte {
	for _, p := range f {
		switch p.verb {
		case 0:
			b = append(b, p.lit...)
		case 'k':
			b = append(b, r.Key...)
		case 'v':
			b = append(b, r.Value...)
		case 'o':
			b = strconv.AppendInt(b, r.Offset, 10)
		case 't':
			b = r.Timestamp.UTC().AppendFormat(b, time.RFC3339Nano)
		case 'T':
			b = strconv.AppendInt(b, r.Timestamp.UnixMilli(), 10)
		case 'p':
			b = strconv.AppendInt(b, int64(r.Partition), 10)
		case 'K':
			b = strconv.AppendInt(b, int64(len(r.Key)), 10)
		case 'S':
			b = strconv.AppendInt(b, int64(len(r.Value)), 10)
		case 'h':
			for i, h := range r.Headers {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, h.Key...)
				b = append(b, '=')
				b = append(b, h.Value...)
			}
		}
	}
	return b
}
