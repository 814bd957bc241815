package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"
)

// Print writes the results as readable tables, then notes and problems;
// a skipped run is one line.
func (res *RelayResults) Print(w io.Writer) {
	if res.Skipped != "" {
		fmt.Fprintf(w, "relaybench skipped: %s\n", res.Skipped)
		return
	}
	cfg := res.Config
	printHeader(w, "relay", "in network namespaces: two private networks behind NAT routers, the server on a public segment", res.Load)
	if len(res.Rounds) > 0 {
		res.printRounds(w)
	}
	if len(res.Latency) > 0 {
		fmt.Fprintf(w, "\nLatency, one message at a time, API send → stored at the peer (n=%d after %d warm-up)\n", cfg.N, cfg.Warmup)
		tw := newTable(w)
		fmt.Fprintln(tw, "  path\tp50\tp90\tp99\tmax\tarrived via\t")
		for _, row := range relayPaths {
			l, ok := res.Latency[row.path]
			if !ok {
				continue
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t\n", row.path,
				cell(l.N, FormatDuration(l.P50)), cell(l.N, FormatDuration(l.P90)), cell(l.N, FormatDuration(l.P99)),
				cell(l.N, FormatDuration(l.Max)), formatVia(res.Via[row.path]))
		}
		tw.Flush()
		fmt.Fprintln(w, "  measured: POST /v1/send on alice's node until bob's event stream (SSE) shows it stored; includes the local API's HTTP and SSE")
		for _, row := range relayPaths {
			if _, ok := res.Latency[row.path]; ok {
				fmt.Fprintf(w, "    %s: %s\n", row.path, row.what)
			}
		}
		for _, row := range relayPaths {
			if e := res.LatencyErr[row.path]; e != "" {
				fmt.Fprintf(w, "  %s stopped early: %s\n", row.path, e)
			}
		}
	}
	printList(w, "Notes", res.Notes)
	printList(w, "Could not measure", res.Errors)
}

func (res *RelayResults) printRounds(w io.Writer) {
	fmt.Fprintf(w, "\nFrom both nodes online (friends, relay slots held) to the first message relayed, and to the first direct one\n")
	tw := newTable(w)
	fmt.Fprintln(tw, "  round\tlistening on\tready\tfirst message stored\tfirst direct message stored\tmessages before it\tdirect connection\t")
	for _, listen := range []string{"tcp+quic", "tcp"} {
		res.printRoundsOn(tw, listen)
	}
	tw.Flush()
	fmt.Fprintf(w, "  ready: from the nodes' start until both held a relay slot\n")
	fmt.Fprintf(w, "  one message every %v once the previous one is stored; each round in a fresh network and fresh processes\n", res.Config.Pace)
}

// printRoundsOn writes the rounds that listened on listen, with their
// medians when there are several.
func (res *RelayResults) printRoundsOn(tw io.Writer, listen string) {
	var ready, relayed, direct []time.Duration
	rounds := 0
	for i, r := range res.Rounds {
		if r.Listen != listen {
			continue
		}
		rounds++
		ready = append(ready, r.Ready)
		first, upgrade := "-", "-"
		if r.FirstVia != "" {
			first = FormatDuration(r.ToRelayed) + " (" + r.FirstVia + ")"
			if r.FirstVia == "relayed" {
				relayed = append(relayed, r.ToRelayed)
			}
		}
		if r.ToDirect > 0 {
			upgrade = FormatDuration(r.ToDirect)
			direct = append(direct, r.ToDirect)
		}
		conns := strings.Join(r.Conns, " ")
		if r.Err != "" {
			conns = "failed: " + r.Err
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\t\n", i+1, listen, FormatDuration(r.Ready), first, upgrade, formatVia(r.Before), conns)
	}
	if rounds > 1 {
		fmt.Fprintf(tw, "  median\t%s\t%s\t%s\t%s\t\t\t\n", listen, medianCell(ready), medianCell(relayed), medianCell(direct))
	}
}

func medianCell(d []time.Duration) string {
	if len(d) == 0 {
		return "-"
	}
	return FormatDuration(Summarize(slices.Clone(d)).P50)
}

// formatVia writes counts by path, sorted: "relayed 12, server 1".
func formatVia(via map[string]int) string {
	if len(via) == 0 {
		return "-"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(via)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, via[k]))
	}
	return strings.Join(parts, ", ")
}
