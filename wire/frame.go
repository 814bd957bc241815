package wire

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxBody is the default limit on a request or frame body, in bytes.
const DefaultMaxBody = 256 << 10

// ErrFrameTooLarge is wrapped when a frame's topic is over MaxTopicLen or its
// body over the reader's limit. The stream cannot be resynchronized after it.
var ErrFrameTooLarge = errors.New("frame too large")

// ErrBadFrame is wrapped when a frame's length prefix is malformed: over 64
// bits, or not minimally encoded. The stream cannot be resynchronized after it.
var ErrBadFrame = errors.New("bad frame")

// AppendFrame appends one frame carrying topic and body to dst (see the
// package doc for the layout). It does not check the limits; WriteFrame does.
func AppendFrame(dst []byte, topic string, body []byte) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(topic)))
	dst = append(dst, topic...)
	dst = binary.AppendUvarint(dst, uint64(len(body)))
	return append(dst, body...)
}

// FrameLen returns the encoded size of the frame AppendFrame would append.
func FrameLen(topic string, body []byte) int {
	return uvarintLen(uint64(len(topic))) + len(topic) + uvarintLen(uint64(len(body))) + len(body)
}

func uvarintLen(v uint64) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}

// WriteFrame writes one frame to w in a single Write call. A topic over
// MaxTopicLen is refused with an error wrapping ErrFrameTooLarge, since no
// reader would take it. Concurrent writers to one stream must serialize.
func WriteFrame(w io.Writer, topic string, body []byte) error {
	if len(topic) > MaxTopicLen {
		return fmt.Errorf("write frame: %w: topic of %d bytes, limit %d", ErrFrameTooLarge, len(topic), MaxTopicLen)
	}
	if _, err := w.Write(AppendFrame(make([]byte, 0, FrameLen(topic, body)), topic, body)); err != nil {
		return fmt.Errorf("write frame: %w", err)
	}
	return nil
}

// FrameReader reads frames one after another from a stream.
type FrameReader struct {
	r       *bufio.Reader
	maxBody int
	err     error // sticky: once a frame fails, every later Next fails the same way
}

// NewFrameReader returns a reader of the frames on r that refuses bodies over
// maxBody bytes (DefaultMaxBody if maxBody <= 0).
func NewFrameReader(r io.Reader, maxBody int) *FrameReader {
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	return &FrameReader{r: bufio.NewReaderSize(r, frameBuffer), maxBody: maxBody}
}

// frameBuffer is a FrameReader's read buffer: a burst of small frames
// written back to back fits, so Ready can tell it is all there.
const frameBuffer = 8 << 10

// Ready reports whether a whole frame is already buffered, so that Next
// returns it without waiting for the stream: a reader can take the frames
// a peer wrote back to back as one burst.
func (r *FrameReader) Ready() bool {
	if r.err != nil || r.r.Buffered() == 0 {
		return false
	}
	b, err := r.r.Peek(r.r.Buffered())
	if err != nil {
		return false
	}
	_, _, _, err = DecodeFrame(b, r.maxBody)
	return err == nil
}

// Next reads the next frame. It returns io.EOF when the stream ends cleanly
// between frames, io.ErrUnexpectedEOF when it ends inside one, and an error
// wrapping ErrFrameTooLarge or ErrBadFrame for a length over the limits or
// malformed; it checks each length before allocating for it. The body is
// freshly allocated and the caller's to keep. After an error every call
// returns the same error.
func (r *FrameReader) Next() (topic string, body []byte, err error) {
	if r.err != nil {
		return "", nil, r.err
	}
	topic, body, err = r.next()
	if err != nil {
		r.err = err
		return "", nil, err
	}
	return topic, body, nil
}

func (r *FrameReader) next() (string, []byte, error) {
	topicLen, err := r.readLen(true)
	if err != nil {
		return "", nil, err
	}
	if topicLen > MaxTopicLen {
		return "", nil, topicTooLarge(topicLen)
	}
	topic := make([]byte, topicLen)
	if err := r.readFull(topic); err != nil {
		return "", nil, err
	}
	bodyLen, err := r.readLen(false)
	if err != nil {
		return "", nil, err
	}
	if bodyLen > uint64(r.maxBody) {
		return "", nil, bodyTooLarge(bodyLen, r.maxBody)
	}
	body, err := r.readBody(int(bodyLen))
	if err != nil {
		return "", nil, err
	}
	return string(topic), body, nil
}

// bodyChunk is how much of a large body the reader allocates before any of
// it has arrived: a peer that announces a big body and stalls holds at most
// this much, or twice what it actually sent.
const bodyChunk = 64 << 10

// readBody reads n bytes, doubling the buffer as they arrive.
func (r *FrameReader) readBody(n int) ([]byte, error) {
	body := make([]byte, min(n, bodyChunk))
	for read := 0; ; {
		if err := r.readFull(body[read:]); err != nil {
			return nil, err
		}
		read = len(body)
		if read == n {
			return body, nil
		}
		body = append(body, make([]byte, min(n-read, read))...)
	}
}

// readLen reads one length prefix. Only at the start of a frame (first) is
// an end of stream before any byte a clean io.EOF.
func (r *FrameReader) readLen(first bool) (uint64, error) {
	var v uint64
	for i := 0; ; i++ {
		c, err := r.r.ReadByte()
		if err != nil {
			return 0, r.readError(err, first && i == 0)
		}
		if v, err = addVarintByte(v, c, i); err != nil || c < 0x80 {
			return v, err
		}
	}
}

func (r *FrameReader) readFull(p []byte) error {
	if _, err := io.ReadFull(r.r, p); err != nil {
		return r.readError(err, false)
	}
	return nil
}

func (r *FrameReader) readError(err error, clean bool) error {
	switch {
	case err == io.EOF && clean:
		return io.EOF
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read frame: %w", err)
}

// DecodeFrame decodes the frame at the start of b and returns its topic, its
// body and the number of bytes it took. The body aliases b. Errors are as for
// FrameReader.Next: io.EOF for an empty b, io.ErrUnexpectedEOF for a
// truncated frame, ErrFrameTooLarge and ErrBadFrame (wrapped) for bad lengths.
func DecodeFrame(b []byte, maxBody int) (topic string, body []byte, n int, err error) {
	if len(b) == 0 {
		return "", nil, 0, io.EOF
	}
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	topicLen, n, err := uvarintAt(b, 0)
	if err != nil {
		return "", nil, 0, err
	}
	if topicLen > MaxTopicLen {
		return "", nil, 0, topicTooLarge(topicLen)
	}
	if uint64(len(b)-n) < topicLen {
		return "", nil, 0, io.ErrUnexpectedEOF
	}
	topicEnd := n + int(topicLen)
	bodyLen, n, err := uvarintAt(b, topicEnd)
	if err != nil {
		return "", nil, 0, err
	}
	if bodyLen > uint64(maxBody) {
		return "", nil, 0, bodyTooLarge(bodyLen, maxBody)
	}
	if uint64(len(b)-n) < bodyLen {
		return "", nil, 0, io.ErrUnexpectedEOF
	}
	end := n + int(bodyLen)
	return string(b[topicEnd-int(topicLen) : topicEnd]), b[n:end:end], end, nil
}

// uvarintAt decodes the length prefix at b[off:] and returns it with the
// offset just past it.
func uvarintAt(b []byte, off int) (uint64, int, error) {
	var v uint64
	for i := 0; ; i++ {
		if off+i >= len(b) {
			return 0, 0, io.ErrUnexpectedEOF
		}
		c := b[off+i]
		var err error
		if v, err = addVarintByte(v, c, i); err != nil {
			return 0, 0, err
		}
		if c < 0x80 {
			return v, off + i + 1, nil
		}
	}
}

// addVarintByte adds byte i of a uvarint to v, rejecting overlong and
// non-minimal encodings so that every value has exactly one encoding.
func addVarintByte(v uint64, c byte, i int) (uint64, error) {
	if i == binary.MaxVarintLen64-1 && c > 1 || i >= binary.MaxVarintLen64 {
		return 0, fmt.Errorf("%w: length prefix overflows 64 bits", ErrBadFrame)
	}
	if c == 0 && i > 0 {
		return 0, fmt.Errorf("%w: length prefix not minimally encoded", ErrBadFrame)
	}
	return v | uint64(c&0x7f)<<(7*i), nil
}

func topicTooLarge(n uint64) error {
	return fmt.Errorf("%w: topic of %d bytes, limit %d", ErrFrameTooLarge, n, MaxTopicLen)
}

func bodyTooLarge(n uint64, limit int) error {
	return fmt.Errorf("%w: body of %d bytes, limit %d", ErrFrameTooLarge, n, limit)
}
