package p2p

import (
	"io"
	"log/slog"
	"testing"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/protocol"

	"github.com/mqtter/mqtter/wire"
)

// quiet keeps benchmark hosts from logging every stream.
func quiet(c *Config) { c.Logger = slog.New(slog.DiscardHandler) }

// BenchmarkRequest measures one request and its answer over loopback, one
// after another on the same stream.
func BenchmarkRequest(b *testing.B) {
	client, server := pair(b, quiet)
	addrs := addrsOf(b, server)
	topic := wire.RequestTopic(server.ID().String(), "send", "1")
	body := make([]byte, 256)
	if _, err := client.Request(b.Context(), server.ID(), addrs, topic, body); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := client.Request(b.Context(), server.ID(), nil, topic, body); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEcho is the ceiling for BenchmarkRequest: the same frame echoed
// on a raw libp2p stream, with no framing logic, handler or matching.
func BenchmarkEcho(b *testing.B) {
	const echoID protocol.ID = "/mqtter/bench-echo/1.0.0"
	client, server := pair(b, quiet)
	server.h.SetStreamHandler(echoID, func(s network.Stream) {
		_, _ = io.Copy(s, s)
		_ = s.Reset()
	})
	client.h.Peerstore().AddAddrs(server.ID(), dialAddrs(server.ID(), addrsOf(b, server)), 0x7fffffff)
	s, err := client.h.NewStream(b.Context(), server.ID(), echoID)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Reset() }()
	frame := wire.AppendFrame(nil, wire.RequestTopic(server.ID().String(), "send", "1"), make([]byte, 256))
	back := make([]byte, len(frame))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Write(frame); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(s, back); err != nil {
			b.Fatal(err)
		}
	}
}
