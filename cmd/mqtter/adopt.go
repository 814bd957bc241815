package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/mqtter/mqtter/adapter"
	"github.com/mqtter/mqtter/server"
)

const adoptForm = "thing adopt NAME --data DIR --profile tasmota|zigbee2mqtt --topic TOPIC [--bridge BRIDGE]"

// runAdopt sets up a thing whose device runs stock firmware, on the
// server's data directory (the admin's command, like user add).
func runAdopt(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("thing adopt", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dataDir := fs.String("data", "", "the server's data directory (required)")
	profile := fs.String("profile", adapter.ProfileTasmota, "the firmware's dialect: "+adapter.ProfileTasmota+" or "+adapter.ProfileZigbee2MQTT)
	topic := fs.String("topic", "", "the device's topic in its firmware (Tasmota: its Topic; a Zigbee2MQTT bridge: its base topic; a device behind it: its friendly name; required)")
	bridge := fs.String("bridge", "", "the adopted bridge (a thing) the device is behind, for a Zigbee device")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *dataDir == "" || *topic == "" {
		return fmt.Errorf("%w: %s", errUsage, adoptForm)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := server.New(ctx, server.Config{DataDir: *dataDir, Logger: log})
	if err != nil {
		return err
	}
	defer srv.Close()
	code, created, err := srv.Adopt(ctx, pos[0], *profile, *topic, *bridge, func() (string, error) { return readPassword(stdin) })
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(stdout, "added thing %s\n", pos[0])
	}
	fmt.Fprintf(stdout, "adopted %s: profile %s, topic %s\n", pos[0], *profile, *topic)
	if *bridge != "" {
		fmt.Fprintf(stdout, "behind bridge %s\n", *bridge)
	}
	fmt.Fprintf(stdout, "pairing code: %s (valid 10 minutes; run thing adopt again for a new one)\n", code)
	return nil
}
