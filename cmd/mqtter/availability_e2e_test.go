package main_test

import (
	"io"
	"net"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mqtter/mqtter/server/servertest"
)

// A server run out of file descriptors by silent TCP connections accepts
// MQTT again once they are gone: the listener retries Accept instead of
// dying, logs it and counts it. The server runs under `prlimit` with a low
// RLIMIT_NOFILE (soft and hard: the Go runtime raises the soft limit to the
// hard one at start).
func TestMQTTListenerSurvivesFDExhaustion(t *testing.T) {
	t.Parallel()
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("needs prlimit (util-linux)")
	}
	data := t.TempDir()
	addUser(t, data, "alice", "alice-pw")
	mqttAddr, httpAddr := freeAddr(t), freeAddr(t)
	out := &syncBuffer{}
	cmd := exec.Command(prlimit, "--nofile=64:64", bin, "server", "--data", data, "--mqtt", mqttAddr, "--http", httpAddr,
		"--max-unauthed-per-ip", "1000", "--max-unauthed", "1000")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mqtter server under prlimit: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("mqtter server output:\n%s", out.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if status, _ := get(t, "http://"+httpAddr+"/healthz", ""); status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("mqtter server not healthy after 30s:\n%s", out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}

	// More connections than the server has descriptors: the kernel completes
	// them all into the listen queue, the server accepts until EMFILE.
	var silent []net.Conn
	for range 150 {
		c, err := net.DialTimeout("tcp", mqttAddr, 5*time.Second)
		if err != nil {
			t.Fatalf("dial silent connection %d: %v", len(silent), err)
		}
		silent = append(silent, c)
	}
	deadline = time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "accept failed") && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	for _, c := range silent {
		c.Close()
	}

	alice, err := servertest.TryDial(t, "tcp://"+mqttAddr, "alice", "alice-pw", "alice-1")
	if err != nil {
		t.Fatalf("CONNECT after the descriptors were freed: %v", err)
	}
	alice.OK("conversations", struct{}{}, nil)
	if n := acceptErrors(t, httpAddr); n == 0 {
		t.Error(`mqtter_accept_errors_total{listener="mqtt"} = 0 after running out of descriptors`)
	}
	t.Logf("server log: %s", regexp.MustCompile(`.*accept failed.*`).FindString(out.String()))
	if !strings.Contains(out.String(), "too many open files") {
		t.Error("the server did not log the Accept error")
	}
}

// acceptErrors reads mqtter_accept_errors_total{listener="mqtt"}.
func acceptErrors(t *testing.T, httpAddr string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^mqtter_accept_errors_total\{listener="mqtt"\} (\S+)$`).FindSubmatch(body)
	if m == nil {
		return 0
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// SIGTERM a few milliseconds after a CONNECT with a correct password, while
// its bcrypt check runs: the server exits (within serverProc.stop's 20 s)
// and frees its ports although the client keeps pinging. Before the fix
// the connection was registered after the broker had closed its clients
// and the process never exited.
func TestSIGTERMDuringAuthentication(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	addUser(t, data, "alice", "alice-pw")
	for i := range 3 {
		srv := startServer(t, data)
		c, err := net.Dial("tcp", srv.mqtt)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { // ping, as a node does, until the connection ends
			defer close(done)
			go io.Copy(io.Discard, c)
			for {
				time.Sleep(500 * time.Millisecond)
				if _, err := c.Write([]byte{0xC0, 0}); err != nil {
					return
				}
			}
		}()
		if _, err := c.Write(servertest.ConnectPacket("alice-1", "alice", "alice-pw", 2)); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(3+2*i) * time.Millisecond)
		sigterm := time.Now()
		if err := srv.stop(t); err != nil {
			t.Errorf("run %d: mqtter server exit = %v, want 0", i, err)
		}
		t.Logf("run %d: exited %v after SIGTERM", i, time.Since(sigterm).Round(time.Millisecond))
		for _, addr := range []string{srv.mqtt, srv.http} {
			if l, err := net.Listen("tcp", addr); err != nil {
				t.Errorf("run %d: %s still bound after exit: %v", i, addr, err)
			} else {
				l.Close()
			}
		}
		c.Close()
		<-done
	}
}
