package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"

	"golang.org/x/sync/errgroup"
)

// benchPassword is the password of every account the bench creates.
const benchPassword = "bench-password-1"

// addUsers creates accounts with `mqtter user add NAME --data DIR`: the
// first alone, since it creates the database, then a few at a time
// (password hashing is meant to be slow).
func addUsers(ctx context.Context, bin, dataDir string, names []string) error {
	if len(names) == 0 {
		return nil
	}
	if err := addUser(ctx, bin, dataDir, names[0]); err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, name := range names[1:] {
		g.Go(func() error { return addUser(ctx, bin, dataDir, name) })
	}
	return g.Wait()
}

func addUser(ctx context.Context, bin, dataDir, name string) error {
	_, err := runUserAdd(ctx, bin, dataDir, name)
	return err
}

// runUserAdd runs `mqtter user add NAME --data DIR [extra...]` and returns
// what it printed.
func runUserAdd(ctx context.Context, bin, dataDir, name string, extra ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, append([]string{"user", "add", name, "--data", dataDir}, extra...)...)
	cmd.Env = append(os.Environ(), "MQTTER_PASSWORD="+benchPassword)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mqtter user add %s: %w\n%s", name, err, out)
	}
	return string(out), nil
}

// startMQTTer runs `mqtter server` on fresh loopback ports with its data in
// dir/<name>, after creating the given accounts there.
func startMQTTer(ctx context.Context, bin, dir, name string, users []string) (*broker, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("mqtter binary: %w (build it: make build)", err)
	}
	dataDir := filepath.Join(dir, name+"-data")
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return nil, err
	}
	if err := addUsers(ctx, bin, dataDir, users); err != nil {
		return nil, err
	}
	return serveMQTTer(ctx, bin, dir, name, dataDir)
}

// serveMQTTer runs `mqtter server` on fresh loopback ports with its data,
// accounts made already, in dataDir.
func serveMQTTer(ctx context.Context, bin, dir, name, dataDir string) (*broker, error) {
	mqttAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	httpAddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	return startBroker(ctx, name, dir, mqttAddr, nil, bin,
		"server", "--data", dataDir, "--mqtt", mqttAddr, "--http", httpAddr)
}
