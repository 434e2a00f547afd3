// Package config reads samsa's broker.toml. Every key has a default; an
// unknown key or a bad value is an error that names the key.
package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// Config is the whole broker configuration.
type Config struct {
	DataDir   string    `toml:"data_dir"`
	NodeID    int32     `toml:"node_id"`
	ClusterID string    `toml:"cluster_id"`
	LogLevel  string    `toml:"log_level"`
	LogFormat string    `toml:"log_format"`
	Kafka     Kafka     `toml:"kafka"`
	HTTP      HTTP      `toml:"http"`
	Topics    Topics    `toml:"topics"`
	Log       Log       `toml:"log"`
	Groups    Groups    `toml:"groups"`
	Filters   Filters   `toml:"filters"`
	WebSocket WebSocket `toml:"websocket"`
	Auth      Auth      `toml:"auth"`
	TLS       TLS       `toml:"tls"`
}

// Auth configures authentication and authorization ([auth]): nkey
// identities, JWTs signed by trusted issuers, static users and SCRAM
// credentials. Off, every client may do everything, which serve allows
// only on loopback listeners (or with --insecure).
type Auth struct {
	Enabled bool `toml:"enabled"`
	// Issuers are the trusted issuer public nkeys ("O..." operator or
	// "A..." account keys) whose user JWTs the broker accepts.
	Issuers []string `toml:"issuers"`
	// RevocationFile lists revoked user public keys, one per line ('#'
	// comments); it is reloaded when it changes. Empty: none.
	RevocationFile string `toml:"revocation_file"`
	// ScramFile holds SCRAM credentials. Empty: <data_dir>/auth/scram.json.
	ScramFile string `toml:"scram_file"`
	// FailedAuthPerMinute bounds failed authentications per client IP;
	// beyond it attempts fail fast.
	FailedAuthPerMinute int `toml:"failed_auth_per_minute"`
	// Cookie names a cookie in which browsers may carry a bearer JWT to
	// the WebSocket endpoint. Empty: cookies are not read.
	Cookie string `toml:"cookie"`
	// Users are static users ([[auth.users]]).
	Users []User `toml:"users"`
}

// User is a static user: an nkey identity, a password, or both, with
// its permissions; a name alone gives its permissions to the SCRAM user
// of that name (samsa user add). Topic and group patterns use NATS
// subject syntax ('*' one token, '>' the rest).
type User struct {
	Name         string   `toml:"name"`
	NKey         string   `toml:"nkey"`
	PasswordHash string   `toml:"password_hash"`
	Produce      []string `toml:"produce"`
	Consume      []string `toml:"consume"`
	Groups       []string `toml:"groups"`
	Admin        bool     `toml:"admin"`
	Filters      bool     `toml:"filters"`
}

// TLS configures TLS on the Kafka and HTTP listeners ([tls]). Without a
// certificate both listen in plain text.
type TLS struct {
	CertFile string `toml:"cert_file"`
	KeyFile  string `toml:"key_file"`
	// ClientCAFile, when set, makes both listeners require client
	// certificates signed by these CAs (mutual TLS).
	ClientCAFile string `toml:"client_ca_file"`
}

// Enabled reports whether the listeners serve TLS.
func (t TLS) Enabled() bool { return t.CertFile != "" }

// Filters configures the Wasm filter host.
type Filters struct {
	// Enabled turns filters on; off, the admin API answers 503 and no
	// binding runs.
	Enabled bool `toml:"enabled"`
	// MaxModuleBytes is the largest module accepted at upload.
	MaxModuleBytes int64 `toml:"max_module_bytes"`
	// DefaultMemoryPages is a binding's memory limit (64 KiB pages) when
	// its spec sets none.
	DefaultMemoryPages uint32 `toml:"default_memory_pages"`
	// DefaultTimeoutMs is a binding's time limit per batch when its spec
	// sets none.
	DefaultTimeoutMs int64 `toml:"default_timeout_ms"`
}

// WebSocket configures the WebSocket transport (/ws on the HTTP listener).
type WebSocket struct {
	// AllowedOrigins: empty allows same-origin pages and clients that send
	// no Origin; "*" allows all; otherwise the listed origins too.
	AllowedOrigins Origins `toml:"allowed_origins"`
	// TrustProxy takes the client IP from X-Forwarded-For.
	TrustProxy       bool `toml:"trust_proxy"`
	MaxFrameBytes    int  `toml:"max_frame_bytes"`
	MaxSubscriptions int  `toml:"max_subscriptions"`
	MaxPendingBytes  int  `toml:"max_pending_bytes"`
	MaxConnections   int  `toml:"max_connections"`
}

// Origins is a list of origins, kept as one string so that Config stays
// comparable.
type Origins struct{ joined string }

// NewOrigins returns the list of origins.
func NewOrigins(list ...string) Origins { return Origins{joined: strings.Join(list, "\n")} }

// List returns the origins.
func (o Origins) List() []string {
	if o.joined == "" {
		return nil
	}
	return strings.Split(o.joined, "\n")
}

// UnmarshalTOML reads an array of strings.
func (o *Origins) UnmarshalTOML(v any) error {
	arr, ok := v.([]any)
	if !ok {
		return fmt.Errorf("want an array of strings, got %T", v)
	}
	list := make([]string, 0, len(arr))
	for _, e := range arr {
		s, ok := e.(string)
		if !ok || s == "" || strings.ContainsAny(s, "\n\r") {
			return fmt.Errorf("want an array of non-empty strings, got %v", e)
		}
		list = append(list, s)
	}
	*o = NewOrigins(list...)
	return nil
}

// Groups configures the consumer group coordinator.
type Groups struct {
	InitialRebalanceDelayMs int64 `toml:"initial_rebalance_delay_ms"`
	MinSessionTimeoutMs     int64 `toml:"min_session_timeout_ms"`
	MaxSessionTimeoutMs     int64 `toml:"max_session_timeout_ms"`
	// OffsetsRetentionMinutes is Kafka's offsets.retention.minutes: the
	// committed offsets of a group without members expire this long after
	// the later of their commit and the group becoming empty; -1 never.
	OffsetsRetentionMinutes int64 `toml:"offsets_retention_minutes"`
}

// Kafka configures the Kafka protocol listener.
type Kafka struct {
	Addr           string `toml:"addr"`
	AdvertisedAddr string `toml:"advertised_addr"`
	MaxFrameBytes  int32  `toml:"max_frame_bytes"`
}

// HTTP configures the HTTP listener: /healthz, the admin API (/api/v1),
// the WebSocket transport (/ws), profiles (/debug/pprof) and the browser
// console at /.
type HTTP struct {
	Addr string `toml:"addr"`
	// Console serves the built-in browser dashboard (or ConsoleDir) at /
	// for GET and HEAD of every path the other endpoints do not take.
	// Its files are public, without authentication: the page then
	// authenticates over /ws itself. Off, / answers 404.
	Console bool `toml:"console"`
	// ConsoleDir, when set (and Console is on), is a directory served at /
	// instead of the built-in dashboard; /samsa.js falls back to the
	// embedded JS SDK bundle when the directory has none. A relative path
	// is taken from the working directory, as data_dir is. serve refuses
	// to start when it is not a directory.
	ConsoleDir string `toml:"console_dir"`
}

// Topics configures topic creation.
type Topics struct {
	AutoCreate        bool  `toml:"auto_create"`
	DefaultPartitions int32 `toml:"default_partitions"`
	MaxMessageBytes   int32 `toml:"max_message_bytes"`
}

// Log configures the commit log: the defaults of every topic and the
// broker-wide disk guard.
type Log struct {
	SegmentBytes       int64  `toml:"segment_bytes"`
	SegmentMs          int64  `toml:"segment_ms"`
	RetentionMs        int64  `toml:"retention_ms"`
	RetentionBytes     int64  `toml:"retention_bytes"`
	RetentionCheckMs   int64  `toml:"retention_check_ms"`
	MaxDiskBytes       int64  `toml:"max_disk_bytes"`
	Flush              string `toml:"flush"`
	FlushMs            int64  `toml:"flush_ms"`
	IndexIntervalBytes int    `toml:"index_interval_bytes"`
}

// Default is the configuration with nothing set; it matches broker.toml.
func Default() Config {
	return Config{
		DataDir:   "./data",
		NodeID:    1,
		LogLevel:  "info",
		LogFormat: "text",
		Kafka:     Kafka{Addr: "127.0.0.1:9092", MaxFrameBytes: 100 << 20},
		HTTP:      HTTP{Addr: "127.0.0.1:8080", Console: true},
		Topics:    Topics{AutoCreate: true, DefaultPartitions: 1, MaxMessageBytes: 1048588},
		Log: Log{
			SegmentBytes:       1 << 30,
			SegmentMs:          604800000,
			RetentionMs:        604800000,
			RetentionBytes:     -1,
			RetentionCheckMs:   60000,
			MaxDiskBytes:       0,
			Flush:              "always",
			FlushMs:            1000,
			IndexIntervalBytes: 4096,
		},
		Groups:    Groups{InitialRebalanceDelayMs: 100, MinSessionTimeoutMs: 6000, MaxSessionTimeoutMs: 1800000, OffsetsRetentionMinutes: 10080},
		Filters:   Filters{Enabled: true, MaxModuleBytes: 16 << 20, DefaultMemoryPages: 256, DefaultTimeoutMs: 100},
		WebSocket: WebSocket{MaxFrameBytes: 1 << 20, MaxSubscriptions: 64, MaxPendingBytes: 4 << 20, MaxConnections: 20000},
		Auth:      Auth{FailedAuthPerMinute: 20},
	}
}

// Load reads the file at path over the defaults. A missing file is an error
// only when mustExist is true (an explicit --config).
func Load(path string, mustExist bool) (Config, error) {
	cfg := Default()
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, os.ErrNotExist) && !mustExist:
		return cfg, cfg.Validate()
	case err != nil:
		return cfg, fmt.Errorf("read config: %w", err)
	}
	return Parse(data, path)
}

// Parse reads a TOML document over the defaults. name is used in errors.
func Parse(data []byte, name string) (Config, error) {
	cfg := Default()
	md, err := toml.Decode(string(data), &cfg)
	if err != nil {
		var perr toml.ParseError
		if errors.As(err, &perr) {
			return cfg, fmt.Errorf("%s: %s", name, strings.TrimSpace(perr.ErrorWithPosition()))
		}
		return cfg, fmt.Errorf("%s: %w", name, err)
	}
	normalize(&cfg)
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return cfg, fmt.Errorf("%s: unknown key %s", name, strings.Join(keys, ", "))
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("%s: %w", name, err)
	}
	return cfg, nil
}

// normalize makes empty lists nil, so that "issuers = []" equals the
// default.
func normalize(c *Config) {
	if len(c.Auth.Issuers) == 0 {
		c.Auth.Issuers = nil
	}
	if len(c.Auth.Users) == 0 {
		c.Auth.Users = nil
	}
	for i := range c.Auth.Users {
		u := &c.Auth.Users[i]
		for _, l := range []*[]string{&u.Produce, &u.Consume, &u.Groups} {
			if len(*l) == 0 {
				*l = nil
			}
		}
	}
}

// Validate checks every value and names the first bad key.
func (c Config) Validate() error {
	bad := func(key string, v any, want string) error {
		return fmt.Errorf("bad value for %s: %v (%s)", key, v, want)
	}
	if c.DataDir == "" {
		return bad("data_dir", `""`, "a directory is required")
	}
	if c.NodeID < 0 {
		return bad("node_id", c.NodeID, "want >= 0")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return bad("log_level", c.LogLevel, "want debug, info, warn or error")
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return bad("log_format", c.LogFormat, "want text or json")
	}
	if err := checkAddr(c.Kafka.Addr); err != nil {
		return bad("kafka.addr", c.Kafka.Addr, err.Error())
	}
	if c.Kafka.AdvertisedAddr != "" {
		if err := checkAddr(c.Kafka.AdvertisedAddr); err != nil {
			return bad("kafka.advertised_addr", c.Kafka.AdvertisedAddr, err.Error())
		}
	}
	if c.Kafka.MaxFrameBytes < 1024 {
		return bad("kafka.max_frame_bytes", c.Kafka.MaxFrameBytes, "want >= 1024")
	}
	if err := checkAddr(c.HTTP.Addr); err != nil {
		return bad("http.addr", c.HTTP.Addr, err.Error())
	}
	if c.Topics.DefaultPartitions < 1 {
		return bad("topics.default_partitions", c.Topics.DefaultPartitions, "want >= 1")
	}
	if c.Topics.MaxMessageBytes < 64 {
		return bad("topics.max_message_bytes", c.Topics.MaxMessageBytes, "want >= 64")
	}
	if c.Topics.MaxMessageBytes > c.Kafka.MaxFrameBytes {
		return bad("topics.max_message_bytes", c.Topics.MaxMessageBytes, "want <= kafka.max_frame_bytes")
	}
	l := c.Log
	switch {
	case l.SegmentBytes < 1024:
		return bad("log.segment_bytes", l.SegmentBytes, "want >= 1024")
	case l.SegmentMs < 1:
		return bad("log.segment_ms", l.SegmentMs, "want >= 1")
	case l.RetentionMs < -1 || l.RetentionMs == 0:
		return bad("log.retention_ms", l.RetentionMs, "want -1 (forever) or > 0")
	case l.RetentionBytes < -1 || l.RetentionBytes == 0:
		return bad("log.retention_bytes", l.RetentionBytes, "want -1 (unlimited) or > 0")
	case l.RetentionCheckMs < 10:
		return bad("log.retention_check_ms", l.RetentionCheckMs, "want >= 10")
	case l.MaxDiskBytes < 0:
		return bad("log.max_disk_bytes", l.MaxDiskBytes, "want 0 (unlimited) or > 0")
	case l.Flush != "always" && l.Flush != "interval" && l.Flush != "os":
		return bad("log.flush", l.Flush, "want always, interval or os")
	case l.FlushMs < 1:
		return bad("log.flush_ms", l.FlushMs, "want >= 1")
	case l.IndexIntervalBytes < 64:
		return bad("log.index_interval_bytes", l.IndexIntervalBytes, "want >= 64")
	}
	g := c.Groups
	switch {
	case g.InitialRebalanceDelayMs < 0:
		return bad("groups.initial_rebalance_delay_ms", g.InitialRebalanceDelayMs, "want >= 0")
	case g.MinSessionTimeoutMs < 1:
		return bad("groups.min_session_timeout_ms", g.MinSessionTimeoutMs, "want >= 1")
	case g.MaxSessionTimeoutMs < g.MinSessionTimeoutMs:
		return bad("groups.max_session_timeout_ms", g.MaxSessionTimeoutMs, "want >= groups.min_session_timeout_ms")
	case g.OffsetsRetentionMinutes < 1 && g.OffsetsRetentionMinutes != -1:
		return bad("groups.offsets_retention_minutes", g.OffsetsRetentionMinutes, "want >= 1, or -1 to keep offsets forever")
	}
	f := c.Filters
	switch {
	case f.MaxModuleBytes < 8:
		return bad("filters.max_module_bytes", f.MaxModuleBytes, "want >= 8")
	case f.DefaultMemoryPages < 1 || f.DefaultMemoryPages > 65536:
		return bad("filters.default_memory_pages", f.DefaultMemoryPages, "want 1 to 65536 (64 KiB pages)")
	case f.DefaultTimeoutMs < 1:
		return bad("filters.default_timeout_ms", f.DefaultTimeoutMs, "want >= 1")
	}
	ws := c.WebSocket
	switch {
	case ws.MaxFrameBytes < 1024:
		return bad("websocket.max_frame_bytes", ws.MaxFrameBytes, "want >= 1024")
	case ws.MaxSubscriptions < 1:
		return bad("websocket.max_subscriptions", ws.MaxSubscriptions, "want >= 1")
	case ws.MaxPendingBytes < 64<<10:
		return bad("websocket.max_pending_bytes", ws.MaxPendingBytes, "want >= 65536")
	case ws.MaxConnections < 1:
		return bad("websocket.max_connections", ws.MaxConnections, "want >= 1")
	}
	if err := c.Auth.validate(bad); err != nil {
		return err
	}
	if c.Auth.Cookie != "" && slices.Contains(c.WebSocket.AllowedOrigins.List(), "*") {
		return bad("auth.cookie", strconvQuote(c.Auth.Cookie), `a cookie with websocket.allowed_origins = ["*"] would let any web page connect as the cookie's user; list the allowed origins`)
	}
	t := c.TLS
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		return bad("tls.key_file", `""`, "tls.cert_file needs its private key file")
	case t.KeyFile != "" && t.CertFile == "":
		return bad("tls.cert_file", `""`, "tls.key_file needs its certificate file")
	case t.ClientCAFile != "" && t.CertFile == "":
		return bad("tls.client_ca_file", t.ClientCAFile, "client certificates need TLS: set tls.cert_file and tls.key_file")
	}
	return nil
}

func (a Auth) validate(bad func(key string, v any, want string) error) error {
	if a.FailedAuthPerMinute < 1 {
		return bad("auth.failed_auth_per_minute", a.FailedAuthPerMinute, "want >= 1")
	}
	for i, k := range a.Issuers {
		if !isNKey(k, 'O') && !isNKey(k, 'A') {
			return bad(fmt.Sprintf("auth.issuers[%d]", i), strconvQuote(k), "want an operator (O...) or account (A...) public nkey")
		}
	}
	if a.Cookie != "" && !isToken(a.Cookie) {
		return bad("auth.cookie", strconvQuote(a.Cookie), "want a cookie name: letters, digits and !#$%&'*+-.^_`|~")
	}
	names := map[string]int{}
	for i, u := range a.Users {
		key := func(k string) string { return fmt.Sprintf("auth.users[%d].%s", i, k) }
		switch {
		case u.Name == "" && u.NKey == "":
			return bad(key("name"), `""`, "a user needs a name, an nkey or both")
		case u.NKey != "" && !isNKey(u.NKey, 'U'):
			return bad(key("nkey"), strconvQuote(u.NKey), "want a user public nkey (U...)")
		case u.PasswordHash != "" && u.Name == "":
			return bad(key("name"), `""`, "a user with a password_hash needs a name to log in with")
		case u.PasswordHash != "" && !strings.HasPrefix(u.PasswordHash, "pbkdf2-sha256$"):
			return bad(key("password_hash"), "(hidden)", "want pbkdf2-sha256$ITER$SALT$HASH (a PBKDF2-SHA256 hash, never the password itself)")
		}
		if u.Name != "" {
			if j, dup := names[u.Name]; dup {
				return bad(key("name"), strconvQuote(u.Name), fmt.Sprintf("duplicate of auth.users[%d]", j))
			}
			names[u.Name] = i
		}
		for field, pats := range map[string][]string{"produce": u.Produce, "consume": u.Consume, "groups": u.Groups} {
			for j, p := range pats {
				if msg := checkPattern(p); msg != "" {
					return bad(fmt.Sprintf("%s[%d]", key(field), j), strconvQuote(p), msg)
				}
			}
		}
	}
	return nil
}

// isNKey reports whether s looks like a public nkey of the given kind
// (56 base32 characters starting with the prefix letter). The auth
// package checks the checksum when it loads the key.
func isNKey(s string, prefix byte) bool {
	if len(s) != 56 || s[0] != prefix {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}

// checkPattern checks a NATS-style subject pattern: non-empty
// '.'-separated tokens, '*' a whole token, '>' only as the last token.
func checkPattern(p string) string {
	if p == "" {
		return "want a non-empty pattern"
	}
	toks := strings.Split(p, ".")
	for i, t := range toks {
		switch {
		case t == "":
			return "empty token (a leading, trailing or doubled '.')"
		case t == ">" && i != len(toks)-1:
			return "'>' must be the last token"
		case t != "*" && t != ">" && strings.ContainsAny(t, "*> \t"):
			return "'*' and '>' must be whole tokens; no spaces"
		}
	}
	return ""
}

// isToken reports whether s is an HTTP token (a valid cookie name).
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return s != ""
}

func strconvQuote(s string) string { return fmt.Sprintf("%q", s) }

func checkAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return errors.New("want HOST:PORT")
	}
	return nil
}
