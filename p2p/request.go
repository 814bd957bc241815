package p2p

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/mqtter/mqtter/wire"
)

// ErrNoAnswer is returned by Request when the peer answered a later request
// on the same stream but not this one: it chose to send no answer.
var ErrNoAnswer = errors.New("p2p: no answer")

// ErrRefused is wrapped by Request's error when the peer refused the stream:
// it does not authorize this node.
var ErrRefused = errors.New("p2p: refused by peer")

// errUnexpectedAnswer ends an outbound stream whose peer answers a topic
// that no pending request carries.
var errUnexpectedAnswer = errors.New("answer to no pending request")

// peerLink holds the one outbound stream kept open to a peer.
type peerLink struct {
	open sync.Mutex // serializes opening a stream to the peer
	st   *outStream // guarded by Host.mu; nil when none is open
}

// Request sends body on topic to peer to and returns the answer's body. It
// reuses the stream already open to the peer, or opens one, dialing addrs
// (remembered for Config.AddrTTL) when not connected. A ctx without a
// deadline gets Config.RequestTimeout. Errors name the peer.
func (h *Host) Request(ctx context.Context, to peer.ID, addrs []multiaddr.Multiaddr, topic string, body []byte) ([]byte, error) {
	answer, err := h.request(ctx, to, addrs, topic, body)
	if err != nil {
		return nil, fmt.Errorf("p2p: request to %s: %w", to, err)
	}
	return answer, nil
}

func (h *Host) request(ctx context.Context, to peer.ID, addrs []multiaddr.Multiaddr, topic string, body []byte) ([]byte, error) {
	if err := checkRequest(topic, body); err != nil {
		return nil, err
	}
	ctx, cancel := h.withTimeout(ctx)
	defer cancel()
	st, err := h.stream(ctx, to, addrs)
	if err != nil {
		return nil, err
	}
	return st.request(ctx, topic, body, h.cfg.WriteTimeout)
}

// RequestAll sends the requests bodies[i] on topics[i] to peer to as one
// pipelined burst: every frame is written, in order and back to back, on
// the stream Request uses, and only then are the answers awaited, so a
// batch costs one round trip rather than one per request. It returns the
// answers in request order; errs[i] is set where request i got none: it
// was too large to send (wire.ErrFrameTooLarge, and the others still go),
// the peer chose not to answer it (ErrNoAnswer), the stream failed before
// its answer came (every later request fails the same way), or ctx ended.
// A ctx without a deadline gets Config.RequestTimeout for the whole batch.
// It panics if topics and bodies differ in length.
func (h *Host) RequestAll(ctx context.Context, to peer.ID, addrs []multiaddr.Multiaddr, topics []string, bodies [][]byte) (answers [][]byte, errs []error) {
	if len(topics) != len(bodies) {
		panic(fmt.Sprintf("p2p: RequestAll with %d topics and %d bodies", len(topics), len(bodies)))
	}
	answers, errs = make([][]byte, len(topics)), make([]error, len(topics))
	fail := func(i int, err error) { errs[i] = fmt.Errorf("p2p: request to %s: %w", to, err) }
	send := make([]int, 0, len(topics)) // the indexes that go out
	for i := range topics {
		if err := checkRequest(topics[i], bodies[i]); err != nil {
			fail(i, err)
			continue
		}
		send = append(send, i)
	}
	if len(send) == 0 {
		return answers, errs
	}
	ctx, cancel := h.withTimeout(ctx)
	defer cancel()
	st, err := h.stream(ctx, to, addrs)
	if err != nil {
		for _, i := range send {
			fail(i, err)
		}
		return answers, errs
	}
	for k, r := range st.requestAll(ctx, topics, bodies, send, h.cfg.WriteTimeout) {
		if r.err != nil {
			fail(send[k], r.err)
			continue
		}
		answers[send[k]] = r.body
	}
	return answers, errs
}

// withTimeout gives a ctx without a deadline Config.RequestTimeout.
func (h *Host) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, h.cfg.RequestTimeout)
}

// checkRequest refuses a request frame that no peer's reader would take.
func checkRequest(topic string, body []byte) error {
	if len(topic) > wire.MaxTopicLen {
		return fmt.Errorf("%w: topic of %d bytes, limit %d", wire.ErrFrameTooLarge, len(topic), wire.MaxTopicLen)
	}
	if len(body) > wire.DefaultMaxBody {
		return fmt.Errorf("%w: body of %d bytes, limit %d", wire.ErrFrameTooLarge, len(body), wire.DefaultMaxBody)
	}
	return nil
}

// stream returns the live outbound stream to peer to, opening one if needed.
func (h *Host) stream(ctx context.Context, to peer.ID, addrs []multiaddr.Multiaddr) (*outStream, error) {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil, ErrClosed
	}
	l := h.peers[to]
	if l == nil {
		l = &peerLink{}
		h.peers[to] = l
	}
	if st := l.st; st != nil && st.alive() && !h.upgraded(st, to) {
		h.mu.Unlock()
		return st, nil
	}
	h.mu.Unlock()

	l.open.Lock()
	defer l.open.Unlock()
	h.mu.Lock()
	st := l.st // opened while we waited for l.open
	h.mu.Unlock()
	if st != nil && st.alive() {
		if !h.upgraded(st, to) {
			return st, nil
		}
		// A direct connection came up beside the relayed one the stream
		// runs on (a hole punch): the next requests go on a new stream
		// over it; the old one answers what it carries, then ends.
		_ = st.s.CloseWrite()
	}

	if h.h.Network().Connectedness(to) != network.Connected && len(addrs) > 0 {
		h.h.Peerstore().AddAddrs(to, dialAddrs(to, addrs), h.cfg.AddrTTL)
		h.clearBackoff(to) // the caller has fresh addresses: dial them now
	}
	openCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(h.ctx, cancel) // Close aborts a dial in progress
	defer stop()
	// A relayed connection is limited; it carries messages all the same
	// (within the relay's limits: past them the stream fails and the
	// outbox falls back to the server).
	s, err := h.h.NewStream(network.WithAllowLimitedConn(openCtx, "mqtter"), to, ProtocolID)
	if err != nil {
		return nil, fmt.Errorf("open stream: %w", err)
	}

	st = newOutStream(s)
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		_ = s.Reset()
		return nil, ErrClosed
	}
	l.st = st
	h.wg.Add(1)
	h.mu.Unlock()
	go func() {
		defer h.wg.Done()
		err := st.readAnswers()
		h.log.Debug("p2p: outbound stream ended", "to", to.String(), "err", err)
		h.mu.Lock()
		if l.st == st {
			l.st = nil
		}
		h.mu.Unlock()
	}()
	return st, nil
}

// dialAddrs returns addrs without their /p2p/<id> suffix, as the peerstore
// wants them, leaving out those that name a peer other than to.
func dialAddrs(to peer.ID, addrs []multiaddr.Multiaddr) []multiaddr.Multiaddr {
	out := make([]multiaddr.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		transport, id := peer.SplitAddr(a)
		if len(transport) == 0 || id != "" && id != to {
			continue
		}
		out = append(out, transport)
	}
	return out
}

// upgraded reports whether st runs on a relayed connection while a direct
// one to the peer is open now.
func (h *Host) upgraded(st *outStream, to peer.ID) bool {
	return st.s.Conn().Stat().Limited && !h.Limited(to)
}

// outStream is an outbound stream carrying requests; answers come back in
// request order and are matched to the waiting requests by topic.
type outStream struct {
	s   network.Stream
	wmu sync.Mutex // one burst of frames at a time; waiters are queued in write order

	mu      sync.Mutex
	waiters []*waiter // requests written and not yet answered, oldest first
	err     error     // why the stream died; nil while it lives
}

// A waiter is one request awaiting its answer. The requests of one burst
// share a done channel, with room for all their results, and tell them
// apart by index.
type waiter struct {
	topic string
	index int
	done  chan result // buffered: the reader never blocks on a caller gone
}

type result struct {
	index int
	body  []byte
	err   error
}

// flushSize is how many bytes of a burst's frames are gathered before one
// Write: large enough that a burst of small messages takes few writes (and
// few yamux frames), small enough not to copy a whole batch of large ones.
const flushSize = 64 << 10

func newOutStream(s network.Stream) *outStream { return &outStream{s: s} }

// request writes one request frame and waits for its answer.
func (st *outStream) request(ctx context.Context, topic string, body []byte, writeTimeout time.Duration) ([]byte, error) {
	w := &waiter{topic: topic, done: make(chan result, 1)}
	if err := st.send([]*waiter{w}, []string{topic}, [][]byte{body}, []int{0}, writeTimeout); err != nil {
		return nil, err
	}
	select {
	case r := <-w.done:
		return r.body, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// requestAll writes the requests numbered which, in order, then waits for
// their answers; the k-th result is that of request which[k].
func (st *outStream) requestAll(ctx context.Context, topics []string, bodies [][]byte, which []int, writeTimeout time.Duration) []result {
	done := make(chan result, len(which))
	ws := make([]waiter, len(which))
	wps := make([]*waiter, len(which))
	for k, i := range which {
		ws[k] = waiter{topic: topics[i], index: k, done: done}
		wps[k] = &ws[k]
	}
	results := make([]result, len(which))
	if err := st.send(wps, topics, bodies, which, writeTimeout); err != nil {
		for k := range results {
			results[k].err = err
		}
		return results
	}
	answered := make([]bool, len(which))
	take := func(r result) { results[r.index], answered[r.index] = r, true }
	for range which {
		select {
		case r := <-done:
			take(r)
		case <-ctx.Done():
			for len(done) > 0 { // keep what came meanwhile
				take(<-done)
			}
			for k := range results {
				if !answered[k] {
					results[k].err = ctx.Err()
				}
			}
			return results
		}
	}
	return results
}

// send queues ws as waiting and writes the frames of requests which (one
// per waiter, in the same order) under one hold of the write lock, so that
// frames and queue keep one order. Frames are gathered into writes of
// about flushSize. It returns the stream's error if the stream is already
// dead; a failed write kills the stream, which fails the waiters.
func (st *outStream) send(ws []*waiter, topics []string, bodies [][]byte, which []int, writeTimeout time.Duration) error {
	st.wmu.Lock()
	defer st.wmu.Unlock()
	st.mu.Lock()
	if err := st.err; err != nil {
		st.mu.Unlock()
		return err
	}
	st.waiters = append(st.waiters, ws...)
	st.mu.Unlock()
	var buf []byte
	write := func() error {
		_ = st.s.SetWriteDeadline(time.Now().Add(writeTimeout))
		_, err := st.s.Write(buf)
		buf = buf[:0]
		return err
	}
	for _, i := range which {
		n := wire.FrameLen(topics[i], bodies[i])
		if len(buf) > 0 && len(buf)+n > flushSize {
			if err := write(); err != nil {
				st.fail(fmt.Errorf("write request: %w", err))
				return nil
			}
		}
		if buf == nil {
			buf = make([]byte, 0, max(n, min(len(which)*n, flushSize)))
		}
		buf = wire.AppendFrame(buf, topics[i], bodies[i])
	}
	if err := write(); err != nil {
		st.fail(fmt.Errorf("write request: %w", err))
	}
	return nil
}

// readAnswers reads answer frames until the stream fails, and returns why.
func (st *outStream) readAnswers() error {
	fr := wire.NewFrameReader(st.s, wire.DefaultMaxBody)
	for {
		topic, body, err := fr.Next()
		if err != nil {
			if errors.Is(err, &network.StreamError{ErrorCode: codeRefused, Remote: true}) {
				err = fmt.Errorf("%w: %w", ErrRefused, err)
			}
			st.fail(fmt.Errorf("read answer: %w", err))
			return err
		}
		if !st.deliver(topic, body) {
			err := fmt.Errorf("%w: topic %q", errUnexpectedAnswer, topic)
			st.fail(err)
			return err
		}
	}
}

// deliver hands an answer to the oldest waiter on its topic. Waiters queued
// before it get ErrNoAnswer: answers come in request order, so theirs will
// not come.
func (st *outStream) deliver(topic string, body []byte) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	for i, w := range st.waiters {
		if w.topic != topic {
			continue
		}
		for _, skipped := range st.waiters[:i] {
			skipped.done <- result{index: skipped.index, err: ErrNoAnswer}
		}
		w.done <- result{index: w.index, body: body}
		clear(st.waiters[:i+1])
		st.waiters = st.waiters[i+1:]
		if len(st.waiters) == 0 {
			st.waiters = nil
		}
		return true
	}
	return false
}

// alive reports whether the stream can still carry requests.
func (st *outStream) alive() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.err == nil
}

// fail marks the stream dead, resets it and fails every pending request.
func (st *outStream) fail(err error) {
	st.mu.Lock()
	if st.err != nil {
		st.mu.Unlock()
		return
	}
	st.err = fmt.Errorf("stream: %w", err)
	waiters := st.waiters
	st.waiters = nil
	st.mu.Unlock()
	_ = st.s.Reset()
	for _, w := range waiters {
		w.done <- result{index: w.index, err: st.err}
	}
}
