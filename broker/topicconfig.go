package broker

import (
	"fmt"
	"sort"
	"strconv"
	"time"
)

// FlushPolicy says when appended records are fsynced.
type FlushPolicy string

// Flush policies.
const (
	// FlushAlways fsyncs before a produce is acknowledged, with group commit
	// across producers and partitions. Consumers only see fsynced records.
	FlushAlways FlushPolicy = "always"
	// FlushInterval fsyncs every FlushMs.
	FlushInterval FlushPolicy = "interval"
	// FlushOS leaves flushing to the operating system.
	FlushOS FlushPolicy = "os"
)

// TopicConfig is the per-topic configuration. Broker-wide defaults come from
// Options.Defaults; a topic may override any key.
type TopicConfig struct {
	RetentionMs     int64       // retention.ms: delete segments older than this; -1 keeps forever
	RetentionBytes  int64       // retention.bytes: per partition; -1 is unlimited
	SegmentBytes    int64       // segment.bytes: roll the active segment at this size
	SegmentMs       int64       // segment.ms: roll the active segment at this age
	Flush           FlushPolicy // flush.policy: always, interval or os
	FlushMs         int64       // flush.ms: the interval for flush.policy=interval
	MaxMessageBytes int32       // max.message.bytes: largest record batch accepted
	CleanupPolicy   string      // cleanup.policy: only "delete" is supported
}

// DefaultTopicConfig is the configuration a topic has when nothing overrides it.
func DefaultTopicConfig() TopicConfig {
	return TopicConfig{
		RetentionMs:     7 * 24 * time.Hour.Milliseconds(),
		RetentionBytes:  -1,
		SegmentBytes:    1 << 30,
		SegmentMs:       7 * 24 * time.Hour.Milliseconds(),
		Flush:           FlushAlways,
		FlushMs:         1000,
		MaxMessageBytes: 1048588,
		CleanupPolicy:   "delete",
	}
}

// configKey describes one topic config key: how to read and write it.
type configKey struct {
	name string
	doc  string
	get  func(*TopicConfig) string
	set  func(*TopicConfig, string) error
}

func int64Key(name, doc string, min int64, field func(*TopicConfig) *int64) configKey {
	return configKey{
		name: name, doc: doc,
		get: func(c *TopicConfig) string { return strconv.FormatInt(*field(c), 10) },
		set: func(c *TopicConfig, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < min {
				return fmt.Errorf("%w: %s=%q: want an integer >= %d", ErrInvalidConfig, name, v, min)
			}
			*field(c) = n
			return nil
		},
	}
}

// topicConfigKeys lists every supported topic config key, sorted by name.
func topicConfigKeys() []configKey {
	keys := []configKey{
		int64Key("retention.ms", "delete segments whose newest record is older than this; -1 keeps forever", -1,
			func(c *TopicConfig) *int64 { return &c.RetentionMs }),
		int64Key("retention.bytes", "per-partition size limit; -1 is unlimited", -1,
			func(c *TopicConfig) *int64 { return &c.RetentionBytes }),
		int64Key("segment.bytes", "roll the active segment at this size", 1024,
			func(c *TopicConfig) *int64 { return &c.SegmentBytes }),
		int64Key("segment.ms", "roll the active segment at this age", 1,
			func(c *TopicConfig) *int64 { return &c.SegmentMs }),
		int64Key("flush.ms", "fsync interval when flush.policy=interval", 1,
			func(c *TopicConfig) *int64 { return &c.FlushMs }),
		{
			name: "flush.policy", doc: "always (fsync before ack), interval or os",
			get: func(c *TopicConfig) string { return string(c.Flush) },
			set: func(c *TopicConfig, v string) error {
				switch p := FlushPolicy(v); p {
				case FlushAlways, FlushInterval, FlushOS:
					c.Flush = p
					return nil
				}
				return fmt.Errorf("%w: flush.policy=%q: want always, interval or os", ErrInvalidConfig, v)
			},
		},
		{
			name: "max.message.bytes", doc: "largest record batch accepted",
			get: func(c *TopicConfig) string { return strconv.FormatInt(int64(c.MaxMessageBytes), 10) },
			set: func(c *TopicConfig, v string) error {
				n, err := strconv.ParseInt(v, 10, 32)
				if err != nil || n < 64 {
					return fmt.Errorf("%w: max.message.bytes=%q: want an integer between 64 and 2147483647", ErrInvalidConfig, v)
				}
				c.MaxMessageBytes = int32(n)
				return nil
			},
		},
		{
			name: "cleanup.policy", doc: "delete (compaction is not supported)",
			get: func(c *TopicConfig) string { return c.CleanupPolicy },
			set: func(c *TopicConfig, v string) error {
				if v != "delete" {
					return fmt.Errorf("%w: cleanup.policy=%q: only delete is supported", ErrInvalidConfig, v)
				}
				c.CleanupPolicy = v
				return nil
			},
		},
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].name < keys[j].name })
	return keys
}

func lookupConfigKey(name string) (configKey, bool) {
	for _, k := range topicConfigKeys() {
		if k.name == name {
			return k, true
		}
	}
	return configKey{}, false
}

// applyOverrides returns base with overrides applied, or an error naming the
// first bad key or value.
func applyOverrides(base TopicConfig, overrides map[string]string) (TopicConfig, error) {
	names := make([]string, 0, len(overrides))
	for n := range overrides {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		k, ok := lookupConfigKey(n)
		if !ok {
			return base, fmt.Errorf("%w: unknown topic config key %q", ErrInvalidConfig, n)
		}
		if err := k.set(&base, overrides[n]); err != nil {
			return base, err
		}
	}
	return base, nil
}

// ConfigEntry is one topic config key with its effective value.
type ConfigEntry struct {
	Name      string
	Value     string
	IsDefault bool // the value comes from the broker defaults, not a topic override
	Doc       string
}

// ConfigOpType is what an alter operation does to a key.
type ConfigOpType int8

// Alter operations, with Kafka's IncrementalAlterConfigs numbering.
const (
	ConfigSet    ConfigOpType = 0
	ConfigDelete ConfigOpType = 1
)

// ConfigOp is one change in AlterTopicConfig.
type ConfigOp struct {
	Name  string
	Op    ConfigOpType
	Value string
}
