package bench

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// Phases a run can be limited to.
const (
	PhaseLatency    = "latency"
	PhaseThroughput = "throughput"
	PhaseRSS        = "rss"
)

// Config says what a run measures and with which programs.
type Config struct {
	MQTTer        string        // path of the mqtter binary
	BareMochi     string        // path of a built bench/cmd/baremochi; built into a temp dir when missing
	Mosquitto     string        // path of mosquitto; "" looks on PATH and in /usr/sbin
	SkipMosquitto bool          // measure without Mosquitto
	N             int           // latency samples
	Warmup        int           // latency messages sent first and not counted
	Msgs          int           // messages per publisher in a throughput run
	Pubs          []int         // publisher counts, one throughput run each
	Window        int           // messages a publisher may have sent but not yet received
	Idle          int           // idle connections for the memory figure
	Settle        time.Duration // wait before reading memory
	Stall         time.Duration // a run stops when nothing arrives for this long
	Phases        []string      // PhaseLatency, PhaseThroughput, PhaseRSS; empty means all
	Keep          bool          // keep the brokers' logs and data even when all went well
	Progress      io.Writer     // progress lines; nil discards them
}

// DefaultConfig returns the full run's settings.
func DefaultConfig() Config {
	return Config{
		MQTTer: "bin/mqtter", BareMochi: "bin/baremochi",
		N: 5000, Warmup: 200, Msgs: 2000, Pubs: []int{1, 10, 100}, Window: 64,
		Idle: 1000, Settle: 3 * time.Second, Stall: 15 * time.Second,
	}
}

// Quick shrinks c to a smoke test's size: seconds, not minutes.
func (c Config) Quick() Config {
	c.N, c.Warmup, c.Msgs, c.Pubs, c.Idle, c.Settle = 200, 20, 100, []int{1, 10}, 100, time.Second
	return c
}

// wants reports whether the run includes phase.
func (c Config) wants(phase string) bool {
	return len(c.Phases) == 0 || slices.Contains(c.Phases, phase)
}

// Validate reports settings a run cannot use.
func (c Config) Validate() error {
	for _, p := range c.Phases {
		if p != PhaseLatency && p != PhaseThroughput && p != PhaseRSS {
			return fmt.Errorf("unknown phase %q (want latency, throughput or rss)", p)
		}
	}
	for _, p := range c.Pubs {
		if p < 1 {
			return fmt.Errorf("publisher count %d: must be at least 1", p)
		}
	}
	switch {
	case c.N < 1 || c.Warmup < 0 || c.Msgs < 1 || c.Window < 1 || c.Idle < 1:
		return fmt.Errorf("counts must be positive (n %d, warmup %d, msgs %d, window %d, idle %d)", c.N, c.Warmup, c.Msgs, c.Window, c.Idle)
	case c.wants(PhaseThroughput) && len(c.Pubs) == 0:
		return fmt.Errorf("no publisher counts")
	}
	return nil
}
