package bench

import (
	"fmt"
	"io"
	"time"
)

// Targets of the thing benchmark (issue 10): reported against, never
// asserted.
const (
	TargetCommandPerMessage = 2.0 // direct command p50 / direct message round trip p50
	TargetHopPerMessage     = 1.0 // added latency per chain hop / direct message round trip p50
)

// thingLatencyRows are the thing paths in report order, with what each
// measures.
var thingLatencyRows = []struct{ path, what string }{
	{PathThingStored, "POST /v1/send of a text on alice's node, until the lamp's node's event stream shows it stored"},
	{PathThingMessage, "the same, until alice's event stream shows the receipt (the lamp's node stored it and answered): the baseline"},
	{PathThingAlone, "POST /v1/things/lamp/do with wait on alice's node, until it answers done: the command goes directly, " +
		"the lamp's node hands it to examples/lamp, whose state and result go as feedback to each of the lamp's people and things " +
		"in turn: here alice and door"},
	{PathThingCommand, "the same once carol is bound to the lamp too (her feedback goes through the server): the world of the targets"},
	{PathThingRelayed, "carol, a plain MQTT client with no node, sends an unsigned command (im://modulus/send) to the lamp, " +
		"until the lamp's result reaches her as a news push: both ways through the server"},
	{PathThingChain, "POST /v1/things/door/do open on alice's node, until alice's event stream shows the lamp's result in the " +
		"command's chain: door runs it, reports opened, its node fires alice's rule, the lamp runs toggle and reports to alice"},
	{PathThingDoorDone, "do close with wait on the door, run before each chain sample (outside its time)"},
}

// hop returns the added latency of one chain hop: chain p50 − direct
// command p50, and whether both were measured.
func (res *ThingResults) hop() (time.Duration, bool) {
	chain, cmd := res.Latency[PathThingChain], res.Latency[PathThingCommand]
	if chain.N == 0 || cmd.N == 0 {
		return 0, false
	}
	return chain.P50 - cmd.P50, true
}

// Print writes the figures as a table, then the two targets, notes and
// problems.
func (res *ThingResults) Print(w io.Writer) {
	cfg := res.Config
	where := withLinks("all on 127.0.0.1 (libp2p between nodes; MQTT to the server)", cfg.LinkDelay)
	printHeader(w, "thing", where, res.Load)
	if len(res.Latency) > 0 {
		fmt.Fprintf(w, "\nLatency, one at a time (n=%d after %d warm-up; chain n=%d after %d)\n", cfg.N, cfg.Warmup, cfg.ChainN, cfg.ChainWarmup)
		tw := newTable(w)
		fmt.Fprintln(tw, "  path\tp50\tp90\tp99\tmean\tmax\tn\tp50/message\t")
		base := res.Latency[PathThingMessage]
		for _, row := range thingLatencyRows {
			l, ok := res.Latency[row.path]
			if !ok {
				continue
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t\n", row.path,
				cell(l.N, FormatDuration(l.P50)), cell(l.N, FormatDuration(l.P90)), cell(l.N, FormatDuration(l.P99)),
				cell(l.N, FormatDuration(l.Mean)), cell(l.N, FormatDuration(l.Max)), l.N, FormatRatio(float64(l.P50), float64(base.P50)))
		}
		if hop, ok := res.hop(); ok {
			fmt.Fprintf(tw, "  added latency per chain hop: chain p50 − direct command p50\t%s\t\t\t\t\t\t%s\t\n",
				signedDuration(hop), FormatRatio(float64(hop), float64(base.P50)))
		}
		tw.Flush()
		fmt.Fprintln(w, "  measured:")
		for _, row := range thingLatencyRows {
			if _, ok := res.Latency[row.path]; ok {
				fmt.Fprintf(w, "    %s: %s\n", row.path, row.what)
			}
		}
		for _, row := range thingLatencyRows {
			if e := res.LatencyErr[row.path]; e != "" {
				fmt.Fprintf(w, "  %s stopped early: %s\n", row.path, e)
			}
		}
	}
	res.printTargets(w)
	printList(w, "Notes", res.Notes)
	printList(w, "Could not measure", res.Errors)
}

func (res *ThingResults) printTargets(w io.Writer) {
	base := res.Latency[PathThingMessage]
	if base.N == 0 {
		return
	}
	fmt.Fprintf(w, "\nTargets (issue 10; reported, never asserted)\n")
	tw := newTable(w)
	ratio := func(v float64) string { return fmt.Sprintf("%.2f×", v) }
	if cmd := res.Latency[PathThingCommand]; cmd.N > 0 {
		r := float64(cmd.P50) / float64(base.P50)
		fmt.Fprintf(tw, "  direct command p50 / direct message p50 ≤ %.0f×\t%s / %s\t%s\t%s\t\n", TargetCommandPerMessage,
			FormatDuration(cmd.P50), FormatDuration(base.P50), ratio(r), verdictBelow(r, TargetCommandPerMessage, ratio))
	}
	if hop, ok := res.hop(); ok {
		r := float64(hop) / float64(base.P50)
		fmt.Fprintf(tw, "  added latency per chain hop / direct message p50 ≤ %.0f×\t%s / %s\t%s\t%s\t\n", TargetHopPerMessage,
			signedDuration(hop), FormatDuration(base.P50), ratio(r), verdictBelow(r, TargetHopPerMessage, ratio))
	}
	tw.Flush()
}

// signedDuration is FormatDuration that keeps a minus sign.
func signedDuration(d time.Duration) string {
	if d < 0 {
		return "−" + FormatDuration(-d)
	}
	return FormatDuration(d)
}
