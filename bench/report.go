package bench

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// Print writes the results as readable tables: MQTTER beside Mosquitto with
// their ratio, then memory beside bare mochi, then notes and problems.
func (res *Results) Print(w io.Writer) {
	cfg := res.Config
	printHeader(w, "server", "loopback, paho MQTT 3.1.1, QoS 1", res.Load)
	if len(res.Latency) > 0 {
		fmt.Fprintf(w, "\nRelay latency: one sender, one receiver, next send after the last arrived (n=%d, after %d warm-up)\n", cfg.N, cfg.Warmup)
		tw := newTable(w)
		fmt.Fprintln(tw, "\tmqtter send→push\tmosquitto pub→sub\tmqtter/mosquitto\t")
		ours, theirs := res.Latency[MQTTer], res.Latency[Mosquitto]
		for _, row := range []struct {
			name string
			a, b time.Duration
		}{{"p50", ours.P50, theirs.P50}, {"p90", ours.P90, theirs.P90}, {"p99", ours.P99, theirs.P99}, {"max", ours.Max, theirs.Max}} {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t\n", row.name, cell(ours.N, FormatDuration(row.a)), cell(theirs.N, FormatDuration(row.b)),
				FormatRatio(float64(row.a), float64(row.b)))
		}
		fmt.Fprintf(tw, "  samples\t%d\t%d\t\t\n", ours.N, theirs.N)
		tw.Flush()
		for _, name := range []string{MQTTer, Mosquitto} {
			if e := res.LatencyErr[name]; e != "" {
				fmt.Fprintf(w, "  %s stopped early: %s\n", name, e)
			}
		}
	}
	if len(res.Flows) > 0 {
		fmt.Fprintf(w, "\nThroughput: each publisher to its own receiver, %d messages each, at most %d unreceived per publisher\n", cfg.Msgs, cfg.Window)
		tw := newTable(w)
		fmt.Fprintln(tw, "  publishers\tmqtter\tmosquitto\tmqtter/mosquitto\tmqtter lost\tmqtter SeqIds\tmosquitto lost\tbroker CPU/msg mqtter, mosquitto\t")
		for _, row := range res.Flows {
			ours, okOurs := row.By[MQTTer]
			theirs, okTheirs := row.By[Mosquitto]
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\t%s, %s\t\n", row.Publishers,
				flowRate(ours, okOurs), flowRate(theirs, okTheirs), FormatRatio(ours.Rate(), theirs.Rate()),
				flowLoss(ours, okOurs), seqCell(ours, okOurs), flowLoss(theirs, okTheirs),
				cpuCell(ours.CPUPerMsg()), cpuCell(theirs.CPUPerMsg()))
		}
		tw.Flush()
		for _, row := range res.Flows {
			for _, name := range []string{MQTTer, Mosquitto} {
				if r, ok := row.By[name]; ok {
					if d := flowDetail(r); d != "" {
						fmt.Fprintf(w, "  %s, %d publishers: %s\n", name, row.Publishers, d)
					}
				}
			}
		}
	}
	if len(res.RSS) > 0 {
		res.printRSS(w)
	}
	printList(w, "Notes", res.Notes)
	printList(w, "Protocol problems seen", res.Problems)
	printList(w, "Could not measure", res.Errors)
}

func (res *Results) printRSS(w io.Writer) {
	var bare int64
	for _, r := range res.RSS {
		if r.Broker == BareMochi {
			bare = r.With
		}
	}
	fmt.Fprintf(w, "\nResident memory (VmRSS) with %d idle connections, read after %v\n", res.Config.Idle, res.Config.Settle)
	tw := newTable(w)
	fmt.Fprintln(tw, "  broker\tno clients\twith clients\tratio to bare mochi\tconnected\t")
	for _, r := range res.RSS {
		connected := fmt.Sprintf("%d", r.Conns)
		if r.Failed > 0 {
			connected += fmt.Sprintf(" (%d failed, see below)", r.Failed)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t\n", r.Broker, FormatMB(r.Before), FormatMB(r.With),
			FormatRatio(float64(r.With), float64(bare)), connected)
	}
	tw.Flush()
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
}

func cell(n int, s string) string {
	if n == 0 {
		return "-"
	}
	return s
}

func cpuCell(d time.Duration) string {
	if d <= 0 {
		return "-"
	}
	return FormatDuration(d)
}

func flowRate(r FlowResult, ok bool) string {
	if !ok || r.Received == 0 {
		return "-"
	}
	return FormatRate(r.Rate())
}

func flowLoss(r FlowResult, ok bool) string {
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%d/%d", r.Lost(), r.Sent)
}

func seqCell(r FlowResult, ok bool) string {
	switch {
	case !ok:
		return "-"
	case r.SeqCheck == "ok":
		return "1…M ok"
	case r.SeqCheck == "":
		return "none seen"
	default:
		return "WRONG"
	}
}

// flowDetail says what is unusual about a run, or "".
func flowDetail(r FlowResult) string {
	var parts []string
	if r.Stalled {
		parts = append(parts, "stopped: nothing arrived for a while")
	}
	if r.Refused > 0 {
		parts = append(parts, fmt.Sprintf("%d refused", r.Refused))
	}
	if r.PubErrors > 0 {
		parts = append(parts, fmt.Sprintf("%d publish errors", r.PubErrors))
	}
	if r.Dups > 0 {
		parts = append(parts, fmt.Sprintf("%d duplicates", r.Dups))
	}
	if r.SeqCheck != "" && r.SeqCheck != "ok" {
		parts = append(parts, "SeqIds: "+r.SeqCheck)
	}
	if r.FirstError != "" {
		parts = append(parts, "first error: "+r.FirstError)
	}
	return strings.Join(parts, "; ")
}

func printList(w io.Writer, title string, items []string) {
	if len(items) == 0 {
		return
	}
	fmt.Fprintf(w, "\n%s:\n", title)
	for _, it := range items {
		fmt.Fprintf(w, "  - %s\n", strings.ReplaceAll(it, "\n", "\n    "))
	}
}

// printHeader writes a benchmark's first lines: what it is, the machine,
// where it runs, and the load around it.
func printHeader(w io.Writer, kind, where string, load [2]string) {
	fmt.Fprintf(w, "MQTTER %s benchmark · %s/%s · %d CPUs · %s · %s\n",
		kind, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version(), where)
	fmt.Fprintf(w, "load average %s at the start, %s at the end (other work on the machine moves every figure)\n", load[0], load[1])
}
