package bench

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// TargetGossipSize is the group size of issue 12's target: gossip reaches
// the last of this many online members faster than the server's push.
// Reported, never asserted.
const TargetGossipSize = 20

// pathWhat says what each path's samples time.
var pathWhat = map[string]string{
	PathGossip: "the sender's device publishes the signed message to the group's GossipSub topic (p2p.Gossip.Publish, " +
		"as a node's outbox does); each member's node validates it against its book, stores it (SQLite) and relays it in its mesh",
	PathServerPush: "the sender's device sends the same kind of message to the server (im://modulus/send over its MQTT link, " +
		"as a node's outbox does); the server checks, sequences and stores it and pushes it to every member's node, which stores it",
}

// Print writes the figures as a table, then the target, notes and
// problems.
func (res *GossipResults) Print(w io.Writer) {
	cfg := res.Config
	printHeader(w, "gossip fan-out", withLinks("all on 127.0.0.1 (libp2p GossipSub among the members' nodes; MQTT to the server)", cfg.LinkDelay), res.Load)
	if len(res.Rows) > 0 {
		fmt.Fprintf(w, "\nA group message until the LAST member stored it, one at a time (n=%d a row after %d warm-up)\n", cfg.N, cfg.Warmup)
		tw := newTable(w)
		fmt.Fprintln(tw, "  members\tnodes\tpath\tp50\tp90\tp99\tmax\tn\tCPU/delivery\tp50 vs server\t")
		for _, r := range res.Rows {
			l := r.Latency
			vs := "-"
			if r.Path == PathGossip {
				if s, ok := res.Row(r.Size, PathServerPush); ok && s.Latency.N > 0 {
					vs = FormatRatio(float64(l.P50), float64(s.Latency.P50))
				}
			}
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t\n", r.Size, r.Members, r.Path,
				cell(l.N, FormatDuration(l.P50)), cell(l.N, FormatDuration(l.P90)), cell(l.N, FormatDuration(l.P99)),
				cell(l.N, FormatDuration(l.Max)), l.N, cpuCell(r.CPU), vs)
		}
		tw.Flush()
		fmt.Fprintln(w, "  measured:")
		for _, p := range []string{PathGossip, PathServerPush} {
			fmt.Fprintf(w, "    %s: %s\n", p, pathWhat[p])
		}
		fmt.Fprintln(w, "    latency: from the send until the last member's event stream (GET /v1/events) shows the message stored;")
		fmt.Fprintln(w, "    CPU/delivery: CPU time of every process taking part (gossipbench with the sender and any in-process nodes,")
		fmt.Fprintln(w, "    the server, the member processes) over the timed messages, divided by messages × members")
		fmt.Fprintf(w, "    nodes: %q are `mqtter node` processes (groups of up to %d members), %q are real nodes (node.Run: SQLite, libp2p, MQTT link each) in gossipbench's process\n",
			membersProcesses, cfg.Procs, membersInProcess)
		for _, r := range res.Rows {
			if r.Err != "" {
				fmt.Fprintf(w, "  %d members, %s stopped early: %s\n", r.Size, r.Path, r.Err)
			}
		}
	}
	res.printTarget(w)
	printList(w, "Notes", append(slices.Clip(res.Notes), res.fixedNotes()...))
	printList(w, "Could not measure", res.Errors)
}

// printTarget writes the verdict on issue 12's target.
func (res *GossipResults) printTarget(w io.Writer) {
	g, okG := res.Row(TargetGossipSize, PathGossip)
	s, okS := res.Row(TargetGossipSize, PathServerPush)
	fmt.Fprintf(w, "\nTarget (issue 12; reported, never asserted)\n")
	claim := fmt.Sprintf("gossip reaches the last of %d online members faster than the server push does", TargetGossipSize)
	if !okG || !okS || g.Latency.N == 0 || s.Latency.N == 0 {
		fmt.Fprintf(w, "  %s: not measured (no run of %d members on both paths)\n", claim, TargetGossipSize)
		return
	}
	verdict := "met"
	if g.Latency.P50 >= s.Latency.P50 {
		verdict = "missed"
	}
	fmt.Fprintf(w, "  %s: %s (p50 %s by gossip vs %s by the server, %s; p99 %s vs %s)\n", claim, verdict,
		FormatDuration(g.Latency.P50), FormatDuration(s.Latency.P50), FormatRatio(float64(g.Latency.P50), float64(s.Latency.P50)),
		FormatDuration(g.Latency.P99), FormatDuration(s.Latency.P99))
}

// fixedNotes are what to know when reading any run's figures.
func (res *GossipResults) fixedNotes() []string {
	sizes := make(map[string][]string)
	for _, r := range res.Rows {
		if r.Path == PathGossip {
			sizes[r.Members] = append(sizes[r.Members], fmt.Sprint(r.Size))
		}
	}
	var where []string
	for _, how := range slices.Sorted(maps.Keys(sizes)) {
		where = append(where, fmt.Sprintf("%s for %s members", how, strings.Join(sizes[how], ", ")))
	}
	notes := []string{
		"members' nodes: " + strings.Join(where, "; ") + "; each size has a server and nodes of its own",
		"members are the sender's friends, in one group it owns; the sender's device is gossipbench's own (a p2p host with GossipSub, " +
			"and an MQTT link), so each path carries only its own copy: a node's outbox would send a group message both ways at once",
		"the sender signs and encodes each message before the clock starts and stores nothing itself, on both paths",
		"history_push is deferred (--sync-interval 1h) on every node, so the gossiped messages stay unsequenced and the figures are of the delivery path alone",
		"CPU/delivery counts whatever the processes did meanwhile too: GossipSub's heartbeats, the members' acks of the server's pushes, " +
			"and the event streams the bench reads (the same on both paths)",
		"GossipSub runs with its defaults (1 s heartbeat, D=6); the run starts once every device's mesh of the group holds at least min(5, members) peers",
	}
	return notes
}
