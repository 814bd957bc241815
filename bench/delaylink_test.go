package bench

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"testing"
	"time"
)

// echoServer answers every connection with what it reads.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// A round trip through a link takes at least twice its delay, and the
// bytes arrive whole and in order.
func TestDelayLink(t *testing.T) {
	const delay = 20 * time.Millisecond
	l, err := newDelayLink(echoServer(t), delay)
	if err != nil {
		t.Fatal(err)
	}
	defer l.close()
	c, err := net.Dial("tcp", l.addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); string(got) != "ping" || took < 2*delay {
		t.Errorf("echo %q after %v, want ping after at least %v", got, took, 2*delay)
	}

	big := make([]byte, 4<<20)
	rand.Read(big)
	go c.Write(big)
	back := make([]byte, len(big))
	if _, err := io.ReadFull(c, back); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, big) {
		t.Error("4 MiB through the link came back changed or out of order")
	}

	// Closing the link ends the connections through it.
	l.close()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); err == nil {
		t.Error("a connection through a closed link still reads")
	}
}
