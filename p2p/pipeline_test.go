package p2p

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/mqtter/mqtter/wire"
)

// burst returns n request topics to server and their bodies.
func burst(server *Host, prefix string, n int) ([]string, [][]byte) {
	topics, bodies := make([]string, n), make([][]byte, n)
	for i := range n {
		topics[i] = wire.RequestTopic(server.ID().String(), "send", fmt.Sprintf("%s%d", prefix, i))
		bodies[i] = fmt.Appendf(nil, "body %s%d", prefix, i)
	}
	return topics, bodies
}

func TestRequestAllInOrder(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	client, server := pair(t, func(c *Config) {
		c.Handler = HandlerFunc(func(ctx context.Context, from peer.ID, topic string, body []byte) []byte {
			mu.Lock()
			seen = append(seen, topic)
			mu.Unlock()
			return echoHandler(ctx, from, topic, body)
		})
	})
	topics, bodies := burst(server, "m", 600) // more than one flushSize of frames
	answers, errs := client.RequestAll(t.Context(), server.ID(), addrsOf(t, server), topics, bodies)
	for i := range topics {
		if errs[i] != nil {
			t.Fatalf("request %d: %v", i, errs[i])
		}
		wantEcho(t, answers[i], topics[i], string(bodies[i]))
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(seen, topics) {
		t.Errorf("the peer handled %d requests in another order than sent", len(seen))
	}

	// Nothing to send is no request at all.
	answers, errs = client.RequestAll(t.Context(), server.ID(), nil, nil, nil)
	if len(answers) != 0 || len(errs) != 0 {
		t.Errorf("RequestAll(nothing) = %v, %v, want empty", answers, errs)
	}
}

// TestRequestAllWritesBackToBack serves the stream with a peer that reads
// the whole burst before it answers anything: requests sent one after
// another, each waiting for its answer, would never finish.
func TestRequestAllWritesBackToBack(t *testing.T) {
	client, server := pair(t, nil)
	const n = 50
	server.h.SetStreamHandler(ProtocolID, func(s network.Stream) {
		defer s.Close()
		fr := wire.NewFrameReader(s, 0)
		var topics []string
		for range n {
			topic, _, err := fr.Next()
			if err != nil {
				_ = s.Reset()
				return
			}
			topics = append(topics, topic)
		}
		for _, topic := range topics {
			if err := wire.WriteFrame(s, topic, []byte("after all")); err != nil {
				return
			}
		}
	})
	topics, bodies := burst(server, "b", n)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	answers, errs := client.RequestAll(ctx, server.ID(), addrsOf(t, server), topics, bodies)
	for i := range n {
		if errs[i] != nil || string(answers[i]) != "after all" {
			t.Fatalf("request %d = %q, %v; want the answer sent after the whole burst", i, answers[i], errs[i])
		}
	}
}

func TestRequestAllErrorsInTheMiddle(t *testing.T) {
	client, server := pair(t, func(c *Config) {
		c.Handler = HandlerFunc(func(ctx context.Context, from peer.ID, topic string, body []byte) []byte {
			if string(body) == "refuse" {
				return wire.Fail("", "forbidden: refused")
			}
			return echoHandler(ctx, from, topic, body)
		})
	})
	topics, bodies := burst(server, "e", 8)
	bodies[2] = make([]byte, wire.DefaultMaxBody+1)        // never sent
	topics[4] = "im://" + server.ID().String() + "/silent" // sent, never answered
	bodies[6] = []byte("refuse")                           // answered with an Error
	answers, errs := client.RequestAll(t.Context(), server.ID(), addrsOf(t, server), topics, bodies)
	for i := range topics {
		switch i {
		case 2:
			if !errors.Is(errs[i], wire.ErrFrameTooLarge) || answers[i] != nil {
				t.Errorf("request 2 (too large) = %q, %v; want ErrFrameTooLarge", answers[i], errs[i])
			}
		case 4:
			if !errors.Is(errs[i], ErrNoAnswer) || answers[i] != nil {
				t.Errorf("request 4 (unanswered) = %q, %v; want ErrNoAnswer", answers[i], errs[i])
			}
		case 6:
			a, err := wire.ParseAnswer(answers[i])
			if errs[i] != nil || err != nil || a.Err() == nil {
				t.Errorf("request 6 (refused) = %q, %v; want an Error answer", answers[i], errs[i])
			}
		default:
			if errs[i] != nil {
				t.Errorf("request %d: %v", i, errs[i])
				continue
			}
			wantEcho(t, answers[i], topics[i], string(bodies[i]))
		}
	}
}

func TestRequestAllStreamFailsMidBatch(t *testing.T) {
	client, server := pair(t, nil)
	const n, answered = 20, 7
	server.h.SetStreamHandler(ProtocolID, func(s network.Stream) {
		fr := wire.NewFrameReader(s, 0)
		for i := 0; ; i++ {
			topic, _, err := fr.Next()
			if err != nil {
				_ = s.Reset()
				return
			}
			if i == answered {
				// The peer dies mid-batch, once the answers it wrote have
				// had time to arrive (a reset discards unread data).
				time.Sleep(200 * time.Millisecond)
				_ = s.ResetWithError(codeStreamFailure)
				return
			}
			if err := wire.WriteFrame(s, topic, []byte("ok")); err != nil {
				return
			}
		}
	})
	topics, bodies := burst(server, "f", n)
	answers, errs := client.RequestAll(t.Context(), server.ID(), addrsOf(t, server), topics, bodies)
	for i := range n {
		if i < answered {
			if errs[i] != nil || string(answers[i]) != "ok" {
				t.Errorf("request %d, before the failure = %q, %v; want its answer", i, answers[i], errs[i])
			}
			continue
		}
		var se *network.StreamError
		if !errors.As(errs[i], &se) || answers[i] != nil {
			t.Errorf("request %d, after the failure = %q, %v; want the stream's reset", i, answers[i], errs[i])
		}
	}
	t.Logf("after the failure: %v", errs[answered])

	// The next burst opens a fresh stream.
	server.h.SetStreamHandler(ProtocolID, server.handleStream)
	topics, bodies = burst(server, "g", 5)
	answers, errs = client.RequestAll(t.Context(), server.ID(), nil, topics, bodies)
	for i := range topics {
		if errs[i] != nil {
			t.Fatalf("request %d after the failed stream: %v", i, errs[i])
		}
		wantEcho(t, answers[i], topics[i], string(bodies[i]))
	}
}

func TestRequestAllDeadlineMidBatch(t *testing.T) {
	release := make(chan struct{})
	client, server := pair(t, func(c *Config) {
		c.Handler = HandlerFunc(func(ctx context.Context, from peer.ID, topic string, body []byte) []byte {
			if string(body) == "body d3" {
				select { // stuck until the test ends
				case <-release:
				case <-ctx.Done():
				}
			}
			return echoHandler(ctx, from, topic, body)
		})
	})
	defer close(release)
	topics, bodies := burst(server, "d", 6)
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	answers, errs := client.RequestAll(ctx, server.ID(), addrsOf(t, server), topics, bodies)
	for i := range topics {
		if i < 3 {
			if errs[i] != nil {
				t.Errorf("request %d, answered before the deadline: %v", i, errs[i])
			} else {
				wantEcho(t, answers[i], topics[i], string(bodies[i]))
			}
			continue
		}
		if !errors.Is(errs[i], context.DeadlineExceeded) {
			t.Errorf("request %d, not answered by the deadline = %q, %v; want DeadlineExceeded", i, answers[i], errs[i])
		}
	}
}

// TestRequestAllConcurrent mixes bursts and single requests on the one
// stream to a peer: each caller gets its own answers.
func TestRequestAllConcurrent(t *testing.T) {
	client, server := pair(t, nil)
	addrs := addrsOf(t, server)
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Go(func() {
			for round := range 5 {
				prefix := fmt.Sprintf("w%dr%d-", w, round)
				if w%2 == 0 {
					topics, bodies := burst(server, prefix, 40)
					answers, errs := client.RequestAll(t.Context(), server.ID(), addrs, topics, bodies)
					for i := range topics {
						if errs[i] != nil {
							t.Errorf("%s%d: %v", prefix, i, errs[i])
							return
						}
						wantEcho(t, answers[i], topics[i], string(bodies[i]))
					}
					continue
				}
				topics, bodies := burst(server, prefix, 1)
				answer, err := client.Request(t.Context(), server.ID(), addrs, topics[0], bodies[0])
				if err != nil {
					t.Errorf("%s: %v", prefix, err)
					return
				}
				wantEcho(t, answer, topics[0], string(bodies[0]))
			}
		})
	}
	wg.Wait()
}

func TestRequestAllAfterClose(t *testing.T) {
	client, server := pair(t, nil)
	topics, bodies := burst(server, "c", 3)
	if err := client.Close(); err != nil {
		t.Fatal(err)
	}
	_, errs := client.RequestAll(t.Context(), server.ID(), addrsOf(t, server), topics, bodies)
	for i, err := range errs {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("request %d after Close = %v, want ErrClosed", i, err)
		}
	}
}

// BenchmarkRequestAll measures bursts of 256 requests on one stream, the
// way the outbox sends a batch; compare ns/op/256 with BenchmarkRequest.
func BenchmarkRequestAll(b *testing.B) {
	client, server := pair(b, quiet)
	addrs := addrsOf(b, server)
	topics, _ := burst(server, "x", 256)
	bodies := make([][]byte, len(topics))
	for i := range bodies {
		bodies[i] = bytes.Repeat([]byte("x"), 256) // plain text: the echo's JSON has nothing to escape
	}
	b.ReportAllocs()
	for b.Loop() {
		_, errs := client.RequestAll(b.Context(), server.ID(), addrs, topics, bodies)
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(topics)), "ns/request")
}
