package config

import (
	"reflect"
	"strings"
	"testing"
)

// The shipped broker.toml must say exactly the defaults.
func TestShippedFileIsTheDefaults(t *testing.T) {
	cfg, err := Load("../broker.toml", true)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, Default()) {
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
			if !reflect.DeepEqual(c, Default()) {
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
		{name: "offsets retention zero", doc: "[groups]\noffsets_retention_minutes = 0\n", wantErr: "groups.offsets_retention_minutes"},
		{name: "offsets kept forever", doc: "[groups]\noffsets_retention_minutes = -1\n", check: func(t *testing.T, c Config) {
			if c.Groups.OffsetsRetentionMinutes != -1 {
				t.Fatalf("got %+v", c.Groups)
			}
		}},
		{name: "syntax error", doc: "[log\n", wantErr: "line 2"},
		{name: "filters off", doc: "[filters]\nenabled = false\n", check: func(t *testing.T, c Config) {
			if c.Filters.Enabled || c.Filters.MaxModuleBytes != 16<<20 {
				t.Fatalf("got %+v", c.Filters)
			}
		}},
		{name: "console on by default", doc: "[http]\naddr = \"127.0.0.1:8081\"\n", check: func(t *testing.T, c Config) {
			if !c.HTTP.Console || c.HTTP.ConsoleDir != "" {
				t.Fatalf("got %+v", c.HTTP)
			}
		}},
		{name: "console off", doc: "[http]\nconsole = false\n", check: func(t *testing.T, c Config) {
			if c.HTTP.Console || c.HTTP.Addr != "127.0.0.1:8080" {
				t.Fatalf("got %+v", c.HTTP)
			}
		}},
		{name: "console dir", doc: "[http]\nconsole_dir = \"examples/browser-dashboard\"\n", check: func(t *testing.T, c Config) {
			if !c.HTTP.Console || c.HTTP.ConsoleDir != "examples/browser-dashboard" {
				t.Fatalf("got %+v", c.HTTP)
			}
		}},
		{name: "console bad type", doc: "[http]\nconsole = \"yes\"\n", wantErr: "console"},
		{name: "console unknown key", doc: "[http]\nconsole_path = \"x\"\n", wantErr: "unknown key http.console_path"},
		{name: "filters zero pages", doc: "[filters]\ndefault_memory_pages = 0\n", wantErr: "filters.default_memory_pages"},
		{name: "filters zero timeout", doc: "[filters]\ndefault_timeout_ms = 0\n", wantErr: "filters.default_timeout_ms"},
		{name: "filters tiny modules", doc: "[filters]\nmax_module_bytes = 1\n", wantErr: "filters.max_module_bytes"},
		{name: "auth users", doc: "[auth]\nenabled = true\nissuers = [\"" + testOperator + "\"]\ncookie = \"samsa_token\"\n" +
			"[[auth.users]]\nname = \"dash\"\nnkey = \"" + testUser + "\"\nproduce = [\"sensors.>\"]\nconsume = [\"sensors.*\", \"alerts\"]\ngroups = [\"dash-1\"]\n" +
			"[[auth.users]]\nname = \"ops\"\npassword_hash = \"pbkdf2-sha256$600000$c2FsdA$aGFzaA\"\nadmin = true\n", check: func(t *testing.T, c Config) {
			a := c.Auth
			if !a.Enabled || len(a.Issuers) != 1 || a.Cookie != "samsa_token" || a.FailedAuthPerMinute != 20 || len(a.Users) != 2 {
				t.Fatalf("got %+v", a)
			}
			u := a.Users[0]
			if u.Name != "dash" || u.NKey != testUser || !reflect.DeepEqual(u.Consume, []string{"sensors.*", "alerts"}) || u.Admin || !a.Users[1].Admin {
				t.Fatalf("got %+v", a.Users)
			}
		}},
		{name: "auth bad issuer", doc: "[auth]\nissuers = [\"" + testUser + "\"]\n", wantErr: "auth.issuers[0]"},
		{name: "auth bad user nkey", doc: "[[auth.users]]\nname = \"x\"\nnkey = \"" + testOperator + "\"\n", wantErr: "auth.users[0].nkey"},
		{name: "auth permissions of a SCRAM user", doc: "[[auth.users]]\nname = \"app\"\nproduce = [\"orders\"]\n", check: func(t *testing.T, c Config) {
			if len(c.Auth.Users) != 1 || c.Auth.Users[0].Name != "app" {
				t.Fatalf("got %+v", c.Auth.Users)
			}
		}},
		{name: "auth user without name or key", doc: "[[auth.users]]\nadmin = true\n", wantErr: "auth.users[0].name"},
		{name: "auth duplicate user", doc: "[[auth.users]]\nname = \"x\"\nnkey = \"" + testUser + "\"\n[[auth.users]]\nname = \"x\"\nnkey = \"" + testUser + "\"\n", wantErr: "auth.users[1].name"},
		{name: "auth bad pattern", doc: "[[auth.users]]\nname = \"x\"\nnkey = \"" + testUser + "\"\nproduce = [\"a.>.b\"]\n", wantErr: "auth.users[0].produce[0]"},
		{name: "auth unknown user key", doc: "[[auth.users]]\nname = \"x\"\nnkey = \"" + testUser + "\"\npublish = [\"a\"]\n", wantErr: "auth.users.publish"},
		{name: "auth rate zero", doc: "[auth]\nfailed_auth_per_minute = 0\n", wantErr: "auth.failed_auth_per_minute"},
		{name: "auth cookie with any origin", doc: "[auth]\ncookie = \"t\"\n[websocket]\nallowed_origins = [\"*\"]\n", wantErr: "auth.cookie"},
		{name: "auth bad cookie", doc: "[auth]\ncookie = \"a b\"\n", wantErr: "auth.cookie"},
		{name: "tls", doc: "[tls]\ncert_file = \"c.pem\"\nkey_file = \"k.pem\"\nclient_ca_file = \"ca.pem\"\n", check: func(t *testing.T, c Config) {
			if !c.TLS.Enabled() || c.TLS.KeyFile != "k.pem" || c.TLS.ClientCAFile != "ca.pem" {
				t.Fatalf("got %+v", c.TLS)
			}
		}},
		{name: "tls cert without key", doc: "[tls]\ncert_file = \"c.pem\"\n", wantErr: "tls.key_file"},
		{name: "tls ca without cert", doc: "[tls]\nclient_ca_file = \"ca.pem\"\n", wantErr: "tls.client_ca_file"},
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
	if err != nil || !reflect.DeepEqual(c, Default()) {
		t.Fatalf("implicit missing config file: got %+v, %v", c, err)
	}
}

// Well-formed public nkeys (the config checks their shape; the auth
// package checks their checksums).
const (
	testOperator = "OAFCLUZQZ3QZHSHGXZ5CNGJOLZQVNE2KUKNFOXHVE4IIZ4PLZGIQ2YJH"
	testUser     = "UCK5N7N66OBOINFXAYC2ACJQYFSOD4VYNU6APEJTAVFZB2SVHLKGEW7L"
)
