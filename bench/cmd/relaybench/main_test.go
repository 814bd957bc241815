package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/mqtter/mqtter/bench"
)

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"--quick", "--n", "7", "--pace", "5ms"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.N != 7 || cfg.Pace.Milliseconds() != 5 {
		t.Errorf("flags given with --quick lost: %+v", cfg)
	}
	if cfg.Rounds != 1 || cfg.TCPRounds != 1 || cfg.Warmup != 10 {
		t.Errorf("--quick defaults not applied: rounds %d tcp-rounds %d warmup %d", cfg.Rounds, cfg.TCPRounds, cfg.Warmup)
	}
	full, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if full.Rounds != 10 || full.TCPRounds != 5 || full.N != 500 || full.MQTTer != "bin/mqtter" {
		t.Errorf("defaults: %+v", full)
	}
	for _, bad := range [][]string{{"--rounds", "0"}, {"--tcp-rounds", "-1"}, {"--n", "x"}, {"--punch-wait", "0s"}, {"--pace", "-1s"}, {"extra"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}

// A tiny run of the whole bench against the built binary: one punch
// timed on TCP and QUIC and one on TCP alone, each with the first message
// relayed and a later one direct over a connection the punch made, then two messages on each latency path,
// each arriving the way its row says.
func TestQuickRun(t *testing.T) {
	bin := os.Getenv("MQTTER_BIN")
	if bin == "" {
		t.Skip("MQTTER_BIN not set (make test sets it)")
	}
	if testing.Short() {
		t.Skip("a run of the whole bench")
	}
	cfg := bench.DefaultRelayConfig().Quick()
	cfg.MQTTer, cfg.N, cfg.Warmup = bin, 2, 0
	res := bench.RunRelay(t.Context(), cfg)
	var out bytes.Buffer
	res.Print(&out)
	t.Log("\n" + out.String())
	if res.Skipped != "" {
		if !strings.HasPrefix(out.String(), "relaybench skipped: ") {
			t.Errorf("a skipped run printed %q", out.String())
		}
		t.Skip(res.Skipped)
	}
	if len(res.Errors) > 0 {
		t.Fatalf("errors: %v", res.Errors)
	}
	if len(res.Rounds) != 2 {
		t.Fatalf("rounds %+v, want 2", res.Rounds)
	}
	for _, r := range res.Rounds {
		if r.Err != "" || r.ToDirect <= 0 || r.ToRelayed <= 0 || r.ToDirect < r.ToRelayed || len(r.Conns) == 0 {
			t.Errorf("round %+v: want a relayed start, then a direct message over a direct connection", r)
		}
	}
	if tcp := res.Rounds[1]; tcp.Listen != "tcp" || len(tcp.Conns) == 0 || !strings.Contains(tcp.Conns[0], "/tcp/") {
		t.Errorf("the TCP round %+v: want a direct TCP connection", tcp)
	}
	for path, want := range map[string]string{bench.PathHolePunched: "p2p", bench.PathRelayed: "relayed", bench.PathViaServer: "server"} {
		if l := res.Latency[path]; l.N != 2 || res.LatencyErr[path] != "" {
			t.Errorf("%s: %+v, %s", path, l, res.LatencyErr[path])
		}
		if via := res.Via[path]; via[want] != 2 {
			t.Errorf("%s arrived via %v, want %s", path, via, want)
		}
	}
}
