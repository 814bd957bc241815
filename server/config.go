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

	// Availability limits.
	ConnectTimeout   time.Duration // how long a connection may take to deliver its CONNECT; default 10 s
	MaxUnauthedPerIP int           // connections not yet authenticated from one IP; default 64
	MaxUnauthed      int           // connections not yet authenticated in all; default 1024
	HTTPReadTimeout  time.Duration // how long an HTTP API request may take to arrive; default 30 s
	ShutdownTimeout  time.Duration // how long stopping the broker may take before the server gives up waiting; default 10 s

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
