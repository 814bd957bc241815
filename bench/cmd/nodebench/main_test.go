package main

import "testing"

func TestParseFlags(t *testing.T) {
	cfg, _, err := parseFlags([]string{"--quick", "--n", "50", "--batch", "64"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.N != 50 || cfg.Batch != 64 {
		t.Errorf("flags given with --quick lost: %+v", cfg)
	}
	if cfg.Msgs != 3000 || cfg.Warmup != 20 {
		t.Errorf("--quick defaults not applied: msgs %d warmup %d", cfg.Msgs, cfg.Warmup)
	}
	full, _, err := parseFlags(nil)
	if err != nil {
		t.Fatal(err)
	}
	if full.N != 2000 || full.Batch != 256 || full.MQTTer != "bin/mqtter" {
		t.Errorf("defaults: %+v", full)
	}
	for _, bad := range [][]string{{"--n", "0"}, {"--senders", "x"}, {"extra"}} {
		if _, _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}
