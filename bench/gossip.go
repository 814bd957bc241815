package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// GossipConfig says what a gossip fan-out run (command gossipbench)
// measures: a group message from one member's device until every other
// member's node has stored it, by GossipSub and through the server.
type GossipConfig struct {
	MQTTer string // path of the mqtter binary: the server, and the member nodes run as processes
	// Sizes are the group sizes measured: members with a node, besides
	// the sending member.
	Sizes Sizes
	// Procs is the largest size whose members run as `mqtter node`
	// processes; larger groups run real nodes (node.Run) in this process.
	Procs    int
	N        int           // messages timed per size and path
	Warmup   int           // messages sent first on each path and not counted
	Timeout  time.Duration // longest wait for one message to reach every member
	MeshWait time.Duration // longest wait for the group's meshes to form
	// LinkDelay, when set, puts every hop between devices and to the
	// server through a link holding each byte this long each way.
	LinkDelay time.Duration
	Keep      bool      // keep logs and data even when all went well
	Progress  io.Writer // progress lines; nil discards them
}

// DefaultGossipConfig returns the full run's settings: a few minutes on
// two cores.
func DefaultGossipConfig() GossipConfig {
	return GossipConfig{
		MQTTer: "bin/mqtter", Sizes: Sizes{5, 20, 50}, Procs: 20,
		N: 200, Warmup: 20, Timeout: 10 * time.Second, MeshWait: 60 * time.Second,
	}
}

// Quick shrinks c to a smoke test's size: fewer messages, and the groups
// of 5 and 20 (the target's) only: 50 members' meshes take most of a
// minute to form.
func (c GossipConfig) Quick() GossipConfig {
	c.Sizes, c.N, c.Warmup = Sizes{5, 20}, 30, 5
	return c
}

// Validate reports settings a run cannot use.
func (c GossipConfig) Validate() error {
	if c.N < 1 || c.Warmup < 0 || c.Procs < 0 || len(c.Sizes) == 0 {
		return fmt.Errorf("counts must be positive (n %d, warmup %d, procs %d, %d sizes)", c.N, c.Warmup, c.Procs, len(c.Sizes))
	}
	for _, s := range c.Sizes {
		if s < 1 || s > maxGossipSize {
			return fmt.Errorf("size %d: a group of 1 to %d members", s, maxGossipSize)
		}
	}
	if c.LinkDelay < 0 {
		return fmt.Errorf("link delay %v must not be negative", c.LinkDelay)
	}
	if c.Timeout <= 0 || c.MeshWait <= 0 {
		return fmt.Errorf("timeout %v and mesh wait %v must be positive", c.Timeout, c.MeshWait)
	}
	return nil
}

// maxGossipSize bounds a group size: every member is a node on this
// machine.
const maxGossipSize = 200

// Sizes is a comma-separated list of group sizes, as a flag.
type Sizes []int

func (s *Sizes) String() string {
	if s == nil {
		return ""
	}
	parts := make([]string, len(*s))
	for i, v := range *s {
		parts[i] = strconv.Itoa(v)
	}
	return strings.Join(parts, ",")
}

// Set replaces the list with the one given.
func (s *Sizes) Set(v string) error {
	var out Sizes
	for part := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n < 1 {
			return fmt.Errorf("%q is not a positive number", part)
		}
		out = append(out, n)
	}
	*s = out
	return nil
}

// The two paths a size is measured on, the rows of the report.
const (
	PathGossip     = "gossip"
	PathServerPush = "server push"
)

// GossipResults are the figures of a gossip fan-out run.
type GossipResults struct {
	Config GossipConfig
	Rows   []FanoutRow // by size, then path
	Notes  []string
	Errors []string // what kept part of the run from happening
	Load   [2]string
}

// FanoutRow is one size on one path.
type FanoutRow struct {
	Size    int
	Members string // how the members ran: "processes" or "in-process"
	Path    string
	Latency Latencies // until the last member stored the message
	// CPU per delivered message: the CPU time of every process taking
	// part (this one, the server, member processes) over the timed
	// messages, divided by messages × members.
	CPU time.Duration
	// Via counts the deliveries by how the members stored them.
	Via map[string]int
	Err string // why the row stopped early
}

// Row returns the figures of size on path, if measured.
func (res *GossipResults) Row(size int, path string) (FanoutRow, bool) {
	i := slices.IndexFunc(res.Rows, func(r FanoutRow) bool { return r.Size == size && r.Path == path })
	if i < 0 {
		return FanoutRow{}, false
	}
	return res.Rows[i], true
}

// RunGossip measures each group size in turn on a server of its own. It
// never fails on a figure: setup failures are in GossipResults.Errors,
// and whatever could be measured is still there.
func RunGossip(ctx context.Context, cfg GossipConfig) *GossipResults {
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	res := &GossipResults{Config: cfg}
	res.Load[0] = loadAverage()
	defer func() { res.Load[1] = loadAverage() }()
	dir, err := os.MkdirTemp("", "gossipbench-")
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
		return res
	}
	for _, size := range cfg.Sizes {
		if ctx.Err() != nil {
			break
		}
		sub := filepath.Join(dir, fmt.Sprintf("size-%d", size))
		if err := os.MkdirAll(sub, 0o700); err != nil {
			res.failed(fmt.Sprintf("size %d", size), err)
			continue
		}
		res.runSize(ctx, sub, size)
	}
	if cfg.Keep || len(res.Errors) > 0 {
		res.note("logs and data kept in %s", dir)
	} else {
		os.RemoveAll(dir)
	}
	return res
}

func (res *GossipResults) progress(format string, args ...any) {
	fmt.Fprintf(res.Config.Progress, "gossipbench: "+format+"\n", args...)
}

func (res *GossipResults) failed(what string, err error) {
	res.Errors = append(res.Errors, fmt.Sprintf("%s: %v", what, err))
}

func (res *GossipResults) note(format string, args ...any) {
	res.Notes = append(res.Notes, fmt.Sprintf(format, args...))
}

// runSize sets up a server, the sender's device and size member nodes in
// one group, then times the group's messages by gossip and through the
// server.
func (res *GossipResults) runSize(ctx context.Context, dir string, size int) {
	cfg := res.Config
	how := membersInProcess
	if size <= cfg.Procs {
		how = membersProcesses
	}
	res.progress("%d members (%s): starting a server, the sender's device and the members' nodes", size, how)
	start := time.Now()
	w, err := startGossipWorld(ctx, cfg, dir, size, how == membersProcesses, res.progress)
	if w != nil {
		defer func() {
			for _, msg := range w.close() {
				res.Errors = append(res.Errors, fmt.Sprintf("size %d: %s", size, msg))
			}
		}()
	}
	if err != nil {
		res.failed(fmt.Sprintf("size %d: setup", size), err)
		return
	}
	res.progress("%d members: ready in %v; %d messages a path after %d warm-up", size, time.Since(start).Round(time.Millisecond), cfg.N, cfg.Warmup)
	for _, path := range []string{PathGossip, PathServerPush} {
		row := w.measure(ctx, path, cfg.Warmup, cfg.N, cfg.Timeout)
		row.Members = how
		res.Rows = append(res.Rows, row)
		want := "gossip"
		if path == PathServerPush {
			want = "server"
		}
		for via, count := range row.Via {
			if via != want {
				res.note("%d members, %s: %d deliveries stored via %s, not %s", size, path, count, via, want)
			}
		}
	}
}

// How the members of a size run.
const (
	membersProcesses = "processes"
	membersInProcess = "in-process"
)

// Failed reports whether part of the run could not be set up.
func (res *GossipResults) Failed() bool { return len(res.Errors) > 0 }
