package main_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"testing"
	"time"
)

// TestDemo runs `mqtter demo` as `make demo` does and checks that each
// path shows in its transcript: direct, direct with the server down,
// relayed by the server to a restarted node, pulled by a new device; and
// the things: a command with its real result and state, and a rule's
// chain from the door to the lamp back to alice.
func TestDemo(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	began := time.Now()
	out, err := exec.CommandContext(ctx, bin, "demo").CombinedOutput()
	t.Logf("mqtter demo took %v:\n%s", time.Since(began).Round(time.Millisecond), out)
	if err != nil {
		t.Fatalf("mqtter demo: %v, want exit 0", err)
	}
	for _, want := range []string{
		`(?m)^  #. alice \S+ \[p2p\] hi bob, straight to you$`,
		`(?m)^  server: +disconnected `,
		`(?m)^  #- alice \S+ \[p2p\] the server is down, still direct$`,
		`(?m)^  #2 alice \S+ \[p2p\] the server is down, still direct$`,
		`(?m)^  outbox: +0 undelivered$`,
		`(?m)^  #3 alice \S+ \[server\] for when you are back$`,
		`(?m)^  #1 alice \S+ \[sync\] hi bob, straight to you\n  #2 alice \S+ \[sync\] the server is down, still direct\n  #3 alice \S+ \[sync\] for when you are back$`,
		`(?m)^  \S+ done +lamp set +\S+\n    output: \{"on":true,"brightness":40\}$`,
		`(?m)^  on = true  \(rev \d+, `,
		`(?m)^    chain: door event opened .*\(hop 0\)$`,
		`(?m)^    chain: lamp result done \{"on":false,"brightness":40\} \(hop 1\)$`,
		`(?m)^  on = false  \(rev \d+, `,
		`(?m)^  \S+ done +plug write \{"power":true\} `,
		`(?m)^  power = true  \(rev \d+, `,
		`(?m)^  addrs: +\(none\)\n  relay: +slot until \S+\n  relayed: +/ip4/127\.0\.0\.1/tcp/\d+/p2p/\S+/p2p-circuit/p2p/\S+$`,
		`(?m)^  \(alice's node: sent_relayed = 1, carol's node stored it through the relay\)$`,
		`(?m)^demo done in `,
	} {
		if !regexp.MustCompile(want).Match(out) {
			t.Errorf("the transcript has no match of %s", want)
		}
	}
	m := regexp.MustCompile(`Commands run in (\S+) `).FindSubmatch(out)
	if m == nil {
		t.Fatal("the transcript does not name its directory")
	}
	if _, err := os.Stat(string(m[1])); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the demo left %s behind (stat: %v)", m[1], err)
	}
}
