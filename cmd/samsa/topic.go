package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const topicUsage = `usage: samsa topic <command> [flags]

commands:
  create NAME [--partitions N] [--replication-factor N] [--config k=v ...]
  list
  describe NAME [--all-configs]
  alter NAME [--config k=v ...] [--delete-config k ...] [--partitions N]
  delete NAME [NAME ...]

run 'samsa topic <command> -h' for a command's flags
`

// runTopic is `samsa topic`: topic administration over the Kafka protocol.
func runTopic(ctx context.Context, env *cliEnv, args []string) error {
	return runSubcommand(ctx, env, "topic", topicUsage, subcommands{
		"create":   topicCreate,
		"list":     topicList,
		"ls":       topicList,
		"describe": topicDescribe,
		"desc":     topicDescribe,
		"alter":    topicAlter,
		"delete":   topicDelete,
		"rm":       topicDelete,
	}, args)
}

// adminSession holds a connected admin client and the context bounded by
// --timeout.
type adminSession struct {
	cf     *clientFlags
	adm    *kadm.Client
	ctx    context.Context
	cancel context.CancelFunc
}

func (cf *clientFlags) admin(ctx context.Context) (*adminSession, error) {
	cl, err := cf.newClient()
	if err != nil {
		return nil, err
	}
	s := &adminSession{cf: cf, adm: kadm.NewClient(cl)}
	s.ctx, s.cancel = cf.withTimeout(ctx)
	return s, nil
}

func (s *adminSession) close() {
	s.cancel()
	s.adm.Close()
}

func topicCreate(ctx context.Context, env *cliEnv, args []string) error {
	fs, cf := newClientFlagSet(env, "topic create", "topic create NAME [flags]")
	partitions := fs.Int("partitions", 1, "number of partitions")
	rf := fs.Int("replication-factor", -1, "replicas per partition (-1 = the broker's default)")
	var configs kvList
	fs.Var(&configs, "config", "topic config `key=value` (repeatable), e.g. retention.ms=3600000")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	name, err := oneArg("topic create", "topic name", pos)
	if err != nil {
		return err
	}
	if *partitions < 1 {
		return fmt.Errorf("topic create: --partitions must be at least 1, got %d", *partitions)
	}
	s, err := cf.admin(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	resp, err := s.adm.CreateTopic(s.ctx, int32(*partitions), int16(*rf), configs.configMap(), name)
	if err != nil {
		switch {
		case errors.Is(err, kerr.TopicAlreadyExists):
			return fmt.Errorf("topic %q already exists: %w", name, err)
		case resp.ErrMessage != "":
			return fmt.Errorf("creating topic %q: %s: %w", name, resp.ErrMessage, err)
		}
		return fmt.Errorf("creating topic %q: %w", name, cf.brokerErr(err))
	}
	n := resp.NumPartitions
	if n <= 0 {
		n = int32(*partitions)
	}
	fmt.Fprintf(env.stdout, "created topic %q with %d partition%s\n", name, n, plural(int(n)))
	return nil
}

func topicList(ctx context.Context, env *cliEnv, args []string) error {
	fs, cf := newClientFlagSet(env, "topic list", "topic list [flags]")
	internal := fs.Bool("internal", false, "also list internal topics")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if err := noArgs("topic list", pos); err != nil {
		return err
	}
	s, err := cf.admin(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	var tds kadm.TopicDetails
	if *internal {
		tds, err = s.adm.ListTopicsWithInternal(s.ctx)
	} else {
		tds, err = s.adm.ListTopics(s.ctx)
	}
	if err != nil {
		return fmt.Errorf("listing topics: %w", cf.brokerErr(err))
	}
	tw := newTable(env.stdout)
	fmt.Fprintln(tw, "TOPIC\tPARTITIONS\tREPLICAS")
	for _, name := range tds.Names() {
		td := tds[name]
		rf := 0
		if len(td.Partitions) > 0 {
			rf = td.Partitions.NumReplicas()
		}
		if td.Err != nil {
			fmt.Fprintf(tw, "%s\t%s\t\n", name, td.Err)
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\n", name, len(td.Partitions), rf)
	}
	return tw.Flush()
}

func topicDescribe(ctx context.Context, env *cliEnv, args []string) error {
	fs, cf := newClientFlagSet(env, "topic describe", "topic describe NAME [flags]")
	all := fs.Bool("all-configs", false, "show every config, not only those set on the topic")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	name, err := oneArg("topic describe", "topic name", pos)
	if err != nil {
		return err
	}
	s, err := cf.admin(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	tds, err := s.adm.ListTopics(s.ctx, name)
	if err != nil {
		return fmt.Errorf("describing topic %q: %w", name, cf.brokerErr(err))
	}
	td, ok := tds[name]
	if !ok || errors.Is(td.Err, kerr.UnknownTopicOrPartition) {
		return &topicNotFoundError{name}
	}
	if td.Err != nil {
		return fmt.Errorf("describing topic %q: %w", name, td.Err)
	}
	starts, err := s.adm.ListStartOffsets(s.ctx, name)
	if err != nil {
		return fmt.Errorf("listing start offsets of %q: %w", name, cf.brokerErr(err))
	}
	ends, err := s.adm.ListEndOffsets(s.ctx, name)
	if err != nil {
		return fmt.Errorf("listing end offsets of %q: %w", name, cf.brokerErr(err))
	}
	rcs, err := s.adm.DescribeTopicConfigs(s.ctx, name)
	if err != nil {
		return fmt.Errorf("describing configs of %q: %w", name, cf.brokerErr(err))
	}

	w := env.stdout
	fmt.Fprintf(w, "topic:       %s\n", name)
	if td.ID != (kadm.TopicID{}) {
		fmt.Fprintf(w, "id:          %s\n", td.ID)
	}
	fmt.Fprintf(w, "partitions:  %d\n", len(td.Partitions))
	if len(td.Partitions) > 0 {
		fmt.Fprintf(w, "replicas:    %d\n", td.Partitions.NumReplicas())
	}
	var total int64
	fmt.Fprintln(w)
	tw := newTable(w)
	fmt.Fprintln(tw, "PARTITION\tLEADER\tREPLICAS\tSTART\tEND\tRECORDS\tERROR")
	for _, pd := range td.Partitions.Sorted() {
		start, end := int64(-1), int64(-1)
		var perr error = pd.Err
		if lo, ok := starts.Lookup(name, pd.Partition); ok {
			start = lo.Offset
			if perr == nil {
				perr = lo.Err
			}
		}
		if lo, ok := ends.Lookup(name, pd.Partition); ok {
			end = lo.Offset
			if perr == nil {
				perr = lo.Err
			}
		}
		n := int64(0)
		if start >= 0 && end >= start {
			n = end - start
			total += n
		}
		errs := ""
		if perr != nil {
			errs = perr.Error()
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%d\t%d\t%d\t%s\n", pd.Partition, pd.Leader, int32List(pd.Replicas), start, end, n, errs)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nrecords:     %d\n", total)

	var cfgs []kadm.Config
	for _, rc := range rcs {
		if rc.Name != name {
			continue
		}
		if rc.Err != nil {
			return fmt.Errorf("describing configs of %q: %w", name, rc.Err)
		}
		for _, c := range rc.Configs {
			if *all || c.Source == kmsg.ConfigSourceDynamicTopicConfig {
				cfgs = append(cfgs, c)
			}
		}
	}
	sort.Slice(cfgs, func(i, j int) bool { return cfgs[i].Key < cfgs[j].Key })
	fmt.Fprintln(w)
	if len(cfgs) == 0 {
		fmt.Fprintln(w, "configs:     (none set on the topic; --all-configs shows defaults)")
		return nil
	}
	fmt.Fprintln(w, "configs:")
	tw = newTable(w)
	for _, c := range cfgs {
		fmt.Fprintf(tw, "  %s\t%s", c.Key, configValue(c))
		if *all {
			fmt.Fprintf(tw, "\t(%s)", configSource(c.Source))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func configValue(c kadm.Config) string {
	switch {
	case c.Sensitive:
		return "(sensitive)"
	case c.Value == nil:
		return "(null)"
	}
	return *c.Value
}

func configSource(s kmsg.ConfigSource) string {
	switch s {
	case kmsg.ConfigSourceDynamicTopicConfig:
		return "topic"
	case kmsg.ConfigSourceDefaultConfig:
		return "default"
	case kmsg.ConfigSourceStaticBrokerConfig:
		return "broker"
	case kmsg.ConfigSourceDynamicBrokerConfig, kmsg.ConfigSourceDynamicDefaultBrokerConfig:
		return "dynamic broker"
	}
	return strings.ToLower(s.String())
}

func int32List(xs []int32) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprint(x)
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func topicAlter(ctx context.Context, env *cliEnv, args []string) error {
	fs, cf := newClientFlagSet(env, "topic alter", "topic alter NAME [flags]")
	var set kvList
	var del stringList
	fs.Var(&set, "config", "set topic config `key=value` (repeatable)")
	fs.Var(&del, "delete-config", "remove a topic config `key`, back to the default (repeatable)")
	partitions := fs.Int("partitions", 0, "grow the topic to N partitions (partitions can only be added)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	name, err := oneArg("topic alter", "topic name", pos)
	if err != nil {
		return err
	}
	if set.len() == 0 && len(del) == 0 && *partitions == 0 {
		return errors.New("topic alter: nothing to change (use --config, --delete-config or --partitions)")
	}
	for _, k := range del {
		if _, ok := set.vals[k]; ok {
			return fmt.Errorf("topic alter: config %q is both set and deleted", k)
		}
	}
	s, err := cf.admin(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	ps, err := topicPartitions(s.ctx, s.adm, name)
	if err != nil {
		return cf.brokerErr(err)
	}

	if *partitions != 0 {
		switch {
		case *partitions < len(ps):
			return fmt.Errorf("topic %q has %d partitions; partitions cannot be removed (asked for %d)", name, len(ps), *partitions)
		case *partitions == len(ps):
			fmt.Fprintf(env.stdout, "topic %q already has %d partitions\n", name, len(ps))
		default:
			rs, err := s.adm.UpdatePartitions(s.ctx, *partitions, name)
			if err == nil {
				if r, ok := rs[name]; ok && r.Err != nil {
					err = r.Err
					if r.ErrMessage != "" {
						err = fmt.Errorf("%s: %w", r.ErrMessage, r.Err)
					}
				}
			}
			if err != nil {
				return fmt.Errorf("growing topic %q to %d partitions: %w", name, *partitions, cf.brokerErr(err))
			}
			fmt.Fprintf(env.stdout, "topic %q now has %d partitions (was %d)\n", name, *partitions, len(ps))
		}
	}

	if set.len() > 0 || len(del) > 0 {
		var alters []kadm.AlterConfig
		for _, k := range set.keys {
			v := set.vals[k]
			alters = append(alters, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: &v})
		}
		for _, k := range del {
			alters = append(alters, kadm.AlterConfig{Op: kadm.DeleteConfig, Name: k})
		}
		rs, err := s.adm.AlterTopicConfigs(s.ctx, alters, name)
		if err == nil {
			for _, r := range rs {
				if r.Err != nil {
					err = r.Err
					if r.ErrMessage != "" {
						err = fmt.Errorf("%s: %w", r.ErrMessage, r.Err)
					}
					break
				}
			}
		}
		if err != nil {
			return fmt.Errorf("altering configs of topic %q: %w", name, cf.brokerErr(err))
		}
		for _, k := range set.keys {
			fmt.Fprintf(env.stdout, "set %s=%s on topic %q\n", k, set.vals[k], name)
		}
		for _, k := range del {
			fmt.Fprintf(env.stdout, "deleted %s from topic %q\n", k, name)
		}
	}
	return nil
}

func topicDelete(ctx context.Context, env *cliEnv, args []string) error {
	fs, cf := newClientFlagSet(env, "topic delete", "topic delete NAME [NAME ...] [flags]")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return errors.New("topic delete: missing topic name")
	}
	s, err := cf.admin(ctx)
	if err != nil {
		return err
	}
	defer s.close()
	rs, err := s.adm.DeleteTopics(s.ctx, pos...)
	if err != nil {
		return fmt.Errorf("deleting topics: %w", cf.brokerErr(err))
	}
	var errs []error
	for _, name := range pos {
		r, ok := rs[name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("deleting topic %q: no answer from the broker", name))
		case errors.Is(r.Err, kerr.UnknownTopicOrPartition):
			errs = append(errs, &topicNotFoundError{name})
		case r.Err != nil:
			e := fmt.Errorf("deleting topic %q: %w", name, r.Err)
			if r.ErrMessage != "" {
				e = fmt.Errorf("deleting topic %q: %s: %w", name, r.ErrMessage, r.Err)
			}
			errs = append(errs, e)
		default:
			fmt.Fprintf(env.stdout, "deleted topic %q\n", name)
		}
	}
	return errors.Join(errs...)
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
