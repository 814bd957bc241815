package main

import (
	"slices"
	"testing"
)

func TestParseFlags(t *testing.T) {
	cfg, _, err := parseFlags([]string{"--quick", "--n", "50", "--pubs", "1,3", "--only", "latency,rss"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.N != 50 || !slices.Equal(cfg.Pubs, []int{1, 3}) || !slices.Equal(cfg.Phases, []string{"latency", "rss"}) {
		t.Errorf("flags given with --quick lost: %+v", cfg)
	}
	if cfg.Msgs != 100 || cfg.Idle != 100 {
		t.Errorf("--quick defaults not applied: msgs %d idle %d", cfg.Msgs, cfg.Idle)
	}
	full, _, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if full.N != 5000 || full.Idle != 1000 || !slices.Equal(full.Pubs, []int{1, 10, 100}) || full.MQTTer != "bin/mqtter" {
		t.Errorf("defaults: %+v", full)
	}
	for _, bad := range [][]string{{"--only", "speed"}, {"--pubs", "1,x"}, {"extra"}, {"--n", "0"}} {
		if _, _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}
