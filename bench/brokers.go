package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// A broker is one running broker process and the address its MQTT listener
// accepts on.
type broker struct {
	*process
	addr string // host:port of the MQTT listener
}

// url returns the broker address the way paho takes it.
func (b *broker) url() string { return "tcp://" + b.addr }

// ErrNoMosquitto is returned when no mosquitto binary can be found.
var ErrNoMosquitto = errors.New("mosquitto not found (install it: apt-get install -y mosquitto)")

// findMosquitto returns the path of the mosquitto binary: the given one, or
// the one on PATH, or Debian's /usr/sbin/mosquitto, which is not on a normal
// user's PATH.
func findMosquitto(given string) (string, error) {
	if given != "" {
		return given, nil
	}
	if path, err := exec.LookPath("mosquitto"); err == nil {
		return path, nil
	}
	for _, path := range []string{"/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto"} {
		if _, err := os.Stat(path); err == nil {
			return path, nil
		}
	}
	return "", ErrNoMosquitto
}

// startMosquitto runs mosquitto with a config that listens on one loopback
// port, allows anonymous clients and keeps nothing on disk.
func startMosquitto(ctx context.Context, bin, dir, name string) (*broker, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	port := addr[strings.LastIndexByte(addr, ':')+1:]
	conf := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n"+
		"log_dest stderr\nlog_type error\nlog_type warning\n", port)
	if os.Geteuid() == 0 {
		// As root, mosquitto drops to a "mosquitto" user that a fresh
		// machine may lack; staying root changes nothing measured here.
		conf += "user root\n"
	}
	confPath := filepath.Join(dir, name+".conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return startBroker(ctx, name, dir, addr, nil, bin, "-c", confPath)
}

// startBareMochi runs the bench's bare mochi broker (bench/cmd/baremochi).
func startBareMochi(ctx context.Context, bin, dir, name string) (*broker, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	return startBroker(ctx, name, dir, addr, nil, bin, "--addr", addr)
}

// startBroker starts a broker process and waits until addr accepts.
func startBroker(ctx context.Context, name, dir, addr string, env []string, bin string, args ...string) (*broker, error) {
	p, err := startProcess(name, dir, env, bin, args...)
	if err != nil {
		return nil, err
	}
	if err := p.waitListening(ctx, addr); err != nil {
		p.stop()
		return nil, err
	}
	return &broker{process: p, addr: addr}, nil
}

// buildBareMochi returns the path of a bare mochi binary: bin when it exists,
// otherwise one built with `go build` into dir.
func buildBareMochi(ctx context.Context, bin, dir string) (string, error) {
	if bin != "" {
		if _, err := os.Stat(bin); err == nil {
			return bin, nil
		}
	}
	out := filepath.Join(dir, "baremochi")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, "github.com/mqtter/mqtter/bench/cmd/baremochi")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build baremochi: %w\n%s", err, msg)
	}
	return out, nil
}
