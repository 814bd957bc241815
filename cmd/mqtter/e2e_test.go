package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mqtter/mqtter/server/servertest"
	"github.com/mqtter/mqtter/wire"
)

// bin is the mqtter binary under test: $MQTTER_BIN, or one built for this
// run.
var bin string

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	if bin = os.Getenv("MQTTER_BIN"); bin != "" {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "mqtter-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	bin = filepath.Join(dir, "mqtter")
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
	}
	build := exec.Command(gobin, "build", "-o", bin, "github.com/mqtter/mqtter/cmd/mqtter")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build mqtter:", err)
		return 1
	}
	return m.Run()
}

// syncBuffer collects a process's output for the test log.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// mqtter runs the binary to completion and returns its exit code and output.
func mqtter(t *testing.T, env []string, stdin string, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, string(out)
	case errors.As(err, &exit):
		return exit.ExitCode(), string(out)
	}
	t.Fatalf("mqtter %v: %v", args, err)
	return 0, ""
}

// freeAddr returns a loopback address with a port that was free just now.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// serverProc is a running `mqtter server`.
type serverProc struct {
	cmd        *exec.Cmd
	out        *syncBuffer
	mqtt, http string
	exited     chan error
}

// startServer runs `mqtter server` on data and waits for /healthz.
func startServer(t *testing.T, data string, extra ...string) *serverProc {
	t.Helper()
	return startServerAt(t, data, freeAddr(t), freeAddr(t), extra...)
}

// startServerAt is startServer on given MQTT and HTTP addresses, as a
// restart on the same ports.
func startServerAt(t *testing.T, data, mqttAddr, httpAddr string, extra ...string) *serverProc {
	t.Helper()
	p := &serverProc{out: &syncBuffer{}, mqtt: mqttAddr, http: httpAddr, exited: make(chan error, 1)}
	args := append([]string{"server", "--data", data, "--mqtt", p.mqtt, "--http", p.http}, extra...)
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start mqtter server: %v", err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("mqtter server output:\n%s", p.out.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-p.exited:
			p.exited <- err
			t.Fatalf("mqtter server exited at start: %v\n%s", err, p.out.String())
		default:
		}
		if status, _ := get(t, "http://"+p.http+"/healthz", ""); status == http.StatusOK {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("mqtter server not healthy after 30s:\n%s", p.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and returns the exit error (nil for exit code 0).
func (p *serverProc) stop(t *testing.T) error {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case err := <-p.exited:
		return err
	case <-time.After(20 * time.Second):
		t.Fatalf("mqtter server still running 20s after SIGTERM:\n%s", p.out.String())
		return nil
	}
}

// get GETs u (with HTTP Basic "user:pass" when userpass is set).
func get(t *testing.T, u, userpass string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user, pass, ok := strings.Cut(userpass, ":"); ok {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func addUser(t *testing.T, data, name, pass string, extra ...string) string {
	t.Helper()
	code, out := mqtter(t, []string{"MQTTER_PASSWORD=" + pass}, "", append([]string{"user", "add", name, "--data", data}, extra...)...)
	if code != 0 {
		t.Fatalf("mqtter user add %s = exit %d: %s", name, code, out)
	}
	return out
}

func TestEndToEnd(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	addUser(t, data, "alice", "alice-pw")
	// The password may come on stdin too.
	if code, out := mqtter(t, []string{"MQTTER_PASSWORD="}, "bob-pw\n", "user", "add", "bob", "--data", data); code != 0 {
		t.Fatalf("mqtter user add bob (password on stdin) = exit %d: %s", code, out)
	}
	out := addUser(t, data, "lamp", "lamp-pw", "--thing")
	m := regexp.MustCompile(`pairing code: (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("mqtter user add lamp --thing printed %q, want a pairing code", out)
	}
	lampCode := m[1]
	if code, out := mqtter(t, []string{"MQTTER_PASSWORD=again"}, "", "user", "add", "alice", "--data", data); code == 0 {
		t.Errorf("mqtter user add alice twice = exit 0 (%s), want a failure", out)
	}

	srv := startServer(t, data)
	broker := "tcp://" + srv.mqtt
	if _, err := servertest.TryDial(t, broker, "alice", "wrong", "alice-x"); err == nil {
		t.Error("CONNECT with a wrong password = accepted, want refused")
	}
	alice, err := servertest.TryDial(t, broker, "alice", "alice-pw", "alice-1")
	if err != nil {
		t.Fatalf("alice CONNECT: %v", err)
	}
	bob, err := servertest.TryDial(t, broker, "bob", "bob-pw", "bob-1")
	if err != nil {
		t.Fatalf("bob CONNECT: %v", err)
	}
	alice.OK("add_friend", map[string]string{"user": "bob"}, nil)
	bob.OK("accept_friend", map[string]string{"user": "alice"}, nil)
	alice.OK("bind_thing", wire.BindThingReq{Thing: "lamp", Code: lampCode}, nil)
	dm := wire.DM("alice", "bob")
	msg := wire.Message{MsgId: wire.NewMsgID(), Feeds: dm, MsgType: wire.MsgTypeText,
		Payload: []byte(`{"text":"hello through the binary"}`), TimeCreate: time.Now().UnixMilli()}
	var res wire.SendResult
	alice.OK("send", msg, &res)
	if res.SeqId != 1 {
		t.Errorf("send SeqId = %d, want 1", res.SeqId)
	}
	if n := bob.News(); n.Message.MsgId != msg.MsgId || n.Message.From != "alice" || n.Message.SeqId != 1 {
		t.Errorf("bob news = %+v, want alice's message SeqId 1", n.Message)
	}
	if status, body := get(t, "http://"+srv.http+"/healthz", ""); status != http.StatusOK {
		t.Errorf("GET /healthz = %d %q, want 200", status, body)
	}
	if status, body := get(t, "http://"+srv.http+"/metrics", ""); status != http.StatusOK || !strings.Contains(body, "mqtter_messages_stored_total 1") {
		t.Errorf("GET /metrics = %d, want 200 counting 1 stored message", status)
	}

	if err := srv.stop(t); err != nil {
		t.Fatalf("mqtter server after SIGTERM: %v, want exit code 0\n%s", err, srv.out.String())
	}

	// A restart on the same data keeps accounts, relations and messages.
	srv = startServer(t, data)
	broker = "tcp://" + srv.mqtt
	alice, err = servertest.TryDial(t, broker, "alice", "alice-pw", "alice-1")
	if err != nil {
		t.Fatalf("alice CONNECT after restart: %v", err)
	}
	var h wire.HistoryResult
	alice.OK("history", wire.HistoryReq{Feeds: dm}, &h)
	if len(h.Messages) != 1 || h.Messages[0].MsgId != msg.MsgId || h.LastSeqID != 1 {
		t.Errorf("history after restart = %+v, want alice's message", h)
	}
	var rels []wire.Relation
	alice.OK("list_relations", wire.Empty{}, &rels)
	if len(rels) != 2 {
		t.Errorf("list_relations after restart = %+v, want bob (friend) and lamp (bound)", rels)
	}
	alice.OK("send", wire.Message{MsgId: wire.NewMsgID(), Feeds: dm, MsgType: wire.MsgTypeText,
		Payload: []byte(`{"text":"again"}`), TimeCreate: time.Now().UnixMilli()}, &res)
	if res.SeqId != 2 {
		t.Errorf("send after restart: SeqId = %d, want 2", res.SeqId)
	}
	status, body := get(t, "http://"+srv.http+"/v1/history?feeds="+url.QueryEscape(dm), "bob:bob-pw")
	if status != http.StatusOK || !strings.Contains(body, msg.MsgId) {
		t.Errorf("GET /v1/history as bob after restart = %d %s, want 200 with %s", status, body, msg.MsgId)
	}
	alice.Close()
	if err := srv.stop(t); err != nil {
		t.Errorf("mqtter server after the second SIGTERM: %v, want exit code 0", err)
	}
}

func TestCommandLineErrors(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	tests := []struct {
		name  string
		env   []string
		stdin string
		args  []string
		want  int
	}{
		{"no command", nil, "", nil, 2},
		{"unknown command", nil, "", []string{"frobnicate"}, 2},
		{"server without --data", nil, "", []string{"server"}, 2},
		{"user add without --data", []string{"MQTTER_PASSWORD=x"}, "", []string{"user", "add", "alice"}, 2},
		{"user add without name", []string{"MQTTER_PASSWORD=x"}, "", []string{"user", "add", "--data", data}, 2},
		{"user add without password", []string{"MQTTER_PASSWORD="}, "", []string{"user", "add", "alice", "--data", data}, 1},
		{"user add bad name", []string{"MQTTER_PASSWORD=x"}, "", []string{"user", "add", "Alice!", "--data", data}, 1},
	}
	for _, tt := range tests {
		if code, out := mqtter(t, tt.env, tt.stdin, tt.args...); code != tt.want {
			t.Errorf("mqtter %s (%v) = exit %d (%s), want %d", tt.name, tt.args, code, out, tt.want)
		}
	}
	if code, out := mqtter(t, nil, "", "help"); code != 0 || !strings.Contains(out, "mqtter server") {
		t.Errorf("mqtter help = exit %d %q, want 0 and the usage", code, out)
	}
}

// A server started on port 0 with --ready-file writes the addresses it
// bound there once it accepts, and removes the file at a clean stop.
func TestServerReadyFile(t *testing.T) {
	data := t.TempDir()
	ready := filepath.Join(t.TempDir(), "ready.json")
	out := &syncBuffer{}
	cmd := exec.Command(bin, "server", "--data", data, "--mqtt", "127.0.0.1:0", "--http", "127.0.0.1:0", "--ready-file", ready)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
	}()
	var addrs struct{ MQTT, WS, HTTP string }
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, err := os.ReadFile(ready)
		if err == nil {
			if err := json.Unmarshal(b, &addrs); err != nil {
				t.Fatalf("ready file %q: %v", b, err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ready file after 30s:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if strings.HasSuffix(addrs.MQTT, ":0") || addrs.MQTT == "" || addrs.WS != "" {
		t.Errorf("ready file = %+v, want the bound MQTT port and no ws", addrs)
	}
	if status, body := get(t, "http://"+addrs.HTTP+"/healthz", ""); status != http.StatusOK {
		t.Fatalf("healthz at the ready file's address = %d %s", status, body)
	}
	if c, err := net.Dial("tcp", addrs.MQTT); err != nil {
		t.Errorf("dial the ready file's MQTT address: %v", err)
	} else {
		c.Close()
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("server exit: %v\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("server still running 20s after SIGTERM")
	}
	if _, err := os.Stat(ready); !os.IsNotExist(err) {
		t.Errorf("ready file still there after a clean stop: %v", err)
	}
}
