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
	if len(topic) > wire.MaxTopicLen {
		return nil, fmt.Errorf("%w: topic of %d bytes, limit %d", wire.ErrFrameTooLarge, len(topic), wire.MaxTopicLen)
	}
	if len(body) > wire.DefaultMaxBody {
		return nil, fmt.Errorf("%w: body of %d bytes, limit %d", wire.ErrFrameTooLarge, len(body), wire.DefaultMaxBody)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.cfg.RequestTimeout)
		defer cancel()
	}
	st, err := h.stream(ctx, to, addrs)
	if err != nil {
		return nil, err
	}
	return st.request(ctx, topic, body, h.cfg.WriteTimeout)
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
	if st := l.st; st != nil && st.alive() {
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
		return st, nil
	}

	if h.h.Network().Connectedness(to) != network.Connected && len(addrs) > 0 {
		h.h.Peerstore().AddAddrs(to, dialAddrs(to, addrs), h.cfg.AddrTTL)
		h.clearBackoff(to) // the caller has fresh addresses: dial them now
	}
	openCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(h.ctx, cancel) // Close aborts a dial in progress
	defer stop()
	s, err := h.h.NewStream(openCtx, to, ProtocolID)
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

// outStream is an outbound stream carrying requests; answers come back in
// request order and are matched to the waiting requests by topic.
type outStream struct {
	s   network.Stream
	wmu sync.Mutex // one frame at a time; waiters are queued in write order

	mu      sync.Mutex
	waiters []*waiter // requests written and not yet answered, oldest first
	err     error     // why the stream died; nil while it lives
}

type waiter struct {
	topic string
	done  chan result // buffered: the reader never blocks on a caller gone
}

type result struct {
	body []byte
	err  error
}

func newOutStream(s network.Stream) *outStream { return &outStream{s: s} }

// request writes one request frame and waits for its answer.
func (st *outStream) request(ctx context.Context, topic string, body []byte, writeTimeout time.Duration) ([]byte, error) {
	w := &waiter{topic: topic, done: make(chan result, 1)}
	st.wmu.Lock()
	st.mu.Lock()
	if err := st.err; err != nil {
		st.mu.Unlock()
		st.wmu.Unlock()
		return nil, err
	}
	st.waiters = append(st.waiters, w)
	st.mu.Unlock()
	_ = st.s.SetWriteDeadline(time.Now().Add(writeTimeout))
	err := wire.WriteFrame(st.s, topic, body)
	st.wmu.Unlock()
	if err != nil {
		st.fail(err)
	}
	select {
	case r := <-w.done:
		return r.body, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
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
			skipped.done <- result{err: ErrNoAnswer}
		}
		w.done <- result{body: body}
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
		w.done <- result{err: st.err}
	}
}
