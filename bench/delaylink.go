package bench

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"
)

// delayLink is a TCP proxy on loopback that holds every byte for a fixed
// time in each direction, keeping their order: the link between two
// machines that loopback is not. A node announces its link's address
// (--p2p-announce) and the server's clients dial the server's link, so
// that every hop between processes crosses exactly one link. This kernel
// has no netem, and a proxy needs no privilege.
type delayLink struct {
	ln     net.Listener
	target string
	delay  time.Duration

	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

// linkChunk is what one read got, and when.
type linkChunk struct {
	b  []byte
	at time.Time
}

// linkQueue bounds the chunks in flight one way on a connection: the
// sender is held back (as by a full TCP window) past it.
const linkQueue = 256

// newDelayLink listens on a loopback port and forwards each connection
// to target, delay late each way.
func newDelayLink(target string, delay time.Duration) (*delayLink, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("delay link: %w", err)
	}
	l := &delayLink{ln: ln, target: target, delay: delay, conns: make(map[net.Conn]bool)}
	l.wg.Add(1)
	go l.accept()
	return l, nil
}

// addr is the link's host:port.
func (l *delayLink) addr() string { return l.ln.Addr().String() }

// port is the link's port.
func (l *delayLink) port() int { return l.ln.Addr().(*net.TCPAddr).Port }

func (l *delayLink) accept() {
	defer l.wg.Done()
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", l.target)
		if err != nil {
			c.Close()
			continue
		}
		if !l.track(c, up) {
			return
		}
		l.wg.Add(2)
		go l.pump(c, up)
		go l.pump(up, c)
	}
}

// track notes an open pair, or closes it when the link is closed.
func (l *delayLink) track(conns ...net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conns == nil {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		l.conns[c] = true
	}
	return true
}

// pump copies src to dst, each chunk delay after it was read; at src's
// end it half-closes dst, so an orderly close travels as late as the data.
func (l *delayLink) pump(src, dst net.Conn) {
	defer l.wg.Done()
	q := make(chan linkChunk, linkQueue)
	go func() {
		defer close(q)
		for {
			buf := make([]byte, 32<<10)
			n, err := src.Read(buf)
			if n > 0 {
				q <- linkChunk{b: buf[:n], at: time.Now()}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range q {
		time.Sleep(time.Until(c.at.Add(l.delay)))
		if _, err := dst.Write(c.b); err != nil {
			src.Close() // the reader stops; what is queued is dropped
			for range q {
			}
			return
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	} else {
		dst.Close()
	}
}

// close stops the link and every connection through it, and waits for
// its goroutines.
func (l *delayLink) close() error {
	err := l.ln.Close()
	l.mu.Lock()
	for c := range l.conns {
		c.Close()
	}
	l.conns = nil
	l.mu.Unlock()
	l.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// netLinks puts a world's hops between processes through delay links,
// when its delay is set: the server behind one link, each device behind
// one of its own that it announces, so that every hop crosses exactly one
// link (a connection crosses the link of the side dialled).
type netLinks struct {
	delay time.Duration
	all   []*delayLink
}

// server returns the URL clients use for the server at url (tcp://…).
func (ls *netLinks) server(url string) (string, error) {
	if ls.delay <= 0 {
		return url, nil
	}
	l, err := ls.link(strings.TrimPrefix(url, "tcp://"))
	if err != nil {
		return "", err
	}
	return "tcp://" + l.addr(), nil
}

// device returns where a device listens and what it announces (none
// without a delay: it listens on a port of its own choosing).
func (ls *netLinks) device() (listen string, announce []string, err error) {
	if ls.delay <= 0 {
		return "/ip4/127.0.0.1/tcp/0", nil, nil
	}
	addr, err := freeAddr()
	if err != nil {
		return "", nil, err
	}
	l, err := ls.link(addr)
	if err != nil {
		return "", nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	return "/ip4/127.0.0.1/tcp/" + port, []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", l.port())}, nil
}

// link starts a link to target, closed with the others.
func (ls *netLinks) link(target string) (*delayLink, error) {
	l, err := newDelayLink(target, ls.delay)
	if err != nil {
		return nil, err
	}
	ls.all = append(ls.all, l)
	return l, nil
}

// close stops every link and says what went wrong.
func (ls *netLinks) close() []string {
	var problems []string
	for _, l := range ls.all {
		if err := l.close(); err != nil {
			problems = append(problems, "delay link: "+err.Error())
		}
	}
	ls.all = nil
	return problems
}

// withLinks says, for a report's header, that a run's hops went through
// links of delay (nothing when it had none).
func withLinks(base string, delay time.Duration) string {
	if delay <= 0 {
		return base
	}
	return fmt.Sprintf("%s, each hop between processes through a link holding every byte %v each way (round trip %v); the local API calls cross none", base, delay, 2*delay)
}
