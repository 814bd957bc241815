package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"time"
)

// Names of the brokers in the results.
const (
	MQTTer    = "mqtter"
	Mosquitto = "mosquitto"
	BareMochi = "bare mochi"
)

// Results is everything a run measured, and what went wrong.
type Results struct {
	Config     Config
	Latency    map[string]Latencies // by broker
	LatencyErr map[string]string    // by broker: why the latency run stopped early
	Flows      []FlowRow            // one per publisher count
	RSS        []RSSResult
	Notes      []string  // things to know when reading the figures
	Problems   []string  // what a broker did against PROTOCOL.md
	Errors     []string  // what kept part of the run from happening
	Load       [2]string // /proc/loadavg's 1-minute load at the start and the end
}

// A FlowRow is one publisher count's throughput, by broker.
type FlowRow struct {
	Publishers int
	By         map[string]FlowResult
}

// Run measures what cfg asks for and returns the figures. It never fails on
// a figure: setup failures are in Results.Errors, and whatever could be
// measured is still there.
func Run(ctx context.Context, cfg Config) *Results {
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	res := &Results{Config: cfg, Latency: map[string]Latencies{}, LatencyErr: map[string]string{}}
	res.Load[0] = loadAverage()
	defer func() { res.Load[1] = loadAverage() }()
	dir, err := os.MkdirTemp("", "mqbench-")
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
		return res
	}
	if cfg.wants(PhaseLatency) || cfg.wants(PhaseThroughput) {
		res.runRelay(ctx, dir)
	}
	if cfg.wants(PhaseRSS) {
		res.runRSS(ctx, dir)
	}
	if cfg.Keep || res.troubled() {
		res.Notes = append(res.Notes, "broker logs and data kept in "+dir)
	} else {
		os.RemoveAll(dir)
	}
	return res
}

// troubled reports whether anything went wrong that the brokers' logs may
// explain: then Run keeps them.
func (res *Results) troubled() bool {
	if len(res.Errors) > 0 || len(res.Problems) > 0 || len(res.LatencyErr) > 0 {
		return true
	}
	for _, row := range res.Flows {
		for _, r := range row.By {
			if flowDetail(r) != "" || r.Lost() != 0 {
				return true
			}
		}
	}
	return false
}

func (res *Results) progress(format string, args ...any) {
	fmt.Fprintf(res.Config.Progress, "mqbench: "+format+"\n", args...)
}

// note adds a note once, and shows it as progress.
func (res *Results) note(msg string) {
	if !slices.Contains(res.Notes, msg) {
		res.Notes = append(res.Notes, msg)
		res.progress("%s", msg)
	}
}

func (res *Results) failed(what string, err error) {
	res.Errors = append(res.Errors, what+": "+err.Error())
	res.progress("%s: %v", what, err)
}

// runRelay measures latency and throughput through each broker in turn.
func (res *Results) runRelay(ctx context.Context, dir string) {
	cfg := res.Config
	links := 1
	if cfg.wants(PhaseThroughput) {
		links = max(links, slices.Max(cfg.Pubs))
	}
	var targets []*target
	defer func() {
		for _, t := range targets {
			if msg := t.close(); msg != "" {
				res.Problems = append(res.Problems, msg)
			}
		}
	}()
	if t := res.mosquittoTarget(ctx, dir, links); t != nil {
		targets = append(targets, t)
	}
	res.progress("mqtter: creating %d accounts and %d friendships", 2*links, links)
	if t, err := newIMTarget(ctx, cfg.MQTTer, dir, links); err != nil {
		res.failed(MQTTer, err)
	} else {
		targets = append(targets, t)
	}

	run := 0
	if cfg.wants(PhaseLatency) {
		for _, t := range targets {
			run++
			res.progress("%s: latency, %d messages one at a time", t.name, cfg.N)
			samples, err := measureLatency(ctx, t.links[0], run, cfg.Warmup, cfg.N, 10*time.Second)
			res.Latency[t.name] = Summarize(samples)
			if err != nil {
				res.LatencyErr[t.name] = err.Error()
			}
		}
	}
	if cfg.wants(PhaseThroughput) {
		for _, pubs := range cfg.Pubs {
			row := FlowRow{Publishers: pubs, By: map[string]FlowResult{}}
			for _, t := range targets {
				run++
				res.progress("%s: throughput, %d publishers × %d messages", t.name, pubs, cfg.Msgs)
				cpu := t.broker.cpuTime()
				r := measureThroughput(ctx, t.links[:pubs], run, cfg.Msgs, cfg.Window, cfg.Stall)
				r.BrokerCPU = t.broker.cpuTime() - cpu
				row.By[t.name] = r
			}
			res.Flows = append(res.Flows, row)
		}
	}
	for _, t := range targets {
		for _, l := range t.links {
			res.Problems = append(res.Problems, l.takeViolations()...)
		}
	}
}

// mosquittoTarget starts Mosquitto with links for the relay phases, or
// notes why not and returns nil.
func (res *Results) mosquittoTarget(ctx context.Context, dir string, links int) *target {
	if res.Config.SkipMosquitto {
		return nil
	}
	bin, err := findMosquitto(res.Config.Mosquitto)
	if err != nil {
		res.note(err.Error() + "; its columns are empty")
		return nil
	}
	t, err := newPubSubTarget(ctx, bin, dir, links)
	if err != nil {
		res.failed(Mosquitto, err)
		return nil
	}
	return t
}

// Failed reports whether part of the run could not be set up.
func (res *Results) Failed() bool { return len(res.Errors) > 0 }
