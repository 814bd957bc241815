package bench

import (
	"fmt"
	"io"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
)

// Targets the restore figures are held against (reported, never
// asserted).
const (
	restoreTargetRatio   = 0.5              // restore rate / the raw (bare INSERT) rate
	restoreTargetMillion = 30 * time.Second // 1,000,000 messages restored
	restoreTargetRSS     = 200 << 20        // node peak resident memory
)

// Print writes the restore table and the targets; nothing when no size
// ran.
func (res *RestoreResults) Print(w io.Writer) {
	results := res.Runs
	if len(results) == 0 {
		return
	}
	fmt.Fprintf(w, "\nhistory restore (a new node pulls everything from a server on loopback; %d CPUs, load %s)\n",
		runtime.NumCPU(), loadAverage())
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "messages\tconvs\trestore s\trestore msg/s\tnode peak RSS MiB\tnode CPU µs/msg\tserver CPU µs/msg\tAddMessages msg/s\tbare INSERT msg/s\trestore/bare\trestore/AddMessages\tin-process msg/s\tfill s\t")
	for _, r := range results {
		if r.Node.Took == 0 {
			fmt.Fprintf(tw, "%d\t%d\t-\t-\t-\t-\t-\t-\t-\t-\t-\t-\t%.1f\t\n", r.N, r.Convs, r.Fill.Seconds())
			continue
		}
		perMsg := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(r.N) }
		restore := Rate(r.N, r.Node.Took)
		add := Rate(r.Raw.Rows, r.Raw.AddMessages)
		inProc := "-"
		if r.InProcess > 0 {
			inProc = fmt.Sprintf("%.0f", Rate(r.N, r.InProcess))
		}
		bare := Rate(r.Raw.Rows, r.Raw.Bare)
		fmt.Fprintf(tw, "%d\t%d\t%.2f\t%.0f\t%.1f\t%.1f\t%.1f\t%.0f\t%.0f\t%.2f\t%.2f\t%s\t%.1f\t\n", r.N, r.Convs, r.Node.Took.Seconds(), restore,
			float64(r.Node.HWM)/(1<<20), perMsg(r.Node.NodeCPU), perMsg(r.Node.ServerCPU),
			add, bare, ratioOf(restore, bare), ratioOf(restore, add), inProc, r.Fill.Seconds())
	}
	tw.Flush()
	fmt.Fprintln(w, "  restore: from starting `mqtter node` with an empty home until it logged \"history pulled\"; every message verified and stored, checked after")
	fmt.Fprintln(w, "  CPU: what the node used from its start, and the server meanwhile, per message restored (2 cores make at most 2 s of CPU a second)")
	fmt.Fprintln(w, "  AddMessages: localdb.AddMessages of the same pages (1000 rows, one transaction each) into a fresh node database; bare INSERT: a prepared one-row INSERT in a loop, one transaction a page, localdb's schema and pragmas")
	fmt.Fprintln(w, "targets (reported, not asserted):")
	for _, r := range results {
		if r.Node.Took == 0 {
			continue
		}
		restore := Rate(r.N, r.Node.Took)
		add := Rate(r.Raw.Rows, r.Raw.AddMessages)
		bare := Rate(r.Raw.Rows, r.Raw.Bare)
		var got []string
		got = append(got, metOrMissed(ratioOf(restore, bare) >= restoreTargetRatio,
			fmt.Sprintf("restore at %.0f%% of the raw batched insert (target ≥ %.0f%%; %.0f%% of localdb.AddMessages, the node's own multi-row insert)",
				100*ratioOf(restore, bare), 100*restoreTargetRatio, 100*ratioOf(restore, add))))
		got = append(got, metOrMissed(r.Node.HWM < restoreTargetRSS,
			fmt.Sprintf("node peak RSS %.0f MiB (target < %d MiB)", float64(r.Node.HWM)/(1<<20), restoreTargetRSS>>20)))
		if r.N >= 1_000_000 {
			got = append(got, metOrMissed(r.Node.Took < restoreTargetMillion,
				fmt.Sprintf("%d restored in %.1f s (target 1,000,000 in < %.0f s)", r.N, r.Node.Took.Seconds(), restoreTargetMillion.Seconds())))
		}
		fmt.Fprintf(w, "  %d messages: %s\n", r.N, strings.Join(got, "; "))
	}
}

// ratioOf is a/b, 0 without b.
func ratioOf(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// metOrMissed says whether a target was met.
func metOrMissed(ok bool, what string) string {
	if ok {
		return what + " met"
	}
	return what + " MISSED"
}
