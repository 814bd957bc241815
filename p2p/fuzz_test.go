package p2p

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/mqtter/mqtter/wire"
)

// FuzzStreamInput feeds arbitrary bytes to the inbound stream loop, with a
// Handler and with an AsyncHandler that answers from other goroutines: it
// must not panic, and what it writes must be exactly the answers (as
// frames), in request order, to the well-formed frames that precede the
// first malformed one.
func FuzzStreamInput(f *testing.F) {
	topic := "im://12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EF5kBbH6cYMqxm/send?msg_id=7"
	f.Add(wire.AppendFrame(nil, topic, []byte(`{"Text":"hi"}`)))
	f.Add(wire.AppendFrame(wire.AppendFrame(nil, topic, nil), "im://x/silent", []byte("x")))
	f.Add(append(wire.AppendFrame(nil, topic, []byte("a")), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01))
	f.Add([]byte{0x80, 0x00})
	f.Add([]byte{0x05, 'a', 'b'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, hd := range []Handler{echoHandler, asyncEcho{}} {
			fuzzStream(t, in, hd)
		}
	})
}

func fuzzStream(t *testing.T, in []byte, hd Handler) {
	var out bytes.Buffer
	rw := struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(in), &out}
	err := serveStream(context.Background(), rw, "", hd, time.Minute, time.Minute)

	// What the loop should have answered, from decoding in directly.
	var want []byte
	wantErr := false
	for rest := in; ; {
		topic, body, n, derr := wire.DecodeFrame(rest, wire.DefaultMaxBody)
		if derr != nil {
			wantErr = derr != io.EOF
			break
		}
		rest = rest[n:]
		if answer := echoHandler(context.Background(), "", topic, body); answer != nil {
			want = wire.AppendFrame(want, topic, answer)
		}
	}
	if (err != nil) != wantErr {
		t.Fatalf("serveStream error = %v, want error %v", err, wantErr)
	}
	if got := untrace(t, out.Bytes()); !bytes.Equal(got, want) {
		t.Fatalf("serveStream wrote %q, want %q (Traces blanked)", got, want)
	}
	for rest := out.Bytes(); len(rest) > 0; {
		_, body, n, derr := wire.DecodeFrame(rest, wire.DefaultMaxBody)
		if derr != nil {
			t.Fatalf("answer frame does not parse: %v", derr)
		}
		if _, perr := wire.ParseAnswer(body); perr != nil {
			t.Fatalf("answer body does not parse: %v", perr)
		}
		rest = rest[n:]
	}
}

// asyncEcho is echoHandler as an AsyncHandler answering from goroutines,
// so that answers become ready out of order.
type asyncEcho struct{}

func (asyncEcho) HandlePacket(ctx context.Context, from peer.ID, topic string, body []byte) []byte {
	return echoHandler(ctx, from, topic, body)
}

func (asyncEcho) HandlePacketAsync(ctx context.Context, from peer.ID, topic string, body []byte, answer func([]byte)) {
	go func() { answer(echoHandler(ctx, from, topic, body)) }()
}

// untrace returns the answer frames in b with the Trace serveStream gave
// each blanked again, failing if one has none.
func untrace(t *testing.T, b []byte) []byte {
	t.Helper()
	var out []byte
	for rest := b; len(rest) > 0; {
		topic, body, n, err := wire.DecodeFrame(rest, wire.DefaultMaxBody)
		if err != nil {
			return b // the caller's comparison reports it
		}
		rest = rest[n:]
		const traced = len(`{"Trace":"0123456789abcdef"`)
		if !bytes.HasPrefix(body, []byte(`{"Trace":"`)) || len(body) < traced || body[traced-1] != '"' {
			t.Fatalf("answer %q has no Trace", body)
		}
		out = wire.AppendFrame(out, topic, append([]byte(untraced), body[traced:]...))
	}
	return out
}
