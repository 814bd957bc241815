package bench

import (
	"fmt"
	"io"
	"runtime"
	"time"
)

// Targets of the node benchmark: reported against, never asserted.
const (
	TargetRequestP50 = 150 * time.Microsecond // direct send → durable at the peer → answered
	TargetDirectRate = 50000                  // msgs/s between two nodes, stored on both sides
	TargetIdleRSS    = 40 << 20               // bytes, an idle node
)

// nodeLatencyRows are the latency paths in report order, with what each
// measures.
var nodeLatencyRows = []struct{ path, what string }{
	{PathEcho, "a frame of the same size written on a raw libp2p stream to barehost, until its echo is read back"},
	{PathRequest, "p2p.Request of a signed message (signed beforehand) from the bench's own device of alice to bob's node " +
		"process, whose real handler verifies it, stores it in SQLite and answers; until the answer is read"},
	{PathAPIStored, "POST /v1/send on alice's node (sign, outbox, direct delivery) until bob's event stream (SSE) shows it stored; " +
		"includes the local API's HTTP and SSE"},
	{PathAPIAnswer, "the same, until alice's event stream shows the receipt: bob's answer is back"},
	{PathRelay, "the same from carol's node to dave's (a group of two, never connected directly): through the server, " +
		"until dave's event stream shows it stored"},
}

// Print writes the results as readable tables, each figure beside the raw
// echo's, then the targets, notes and problems.
func (res *NodeResults) Print(w io.Writer) {
	cfg := res.Config
	printHeader(w, "node", "all on 127.0.0.1 (libp2p TCP, Noise, yamux; MQTT to the server)", res.Load)
	if res.Frame > 0 {
		fmt.Fprintf(w, "a direct message frame is %d bytes (a signed text message of about 70 characters)\n", res.Frame)
	}
	echo := res.Latency[PathEcho]
	if len(res.Latency) > 0 {
		fmt.Fprintf(w, "\nLatency, one message at a time (n=%d after %d warm-up)\n", cfg.N, cfg.Warmup)
		tw := newTable(w)
		fmt.Fprintln(tw, "  path\tp50\tp90\tp99\tmax\tp50/echo\tp99/echo\t")
		for _, row := range nodeLatencyRows {
			l, ok := res.Latency[row.path]
			if !ok {
				continue
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", row.path,
				cell(l.N, FormatDuration(l.P50)), cell(l.N, FormatDuration(l.P90)), cell(l.N, FormatDuration(l.P99)), cell(l.N, FormatDuration(l.Max)),
				FormatRatio(float64(l.P50), float64(echo.P50)), FormatRatio(float64(l.P99), float64(echo.P99)))
		}
		tw.Flush()
		fmt.Fprintln(w, "  measured:")
		for _, row := range nodeLatencyRows {
			if _, ok := res.Latency[row.path]; ok {
				fmt.Fprintf(w, "    %s: %s\n", row.path, row.what)
			}
		}
		for _, row := range nodeLatencyRows {
			if e := res.LatencyErr[row.path]; e != "" {
				fmt.Fprintf(w, "  %s stopped early: %s\n", row.path, e)
			}
		}
	}
	if len(res.Flows) > 0 {
		res.printFlows(w)
	}
	if len(res.Memory) > 0 {
		res.printMemory(w)
	}
	res.printTargets(w)
	printList(w, "Notes", res.Notes)
	printList(w, "Could not measure", res.Errors)
}

func (res *NodeResults) printFlows(w io.Writer) {
	var echo float64
	for _, f := range res.Flows {
		if f.Path == PathEcho {
			echo = f.Rate()
		}
	}
	fmt.Fprintf(w, "\nThroughput: every message stored on both sides before it counts (echo: echoed)\n")
	tw := newTable(w)
	fmt.Fprintln(tw, "  path\tmessages\ttime\tmsgs/s\tvs echo\tCPU/msg sender\tCPU/msg receiver\t")
	for _, f := range res.Flows {
		rate := "-"
		if f.Msgs > 0 {
			rate = FormatRate(f.Rate())
		}
		fmt.Fprintf(tw, "  %s\t%d\t%s\t%s\t%s\t%s\t%s\t\n", f.Path, f.Msgs, FormatDuration(f.Elapsed), rate,
			FormatRatio(f.Rate(), echo), cpuCell(f.SenderCPU), cpuCell(f.ReceiverCPU))
	}
	tw.Flush()
	fmt.Fprintln(w, "  measured:")
	for _, f := range res.Flows {
		fmt.Fprintf(w, "    %s: %s\n", f.Path, f.How)
	}
	for _, f := range res.Flows {
		if f.Err != "" {
			fmt.Fprintf(w, "  %s stopped early: %s\n", f.Path, f.Err)
		}
	}
	fmt.Fprintf(w, "  CPU/msg is the CPU time (all threads) of the sending and the receiving process over the run, per message;\n"+
		"  the bench process is the sender of the first two rows, a node process of the last two (the bench's HTTP client not counted)\n")
}

func (res *NodeResults) printMemory(w io.Writer) {
	var bare int64
	for _, m := range res.Memory {
		if !m.Node {
			bare = m.RSS
		}
	}
	fmt.Fprintf(w, "\nMemory: VmRSS (now) and VmHWM (peak) from /proc, idle figures read %v after setup\n", res.Config.Settle)
	tw := newTable(w)
	fmt.Fprintln(tw, "  process\tVmRSS\tVmHWM\tRSS vs bare host\t")
	for _, m := range res.Memory {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t\n", m.Name, FormatMB(m.RSS), FormatMB(m.HWM), FormatRatio(float64(m.RSS), float64(bare)))
	}
	tw.Flush()
	for _, m := range res.Memory {
		if m.Err != "" {
			fmt.Fprintf(w, "  %s: %s\n", m.Name, m.Err)
		}
	}
}

// idleRSS is the largest idle node's VmRSS, 0 if none was read.
func (res *NodeResults) idleRSS() (int64, string) {
	var most int64
	var name string
	for _, m := range res.Memory {
		if m.Node && m.Idle && m.Err == "" && m.RSS > most {
			most, name = m.RSS, m.Name
		}
	}
	return most, name
}

func (res *NodeResults) printTargets(w io.Writer) {
	fmt.Fprintf(w, "\nTargets (reported, never asserted)\n")
	tw := newTable(w)
	if l, ok := res.Latency[PathRequest]; ok && l.N > 0 {
		fmt.Fprintf(tw, "  direct send → durable at the peer → answered, p50 ≤ %s\t%s\t%s\t\n", FormatDuration(TargetRequestP50),
			FormatDuration(l.P50), verdictBelow(float64(l.P50), float64(TargetRequestP50), func(v float64) string { return FormatDuration(time.Duration(v)) }))
	}
	for _, f := range res.Flows {
		if f.Path != PathBurst || f.Msgs == 0 {
			continue
		}
		fmt.Fprintf(tw, "  ≥ %d msgs/s between two nodes, stored on both sides\t%s\t%s\t\n", TargetDirectRate, FormatRate(f.Rate()),
			verdictAbove(f.Rate(), TargetDirectRate, FormatRate))
		if cpu := f.SenderCPU + f.ReceiverCPU; cpu > 0 {
			bound := float64(runtime.NumCPU()) / cpu.Seconds()
			fmt.Fprintf(tw, "    CPU bound: %s sender + %s receiver per message on %d cores\t%s\t\t\n",
				FormatDuration(f.SenderCPU), FormatDuration(f.ReceiverCPU), runtime.NumCPU(), "≤ "+FormatRate(bound))
		}
	}
	if rss, name := res.idleRSS(); rss > 0 {
		fmt.Fprintf(tw, "  idle node RSS ≤ %s (%s, the largest)\t%s\t%s\t\n", FormatMB(TargetIdleRSS), name, FormatMB(rss),
			verdictBelow(float64(rss), TargetIdleRSS, func(v float64) string { return FormatMB(int64(v)) }))
	}
	tw.Flush()
}

// verdictBelow says whether got is within a ceiling, or by how much not.
func verdictBelow(got, ceiling float64, format func(float64) string) string {
	if got <= ceiling {
		return "met"
	}
	return fmt.Sprintf("missed by %s (%.2f× the target)", format(got-ceiling), got/ceiling)
}

// verdictAbove says whether got reaches a floor, or by how much not.
func verdictAbove(got, floor float64, format func(float64) string) string {
	if got >= floor {
		return "met"
	}
	return fmt.Sprintf("missed by %s (%.2f× the target)", format(floor-got), got/floor)
}
