package server_test

import (
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mqtter/mqtter/wire"
)

// A stopped server leaves no goroutine behind: not the broker's, the
// workers', the store writer's nor the clients' sessions. Not parallel, so
// no other test's goroutines are counted.
func TestStoppedServerLeaksNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		inst, c := start(t, "alice", "bob")
		a, b := c[0], c[1]
		befriend(t, a, b)
		for range 20 {
			send(t, a, text(wire.DM("alice", "bob"), "x"))
		}
		b.News()
		// Stop the server under connected clients, then close them.
		inst.Stop(t)
		a.Close()
		b.Close()
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			stacks := string(buf[:runtime.Stack(buf, true)])
			var ours []string
			for _, g := range strings.Split(stacks, "\n\n") {
				if strings.Contains(g, "mqtter/server") || strings.Contains(g, "mochi-mqtt") {
					ours = append(ours, g)
				}
			}
			t.Fatalf("%d goroutines after stopping the server, %d before; the server's:\n%s", n, before, strings.Join(ours, "\n\n"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
