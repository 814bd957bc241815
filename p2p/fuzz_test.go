package p2p

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/mqtter/mqtter/wire"
)

// FuzzStreamInput feeds arbitrary bytes to the inbound stream loop: it must
// not panic, and what it writes must be exactly the answers (as frames) to
// the well-formed frames that precede the first malformed one.
func FuzzStreamInput(f *testing.F) {
	topic := "im://12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EF5kBbH6cYMqxm/send?msg_id=7"
	f.Add(wire.AppendFrame(nil, topic, []byte(`{"Text":"hi"}`)))
	f.Add(wire.AppendFrame(wire.AppendFrame(nil, topic, nil), "im://x/silent", []byte("x")))
	f.Add(append(wire.AppendFrame(nil, topic, []byte("a")), 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01))
	f.Add([]byte{0x80, 0x00})
	f.Add([]byte{0x05, 'a', 'b'})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		rw := struct {
			io.Reader
			io.Writer
		}{bytes.NewReader(in), &out}
		err := serveStream(context.Background(), rw, "", echoHandler, time.Minute, time.Minute)

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
		if !bytes.Equal(out.Bytes(), want) {
			t.Fatalf("serveStream wrote %q, want %q", out.Bytes(), want)
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
	})
}
