package bench

import (
	"strings"
	"testing"
	"time"
)

func TestParseCounter(t *testing.T) {
	metrics := `# HELP mqtter_node_received_p2p_total MQTTER node counter received_p2p.
# TYPE mqtter_node_received_p2p_total counter
mqtter_node_received_p2p_total 1.234567e+06
mqtter_node_received_server_total 42
mqtter_node_received_server_total_extra 7
`
	tests := []struct {
		name string
		want int64
	}{
		{"mqtter_node_received_p2p_total", 1234567},
		{"mqtter_node_received_server_total", 42},
	}
	for _, tt := range tests {
		got, err := parseCounter(strings.NewReader(metrics), tt.name)
		if err != nil || got != tt.want {
			t.Errorf("parseCounter(%s) = %d, %v, want %d", tt.name, got, err, tt.want)
		}
	}
	if _, err := parseCounter(strings.NewReader(metrics), "mqtter_node_sent_p2p_total"); err == nil {
		t.Error("parseCounter(missing) succeeded")
	}
}

func TestParseStatusKB(t *testing.T) {
	status := "Name:\tmqtter\nVmPeak:\t 1300000 kB\nVmHWM:\t   40960 kB\nVmRSS:\t   30720 kB\nThreads:\t9\n"
	got, err := parseStatusKB(strings.NewReader(status), "VmRSS", "VmHWM")
	if err != nil || got["VmRSS"] != 30<<20 || got["VmHWM"] != 40<<20 {
		t.Errorf("parseStatusKB = %v, %v, want VmRSS 30 MiB and VmHWM 40 MiB", got, err)
	}
	if _, err := parseStatusKB(strings.NewReader("VmRSS:\t1 kB\n"), "VmRSS", "VmHWM"); err == nil {
		t.Error("parseStatusKB without VmHWM succeeded")
	}
	if _, err := parseStatusKB(strings.NewReader("VmRSS:\t1 MB\nVmHWM:\t1 kB\n"), "VmRSS", "VmHWM"); err == nil {
		t.Error("parseStatusKB with an odd unit succeeded")
	}
}

func TestVerdicts(t *testing.T) {
	us := func(v float64) string { return FormatDuration(time.Duration(v)) }
	tests := []struct{ got, want string }{
		{verdictBelow(float64(120*time.Microsecond), float64(TargetRequestP50), us), "met"},
		{verdictBelow(float64(225*time.Microsecond), float64(TargetRequestP50), us), "missed by 75.0µs (1.50× the target)"},
		{verdictAbove(60000, TargetDirectRate, FormatRate), "met"},
		{verdictAbove(10000, TargetDirectRate, FormatRate), "missed by 40000/s (0.20× the target)"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

func TestNodeConfig(t *testing.T) {
	if err := DefaultNodeConfig().Validate(); err != nil {
		t.Errorf("default config: %v", err)
	}
	if err := DefaultNodeConfig().Quick().Validate(); err != nil {
		t.Errorf("quick config: %v", err)
	}
	bad := DefaultNodeConfig()
	bad.Batch = 0
	if err := bad.Validate(); err == nil {
		t.Error("batch 0 accepted")
	}
}

func TestNodeResultsPrint(t *testing.T) {
	res := &NodeResults{
		Config:  DefaultNodeConfig(),
		Latency: map[string]Latencies{PathEcho: {N: 10, P50: 20 * time.Microsecond, P99: 40 * time.Microsecond}, PathRequest: {N: 10, P50: 200 * time.Microsecond, P99: 400 * time.Microsecond}},
		Flows: []NodeFlow{{Path: PathEcho, Msgs: 1000, Elapsed: time.Millisecond},
			{Path: PathBurst, Msgs: 1000, Elapsed: 100 * time.Millisecond, SenderCPU: 50 * time.Microsecond, ReceiverCPU: 100 * time.Microsecond}},
		Memory: []NodeMemory{{Name: "bare", RSS: 20 << 20}, {Name: "alice's node, idle", Node: true, Idle: true, RSS: 30 << 20}},
	}
	var b strings.Builder
	res.Print(&b)
	out := b.String()
	for _, want := range []string{"10.00×", "0.01×", "1.50×", "missed by 50.0µs (1.33× the target)", "missed by 40000/s", "≤ 13333/s", "30.0 MB", "met"} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
