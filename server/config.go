package server

import (
	"errors"
	"log/slog"
	"runtime"
	"time"

	"github.com/mqtter/mqtter/wire"
)

// Config is what an operator sets for a server.
type Config struct {
	DataDir  string // holds mqtter.db
	MQTTAddr string // TCP listener, e.g. "127.0.0.1:1883"; "" for none
	WSAddr   string // WebSocket listener; "" for none
	HTTPAddr string // HTTP API; "" for none

	TLSCert, TLSKey string // PEM files; when set, MQTT, WS and HTTP use TLS

	NodeID     string        // this service node's id in routing rules; default "n1"
	ProxyAllow []string      // hosts (host or host:port) the http(s) proxy may reach
	S2SToken   string        // bearer token for POST /v1/s2s/push; "" disables it
	MaxBody    int           // request body limit; default 256 KiB
	Workers    int           // request workers; default 16 × GOMAXPROCS
	RecycleMax time.Duration // longest a removed relation stays restorable; default 30 days
	TokenTTL   time.Duration // HTTP API bearer token lifetime; default 24 h
	Pprof      bool          // serve net/http/pprof under /debug/pprof/ on the HTTP API

	// Guessing limits. A source address or an account that has made
	// LoginFailures failed logins is backed off for LoginBackoff, doubled
	// at each further failure up to LoginBackoffMax; a person's wrong
	// pairing codes back it off the same way after PairingGuesses, and a
	// thing's code is invalidated after PairingGuesses wrong guesses.
	LoginFailures   int           // default 5
	LoginBackoff    time.Duration // default 1 s
	LoginBackoffMax time.Duration // default 5 min
	PairingGuesses  int           // default 5
	ThrottleEntries int           // addresses, accounts or things each throttle table tracks at most; default 65536

	// Availability limits, per client and per account.
	SessionBudget int           // bytes of answers and pushes queued to one client; default 8 MiB
	SlowTimeout   time.Duration // longest a client may stay over its budget; default 30 s
	HistoryBytes  int           // message bytes in one history page; default 1 MiB
	ProxyWorkers  int           // proxy requests running at once; default 8
	ProxyPerUser  int           // proxy requests of one account in flight; default 2
	ProxyTimeout  time.Duration // one proxy request, waiting included; default 10 s
	MaxDevices    int           // devices bound to one account; default 32
	// SessionMax is the longest an MQTT session outlives its connection:
	// a clean session false (MQTT 3.1.1) gets it, an MQTT 5 Session Expiry
	// Interval is cut to it; default RecycleMax. MaxSessions bounds the
	// persistent sessions of one account; default 32.
	SessionMax  time.Duration
	MaxSessions int
	// SubscribeWait is how long the answers and pushes of a new connection
	// wait for its first packet, which tells a subscriber (a SUBSCRIBE
	// first: it gets only what matches its subscriptions) from a client
	// that gets them unasked; default 500 ms.
	SubscribeWait time.Duration
	// Availability limits.
	ConnectTimeout   time.Duration // how long a connection may take to deliver its CONNECT; default 10 s
	MaxUnauthedPerIP int           // connections not yet authenticated from one IP; default 64
	MaxUnauthed      int           // connections not yet authenticated in all; default 1024
	HTTPReadTimeout  time.Duration // how long an HTTP API request may take to arrive; default 30 s
	ShutdownTimeout  time.Duration // how long stopping the broker may take before the server gives up waiting; default 10 s

	// The libp2p relay (circuit relay v2) for the devices bound here.
	// RelayListen are its listen multiaddrs; none: no relay.
	RelayListen          []string
	RelayMaxReservations int           // devices holding a slot at once; default 1024
	RelayMaxCircuits     int           // circuits open through one device's slot; default 16
	RelayLimitDuration   time.Duration // a circuit's lifetime; default 2 min
	RelayLimitData       int64         // bytes a circuit carries each way; default 1 MiB

	Logger *slog.Logger
}

func (c *Config) fillDefaults() error {
	if c.DataDir == "" {
		return errors.New("server: config: DataDir is required")
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("server: config: TLS needs both a certificate and a key")
	}
	if c.NodeID == "" {
		c.NodeID = "n1"
	}
	if c.RelayMaxReservations <= 0 {
		c.RelayMaxReservations = 1024
	}
	if c.RelayMaxCircuits <= 0 {
		c.RelayMaxCircuits = 16
	}
	if c.RelayLimitDuration <= 0 {
		c.RelayLimitDuration = 2 * time.Minute
	}
	if c.RelayLimitData <= 0 {
		c.RelayLimitData = 1 << 20
	}
	if c.MaxBody <= 0 {
		c.MaxBody = wire.DefaultMaxBody
	}
	if c.Workers <= 0 {
		c.Workers = 16 * runtime.GOMAXPROCS(0)
	}
	if c.RecycleMax <= 0 {
		c.RecycleMax = 30 * 24 * time.Hour
	}
	if c.TokenTTL <= 0 {
		c.TokenTTL = 24 * time.Hour
	}
	if c.LoginFailures <= 0 {
		c.LoginFailures = 5
	}
	if c.LoginBackoff <= 0 {
		c.LoginBackoff = time.Second
	}
	if c.LoginBackoffMax < c.LoginBackoff {
		c.LoginBackoffMax = max(5*time.Minute, c.LoginBackoff)
	}
	if c.PairingGuesses <= 0 {
		c.PairingGuesses = 5
	}
	if c.ThrottleEntries <= 0 {
		c.ThrottleEntries = 65536
	}
	if c.SessionBudget <= 0 {
		c.SessionBudget = 8 << 20
	}
	if c.SlowTimeout <= 0 {
		c.SlowTimeout = 30 * time.Second
	}
	if c.HistoryBytes <= 0 {
		c.HistoryBytes = 1 << 20
	}
	if c.ProxyWorkers <= 0 {
		c.ProxyWorkers = 8
	}
	if c.ProxyPerUser <= 0 {
		c.ProxyPerUser = 2
	}
	if c.ProxyTimeout <= 0 {
		c.ProxyTimeout = 10 * time.Second
	}
	if c.MaxDevices <= 0 {
		c.MaxDevices = 32
	}
	if c.SessionMax <= 0 {
		c.SessionMax = c.RecycleMax
	}
	if c.MaxSessions <= 0 {
		c.MaxSessions = 32
	}
	if c.SubscribeWait <= 0 {
		c.SubscribeWait = 500 * time.Millisecond
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 10 * time.Second
	}
	if c.MaxUnauthedPerIP <= 0 {
		c.MaxUnauthedPerIP = 64
	}
	if c.MaxUnauthed <= 0 {
		c.MaxUnauthed = 1024
	}
	if c.HTTPReadTimeout <= 0 {
		c.HTTPReadTimeout = 30 * time.Second
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return nil
}
