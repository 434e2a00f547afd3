package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	iofs "io/fs"
	"log/slog"
	"net"
	nethttp "net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/samsa-broker/samsa/auth"
	"github.com/samsa-broker/samsa/broker"
	"github.com/samsa-broker/samsa/broker/group"
	"github.com/samsa-broker/samsa/config"
	samsahttp "github.com/samsa-broker/samsa/transports/http"
	"github.com/samsa-broker/samsa/transports/kafka"
	"github.com/samsa-broker/samsa/transports/websocket"
	"github.com/samsa-broker/samsa/wasm"
)

func runServe(ctx context.Context, env *cliEnv, args []string) error {
	start := time.Now()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(env.stderr)
	configPath := fs.String("config", "", "config file (default ./broker.toml when it exists)")
	dataDir := fs.String("data-dir", "", "data directory (overrides data_dir)")
	kafkaAddr := fs.String("kafka-addr", "", "Kafka listener HOST:PORT (overrides kafka.addr; default 127.0.0.1:9092)")
	httpAddr := fs.String("http-addr", "", "HTTP listener HOST:PORT (overrides http.addr; default 127.0.0.1:8080)")
	insecure := fs.Bool("insecure", false, "serve non-loopback listeners with [auth] off: anyone who can reach them can read, write and delete everything")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("serve takes no arguments, got %q", fs.Args())
	}
	path, mustExist := *configPath, true
	if path == "" {
		path, mustExist = "broker.toml", false
	}
	cfg, err := config.Load(path, mustExist)
	if err != nil {
		return err
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	if *kafkaAddr != "" {
		cfg.Kafka.Addr = *kafkaAddr
	}
	if *httpAddr != "" {
		cfg.HTTP.Addr = *httpAddr
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if !cfg.Auth.Enabled && !*insecure {
		if err := requireLoopback(cfg); err != nil {
			return err
		}
	}
	// The console's files: the built-in dashboard, or [http] console_dir
	// (a directory that must exist).
	var consoleFS iofs.FS
	if cfg.HTTP.Console {
		consoleFS, err = samsahttp.ConsoleFS(cfg.HTTP.ConsoleDir)
		if err != nil {
			return fmt.Errorf("http.console_dir %q: %w (a directory to serve at / instead of the built-in console, relative to the working directory; \"\" serves the built-in one)", cfg.HTTP.ConsoleDir, err)
		}
	}
	logger := newLogger(env.stderr, cfg)
	if !cfg.HTTP.Console && cfg.HTTP.ConsoleDir != "" {
		logger.Warn("http.console_dir is ignored: http.console = false", "console_dir", cfg.HTTP.ConsoleDir)
	}
	tlsCfg, err := serverTLS(cfg.TLS)
	if err != nil {
		return err
	}
	var authn *auth.Authenticator
	if cfg.Auth.Enabled {
		authn, err = auth.New(authConfig(cfg), logger.With("component", "auth"))
		if err != nil {
			return fmt.Errorf("auth: %w", err)
		}
		defer authn.Close()
	} else if *insecure && (!isLoopback(cfg.Kafka.Addr) || !isLoopback(cfg.HTTP.Addr)) {
		logger.Warn("serving without authentication on a non-loopback address (--insecure): anyone who can reach it can read, write and delete everything",
			"kafka", cfg.Kafka.Addr, "http", cfg.HTTP.Addr)
	}

	// Listen first: a port in use fails before any recovery work.
	kln, err := net.Listen("tcp", cfg.Kafka.Addr)
	if err != nil {
		return fmt.Errorf("kafka listener: %w", err)
	}
	hln, err := net.Listen("tcp", cfg.HTTP.Addr)
	if err != nil {
		kln.Close()
		return fmt.Errorf("http listener: %w", err)
	}
	if tlsCfg != nil {
		// The Kafka server serves TLS itself (kafka.Options.TLS). HTTP/1.1
		// only on the HTTP listener: WebSocket upgrades need it.
		httpTLS := tlsCfg.Clone()
		httpTLS.NextProtos = []string{"http/1.1"}
		hln = tls.NewListener(hln, httpTLS)
	}
	advHost, advPort, err := advertised(cfg.Kafka.AdvertisedAddr, kln.Addr().String())
	if err != nil {
		kln.Close()
		hln.Close()
		return err
	}
	// Until the servers own them, the listeners are closed on the way out.
	defer kln.Close()
	defer hln.Close()
	defaults := broker.DefaultTopicConfig()
	defaults.RetentionMs = cfg.Log.RetentionMs
	defaults.RetentionBytes = cfg.Log.RetentionBytes
	defaults.SegmentBytes = cfg.Log.SegmentBytes
	defaults.SegmentMs = cfg.Log.SegmentMs
	defaults.Flush = broker.FlushPolicy(cfg.Log.Flush)
	defaults.FlushMs = cfg.Log.FlushMs
	defaults.MaxMessageBytes = cfg.Topics.MaxMessageBytes

	// The Wasm filter host: modules and the compilation cache live in
	// <data_dir>/filters. The broker opens it once it holds the data
	// directory's lock, and closes it after its bindings.
	var openFilters func() (*wasm.Host, error)
	if cfg.Filters.Enabled {
		openFilters = func() (*wasm.Host, error) {
			return wasm.NewHost(ctx, wasm.Options{
				Dir:            filepath.Join(cfg.DataDir, "filters"),
				MaxModuleBytes: cfg.Filters.MaxModuleBytes,
				Logger:         logger.With("component", "wasm"),
			})
		}
	}
	b, err := broker.Open(broker.Options{
		DataDir:                cfg.DataDir,
		NodeID:                 cfg.NodeID,
		ClusterID:              cfg.ClusterID,
		AutoCreateTopics:       cfg.Topics.AutoCreate,
		DefaultPartitions:      cfg.Topics.DefaultPartitions,
		Defaults:               defaults,
		IndexIntervalBytes:     cfg.Log.IndexIntervalBytes,
		MaxDiskBytes:           cfg.Log.MaxDiskBytes,
		RetentionCheckInterval: time.Duration(cfg.Log.RetentionCheckMs) * time.Millisecond,
		Groups: group.Options{
			RebalanceDelay:    rebalanceDelay(cfg.Groups.InitialRebalanceDelayMs),
			MinSessionTimeout: time.Duration(cfg.Groups.MinSessionTimeoutMs) * time.Millisecond,
			MaxSessionTimeout: time.Duration(cfg.Groups.MaxSessionTimeoutMs) * time.Millisecond,
			OffsetsRetention:  offsetsRetention(cfg.Groups.OffsetsRetentionMinutes),
		},
		OpenFilters: openFilters,
		Logger:      logger,
	})
	if err != nil {
		return fmt.Errorf("open broker: %w", err)
	}
	defer func() {
		if err := b.Close(); err != nil {
			logger.Error("close broker", "err", err)
		} else {
			logger.Info("stopped cleanly", "data_dir", cfg.DataDir)
		}
	}()

	ks := kafka.NewServer(b, kafka.Options{
		AdvertisedHost: advHost,
		AdvertisedPort: advPort,
		MaxFrameBytes:  cfg.Kafka.MaxFrameBytes,
		Auth:           authn,
		TLS:            tlsCfg,
		Logger:         logger.With("listener", "kafka"),
	})
	ws := websocket.New(b, websocket.Options{
		AllowedOrigins:   cfg.WebSocket.AllowedOrigins.List(),
		TrustProxy:       cfg.WebSocket.TrustProxy,
		MaxFrameBytes:    cfg.WebSocket.MaxFrameBytes,
		MaxSubscriptions: cfg.WebSocket.MaxSubscriptions,
		MaxPendingBytes:  cfg.WebSocket.MaxPendingBytes,
		MaxConnections:   cfg.WebSocket.MaxConnections,
		Filter:           b,
		Auth:             authn,
		AuthCookie:       cfg.Auth.Cookie,
		Logger:           logger.With("listener", "websocket"),
	})
	httpOpts := []samsahttp.Option{
		samsahttp.WithAdmin(samsahttp.AdminOptions{
			MaxModuleBytes:     cfg.Filters.MaxModuleBytes,
			DefaultMemoryPages: cfg.Filters.DefaultMemoryPages,
			DefaultTimeout:     time.Duration(cfg.Filters.DefaultTimeoutMs) * time.Millisecond,
		}),
		samsahttp.WithWebSocket(ws),
		samsahttp.WithAuth(authn),
	}
	if consoleFS != nil {
		httpOpts = append(httpOpts, samsahttp.WithConsole(consoleFS))
	}
	hs := &nethttp.Server{
		Handler:           samsahttp.Handler(b, logger, httpOpts...),
		ReadHeaderTimeout: 10 * time.Second,
	}

	errc := make(chan error, 2)
	srvCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { errc <- ks.Serve(srvCtx, kln) }()
	go func() {
		if err := hs.Serve(hln); err != nil && !errors.Is(err, nethttp.ErrServerClosed) {
			errc <- fmt.Errorf("http: %w", err)
			return
		}
		errc <- nil
	}()
	logger.Info("serving",
		"kafka", kln.Addr().String(),
		"http", hln.Addr().String(),
		"advertised", net.JoinHostPort(advHost, strconv.Itoa(int(advPort))),
		"data_dir", cfg.DataDir,
		"topics", len(b.Topics()),
		"filters", cfg.Filters.Enabled,
		"auth", onOff(cfg.Auth.Enabled),
		"tls", onOff(tlsCfg != nil),
		"console", consoleName(consoleFS),
		"startup", time.Since(start).Round(time.Microsecond).String())

	var serveErr error
	select {
	case <-ctx.Done():
		logger.Info("shutting down")
	case serveErr = <-errc:
		logger.Error("listener failed", "err", serveErr)
	}
	cancel()
	shutCtx, shutCancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer shutCancel()
	// Hijacked WebSocket connections are not closed by Shutdown: close
	// them (1012, service restart) first.
	ws.Close()
	_ = hs.Shutdown(shutCtx)
	if err := ks.Close(); err != nil {
		logger.Warn("close kafka listener", "err", err)
	}
	return serveErr
}

// rebalanceDelay converts the config's delay to group.Options', where 0
// means the default and a negative value means none.
func rebalanceDelay(ms int64) time.Duration {
	if ms == 0 {
		return -1
	}
	return time.Duration(ms) * time.Millisecond
}

func newLogger(w io.Writer, cfg config.Config) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// advertised decides the address Metadata gives clients: the configured one,
// else the listener's, with an unspecified host (0.0.0.0) replaced by the
// machine's host name.
func advertised(configured, listening string) (string, int32, error) {
	addr := configured
	if addr == "" {
		addr = listening
	}
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("advertised address %q: %w", addr, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port <= 0 || port > 65535 {
		return "", 0, fmt.Errorf("advertised address %q: bad port", addr)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		h, err := os.Hostname()
		if err != nil {
			return "", 0, fmt.Errorf("advertised address: %w", err)
		}
		host = h
	}
	return host, int32(port), nil
}

// consoleName says what the HTTP listener serves at /: "off", "built-in
// dashboard" or the directory.
func consoleName(fsys iofs.FS) string {
	if fsys == nil {
		return "off"
	}
	if s, ok := fsys.(fmt.Stringer); ok {
		return s.String()
	}
	return "on"
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

// isLoopback reports whether a listener address is on loopback only:
// 127.0.0.0/8, ::1 or localhost. An empty host (all interfaces) and other
// names are not.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// requireLoopback refuses listeners others can reach while auth is off.
func requireLoopback(cfg config.Config) error {
	var bad []string
	if !isLoopback(cfg.Kafka.Addr) {
		bad = append(bad, fmt.Sprintf("kafka.addr %s", cfg.Kafka.Addr))
	}
	if !isLoopback(cfg.HTTP.Addr) {
		bad = append(bad, fmt.Sprintf("http.addr %s", cfg.HTTP.Addr))
	}
	if len(bad) == 0 {
		return nil
	}
	return fmt.Errorf("refusing to listen on %s with authentication off: it is not a loopback address, so anyone who can reach it "+
		"could read, write and delete every topic. Turn authentication on ([auth] enabled = true in broker.toml, see the README's "+
		"Authentication section), listen on 127.0.0.1, ::1 or localhost, or pass --insecure to serve without authentication anyway",
		strings.Join(bad, " and "))
}

// serverTLS loads [tls]: nil when no certificate is configured.
func serverTLS(c config.TLS) (*tls.Config, error) {
	if !c.Enabled() {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file/tls.key_file: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.ClientCAFile != "" {
		pem, err := os.ReadFile(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.client_ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.client_ca_file %s: no PEM certificates in it", c.ClientCAFile)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// authConfig is the auth package's view of [auth].
func authConfig(cfg config.Config) auth.Config {
	a := cfg.Auth
	ac := auth.Config{
		Enabled:             a.Enabled,
		Issuers:             a.Issuers,
		RevocationFile:      a.RevocationFile,
		ScramFile:           a.ScramFile,
		FailedAuthPerMinute: a.FailedAuthPerMinute,
	}
	if ac.ScramFile == "" {
		ac.ScramFile = filepath.Join(cfg.DataDir, "auth", "scram.json")
	}
	for _, u := range a.Users {
		ac.Users = append(ac.Users, auth.StaticUser{
			Name: u.Name, NKey: u.NKey, PasswordHash: u.PasswordHash,
			Permissions: auth.Permissions{Produce: u.Produce, Consume: u.Consume, Groups: u.Groups, Admin: u.Admin, Filters: u.Filters},
		})
	}
	return ac
}

// offsetsRetention turns groups.offsets_retention_minutes into the
// coordinator's option: -1 (keep forever) is a negative duration.
func offsetsRetention(minutes int64) time.Duration {
	if minutes < 0 {
		return -1
	}
	return time.Duration(minutes) * time.Minute
}
