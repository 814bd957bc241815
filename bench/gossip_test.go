package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// A message is done when every member stored it once: a member's second
// event neither counts nor moves the time of the last, and a message
// short of a member times out saying how many had it.
func TestFanoutWait(t *testing.T) {
	f := newFanout(3)
	t0 := time.Now()
	f.stored("a", 0, "gossip", t0)
	f.stored("a", 1, "gossip", t0.Add(time.Millisecond))
	f.stored("a", 1, "server", t0.Add(5*time.Millisecond)) // member 1 again
	if _, err := f.wait(t.Context(), "a", 20*time.Millisecond); err == nil || !strings.Contains(err.Error(), "2 of 3") {
		t.Fatalf("two of three members: %v", err)
	}
	f.stored("b", 2, "server", t0.Add(3*time.Millisecond))
	f.stored("b", 0, "gossip", t0)
	go f.stored("b", 1, "gossip", t0.Add(2*time.Millisecond))
	s, err := f.wait(t.Context(), "b", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if s.via["gossip"] != 2 || s.via["server"] != 1 || len(s.got) != 3 {
		t.Errorf("b: %+v", s)
	}
	if !s.last.Equal(t0.Add(2 * time.Millisecond)) {
		t.Errorf("b's last = %v, want the last event's time %v", s.last.Sub(t0), 2*time.Millisecond)
	}
	if len(f.at) != 0 {
		t.Errorf("messages kept after their wait: %v", f.at)
	}
}

func TestSizesFlag(t *testing.T) {
	var s Sizes
	if err := s.Set("5, 20,50"); err != nil || s.String() != "5,20,50" {
		t.Errorf("Set: %v %q", err, s.String())
	}
	for _, bad := range []string{"", "5,,20", "x", "-1", "0"} {
		before := s.String()
		if err := s.Set(bad); err == nil || s.String() != before {
			t.Errorf("Set(%q) = %v, list now %q", bad, err, s.String())
		}
	}
}

// The target's verdict compares the p50s of the 20-member rows, and says
// when they were not measured.
func TestGossipTarget(t *testing.T) {
	row := func(path string, p50 time.Duration) FanoutRow {
		return FanoutRow{Size: TargetGossipSize, Members: membersProcesses, Path: path, Latency: Latencies{N: 10, P50: p50, P99: 2 * p50}}
	}
	for _, tt := range []struct {
		name string
		rows []FanoutRow
		want string
	}{
		{"faster", []FanoutRow{row(PathGossip, 5*time.Millisecond), row(PathServerPush, 9*time.Millisecond)}, "server push does: met (p50 5.00ms"},
		{"as fast", []FanoutRow{row(PathGossip, 9*time.Millisecond), row(PathServerPush, 9*time.Millisecond)}, "does: missed"},
		{"slower", []FanoutRow{row(PathGossip, 12*time.Millisecond), row(PathServerPush, 9*time.Millisecond)}, "does: missed (p50 12.0ms"},
		{"one path", []FanoutRow{row(PathGossip, 5*time.Millisecond)}, "not measured"},
		{"none", nil, "not measured"},
	} {
		res := &GossipResults{Config: DefaultGossipConfig(), Rows: tt.rows}
		var out bytes.Buffer
		res.Print(&out)
		if !strings.Contains(out.String(), tt.want) {
			t.Errorf("%s: no %q in\n%s", tt.name, tt.want, out.String())
		}
	}
}
