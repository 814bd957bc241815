package server

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"
)

// throttle counts failures (wrong passwords, wrong pairing codes) per key
// (a source address, an account, a thing) and backs a key off once it has
// made free of them: each further failure doubles the back-off, from base
// up to max. While a key is backed off its attempts are refused before any
// work is done for them. A key that has been quiet for max after its
// back-off ended is forgotten, and the table never holds more than size
// keys: an attacker who floods it with keys evicts other keys, never grows
// it.
type throttle struct {
	free      int
	base, max time.Duration
	size      int

	mu    sync.Mutex
	m     map[string]*failures
	swept time.Time // when stale keys were last removed
}

// failures is what a throttle remembers of one key.
type failures struct {
	n     int       // failures counted since the key was last forgotten
	last  time.Time // the latest failure
	until time.Time // backed off until then
}

func newThrottle(free int, base, max time.Duration, size int) *throttle {
	return &throttle{free: free, base: base, max: max, size: size, m: make(map[string]*failures)}
}

// stale reports whether f may be forgotten at now.
func (t *throttle) stale(f *failures, now time.Time) bool {
	return now.After(f.until.Add(t.max)) && now.After(f.last.Add(t.max))
}

// blocked reports whether key is backed off at now, and for how long yet.
func (t *throttle) blocked(key string, now time.Time) (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.m[key]
	if !ok {
		return false, 0
	}
	if now.Before(f.until) {
		return true, f.until.Sub(now)
	}
	if t.stale(f, now) {
		delete(t.m, key)
	}
	return false, 0
}

// fail counts a failure of key at now.
func (t *throttle) fail(key string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f, ok := t.m[key]
	if ok && t.stale(f, now) {
		f, ok = nil, false
		delete(t.m, key)
	}
	if !ok {
		t.makeRoom(now)
		f = &failures{}
		t.m[key] = f
	}
	f.n++
	f.last = now
	if f.n >= t.free {
		d := t.max
		if shift := f.n - t.free; shift < 32 {
			d = min(t.base<<shift, t.max)
		}
		f.until = now.Add(d)
	}
}

// makeRoom keeps the table under its size before a key is added: stale
// keys go first (a full scan, at most once a second), then an arbitrary
// one (map order is random).
func (t *throttle) makeRoom(now time.Time) {
	if len(t.m) < t.size {
		return
	}
	if now.Sub(t.swept) >= time.Second {
		t.swept = now
		for k, f := range t.m {
			if t.stale(f, now) {
				delete(t.m, k)
			}
		}
	}
	for k := range t.m {
		if len(t.m) < t.size {
			break
		}
		delete(t.m, k)
	}
}

// len returns how many keys the table holds.
func (t *throttle) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// sourceKey is the key of a client's network address in the address
// throttle: its IP without the port, and for IPv6 its /64, the block one
// subscriber usually gets whole.
func sourceKey(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		host = remote
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	ip = ip.Unmap()
	if ip.Is6() {
		p, _ := ip.Prefix(64)
		return p.String()
	}
	return ip.String()
}

// hashGate bounds the concurrent password hash checks to slots, and the
// checks one key (an address, an account) may run at once to perKey, so
// that the failures of one storm can never take every slot and a correct
// login of someone else waits for at most the checks already running.
type hashGate struct {
	slots, perKey int

	mu    sync.Mutex
	busy  int
	held  map[string]int
	freed chan struct{} // closed and replaced when a slot is released
}

func newHashGate(slots int) *hashGate {
	slots = max(slots, 2)
	return &hashGate{slots: slots, perKey: max(1, slots/2), held: make(map[string]int), freed: make(chan struct{})}
}

// acquire waits for a slot that none of keys has used up, and returns what
// releases it.
func (g *hashGate) acquire(ctx context.Context, keys ...string) (release func(), err error) {
	for {
		g.mu.Lock()
		ok := g.busy < g.slots
		for _, k := range keys {
			ok = ok && g.held[k] < g.perKey
		}
		if ok {
			g.busy++
			for _, k := range keys {
				g.held[k]++
			}
			g.mu.Unlock()
			return func() { g.release(keys) }, nil
		}
		freed := g.freed
		g.mu.Unlock()
		select {
		case <-freed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (g *hashGate) release(keys []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.busy--
	for _, k := range keys {
		if g.held[k]--; g.held[k] <= 0 {
			delete(g.held, k)
		}
	}
	close(g.freed)
	g.freed = make(chan struct{})
}
