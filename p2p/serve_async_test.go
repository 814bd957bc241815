package p2p

import (
	"context"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// holdAll is an AsyncHandler that answers nothing until it holds n
// requests, then answers them last first: with a plain Handler the first
// request would wait for the n-th forever.
type holdAll struct {
	n       int
	mu      sync.Mutex
	pending []func()
}

func (h *holdAll) HandlePacket(ctx context.Context, from peer.ID, topic string, body []byte) []byte {
	return echoHandler(ctx, from, topic, body)
}

func (h *holdAll) HandlePacketAsync(ctx context.Context, from peer.ID, topic string, body []byte, answer func([]byte)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pending = append(h.pending, func() { answer(echoHandler(ctx, from, topic, body)) })
	if len(h.pending) < h.n {
		return
	}
	for i := len(h.pending) - 1; i >= 0; i-- {
		go h.pending[i]()
	}
	h.pending = nil
}

func TestAsyncHandlerReadsOnAndAnswersInOrder(t *testing.T) {
	const n = 300
	hd := &holdAll{n: n}
	client, server := pair(t, func(c *Config) { c.Handler = hd })
	topics, bodies := burst(server, "a", n)
	answers, errs := client.RequestAll(t.Context(), server.ID(), addrsOf(t, server), topics, bodies)
	for i := range topics {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		wantEcho(t, answers[i], topics[i], string(bodies[i]))
	}
	// A silent request (nil answer) holds up no later one.
	hd.mu.Lock()
	hd.n = 1
	hd.mu.Unlock()
	silent := "im://" + server.ID().String() + "/silent"
	answers, errs = client.RequestAll(t.Context(), server.ID(), nil, []string{silent, topics[0]}, [][]byte{nil, []byte("after")})
	if errs[1] != nil {
		t.Fatalf("the request after a silent one: %v", errs[1])
	}
	wantEcho(t, answers[1], topics[0], "after")
	if errs[0] == nil {
		t.Errorf("the silent request got answer %q, want an error", answers[0])
	}
}

// burstEcho is an echo BurstHandler that records the size of each burst
// and answers a burst's requests last first.
type burstEcho struct {
	mu     sync.Mutex
	sizes  []int
	single int
}

func (h *burstEcho) HandlePacket(ctx context.Context, from peer.ID, topic string, body []byte) []byte {
	return echoHandler(ctx, from, topic, body)
}

func (h *burstEcho) HandlePacketAsync(ctx context.Context, from peer.ID, topic string, body []byte, answer func([]byte)) {
	h.mu.Lock()
	h.single++
	h.mu.Unlock()
	answer(echoHandler(ctx, from, topic, body))
}

func (h *burstEcho) HandleBurst(ctx context.Context, from peer.ID, reqs []Request) {
	h.mu.Lock()
	h.sizes = append(h.sizes, len(reqs))
	h.mu.Unlock()
	for i := len(reqs) - 1; i >= 0; i-- {
		reqs[i].Answer(echoHandler(ctx, from, reqs[i].Topic, reqs[i].Body))
	}
}

// A BurstHandler gets the requests a peer wrote back to back together, at
// most maxBurst at once, and a request alone one by one; every request is
// handled once and the answers come in request order.
func TestBurstHandlerGetsBackToBackRequestsTogether(t *testing.T) {
	hd := &burstEcho{}
	client, server := pair(t, func(c *Config) { c.Handler = hd })
	const n = 200
	topics, bodies := burst(server, "b", n)
	answers, errs := client.RequestAll(t.Context(), server.ID(), addrsOf(t, server), topics, bodies)
	for i := range topics {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		wantEcho(t, answers[i], topics[i], string(bodies[i]))
	}
	hd.mu.Lock()
	total, most := hd.single, 0
	for _, s := range hd.sizes {
		total += s
		most = max(most, s)
	}
	sizes := append([]int(nil), hd.sizes...)
	hd.mu.Unlock()
	if total != n {
		t.Errorf("%d requests handled (bursts %v, %d alone), want %d", total, sizes, total-n, n)
	}
	if len(sizes) == 0 || most > maxBurst {
		t.Errorf("bursts %v: want some, none over %d", sizes, maxBurst)
	}
	// One request alone goes through HandlePacketAsync.
	hd.mu.Lock()
	before := hd.single
	hd.mu.Unlock()
	answers, errs = client.RequestAll(t.Context(), server.ID(), nil, topics[:1], bodies[:1])
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
	wantEcho(t, answers[0], topics[0], string(bodies[0]))
	hd.mu.Lock()
	defer hd.mu.Unlock()
	if hd.single != before+1 {
		t.Errorf("a lone request: %d handled alone, want %d", hd.single, before+1)
	}
}
