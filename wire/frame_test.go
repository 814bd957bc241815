package wire

import (
	"bytes"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
)

// frameCases are topic/body pairs for the frame tests; they also seed FuzzFrame.
var frameCases = []struct {
	topic string
	body  []byte
}{
	{"im://12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EF5kBbH6cYMqxm/send?msg_id=7", []byte(`{"MsgId":"01JD8RSH00B9D5MPJTB9D5MPJT","Feeds":"dm:alice:bob","SeqId":0,"MsgType":"text","From":"alice","Payload":{"text":"hi"},"TimeCreate":1732240000000,"Device":"12D3KooW"}`)},
	{"impush://modulus/news", []byte(`{"feeds":"dm:alice:bob","last_seq_id":42,"message":{}}`)},
	{"im://modulus/peers?msg_id=1", []byte(`{}`)},
	{"im://modulus/ack", nil},
	{"", []byte("x")},
	{"", nil},
	{strings.Repeat("t", 200), bytes.Repeat([]byte{0xff}, 300)},
	{strings.Repeat("t", MaxTopicLen), bytes.Repeat([]byte("b"), 1<<16)},
}

func TestFrameRoundTrip(t *testing.T) {
	for _, tt := range frameCases {
		b := AppendFrame([]byte("junk"), tt.topic, tt.body)
		if !bytes.HasPrefix(b, []byte("junk")) || len(b)-4 != FrameLen(tt.topic, tt.body) {
			t.Fatalf("AppendFrame = %d bytes, want junk + %d", len(b), FrameLen(tt.topic, tt.body))
		}
		b = b[4:]
		topic, body, n, err := DecodeFrame(b, 0)
		if err != nil || topic != tt.topic || !bytes.Equal(body, tt.body) || n != len(b) {
			t.Errorf("DecodeFrame(AppendFrame(%.30q, %d bytes)) = %.30q, %d bytes, n=%d, %v", tt.topic, len(tt.body), topic, len(body), n, err)
		}
		if cap(body) != len(body) {
			t.Errorf("DecodeFrame body cap %d, want %d so appends cannot clobber b", cap(body), len(body))
		}

		var buf bytes.Buffer
		if err := WriteFrame(&buf, tt.topic, tt.body); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(buf.Bytes(), b) {
			t.Errorf("WriteFrame wrote %x, AppendFrame %x", buf.Bytes(), b)
		}
		fr := NewFrameReader(&buf, 0)
		topic, body, err = fr.Next()
		if err != nil || topic != tt.topic || !bytes.Equal(body, tt.body) {
			t.Errorf("FrameReader.Next() = %.30q, %d bytes, %v", topic, len(body), err)
		}
		if _, _, err := fr.Next(); err != io.EOF {
			t.Errorf("FrameReader.Next() at the end = %v, want io.EOF", err)
		}
	}
}

func TestFramesOverPipe(t *testing.T) {
	client, server := net.Pipe()
	defer server.Close()
	const n = 200
	done := make(chan error, 1)
	go func() {
		defer client.Close()
		for i := range n {
			tt := frameCases[i%len(frameCases)]
			if err := WriteFrame(client, tt.topic, tt.body); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	fr := NewFrameReader(server, 0)
	for i := range n {
		tt := frameCases[i%len(frameCases)]
		topic, body, err := fr.Next()
		if err != nil || topic != tt.topic || !bytes.Equal(body, tt.body) {
			t.Fatalf("frame %d: Next() = %.30q, %d bytes, %v, want %.30q, %d bytes", i, topic, len(body), err, tt.topic, len(tt.body))
		}
	}
	if _, _, err := fr.Next(); err != io.EOF {
		t.Errorf("Next() after the last frame = %v, want io.EOF", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestFrameTruncated cuts a stream of frames at every offset and checks
// that both decoders report a clean end only at a frame boundary.
func TestFrameTruncated(t *testing.T) {
	var stream []byte
	boundaries := map[int]bool{0: true}
	for _, tt := range frameCases[:4] {
		stream = AppendFrame(stream, tt.topic, tt.body)
		boundaries[len(stream)] = true
	}
	for cut := 0; cut <= len(stream); cut++ {
		in := stream[:cut]
		fr := NewFrameReader(bytes.NewReader(in), 0)
		var err error
		frames := 0
		for err == nil {
			if _, _, err = fr.Next(); err == nil {
				frames++
			}
		}
		want := io.ErrUnexpectedEOF
		if boundaries[cut] {
			want = io.EOF
		}
		if err != want {
			t.Fatalf("FrameReader over %d of %d bytes: Next() = %v after %d frames, want %v", cut, len(stream), err, frames, want)
		}
		if _, _, again := fr.Next(); again != err {
			t.Errorf("Next() after %v = %v, want the same error", err, again)
		}

		off := 0
		for {
			_, _, n, derr := DecodeFrame(in[off:], 0)
			if derr != nil {
				if derr != want {
					t.Fatalf("DecodeFrame over %d of %d bytes at %d = %v, want %v", cut, len(stream), off, derr, want)
				}
				break
			}
			off += n
		}
	}
}

func TestFrameTooLarge(t *testing.T) {
	big := AppendFrame(nil, "im://modulus/send", make([]byte, 1001))
	if _, _, _, err := DecodeFrame(big, 1000); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("DecodeFrame(body 1001, limit 1000) = %v, want ErrFrameTooLarge", err)
	}
	if _, _, err := NewFrameReader(bytes.NewReader(big), 1000).Next(); !errors.Is(err, ErrFrameTooLarge) || !strings.Contains(err.Error(), "1001") {
		t.Errorf("Next(body 1001, limit 1000) = %v, want ErrFrameTooLarge naming the size", err)
	}
	if _, _, _, err := DecodeFrame(big, 1001); err != nil {
		t.Errorf("DecodeFrame(body 1001, limit 1001) = %v, want nil", err)
	}

	longTopic := AppendFrame(nil, strings.Repeat("t", MaxTopicLen+1), nil)
	if _, _, _, err := DecodeFrame(longTopic, 0); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("DecodeFrame(topic %d) = %v, want ErrFrameTooLarge", MaxTopicLen+1, err)
	}
	if _, _, err := NewFrameReader(bytes.NewReader(longTopic), 0).Next(); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("Next(topic %d) = %v, want ErrFrameTooLarge", MaxTopicLen+1, err)
	}
	if err := WriteFrame(io.Discard, strings.Repeat("t", MaxTopicLen+1), nil); !errors.Is(err, ErrFrameTooLarge) {
		t.Errorf("WriteFrame(topic %d) = %v, want ErrFrameTooLarge", MaxTopicLen+1, err)
	}
}

// TestFrameTooLargeBeforeAllocation claims a huge body on a stream that has
// only a few bytes: the reader must refuse before allocating for it.
func TestFrameTooLargeBeforeAllocation(t *testing.T) {
	header := AppendFrame(nil, "im://modulus/send", nil)
	header = header[:len(header)-1]                       // drop the body length
	header = append(header, 0xff, 0xff, 0xff, 0xff, 0x0f) // 2^32-1

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err := NewFrameReader(bytes.NewReader(header), 0).Next()
	_, _, _, derr := DecodeFrame(header, 0)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrFrameTooLarge) || !errors.Is(derr, ErrFrameTooLarge) {
		t.Fatalf("Next() = %v, DecodeFrame = %v, want ErrFrameTooLarge", err, derr)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
		t.Errorf("refusing a 4 GiB body allocated %d bytes", grew)
	}
}

func TestFrameBadLength(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
	}{
		{"non-minimal topic length", []byte{0x80, 0x00}},
		{"non-minimal body length", []byte{0x01, 'x', 0x81, 0x00}},
		{"overflow", []byte{0x01, 'x', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}},
		{"eleven bytes", []byte{0x01, 'x', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
	}
	for _, tt := range tests {
		if _, _, _, err := DecodeFrame(tt.in, 0); !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: DecodeFrame(%x) = %v, want ErrBadFrame", tt.name, tt.in, err)
		}
		if _, _, err := NewFrameReader(bytes.NewReader(tt.in), 0).Next(); !errors.Is(err, ErrBadFrame) {
			t.Errorf("%s: Next(%x) = %v, want ErrBadFrame", tt.name, tt.in, err)
		}
	}
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func TestFrameReaderPassesErrors(t *testing.T) {
	boom := errors.New("connection reset")
	_, _, err := NewFrameReader(failingReader{boom}, 0).Next()
	if !errors.Is(err, boom) {
		t.Errorf("Next() over a failing reader = %v, want it to wrap %v", err, boom)
	}
	if err := WriteFrame(failingWriter{boom}, "t", nil); !errors.Is(err, boom) {
		t.Errorf("WriteFrame to a failing writer = %v, want it to wrap %v", err, boom)
	}
}

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

func TestFrameLargeBodies(t *testing.T) {
	for _, size := range []int{bodyChunk - 1, bodyChunk, bodyChunk + 1, 3*bodyChunk + 7, DefaultMaxBody} {
		body := make([]byte, size)
		for i := range body {
			body[i] = byte(i * 7)
		}
		client, server := net.Pipe()
		go func() {
			defer client.Close()
			WriteFrame(client, "t", body)
		}()
		topic, got, err := NewFrameReader(server, 0).Next()
		server.Close()
		if err != nil || topic != "t" || !bytes.Equal(got, body) {
			t.Errorf("Next() of a %d-byte body = %q, %d bytes, %v", size, topic, len(got), err)
		}
		frame := AppendFrame(nil, "t", body)
		for _, cut := range []int{len(frame) - 1, len(frame) - bodyChunk, 5} {
			if _, _, err := NewFrameReader(bytes.NewReader(frame[:cut]), 0).Next(); err != io.ErrUnexpectedEOF {
				t.Errorf("Next() of a %d-byte body cut to %d bytes = %v, want io.ErrUnexpectedEOF", size, cut, err)
			}
		}
	}
}

// TestFrameStalledBodyAllocation announces the largest allowed body and
// sends none of it: the reader holds only one chunk for it.
func TestFrameStalledBodyAllocation(t *testing.T) {
	header := AppendFrame(nil, "t", make([]byte, DefaultMaxBody))[:6]
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, _, err := NewFrameReader(bytes.NewReader(header), 0).Next()
	runtime.ReadMemStats(&after)
	if err != io.ErrUnexpectedEOF {
		t.Fatalf("Next() = %v, want io.ErrUnexpectedEOF", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > bodyChunk+16<<10 {
		t.Errorf("a stalled %d-byte body allocated %d bytes, want about %d", DefaultMaxBody, grew, bodyChunk)
	}
}

// Ready says a frame is buffered whole only when Next can return it
// without reading: frames written back to back are ready one after
// another, a frame cut short is not, nor is anything after an error.
func TestFrameReaderReady(t *testing.T) {
	var stream []byte
	for _, tt := range frameCases[:3] {
		stream = AppendFrame(stream, tt.topic, tt.body)
	}
	first := FrameLen(frameCases[0].topic, frameCases[0].body)
	r, w := io.Pipe()
	go func() {
		w.Write(stream)                                    // three frames at once
		w.Write(stream[:first+5])                          // the first, and part of the second
		w.CloseWithError(errors.New("the peer went away")) // and no more
	}()
	fr := NewFrameReader(r, 0)
	if fr.Ready() {
		t.Fatal("Ready before anything was read")
	}
	for i := range 3 {
		if _, _, err := fr.Next(); err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		if want := i < 2; fr.Ready() != want {
			t.Errorf("Ready after frame %d = %v, want %v", i, !want, want)
		}
	}
	if _, _, err := fr.Next(); err != nil {
		t.Fatalf("frame 4: %v", err)
	}
	if fr.Ready() {
		t.Error("Ready with only part of a frame buffered")
	}
	if _, _, err := fr.Next(); err == nil {
		t.Fatal("Next read a frame cut short")
	}
	if fr.Ready() {
		t.Error("Ready after an error")
	}
}
