package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/node"
	"github.com/mqtter/mqtter/wire"
)

// runArgs runs the command line in-process.
func runArgs(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), args, strings.NewReader(""), &stdout, &stderr)
	t.Logf("mqtter %q: err %v, stderr %q", args, err, stderr.String())
	return stdout.String(), err
}

func TestCLIUsageErrors(t *testing.T) {
	t.Setenv("MQTTER_HOME", "")
	t.Setenv("MQTTER_PASSWORD", "")
	home := t.TempDir()
	tests := [][]string{
		{"status"}, // no --home, no $MQTTER_HOME
		{"send", "bob", "hi"},
		{"--home"},
		{"--home="},
		{"--home", home},
		{"--home", home, "bogus"},
		{"bogus"},
		{"--home", home, "status", "extra"},
		{"--home", home, "status", "--bogus"},
		{"--home", home, "send"},
		{"--home", home, "send", "bob"},
		{"--home", home, "history"},
		{"--home", home, "history", "bob", "alice"},
		{"--home", home, "history", "bob", "--limit", "-1"},
		{"--home", home, "history", "bob", "--limit", "x"},
		{"--home", home, "friend"},
		{"--home", home, "friend", "add"},
		{"--home", home, "friend", "add", "bob", "carol"},
		{"--home", home, "friend", "poke", "bob"},
		{"--home", home, "friend", "list", "bob"},
		{"--home", home, "group"},
		{"--home", home, "group", "create"},
		{"--home", home, "group", "agree", "g:1"},
		{"--home", home, "group", "remove", "g:1"},
		{"--home", home, "group", "dissolve"},
		{"--home", home, "group", "join", "g:1"},
		{"--home", home, "thing"},
		{"--home", home, "thing", "bind", "lamp"},
		{"--home", home, "thing", "code", "x"},
		{"--home", home, "peers", "x"},
		{"--home", home, "sync", "x"},
		{"--home", home, "events", "x"},
		{"node"},
		{"node", "--home", home},
		{"node", "--home", home, "--server", "tcp://127.0.0.1:1"},
		{"node", "--home", home, "--server", "tcp://127.0.0.1:1", "--user", "alice", "extra"},
	}
	for _, args := range tests {
		if _, err := runArgs(t, args...); !errors.Is(err, errUsage) {
			t.Errorf("run(%q) = %v, want a usage error", args, err)
		}
	}
}

func TestCLINoNode(t *testing.T) {
	home := t.TempDir()
	t.Setenv("MQTTER_HOME", "")
	tests := [][]string{
		{"--home", home, "status"},
		{"--home=" + home, "status", "--json"},
		{"status", "--home", home},
		{"send", "bob", "hi", "--home", home},
		{"-home", home, "history", "bob", "--limit", "3"},
		{"--home", home, "friend", "add", "bob"},
		{"--home", home, "group", "create", "club", "bob", "carol"},
		{"--home", home, "thing", "code"},
		{"--home", home, "peers", "--json"},
		{"--home", home, "sync"},
		{"--home", home, "events"},
	}
	for _, args := range tests {
		_, err := runArgs(t, args...)
		if !errors.Is(err, node.ErrNoNode) || errors.Is(err, errUsage) || !strings.Contains(err.Error(), home) {
			t.Errorf("run(%q) = %v, want ErrNoNode naming the home", args, err)
		}
	}
	t.Setenv("MQTTER_HOME", home)
	if _, err := runArgs(t, "status"); !errors.Is(err, node.ErrNoNode) {
		t.Errorf("run(status) with $MQTTER_HOME = %v, want ErrNoNode", err)
	}
}

func TestSplitHome(t *testing.T) {
	tests := []struct {
		args     []string
		home     string
		rest     []string
		wantFail bool
	}{
		{[]string{"--home", "d", "status"}, "d", []string{"status"}, false},
		{[]string{"status", "--json", "--home=d"}, "d", []string{"status", "--json"}, false},
		{[]string{"-home=d", "send", "bob", "hi"}, "d", []string{"send", "bob", "hi"}, false},
		{[]string{"send", "bob", "--", "--home", "x"}, "", []string{"send", "bob", "--", "--home", "x"}, false},
		{[]string{"status", "--homely"}, "", []string{"status", "--homely"}, false},
		{[]string{"status", "--home"}, "", nil, true},
	}
	for _, tt := range tests {
		home, rest, err := splitHome(tt.args)
		if (err != nil) != tt.wantFail || home != tt.home || !reflect.DeepEqual(rest, tt.rest) {
			t.Errorf("splitHome(%q) = %q, %q, %v, want %q, %q, fail %v", tt.args, home, rest, err, tt.home, tt.rest, tt.wantFail)
		}
	}
}

func TestNodePassword(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pw")
	if err := os.WriteFile(file, []byte("  s3cret \nsecond line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Setenv("MQTTER_PASSWORD", "")
	if got, err := nodePassword(file); got != "s3cret" || err != nil {
		t.Errorf("nodePassword(file) = %q, %v, want s3cret", got, err)
	}
	for _, f := range []string{"", empty, filepath.Join(dir, "missing")} {
		if got, err := nodePassword(f); err == nil {
			t.Errorf("nodePassword(%q) = %q, want an error", f, got)
		}
	}
	t.Setenv("MQTTER_PASSWORD", "fromenv")
	if got, err := nodePassword(file); got != "fromenv" || err != nil {
		t.Errorf("nodePassword with $MQTTER_PASSWORD = %q, %v, want fromenv", got, err)
	}
}

func TestNodeNeedsPassword(t *testing.T) {
	t.Setenv("MQTTER_PASSWORD", "")
	_, err := runArgs(t, "node", "--home", t.TempDir(), "--server", "tcp://127.0.0.1:1", "--user", "alice")
	if err == nil || errors.Is(err, errUsage) || !strings.Contains(err.Error(), "password") {
		t.Errorf("node without a password = %v, want a password error", err)
	}
}

func TestHistoryLine(t *testing.T) {
	at := time.Date(2025, 1, 2, 15, 4, 5, 0, time.Local).UnixMilli()
	entry := func(seq int64, payload, via string) node.HistoryEntry {
		return node.HistoryEntry{Message: wire.Message{SeqId: seq, From: "alice", TimeCreate: at, Payload: json.RawMessage(payload)}, Via: via}
	}
	tests := []struct {
		in   node.HistoryEntry
		want string
	}{
		{entry(12, `{"text":"hi there"}`, "p2p"), "#12 alice 15:04:05 [p2p] hi there"},
		{entry(0, `{"text":""}`, "local"), "#- alice 15:04:05 [local] "},
		{entry(3, `{ "lat": 1,  "lon": 2 }`, "server"), `#3 alice 15:04:05 [server] {"lat":1,"lon":2}`},
		{entry(4, `"just a string"`, "sync"), `#4 alice 15:04:05 [sync] "just a string"`},
	}
	for _, tt := range tests {
		if got := historyLine(tt.in); got != tt.want {
			t.Errorf("historyLine(%s) = %q, want %q", tt.in.Payload, got, tt.want)
		}
	}
}

func TestPrintStatus(t *testing.T) {
	var b bytes.Buffer
	printStatus(&b, node.Status{
		User: "alice", Device: "12D3KooWA", Server: node.ServerDisconnected, ServerURL: "tcp://127.0.0.1:1883",
		ServerError: "connection refused", Addrs: []string{"/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWA", "/ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooWA"},
		Outbox: 2, Unsynced: 5,
		Failures:   []node.PathFailure{{Path: "p2p", Peer: "12D3KooWB", MsgId: "m1", Error: "timeout"}},
		Conflicted: []localdb.Conflicted{{From: "alice", MsgId: "m2", Feeds: "dm:alice:bob", Reason: "conflict: MsgId already used"}},
	})
	out := b.String()
	for _, want := range []string{
		"user:     alice\n",
		"device:   12D3KooWA\n",
		"server:   disconnected tcp://127.0.0.1:1883: connection refused\n",
		"addrs:    /ip4/127.0.0.1/tcp/4001/p2p/12D3KooWA\n          /ip4/127.0.0.1/udp/4001/quic-v1/p2p/12D3KooWA\n",
		"direct:   (none)\n",
		"outbox:   2 undelivered\n",
		"unsynced: 5 without a SeqId\n",
		"peer 12D3KooWB msg m1: timeout\n",
		"dm:alice:bob m2 from alice: conflict: MsgId already used\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("printStatus printed\n%s\nwant it to contain %q", out, want)
		}
	}
}
