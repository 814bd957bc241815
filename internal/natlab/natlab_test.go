package natlab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

// The helper process: run in a namespace by TestNetwork, it accepts one
// TCP connection on ServerIP:7000 and writes back the address it came
// from.
func TestMain(m *testing.M) {
	if os.Getenv("NATLAB_HELPER") == "echo-source" {
		ln, err := net.Listen("tcp", ServerIP+":7000")
		if err != nil {
			fmt.Println("listen:", err)
			os.Exit(1)
		}
		fmt.Println("listening")
		c, err := ln.Accept()
		if err != nil {
			os.Exit(1)
		}
		fmt.Fprintln(c, c.RemoteAddr())
		c.Close()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func newNet(t *testing.T, opts Options) *Net {
	t.Helper()
	n, err := New(opts)
	if errors.Is(err, ErrUnavailable) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Error(err)
		}
	})
	return n
}

// A host behind a router reaches the server as the router's public
// address; the server cannot reach into the private network; a namespace
// does not see the loopback of the process that built it.
func TestNetwork(t *testing.T) {
	n := newNet(t, Options{})
	helper := n.Command(t.Context(), n.Pub, os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), "NATLAB_HELPER=echo-source")
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer helper.Wait()
	defer helper.Process.Kill()
	lines := bufio.NewScanner(out)
	if !lines.Scan() || lines.Text() != "listening" {
		t.Fatalf("helper said %q", lines.Text())
	}

	c, err := n.DialContext(n.A)(t.Context(), "tcp", ServerIP+":7000")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	seen, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(seen, "192.0.0.130:") {
		t.Errorf("the server saw a's connection come from %q, want its router's 192.0.0.130", seen)
	}

	dial := n.DialContext(n.Pub)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if c, err := dial(ctx, "tcp", "10.77.1.2:7000"); err == nil {
		c.Close()
		t.Error("the public side dialled into a private network")
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if c, err := n.DialContext(n.A)(t.Context(), "tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("a namespace reached the builder's loopback")
	}
}

// Close leaves no namespace behind and may be called twice.
func TestClose(t *testing.T) {
	n := newNet(t, Options{Symmetric: true})
	ns := n.A
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/run/netns/" + ns); !os.IsNotExist(err) {
		t.Errorf("namespace %s still there after Close (%v)", ns, err)
	}
	if err := n.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
