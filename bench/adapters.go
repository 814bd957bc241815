package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/mqtter/mqtter/adapter/devicesim"
	"github.com/mqtter/mqtter/node"
	"github.com/mqtter/mqtter/wire"
)

// AdapterConfig says what an adapter benchmark run (command adapterbench)
// measures and with which binary.
type AdapterConfig struct {
	MQTTer   string        // path of the mqtter binary: the server and the nodes
	N        int           // samples of each path
	Warmup   int           // commands first and not counted, on each path
	Timeout  time.Duration // longest wait for one sample
	Progress io.Writer     // progress lines; nil discards them
}

// DefaultAdapterConfig returns the full run's settings.
func DefaultAdapterConfig() AdapterConfig {
	return AdapterConfig{MQTTer: "bin/mqtter", N: 500, Warmup: 50, Timeout: 10 * time.Second}
}

// Quick shrinks c to a smoke test's size.
func (c AdapterConfig) Quick() AdapterConfig {
	c.N, c.Warmup = 30, 5
	return c
}

// Validate reports settings a run cannot use.
func (c AdapterConfig) Validate() error {
	if c.N < 1 || c.Warmup < 0 || c.Timeout <= 0 {
		return fmt.Errorf("want n ≥ 1, warmup ≥ 0, timeout > 0 (n %d, warmup %d, timeout %v)", c.N, c.Warmup, c.Timeout)
	}
	return nil
}

// Names of the measured adapter paths, the rows of the report.
const (
	PathAdapterNode    = "alice → lamp (a thing's node): do toggle, wait → done"
	PathAdapterTasmota = "alice → plug (Tasmota, adopted): do toggle, wait → done"
	PathAdapterZigbee  = "alice → bulb (behind Zigbee2MQTT, adopted): do toggle, wait → done"
)

// adapterPaths are the report's rows, the node-based thing first.
var adapterPaths = []struct{ path, thing string }{
	{PathAdapterNode, thingLamp}, {PathAdapterTasmota, "plug"}, {PathAdapterZigbee, "bulb"},
}

// AdapterResults are the figures of an adapter benchmark run.
type AdapterResults struct {
	Config  AdapterConfig
	Latency map[string]Latencies
	Errors  []string
	Load    [2]string
}

// RunAdapters times alice's command until its result, to a thing's node
// (examples/lamp), to a Tasmota plug adopted by the server and to a bulb
// adopted behind a Zigbee2MQTT bridge (the simulated devices of
// adapter/devicesim), one of each in turn so all see the same machine.
func RunAdapters(ctx context.Context, cfg AdapterConfig) *AdapterResults {
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	res := &AdapterResults{Config: cfg, Latency: map[string]Latencies{}}
	res.Load[0] = loadAverage()
	defer func() { res.Load[1] = loadAverage() }()
	dir, err := os.MkdirTemp("", "adapterbench-")
	if err != nil {
		res.Errors = append(res.Errors, err.Error())
		return res
	}
	defer os.RemoveAll(dir)
	if err := res.run(ctx, dir); err != nil {
		res.Errors = append(res.Errors, err.Error())
	}
	return res
}

func (res *AdapterResults) progress(format string, args ...any) {
	fmt.Fprintf(res.Config.Progress, "adapterbench: "+format+"\n", args...)
}

func (res *AdapterResults) run(ctx context.Context, dir string) error {
	cfg := res.Config
	if _, err := os.Stat(cfg.MQTTer); err != nil {
		return fmt.Errorf("mqtter binary: %w (build it: make build)", err)
	}
	res.progress("building examples/lamp; adopting the plug; starting a server, alice's and the lamp's nodes")
	lampBin, err := buildExample(ctx, dir, "lamp")
	if err != nil {
		return err
	}
	dataDir := filepath.Join(dir, "server-data")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	if err := addUsers(ctx, cfg.MQTTer, dataDir, []string{"alice"}); err != nil {
		return err
	}
	codes := map[string]string{}
	out, err := runUserAdd(ctx, cfg.MQTTer, dataDir, thingLamp, "--thing")
	if err != nil {
		return err
	}
	adopted := map[string]string{thingLamp: out}
	for _, args := range [][]string{
		{"plug", "--profile", "tasmota", "--topic", "plug"},
		{"z2m", "--profile", "zigbee2mqtt", "--topic", "zigbee2mqtt"},
		{"bulb", "--profile", "zigbee2mqtt", "--topic", "bulb", "--bridge", "z2m"},
	} {
		adopt := exec.CommandContext(ctx, cfg.MQTTer, append([]string{"thing", "adopt", args[0], "--data", dataDir}, args[1:]...)...)
		adopt.Env = append(os.Environ(), "MQTTER_PASSWORD="+benchPassword)
		out, err := adopt.CombinedOutput()
		if err != nil {
			return fmt.Errorf("thing adopt %s: %w: %s", args[0], err, out)
		}
		if args[0] != "z2m" {
			adopted[args[0]] = string(out)
		}
	}
	for name, text := range adopted {
		m := pairingLine.FindStringSubmatch(text)
		if m == nil {
			return fmt.Errorf("no pairing code for %s in %q", name, text)
		}
		codes[name] = m[1]
	}
	srv, err := serveMQTTer(ctx, cfg.MQTTer, dir, "server", dataDir)
	if err != nil {
		return err
	}
	defer srv.shutdown()
	alice, err := startNodeProc(ctx, cfg.MQTTer, dir, "alice", srv.url())
	if err != nil {
		return err
	}
	defer alice.shutdown()
	lamp, err := startNodeProc(ctx, cfg.MQTTer, dir, thingLamp, srv.url(), "--thing-handler", lampBin)
	if err != nil {
		return err
	}
	defer lamp.shutdown()
	for _, n := range []*nodeProc{alice, lamp} {
		if err := n.waitReady(ctx); err != nil {
			return err
		}
	}
	for name, code := range codes {
		if err := alice.api.Call(ctx, wire.MethodBindThing, wire.BindThingReq{Thing: name, Code: code}, nil); err != nil {
			return fmt.Errorf("alice bind_thing %s: %w", name, err)
		}
	}
	plug, err := devicesim.StartPlug(devicesim.PlugConfig{Broker: srv.url(), User: "plug", Password: benchPassword,
		ClientID: "DVES_BENCH1", Topic: "plug", QoS: 1})
	if err != nil {
		return err
	}
	defer plug.Close()
	bridge, err := devicesim.StartBridge(devicesim.BridgeConfig{Broker: srv.url(), User: "z2m", Password: benchPassword,
		ClientID: "z2m-bench", Bulb: "bulb"})
	if err != nil {
		return err
	}
	defer bridge.Close()
	if err := waitFor(ctx, thingSetupWait, "alice's node knows the lamp's device", func(ctx context.Context) (bool, string) {
		return alice.knows(ctx, lamp.id.String())
	}); err != nil {
		return err
	}
	if err := waitThing(ctx, lamp, func(st *node.ThingStatus) bool {
		return st.Program == node.ProgramRunning && st.Description >= 1
	}, "its program runs and it has its description"); err != nil {
		return err
	}
	for _, name := range []string{"plug", "bulb"} {
		if err := waitFor(ctx, thingSetupWait, "the "+name+"'s description", func(ctx context.Context) (bool, string) {
			_, err := alice.api.Describe(ctx, name)
			return err == nil, fmt.Sprint(err)
		}); err != nil {
			return err
		}
	}

	res.progress("commands to the lamp, the plug and the bulb, in turn: %d samples each after %d warm-up", cfg.N, cfg.Warmup)
	samples := map[string][]time.Duration{}
	for i := range cfg.Warmup + cfg.N {
		for _, p := range adapterPaths {
			start := time.Now()
			if _, err := doDone(ctx, alice.api, p.thing, lampAction, cfg.Timeout); err != nil {
				res.keep(samples)
				return fmt.Errorf("%s, command %d: %w", p.path, i, err)
			}
			if i >= cfg.Warmup {
				samples[p.path] = append(samples[p.path], time.Since(start))
			}
		}
	}
	res.keep(samples)
	return nil
}

func (res *AdapterResults) keep(samples map[string][]time.Duration) {
	for path, s := range samples {
		res.Latency[path] = Summarize(s)
	}
}

// Print writes the figures as a table, then the problems.
func (res *AdapterResults) Print(w io.Writer) {
	cfg := res.Config
	printHeader(w, "adapter", "all on 127.0.0.1", res.Load)
	if len(res.Latency) > 0 {
		fmt.Fprintf(w, "\nCommand → result, one at a time, the paths in turn (n=%d after %d warm-up)\n", cfg.N, cfg.Warmup)
		tw := newTable(w)
		fmt.Fprintln(tw, "  path\tp50\tp90\tp99\tmean\tmax\tn\tp50/node\t")
		base := res.Latency[PathAdapterNode]
		for _, p := range adapterPaths {
			path := p.path
			l, ok := res.Latency[path]
			if !ok {
				continue
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t\n", path,
				cell(l.N, FormatDuration(l.P50)), cell(l.N, FormatDuration(l.P90)), cell(l.N, FormatDuration(l.P99)),
				cell(l.N, FormatDuration(l.Mean)), cell(l.N, FormatDuration(l.Max)), l.N, FormatRatio(float64(l.P50), float64(base.P50)))
		}
		tw.Flush()
		fmt.Fprintln(w, "  measured: from alice's API call (do, wait) until it returns done. The lamp: alice's node")
		fmt.Fprintln(w, "  sends the command directly to the lamp's node, whose program answers. The plug: alice's node")
		fmt.Fprintln(w, "  sends it through the server, whose Tasmota adapter publishes cmnd/plug/POWER to the simulated")
		fmt.Fprintln(w, "  plug and turns its stat/plug/RESULT into the result, stored and pushed back to alice. The bulb:")
		fmt.Fprintln(w, "  the same through the Zigbee2MQTT adapter, zigbee2mqtt/bulb/set to the simulated bridge, whose")
		fmt.Fprintln(w, "  next zigbee2mqtt/bulb state is the result.")
	}
	printList(w, "Could not measure", res.Errors)
}

// Failed reports whether part of the run could not be set up.
func (res *AdapterResults) Failed() bool { return len(res.Errors) > 0 }
