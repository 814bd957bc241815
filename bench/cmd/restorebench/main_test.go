package main

import (
	"slices"
	"testing"
)

func TestParseFlags(t *testing.T) {
	cfg, err := parseFlags([]string{"--n", "1_000, 20000", "--convs", "5"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{1000, 20000}; !slices.Equal(cfg.Sizes, want) || cfg.Convs != 5 {
		t.Errorf("parseFlags: sizes %v convs %d, want %v and 5", cfg.Sizes, cfg.Convs, want)
	}
	quick, err := parseFlags([]string{"--quick", "--n", "5"})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(quick.Sizes, []int{10000}) {
		t.Errorf("--quick sizes = %v, want [10000]", quick.Sizes)
	}
	for _, bad := range [][]string{{"--n", "0"}, {"--n", "x"}, {"--convs", "27"}, {"extra"}} {
		if _, err := parseFlags(bad); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}
