package p2p

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/mqtter/mqtter/wire"
)

// Stream error codes an acceptor resets a stream with, so that the opener
// can tell a refusal from a failure.
const (
	codeRefused       network.StreamErrorCode = 0x4d510001 // Authorize said no
	codeBadFrame      network.StreamErrorCode = network.StreamProtocolViolation
	codeStreamFailure network.StreamErrorCode = 0x4d510002 // idle, write failed, host closing
)

// answerTooLarge is the Error text sent in place of an answer that the
// opener's frame reader would refuse.
const answerTooLarge = "answer too large"

// handleStream serves one inbound stream of ProtocolID.
func (h *Host) handleStream(s network.Stream) {
	from := s.Conn().RemotePeer()
	if !h.cfg.Authorize(from) {
		h.log.Info("p2p: refused stream from unauthorized peer", "from", from.String())
		_ = s.ResetWithError(codeRefused)
		return
	}
	if !h.track() {
		_ = s.Reset()
		return
	}
	defer h.wg.Done()
	ctx := h.ctx
	if s.Conn().Stat().Limited {
		ctx = context.WithValue(ctx, relayedKey{}, true)
	}
	err := serveStream(ctx, s, from, h.cfg.Handler, h.cfg.IdleTimeout, h.cfg.WriteTimeout)
	if err != nil {
		h.log.Debug("p2p: inbound stream ended", "from", from.String(), "err", err)
		code := codeStreamFailure
		if errors.Is(err, wire.ErrBadFrame) || errors.Is(err, wire.ErrFrameTooLarge) {
			code = codeBadFrame
		}
		_ = s.ResetWithError(code)
		return
	}
	_ = s.Close()
}

// untraced is how an answer that wire.OK or wire.Fail made with no trace
// begins (Trace is the first field they write).
const untraced = `{"Trace":""`

// withTrace gives an answer its own per-request Trace, as every answer of
// the protocol has one, when the handler left it empty: a direct answer
// can then be told apart and quoted like a server's.
func withTrace(a []byte) []byte {
	if !bytes.HasPrefix(a, []byte(untraced)) {
		return a
	}
	out := make([]byte, 0, len(a)+16)
	out = append(out, `{"Trace":"`...)
	out = append(out, wire.NewTrace()...)
	out = append(out, '"')
	return append(out, a[len(untraced):]...)
}

// deadliner is the part of a stream (or net.Conn) that serveStream uses to
// bound reads and writes when the ReadWriter offers it.
type deadliner interface {
	SetReadDeadline(time.Time) error
	SetWriteDeadline(time.Time) error
}

// serveStream reads request frames from rw one after another, hands each to
// hd and writes the answer, if any, on the identical topic. It returns nil
// when the peer ends the stream cleanly between frames, and an error for a
// malformed frame, an idle or failed read, a failed write or a cancelled ctx;
// the caller then resets the stream. If rw has deadlines, a read waits at
// most idle and a write at most write.
func serveStream(ctx context.Context, rw io.ReadWriter, from peer.ID, hd Handler, idle, write time.Duration) error {
	ah, ok := hd.(AsyncHandler)
	if !ok {
		ah = syncHandler{hd}
	}
	return servePipelined(ctx, rw, from, ah, idle, write)
}

// syncHandler is a plain Handler seen as an AsyncHandler: it answers before
// the reader reads on, so requests are handled one at a time.
type syncHandler struct{ Handler }

func (h syncHandler) HandlePacketAsync(ctx context.Context, from peer.ID, topic string, body []byte, answer func([]byte)) {
	answer(h.HandlePacket(ctx, from, topic, body))
}

// AsyncHandler is a Handler that may answer later. The stream calls
// HandlePacketAsync for each request, in order, from its reader, which
// reads the next request as soon as it returns; answer must be called
// exactly once, from any goroutine, with the answer body or nil for none.
// Answers are written in request order, several in one write when ready
// together.
type AsyncHandler interface {
	Handler
	HandlePacketAsync(ctx context.Context, from peer.ID, topic string, body []byte, answer func([]byte))
}

// BurstHandler is an AsyncHandler that takes the requests a peer wrote
// back to back, already read whole, together: a burst of messages can then
// have its signatures checked in one batch and be stored in one commit.
// Each Request's Answer must be called exactly once, as for
// HandlePacketAsync; answers are written in request order.
type BurstHandler interface {
	AsyncHandler
	HandleBurst(ctx context.Context, from peer.ID, reqs []Request)
}

// Request is one request of a burst.
type Request struct {
	Topic  string
	Body   []byte
	Answer func([]byte)
}

// maxPending bounds the requests of one stream read but not yet answered.
const maxPending = 1024

// maxBurst bounds the requests handed to a BurstHandler at once.
const maxBurst = 64

type pendingAnswer struct {
	topic  string
	answer chan []byte // buffered: answer never blocks
}

// servePipelined is serveStream for an AsyncHandler: the stream's reader
// hands each request to the handler and reads on, while a writer writes
// the answers in request order as they come. Either one's failure stops
// the other; servePipelined waits for the writer before it returns.
func servePipelined(ctx context.Context, rw io.ReadWriter, from peer.ID, hd AsyncHandler, idle, write time.Duration) error {
	dl, _ := rw.(deadliner)
	pending := make(chan *pendingAnswer, maxPending)
	writerDone := make(chan struct{})
	var werr error
	go func() {
		defer close(writerDone)
		werr = writeAnswers(ctx, rw, dl, pending, write)
		if werr != nil && dl != nil {
			_ = dl.SetReadDeadline(time.Now()) // the reader stops too
		}
	}()
	bh, bursts := hd.(BurstHandler)
	rerr := func() error {
		fr := wire.NewFrameReader(rw, wire.DefaultMaxBody)
		var burst []Request
		for {
			if dl != nil {
				_ = dl.SetReadDeadline(time.Now().Add(idle))
			}
			topic, body, err := fr.Next()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return fmt.Errorf("read request: %w", err)
			}
			p := &pendingAnswer{topic: topic, answer: make(chan []byte, 1)}
			select {
			case pending <- p:
			case <-writerDone:
				if len(burst) > 0 {
					bh.HandleBurst(ctx, from, burst) // their answers go nowhere, but they are had
				}
				return nil // werr says why
			}
			answer := func(b []byte) { p.answer <- b }
			if !bursts {
				hd.HandlePacketAsync(ctx, from, topic, body, answer)
				continue
			}
			// Frames already here whole join the burst; the first one that
			// is not (or the burst's bound) ends it.
			burst = append(burst, Request{Topic: topic, Body: body, Answer: answer})
			if len(burst) < maxBurst && fr.Ready() {
				continue
			}
			if len(burst) == 1 {
				hd.HandlePacketAsync(ctx, from, topic, body, answer)
			} else {
				bh.HandleBurst(ctx, from, burst)
			}
			burst = nil
		}
	}()
	close(pending)
	<-writerDone
	if werr != nil {
		return werr
	}
	return rerr
}

func writeAnswers(ctx context.Context, w io.Writer, dl deadliner, pending <-chan *pendingAnswer, write time.Duration) error {
	var buf []byte
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		if dl != nil {
			_ = dl.SetWriteDeadline(time.Now().Add(write))
		}
		_, err := w.Write(buf)
		buf = buf[:0]
		if err != nil {
			return fmt.Errorf("write answer: %w", err)
		}
		return nil
	}
	for p := range pending {
		var a []byte
		select {
		case a = <-p.answer:
		default:
			if err := flush(); err != nil {
				return err
			}
			select {
			case a = <-p.answer:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		if a != nil {
			if len(a) > wire.DefaultMaxBody {
				a = wire.Fail("", answerTooLarge)
			}
			a = withTrace(a)
			buf = wire.AppendFrame(buf, p.topic, a)
		}
		if len(pending) == 0 || len(buf) >= 64<<10 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}
