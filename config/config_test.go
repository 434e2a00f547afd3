package config

import (
	"strings"
	"testing"
)

// The shipped broker.toml must say exactly the defaults.
func TestShippedFileIsTheDefaults(t *testing.T) {
	cfg, err := Load("../broker.toml", true)
	if err != nil {
		t.Fatal(err)
	}
	if cfg != Default() {
		t.Fatalf("broker.toml differs from Default():\n file    %+v\n default %+v", cfg, Default())
	}
}

func TestParse(t *testing.T) {
	tests := []struct {
		name    string
		doc     string
		wantErr string
		check   func(t *testing.T, c Config)
	}{
		{name: "empty is defaults", doc: "", check: func(t *testing.T, c Config) {
			if c != Default() {
				t.Fatalf("got %+v", c)
			}
		}},
		{name: "override", doc: "data_dir = \"/var/lib/samsa\"\n[log]\nflush = \"interval\"\nflush_ms = 50\n", check: func(t *testing.T, c Config) {
			if c.DataDir != "/var/lib/samsa" || c.Log.Flush != "interval" || c.Log.FlushMs != 50 {
				t.Fatalf("got %+v", c)
			}
		}},
		{name: "unknown top-level key", doc: "dat_dir = \"x\"\n", wantErr: "unknown key dat_dir"},
		{name: "unknown nested key", doc: "[log]\nretention_hours = 3\n", wantErr: "unknown key log.retention_hours"},
		{name: "bad flush", doc: "[log]\nflush = \"sometimes\"\n", wantErr: "log.flush"},
		{name: "bad type", doc: "[log]\nsegment_bytes = \"big\"\n", wantErr: "segment_bytes"},
		{name: "bad addr", doc: "[kafka]\naddr = \"localhost\"\n", wantErr: "kafka.addr"},
		{name: "zero partitions", doc: "[topics]\ndefault_partitions = 0\n", wantErr: "topics.default_partitions"},
		{name: "retention zero", doc: "[log]\nretention_ms = 0\n", wantErr: "log.retention_ms"},
		{name: "syntax error", doc: "[log\n", wantErr: "line 2"},
		{name: "filters off", doc: "[filters]\nenabled = false\n", check: func(t *testing.T, c Config) {
			if c.Filters.Enabled || c.Filters.MaxModuleBytes != 16<<20 {
				t.Fatalf("got %+v", c.Filters)
			}
		}},
		{name: "filters zero pages", doc: "[filters]\ndefault_memory_pages = 0\n", wantErr: "filters.default_memory_pages"},
		{name: "filters zero timeout", doc: "[filters]\ndefault_timeout_ms = 0\n", wantErr: "filters.default_timeout_ms"},
		{name: "filters tiny modules", doc: "[filters]\nmax_module_bytes = 1\n", wantErr: "filters.max_module_bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.doc), "test.toml")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestLoadMissing(t *testing.T) {
	if _, err := Load(t.TempDir()+"/nope.toml", true); err == nil {
		t.Fatal("explicit missing config file: want an error")
	}
	c, err := Load(t.TempDir()+"/nope.toml", false)
	if err != nil || c != Default() {
		t.Fatalf("implicit missing config file: got %+v, %v", c, err)
	}
}
