package bench

import (
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"p50 of 1..100", hundred, 50, 50 * time.Millisecond},
		{"p90 of 1..100", hundred, 90, 90 * time.Millisecond},
		{"p99 of 1..100", hundred, 99, 99 * time.Millisecond},
		{"p100 of 1..100", hundred, 100, 100 * time.Millisecond},
		{"p50 of four", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of four", ms(1, 2, 3, 4), 99, 4 * time.Millisecond},
		{"tiny p", ms(1, 2, 3), 0.001, time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(%v, %v) = %v, want %v", tt.sorted, tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarizeSorts(t *testing.T) {
	got := Summarize([]time.Duration{5, 1, 4, 2, 3})
	want := Latencies{N: 5, P50: 3, P90: 5, P99: 5, Max: 5, Mean: 3}
	if got != want {
		t.Errorf("Summarize = %+v, want %+v", got, want)
	}
	if got := Summarize(nil); got != (Latencies{}) {
		t.Errorf("Summarize(nil) = %+v, want zero", got)
	}
}

func TestFormat(t *testing.T) {
	tests := []struct{ got, want string }{
		{FormatDuration(86 * time.Microsecond), "86.0µs"},
		{FormatDuration(1250 * time.Microsecond), "1.25ms"},
		{FormatDuration(292 * time.Microsecond), "292µs"},
		{FormatDuration(2100 * time.Millisecond), "2.10s"},
		{FormatDuration(500), "500ns"},
		{FormatDuration(0), "0"},
		{FormatRate(33178.4), "33178/s"},
		{FormatRatio(2, 1), "2.00×"},
		{FormatRatio(0, 1), "-"},
		{FormatMB(44 << 20), "44.0 MB"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
	if r := Rate(1000, 2*time.Second); r != 500 {
		t.Errorf("Rate(1000, 2s) = %v, want 500", r)
	}
	if r := Rate(1000, 0); r != 0 {
		t.Errorf("Rate(1000, 0) = %v, want 0", r)
	}
}

func TestMessageText(t *testing.T) {
	for _, c := range [][2]int{{0, 0}, {3, 1999}, {12, 7}} {
		run, index, ok := parseMessageText(messageText(c[0], c[1]))
		if !ok || run != c[0] || index != c[1] {
			t.Errorf("parseMessageText(messageText(%d, %d)) = %d, %d, %v", c[0], c[1], run, index, ok)
		}
	}
	for _, bad := range []string{"", "hi", "bench r1", "bench rx m1", "bench r1 m-1", "bench r1 m"} {
		if _, _, ok := parseMessageText(bad); ok {
			t.Errorf("parseMessageText(%q) ok, want not", bad)
		}
	}
}

func TestCheckSeqs(t *testing.T) {
	tests := []struct {
		name string
		base int64
		seqs []int64
		msgs int
		want string // substring; "" means no problem
	}{
		{"fresh", 0, []int64{3, 1, 2}, 3, ""},
		{"after base", 5000, []int64{5001, 5002}, 2, ""},
		{"gap", 0, []int64{1, 3}, 2, "first unexpected 3"},
		{"twice", 0, []int64{1, 1, 2}, 3, "two messages"},
		{"short", 0, []int64{1, 2}, 3, "got 2 of them"},
		{"wrong base", 10, []int64{1, 2}, 2, "11…12 expected"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkSeqs(tt.base, tt.seqs, tt.msgs)
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("checkSeqs(%d, %v, %d) = %q, want %q", tt.base, tt.seqs, tt.msgs, got, tt.want)
			}
		})
	}
}

func TestParseProc(t *testing.T) {
	status := "Name:\tmqtter\nVmPeak:\t  99999 kB\nVmRSS:\t   44032 kB\nThreads:\t7\n"
	if got, err := parseVmRSS(strings.NewReader(status)); err != nil || got != 44032<<10 {
		t.Errorf("parseVmRSS = %d, %v, want %d", got, err, 44032<<10)
	}
	if _, err := parseVmRSS(strings.NewReader("Name:\tx\n")); err == nil {
		t.Error("parseVmRSS without VmRSS: no error")
	}
	stat := "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 150 25 0 0 20 0 7 0 1000 0 0"
	if got, err := parseStatCPU(stat); err != nil || got != 1750*time.Millisecond {
		t.Errorf("parseStatCPU = %v, %v, want 1.75s", got, err)
	}
}

func TestDMFeeds(t *testing.T) {
	if got := dmFeeds("send1", "recv1"); got != "dm:recv1:send1" {
		t.Errorf("dmFeeds(send1, recv1) = %q", got)
	}
	if got := dmFeeds("alice", "bob"); got != "dm:alice:bob" {
		t.Errorf("dmFeeds(alice, bob) = %q", got)
	}
}

func TestIdleSpecs(t *testing.T) {
	specs := idleSpecs("tcp://x", "d", []string{"a", "b"}, "pw", 5)
	seen := map[string]bool{}
	for _, s := range specs {
		if seen[s.clientID] {
			t.Errorf("client id %q twice", s.clientID)
		}
		seen[s.clientID] = true
	}
	if specs[0].user != "a" || specs[1].user != "b" || specs[4].user != "a" {
		t.Errorf("accounts not spread: %+v", specs)
	}
	if anon := idleSpecs("tcp://x", "d", nil, "", 2); anon[0].user != "" || anon[0].clientID == anon[1].clientID {
		t.Errorf("anonymous specs: %+v", anon)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
	if err := DefaultConfig().Quick().Validate(); err != nil {
		t.Errorf("quick config: %v", err)
	}
	bad := DefaultConfig()
	bad.Phases = []string{"latncy"}
	if err := bad.Validate(); err == nil {
		t.Error("unknown phase accepted")
	}
	bad = DefaultConfig()
	bad.Pubs = []int{1, 0}
	if err := bad.Validate(); err == nil {
		t.Error("zero publishers accepted")
	}
}
