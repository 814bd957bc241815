package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/mqtter/mqtter/internal/cpuprofile"
	"github.com/mqtter/mqtter/node"
)

const nodeUsage = "node --home DIR --server tcp://HOST:PORT --user NAME [--p2p MULTIADDR]... [--p2p-announce MULTIADDR]... [--api ADDR] [--no-mdns] [--thing-handler CMD]"

// runNode runs the node daemon until ctx is cancelled.
func runNode(ctx context.Context, args []string, stderr io.Writer) error {
	fs := quietFlags("node")
	var cfg node.Config
	var listen, announce multiFlag
	var passwordFile, logLevel, logFormat string
	fs.StringVar(&cfg.Home, "home", os.Getenv("MQTTER_HOME"), "the node's home directory (required; default $MQTTER_HOME)")
	fs.StringVar(&cfg.Server, "server", "", "the server: tcp://HOST:PORT, ssl://… or ws://… (required)")
	fs.StringVar(&cfg.User, "user", "", "the account to log in as (required)")
	fs.Var(&listen, "p2p", "libp2p listen multiaddr (repeatable; default TCP and QUIC on every interface, port 0; \"none\": listen nowhere, be reached through the server's relay)")
	fs.Var(&announce, "p2p-announce", "a libp2p multiaddr to tell peers and the server instead of the listen addresses (repeatable): a port forwarded on a router, a proxy in front of the node")
	fs.StringVar(&cfg.APIAddr, "api", "", "local API listen address, loopback only (default 127.0.0.1:0)")
	fs.BoolVar(&cfg.NoMDNS, "no-mdns", false, "turn local network discovery off")
	fs.StringVar(&passwordFile, "password-file", "", "read the password from the first line of this file (default $MQTTER_PASSWORD)")
	fs.DurationVar(&cfg.SyncInterval, "sync-interval", 0, "how often unsequenced messages go up (default 3s)")
	fs.DurationVar(&cfg.DirectTimeout, "direct-timeout", 0, "how long a direct delivery may take before the server is used (default 2s)")
	fs.StringVar(&cfg.ThingHandler, "thing-handler", "", "a thing's device program, run with /bin/sh -c and kept running: commands on its stdin, feedback on its stdout, a JSON object a line")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&logFormat, "log-format", "text", "text or json")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile to this file until the node stops")
	pos, err := parseFlags(fs, args, stderr)
	if err != nil {
		return err
	}
	switch {
	case len(pos) > 0:
		return fmt.Errorf("%w: node takes no arguments, got %q", errUsage, pos)
	case cfg.Home == "":
		return fmt.Errorf("%w: node needs --home DIR", errUsage)
	case cfg.Server == "":
		return fmt.Errorf("%w: node needs --server tcp://HOST:PORT", errUsage)
	case cfg.User == "":
		return fmt.Errorf("%w: node needs --user NAME", errUsage)
	}
	cfg.ListenAddrs, cfg.Announce = listen, announce
	if cfg.Password, err = nodePassword(passwordFile); err != nil {
		return err
	}
	if cfg.Logger, err = newLogger(stderr, logLevel, logFormat); err != nil {
		return err
	}
	stopProfile, err := cpuprofile.Start(*cpuProfile)
	if err != nil {
		return err
	}
	defer stopProfile()
	return node.Run(ctx, cfg)
}

// nodePassword takes $MQTTER_PASSWORD, or else the first line of file.
func nodePassword(file string) (string, error) {
	if p := os.Getenv("MQTTER_PASSWORD"); p != "" {
		return p, nil
	}
	if file == "" {
		return "", errors.New("no password: set $MQTTER_PASSWORD or give --password-file FILE")
	}
	f, err := os.Open(file)
	if err != nil {
		return "", fmt.Errorf("password file: %w", err)
	}
	defer f.Close()
	line, err := bufio.NewReader(f).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("password file: %w", err)
	}
	if line = strings.TrimSpace(line); line == "" {
		return "", fmt.Errorf("password file %s: the first line is empty", file)
	}
	return line, nil
}

// multiFlag is a flag that may be given many times.
type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }

func (m *multiFlag) Set(v string) error {
	*m = append(*m, v)
	return nil
}
