package main_test

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mqtter/mqtter/node"
)

// listOf is a conversation as "MsgId#SeqId" items, for comparing devices.
func listOf(h []node.HistoryEntry) []string {
	out := make([]string, len(h))
	for i, m := range h {
		out[i] = fmt.Sprintf("%s#%d", m.MsgId, m.SeqId)
	}
	return out
}

// coverage asks the node's API how much of its conversation with whom it
// holds.
func (n *nodeProc) coverage(whom string) node.HistoryResult {
	n.t.Helper()
	cl, err := node.Dial(n.home)
	if err != nil {
		n.t.Fatalf("%s: %v", n.user, err)
	}
	res, err := cl.History(n.t.Context(), whom, 1)
	if err != nil {
		n.t.Fatalf("%s: history %s: %v", n.user, whom, err)
	}
	return res
}

func TestNodeRestoreAndBackup(t *testing.T) {
	t.Parallel()
	srv, _, desk, bob := aliceAndBob(t)
	broker := "tcp://" + srv.mqtt

	const n = 1200 // more than one history page
	desk.burst("bob", n, "history")
	desk.eventually(60*time.Second, "everything is sequenced", func() (bool, string) {
		st := desk.status()
		return st.Outbox == 0 && st.Unsynced == 0, fmt.Sprintf("outbox %d, unsynced %d", st.Outbox, st.Unsynced)
	})
	want := listOf(desk.history("bob"))
	if len(want) != n || !strings.HasSuffix(want[n-1], fmt.Sprintf("#%d", n)) {
		t.Fatalf("alice's desk holds %d messages, the last %q; want %d sequenced", len(want), want[len(want)-1], n)
	}

	// A new device of alice, started on an empty home, restores it all.
	laptop := startNode(t, broker, t.TempDir(), "alice", "alice-pw")
	laptop.eventually(60*time.Second, "the laptop restored the history", func() (bool, string) {
		h := laptop.history("bob")
		return len(h) == n, fmt.Sprintf("%d of %d", len(h), n)
	})
	h := laptop.history("bob")
	if got := listOf(h); !slices.Equal(got, want) {
		t.Errorf("the laptop's list differs from the desk's")
	}
	if h[0].Via != "sync" || h[n-1].Via != "sync" {
		t.Errorf("restored messages came via %q…%q, want sync", h[0].Via, h[n-1].Via)
	}
	if res := laptop.coverage("bob"); !res.Complete || res.Coverage.HeldThrough != n {
		t.Errorf("the laptop's coverage = %+v complete=%v, want complete through %d", res.Coverage, res.Complete, n)
	}
	if !strings.Contains(laptop.out.String(), `msg="history pulled"`) {
		t.Errorf("the laptop's log shows no restore progress")
	}

	// The desk's history as a file, and into a third device that has no
	// server at all: verified, and idempotent.
	file := filepath.Join(t.TempDir(), "alice.jsonl")
	if out := desk.must("backup", "export", file); !strings.Contains(out, fmt.Sprintf("exported %d messages", n)) {
		t.Errorf("backup export printed %q", out)
	}
	if lines := readLines(t, file); len(lines) != n+2 {
		t.Errorf("the backup has %d lines, want a header, %d messages and an end", len(lines), n)
	}
	if err := srv.stop(t); err != nil {
		t.Fatal(err)
	}
	offline := startNodeOffline(t, "tcp://"+srv.mqtt, t.TempDir(), "alice", "alice-pw")
	if out := offline.must("backup", "import", file); !strings.Contains(out, fmt.Sprintf("%d imported, 0 held already, 0 refused", n)) {
		t.Errorf("first import printed %q", out)
	}
	if out := offline.must("backup", "import", file); !strings.Contains(out, fmt.Sprintf("0 imported, %d held already", n)) {
		t.Errorf("second import printed %q, want nothing new", out)
	}
	if got := listOf(offline.history("bob")); !slices.Equal(got, want) {
		t.Errorf("the imported list differs from the desk's")
	}

	// A changed line is refused; a cut file says so; bob's file is not
	// alice's.
	lines := readLines(t, file)
	tampered := strings.Replace(lines[5], "history, message", "history, changed", 1)
	if tampered == lines[5] {
		t.Fatalf("line 5 %q has no text to change", lines[5])
	}
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	writeLines(t, bad, append(append([]string{lines[0]}, tampered), lines[len(lines)-1]))
	if out := offline.must("backup", "import", bad); !strings.Contains(out, "1 refused") || !strings.Contains(out, "signature") {
		t.Errorf("importing a changed message printed %q, want it refused for its signature", out)
	}
	cut := filepath.Join(t.TempDir(), "cut.jsonl")
	writeLines(t, cut, lines[:10])
	if code, out := offline.cli("backup", "import", cut); code == 0 || !strings.Contains(out, "end marker") {
		t.Errorf("importing a cut file = exit %d %q, want an error naming the missing end", code, out)
	}
	bobFile := filepath.Join(t.TempDir(), "bob.jsonl")
	bob.must("backup", "export", bobFile)
	if code, out := offline.cli("backup", "import", bobFile); code == 0 || !strings.Contains(out, "bob's history") {
		t.Errorf("importing bob's backup into alice's node = exit %d %q, want refused", code, out)
	}
}

func readLines(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return lines
}

func writeLines(t *testing.T, file string, lines []string) {
	t.Helper()
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}
