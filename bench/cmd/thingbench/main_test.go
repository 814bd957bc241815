package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/mqtter/mqtter/bench"
)

func TestParseFlags(t *testing.T) {
	cfg, _, err := parseFlags([]string{"--quick", "--n", "30", "--chain-n", "12"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.N != 30 || cfg.ChainN != 12 {
		t.Errorf("flags given with --quick lost: %+v", cfg)
	}
	if cfg.Warmup != 5 || cfg.ChainWarmup != 2 {
		t.Errorf("--quick defaults not applied: warmup %d chain-warmup %d", cfg.Warmup, cfg.ChainWarmup)
	}
	full, prof, err := parseFlags([]string{"--cpuprofile", "cpu.out"})
	if err != nil {
		t.Fatal(err)
	}
	if full.N != 1000 || full.ChainN != 200 || full.MQTTer != "bin/mqtter" || prof != "cpu.out" {
		t.Errorf("defaults: %+v, profile %q", full, prof)
	}
	for _, bad := range [][]string{{"--n", "0"}, {"--chain-n", "x"}, {"--timeout", "0s"}, {"extra"}} {
		if _, _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}

// A quick run of the whole bench against the built binary: every path
// measured, nothing failed to set up.
func TestQuickRun(t *testing.T) {
	bin := os.Getenv("MQTTER_BIN")
	if bin == "" {
		t.Skip("MQTTER_BIN not set (make test sets it)")
	}
	if testing.Short() {
		t.Skip("a run of the whole bench")
	}
	cfg := bench.DefaultThingConfig().Quick()
	cfg.MQTTer, cfg.N, cfg.Warmup, cfg.ChainN = bin, 10, 2, 10 // the chain renews its rule once
	cfg.LinkDelay = time.Millisecond                           // every hop through a delay link
	res := bench.RunThings(t.Context(), cfg)
	var out bytes.Buffer
	res.Print(&out)
	t.Log("\n" + out.String())
	if len(res.Errors) > 0 || len(res.LatencyErr) > 0 {
		t.Fatalf("errors: %v %v", res.Errors, res.LatencyErr)
	}
	for _, path := range []string{bench.PathThingMessage, bench.PathThingCommand, bench.PathThingRelayed, bench.PathThingChain} {
		if res.Latency[path].N == 0 {
			t.Errorf("%s: no samples", path)
		}
	}
	if !strings.Contains(out.String(), "added latency per chain hop") {
		t.Error("no chain hop figure printed")
	}
	// Each hop crossed the link, twice for a round trip.
	if p50 := res.Latency[bench.PathThingMessage].P50; p50 < 2*cfg.LinkDelay {
		t.Errorf("message round trip p50 %v through links of %v each way: the links were not crossed", p50, cfg.LinkDelay)
	}
}
