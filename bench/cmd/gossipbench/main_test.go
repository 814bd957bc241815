package main

import (
	"bytes"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqtter/mqtter/bench"
)

func TestParseFlags(t *testing.T) {
	cfg, _, err := parseFlags([]string{"--quick", "--n", "12", "--sizes", "3, 7"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.N != 12 || !slices.Equal(cfg.Sizes, bench.Sizes{3, 7}) {
		t.Errorf("flags given with --quick lost: %+v", cfg)
	}
	if cfg.Warmup != 5 || cfg.Procs != 20 {
		t.Errorf("--quick defaults not applied: warmup %d procs %d", cfg.Warmup, cfg.Procs)
	}
	quick, _, err := parseFlags([]string{"--quick"})
	if err != nil || !slices.Equal(quick.Sizes, bench.Sizes{5, 20}) || quick.N != 30 {
		t.Errorf("--quick: %+v, %v", quick, err)
	}
	full, prof, err := parseFlags([]string{"--cpuprofile", "cpu.out"})
	if err != nil {
		t.Fatal(err)
	}
	if full.N != 200 || !slices.Equal(full.Sizes, bench.Sizes{5, 20, 50}) || full.MQTTer != "bin/mqtter" || prof != "cpu.out" {
		t.Errorf("defaults: %+v, profile %q", full, prof)
	}
	if !slices.Equal(bench.DefaultGossipConfig().Sizes, bench.Sizes{5, 20, 50}) {
		t.Error("--sizes changed the defaults' list")
	}
	for _, bad := range [][]string{{"--n", "0"}, {"--sizes", "5,x"}, {"--sizes", "0"}, {"--sizes", "1000"}, {"--procs", "-1"}, {"--timeout", "0s"}, {"extra"}} {
		if _, _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}

// A tiny run of the whole bench against the built binary: one message a
// path to a group of two member processes and one of three in-process
// nodes, each path carrying its own copy to every member, and the table
// and the target's line printed.
func TestQuickRun(t *testing.T) {
	bin := os.Getenv("MQTTER_BIN")
	if bin == "" {
		t.Skip("MQTTER_BIN not set (make test sets it)")
	}
	if testing.Short() {
		t.Skip("a run of the whole bench")
	}
	cfg := bench.DefaultGossipConfig().Quick()
	cfg.MQTTer, cfg.Sizes, cfg.Procs, cfg.N, cfg.Warmup = bin, bench.Sizes{2, 3}, 2, 1, 0
	cfg.LinkDelay = time.Millisecond // every hop through a delay link
	res := bench.RunGossip(t.Context(), cfg)
	var out bytes.Buffer
	res.Print(&out)
	t.Log("\n" + out.String())
	if len(res.Errors) > 0 {
		t.Fatalf("errors: %v", res.Errors)
	}
	for _, size := range cfg.Sizes {
		for _, path := range []string{bench.PathGossip, bench.PathServerPush} {
			r, ok := res.Row(size, path)
			if !ok || r.Err != "" || r.Latency.N != 1 || r.CPU < 0 {
				t.Errorf("%d members, %s: %+v", size, path, r)
				continue
			}
			want := map[string]int{"gossip": size}
			if path == bench.PathServerPush {
				want = map[string]int{"server": size}
			}
			if !maps.Equal(r.Via, want) {
				t.Errorf("%d members, %s: stored via %v, want %v", size, path, r.Via, want)
			}
			// The server push crosses two links, gossip at least one.
			if hops := map[string]time.Duration{bench.PathGossip: 1, bench.PathServerPush: 2}[path]; r.Latency.P50 < hops*cfg.LinkDelay {
				t.Errorf("%d members, %s: p50 %v, less than %d links of %v", size, path, r.Latency.P50, hops, cfg.LinkDelay)
			}
		}
	}
	if r, _ := res.Row(2, bench.PathGossip); r.Members != "processes" {
		t.Errorf("2 members ran as %q, want processes", r.Members)
	}
	if r, _ := res.Row(3, bench.PathGossip); r.Members != "in-process" {
		t.Errorf("3 members ran as %q, want in-process", r.Members)
	}
	if !strings.Contains(out.String(), "not measured (no run of 20 members") {
		t.Error("no target line printed")
	}
}
