package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/mqtter/mqtter/internal/cpuprofile"
	"github.com/mqtter/mqtter/server"
)

func runServer(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg server.Config
	var proxyAllow, logLevel, logFormat string
	fs.StringVar(&cfg.DataDir, "data", "", "data directory (required)")
	fs.StringVar(&cfg.MQTTAddr, "mqtt", "127.0.0.1:1883", "MQTT TCP listen address (\"\" for none)")
	fs.StringVar(&cfg.WSAddr, "ws", "", "MQTT over WebSocket listen address")
	fs.StringVar(&cfg.HTTPAddr, "http", "127.0.0.1:8080", "HTTP API listen address (\"\" for none)")
	fs.StringVar(&cfg.TLSCert, "tls-cert", "", "TLS certificate (PEM) for every listener")
	fs.StringVar(&cfg.TLSKey, "tls-key", "", "TLS private key (PEM)")
	fs.StringVar(&cfg.NodeID, "node-id", "n1", "this service node's id in routing rules")
	var relayListen string
	fs.StringVar(&relayListen, "relay-listen", "", "comma-separated libp2p listen multiaddrs of the relay for nodes behind NATs, e.g. /ip4/0.0.0.0/tcp/4001,/ip4/0.0.0.0/udp/4001/quic-v1 (\"\" for none)")
	fs.IntVar(&cfg.RelayMaxReservations, "relay-max-reservations", 1024, "devices that may hold a relay slot at once")
	fs.IntVar(&cfg.RelayMaxCircuits, "relay-max-circuits", 16, "relayed circuits open through one device's slot at once")
	fs.DurationVar(&cfg.RelayLimitDuration, "relay-limit-duration", 2*time.Minute, "longest a relayed circuit lasts (nodes upgrade to a direct connection or open another)")
	fs.Int64Var(&cfg.RelayLimitData, "relay-limit-data", 1<<20, "bytes a relayed circuit carries each way before it ends")
	fs.StringVar(&proxyAllow, "proxy-allow", "", "comma-separated hosts (host or host:port) the http(s) proxy may reach")
	fs.StringVar(&cfg.S2SToken, "s2s-token", os.Getenv("MQTTER_S2S_TOKEN"), "bearer token for POST /v1/s2s/push (default $MQTTER_S2S_TOKEN)")
	fs.IntVar(&cfg.MaxBody, "max-body", 0, "request body limit in bytes (default 256 KiB)")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&logFormat, "log-format", "text", "text or json")
	fs.BoolVar(&cfg.Pprof, "pprof", false, "serve /debug/pprof/ on the HTTP API (no auth: keep the API on loopback)")
	fs.DurationVar(&cfg.ConnectTimeout, "connect-timeout", 10*time.Second, "how long a connection may take to deliver its MQTT CONNECT")
	fs.IntVar(&cfg.MaxUnauthedPerIP, "max-unauthed-per-ip", 64, "connections not yet authenticated allowed from one IP address")
	fs.IntVar(&cfg.MaxUnauthed, "max-unauthed", 1024, "connections not yet authenticated allowed in all")
	fs.DurationVar(&cfg.HTTPReadTimeout, "http-read-timeout", 30*time.Second, "how long an HTTP API request may take to arrive")
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", 10*time.Second, "how long stopping may wait for connections before giving up on them")
	fs.IntVar(&cfg.LoginFailures, "login-failures", 5, "failed logins from one address or for one account before it is backed off")
	fs.DurationVar(&cfg.LoginBackoffMax, "login-backoff-max", 5*time.Minute, "longest back-off after failed logins (it starts at 1s and doubles)")
	fs.IntVar(&cfg.PairingGuesses, "pairing-guesses", 5, "wrong pairing codes after which a thing's code is invalidated")
	fs.IntVar(&cfg.MaxDevices, "max-devices", 32, "devices one account may have; a new one retires the stalest that is not connected")
	fs.DurationVar(&cfg.SessionMax, "session-max", 0, "longest an MQTT session (clean session false, or an MQTT 5 session expiry) outlives its connection (default: the recycle bin's maximum, 720h)")
	fs.IntVar(&cfg.MaxSessions, "max-sessions", 32, "persistent MQTT sessions one account may hold")
	fs.IntVar(&cfg.SessionBudget, "session-budget", 8<<20, "bytes of answers and pushes queued to one client before its requests wait")
	fs.IntVar(&cfg.HistoryBytes, "history-bytes", 1<<20, "message bytes in one history page, beside its count limit")
	fs.IntVar(&cfg.ProxyWorkers, "proxy-workers", 8, "http(s) proxy requests running at once")
	fs.IntVar(&cfg.ProxyPerUser, "proxy-per-user", 2, "http(s) proxy requests one account may have in flight")
	fs.DurationVar(&cfg.ProxyTimeout, "proxy-timeout", 10*time.Second, "longest an http(s) proxy request may take, waiting for a slot included")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file until the server stops")
	readyFile := fs.String("ready-file", "", "once every listener accepts, write their bound addresses here as JSON {\"mqtt\",\"ws\",\"http\"} (removed at a clean stop); for ports chosen with :0")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: server takes no arguments, got %q", errUsage, pos)
	}
	if cfg.DataDir == "" {
		return fmt.Errorf("%w: server needs --data DIR", errUsage)
	}
	for _, a := range strings.Split(relayListen, ",") {
		if a = strings.TrimSpace(a); a != "" {
			cfg.RelayListen = append(cfg.RelayListen, a)
		}
	}
	for _, h := range strings.Split(proxyAllow, ",") {
		if h = strings.TrimSpace(h); h != "" {
			cfg.ProxyAllow = append(cfg.ProxyAllow, h)
		}
	}
	log, err := newLogger(stderr, logLevel, logFormat)
	if err != nil {
		return err
	}
	cfg.Logger = log
	stopProfile, err := cpuprofile.Start(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	srv, err := server.New(ctx, cfg)
	if err != nil {
		return err
	}
	if *readyFile == "" {
		return srv.Run(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-srv.Ready():
	}
	if err := writeReadyFile(*readyFile, srv); err != nil {
		log.Error("ready file", "err", err)
		// Stop the server: a caller waiting for the file would wait forever.
		cancel()
		<-done
		return err
	}
	defer os.Remove(*readyFile)
	return <-done
}

// writeReadyFile writes the bound listener addresses ("" for a listener
// not served) beside path and renames it into place, so a reader never sees
// a partial file.
func writeReadyFile(path string, srv *server.Server) error {
	b, err := json.Marshal(map[string]string{"mqtt": srv.Addr("mqtt"), "ws": srv.Addr("ws"), "http": srv.Addr("http"),
		"relay": strings.Join(srv.RelayAddrs(), ",")})
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("ready file: %w", err)
	}
	return nil
}

func runUser(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "add" {
		return fmt.Errorf("%w: user add NAME --data DIR [--thing]", errUsage)
	}
	fs := flag.NewFlagSet("user add", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data", "", "the server's data directory (required)")
	thing := fs.Bool("thing", false, "the account is a thing, not a person")
	pos, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 || *dataDir == "" {
		return fmt.Errorf("%w: user add NAME --data DIR [--thing]", errUsage)
	}
	password, err := readPassword(stdin)
	if err != nil {
		return err
	}
	kind := server.KindPerson
	if *thing {
		kind = server.KindThing
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := server.New(ctx, server.Config{DataDir: *dataDir, Logger: log})
	if err != nil {
		return err
	}
	defer srv.Close()
	code, err := srv.AddUser(ctx, pos[0], password, kind)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "added %s %s\n", kind, pos[0])
	if code != "" {
		fmt.Fprintf(stdout, "pairing code: %s (valid 10 minutes; the thing can ask for a new one)\n", code)
	}
	return nil
}

// readPassword takes $MQTTER_PASSWORD, or else the first line of stdin.
func readPassword(stdin io.Reader) (string, error) {
	if p := os.Getenv("MQTTER_PASSWORD"); p != "" {
		return p, nil
	}
	line, err := bufio.NewReader(stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password: set $MQTTER_PASSWORD or give it on stdin")
	}
	return line, nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("%w: --log-level %q", errUsage, level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("%w: --log-format %q", errUsage, format)
}
