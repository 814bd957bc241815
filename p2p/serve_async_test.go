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
