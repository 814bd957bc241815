package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/p2p"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// Error texts of direct answers; like the server's, "<kind>: <detail>".
const (
	errBadRequest    = "bad request"
	errForbidden     = "forbidden"
	errUnknownMethod = "unknown method"
	errInternal      = "internal error"
)

// packetHandler is the node's p2p handler. Its async side lets a stream
// read on while the messages it carries wait for their commit, so that a
// pipelined burst is stored in few transactions.
type packetHandler struct{ n *Node }

func (h packetHandler) HandlePacket(ctx context.Context, from peer.ID, topic string, body []byte) []byte {
	return h.n.handlePacket(ctx, from, topic, body)
}

func (h packetHandler) HandlePacketAsync(ctx context.Context, from peer.ID, topic string, body []byte, answer func([]byte)) {
	h.n.handlePacketVia(from, directVia(ctx), topic, body, answer)
}

func (h packetHandler) HandleBurst(ctx context.Context, from peer.ID, reqs []p2p.Request) {
	h.n.handleBurstVia(from, directVia(ctx), reqs)
}

// directVia is how a request of a direct stream came: over a relayed
// connection, or straight.
func directVia(ctx context.Context) string {
	if p2p.Relayed(ctx) {
		return localdb.ViaRelayed
	}
	return localdb.ViaP2P
}

// handlePacket answers one request frame from a direct stream: a message
// sent to this device. The answer comes once the message is durable here.
func (n *Node) handlePacket(ctx context.Context, from peer.ID, topic string, body []byte) []byte {
	ch := make(chan []byte, 1)
	n.handlePacketAsync(from, topic, body, func(a []byte) { ch <- a })
	select {
	case a := <-ch:
		return a
	case <-ctx.Done():
		return wire.Fail("", errInternal+": "+ctx.Err().Error())
	}
}

// handlePacketAsync is handlePacket calling answer, exactly once, instead of
// returning: at once for a refusal, after the commit for a message stored.
func (n *Node) handlePacketAsync(from peer.ID, topic string, body []byte, answer func([]byte)) {
	n.handlePacketVia(from, localdb.ViaP2P, topic, body, answer)
}

// handlePacketVia is handlePacketAsync for a request that came via.
func (n *Node) handlePacketVia(from peer.ID, via, topic string, body []byte, answer func([]byte)) {
	t, err := wire.ParseTopic(topic)
	switch {
	case err != nil:
		answer(wire.Fail("", errBadRequest+": "+err.Error()))
	case t.Scheme != wire.SchemeIM:
		answer(wire.Fail("", wire.AnswerUnsupportedScheme+": "+t.Scheme))
	case t.Host != n.self.String():
		answer(wire.Fail("", fmt.Sprintf("%s: %.80q is not this device", wire.AnswerNoSuchNode, t.Host)))
	case t.Method() == wire.MethodSend:
		n.directSend(from, via, body, answer)
	default:
		answer(wire.Fail("", fmt.Sprintf("%s: %.40q", errUnknownMethod, t.Method())))
	}
}

// directSend stores a message that a peer device sent us directly, and
// answers once it is durable.
func (n *Node) directSend(from peer.ID, via string, body []byte, answer func([]byte)) {
	var m wire.Message
	if err := json.Unmarshal(body, &m); err != nil {
		answer(wire.Fail("", errBadRequest+": "+err.Error()))
		return
	}
	n.directSends(from, via, []directMsg{{m: m, answer: answer}})
}

// directMsg is a message of a direct stream and the answer it waits for.
type directMsg struct {
	m      wire.Message
	answer func([]byte)
}

// handleBurst takes the requests a peer wrote back to back: its messages
// are checked together (their signatures in one batch) and stored in one
// commit; any other request is handled as if alone, in its place.
func (n *Node) handleBurst(from peer.ID, reqs []p2p.Request) {
	n.handleBurstVia(from, localdb.ViaP2P, reqs)
}

// handleBurstVia is handleBurst for requests that came via.
func (n *Node) handleBurstVia(from peer.ID, via string, reqs []p2p.Request) {
	var sends []directMsg
	for _, r := range reqs {
		t, err := wire.ParseTopic(r.Topic)
		if err != nil || t.Scheme != wire.SchemeIM || t.Host != n.self.String() || t.Method() != wire.MethodSend {
			n.directSends(from, via, sends)
			sends = nil
			n.handlePacketVia(from, via, r.Topic, r.Body, r.Answer)
			continue
		}
		var m wire.Message
		if err := json.Unmarshal(r.Body, &m); err != nil {
			r.Answer(wire.Fail("", errBadRequest+": "+err.Error()))
			continue
		}
		sends = append(sends, directMsg{m: m, answer: r.Answer})
	}
	n.directSends(from, via, sends)
}

// directSends checks messages from a direct stream (checkDirect, the
// signatures in one batch) and hands those that pass to the ingester
// together; each is answered once durable, a refused one at once.
func (n *Node) directSends(from peer.ID, via string, in []directMsg) {
	if len(in) == 0 {
		return
	}
	shaped := make([]directMsg, 0, len(in))
	for _, d := range in {
		if err := n.checkDirectShape(&d.m, from); err != nil {
			n.refuseDirect(from, &d, err)
			continue
		}
		shaped = append(shaped, d)
	}
	ptrs := make([]*wire.Message, len(shaped))
	for i := range shaped {
		ptrs[i] = &shaped[i].m
	}
	sigErrs := wire.VerifyBatch(ptrs)
	items := make([]ingestItem, 0, len(shaped))
	for i := range shaped {
		d := &shaped[i]
		err := sigErrs[i]
		if err != nil {
			err = fmt.Errorf("%s: %w", errForbidden, err)
		} else {
			err = n.checkMember(&d.m)
		}
		if err != nil {
			n.refuseDirect(from, d, err)
			continue
		}
		items = append(items, ingestItem{m: d.m, via: via, done: d.stored(n)})
	}
	n.ingest.addAll(items)
}

// stored is the ingester's word on d: its answer once durable.
func (d *directMsg) stored(n *Node) func(error) {
	id, answer := d.m.MsgId, d.answer
	return func(err error) {
		if err != nil {
			n.log.Error("store a direct message", "msg_id", id, "err", err)
			answer(wire.Fail("", errInternal+": not stored"))
			return
		}
		a, err := wire.OK("", map[string]string{"MsgId": id})
		if err != nil {
			a = wire.Fail("", errInternal)
		}
		answer(a)
	}
}

// refuseDirect answers a direct message that may not be stored.
func (n *Node) refuseDirect(from peer.ID, d *directMsg, err error) {
	n.counts.refused.Add(1)
	n.log.Warn("refused a direct message", "from", from.String(), "msg_id", d.m.MsgId, "err", err)
	d.answer(wire.Fail("", err.Error()))
	if errors.Is(err, wire.ErrNotRelated) && n.link != nil && n.link.Connected() {
		// The book may lag the server (a relation accepted a moment
		// ago): ask again, so a new friend is not refused for long. The
		// refresh loop coalesces these, so a stranger's dms cannot
		// make it call the server more than a few times a second.
		n.kickRefresh()
	}
}

// checkDirectShape is what decides whether a message from a direct stream
// may be stored, but its signature and the write rule: it must be well
// formed, unsequenced and signed by the very device that sent it, and that
// device must belong to From. The signature must then verify and From be
// allowed to write into the conversation (checkMember).
func (n *Node) checkDirectShape(m *wire.Message, from peer.ID) error {
	if err := checkPeerMessage(m, "on a direct stream"); err != nil {
		return err
	}
	if m.Device != from.String() {
		return fmt.Errorf("%s: Device %.60s is not the sending device", errForbidden, m.Device)
	}
	if owner, ok := n.book.account(m.Device); !ok || owner != m.From {
		return fmt.Errorf("%s: device %s does not belong to %s", errForbidden, m.Device, m.From)
	}
	return nil
}

// checkPeerMessage is what a message from a peer (directly or by gossip,
// as how says) must be before anything else: well formed, unsequenced,
// signed.
func checkPeerMessage(m *wire.Message, how string) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("%s: %w", errBadRequest, err)
	}
	if m.SeqId != 0 {
		return fmt.Errorf("%s: SeqId %d: only the server assigns SeqIds", errBadRequest, m.SeqId)
	}
	if !m.Signed() {
		return fmt.Errorf("%s: unsigned message %s", errForbidden, how)
	}
	return nil
}

// checkMember applies the write rule (wire.MayWrite, and thing.MayWrite
// for commands and feedback) to the message, as
// the server does, over this node's book: the author of a dm must be
// related to this account, the author of a group message a member of a
// group of this account.
func (n *Node) checkMember(m *wire.Message) error {
	rights := bookRights{n.book}
	err := wire.MayWrite(rights, m.Feeds, m.From)
	if err == nil {
		err = thing.MayWrite(rights, m)
	}
	switch {
	case err == nil:
		return nil
	case errors.Is(err, wire.ErrNotMember), errors.Is(err, wire.ErrNotRelated), errors.Is(err, thing.ErrNotAllowed):
		return fmt.Errorf("%s: %w", errForbidden, err)
	}
	return fmt.Errorf("%s: %w", errBadRequest, err)
}

// checkFromServer decides whether a message from the server (push or
// pull) may be stored: well formed, sequenced, and if signed, with a
// signature that verifies and a Device that, as far as this node knows,
// belongs to From. An unsigned message is the server's attestation.
func (n *Node) checkFromServer(m *wire.Message) error {
	if err := n.checkServerFields(m); err != nil {
		return err
	}
	if m.Signed() {
		return m.Verify()
	}
	return nil
}

// checkServerFields is checkFromServer but the signature, which a pull
// verifies in batches.
func (n *Node) checkServerFields(m *wire.Message) error {
	if err := m.Validate(); err != nil {
		return err
	}
	if m.SeqId <= 0 {
		return fmt.Errorf("message from the server without a SeqId")
	}
	if !m.Signed() {
		return nil
	}
	if owner, ok := n.book.account(m.Device); ok && owner != m.From {
		return fmt.Errorf("device %s belongs to %s, not %s", m.Device, owner, m.From)
	}
	return nil
}

// receiveFromServer takes a pushed message: stored (or refused) in the
// background, then acknowledged so the server does not push it again, and
// told to the syncer, which pulls if the conversation's last SeqId (as the
// push says) leaves a gap.
func (n *Node) receiveFromServer(m wire.Message, lastSeq int64) {
	if err := n.checkFromServer(&m); err != nil {
		n.counts.refused.Add(1)
		n.log.Warn("refused a message from the server", "msg_id", m.MsgId, "feeds", m.Feeds, "err", err)
		if m.SeqId > 0 {
			n.acks.note(m.Feeds, m.SeqId) // not stored, but not to be pushed again either
		}
		return
	}
	n.ingest.addAsync(m, localdb.ViaServer, func(err error) {
		if err != nil {
			n.log.Error("store a pushed message", "msg_id", m.MsgId, "err", err)
			return
		}
		n.acks.note(m.Feeds, m.SeqId)
		n.syncer.Saw(m.Feeds, max(m.SeqId, lastSeq))
	})
}

// ingestBatch is about the most messages stored in one transaction (a
// group handed over together is not split: at most p2p's burst more).
const ingestBatch = 512

// ingester stores incoming messages in batches from one goroutine, so
// concurrent streams and pushes share commits.
type ingester struct {
	n    *Node
	in   chan []ingestItem // groups, each stored in one commit
	done chan struct{}
}

type ingestItem struct {
	m    wire.Message
	via  string
	done func(error)
}

func newIngester(n *Node) *ingester {
	g := &ingester{n: n, in: make(chan []ingestItem, ingestBatch), done: make(chan struct{})}
	go g.run()
	return g
}

var errIngestClosed = errors.New("node stopping")

// addAsync stores m and calls done once it is durable (or failed).
func (g *ingester) addAsync(m wire.Message, via string, done func(error)) {
	g.addAll([]ingestItem{{m: m, via: via, done: done}})
}

// addAll stores items in one commit (with others queued at the time) and
// calls each one's done once it is durable (or failed).
func (g *ingester) addAll(items []ingestItem) {
	if len(items) == 0 {
		return
	}
	select {
	case g.in <- items:
	case <-g.n.ctx.Done():
		for _, it := range items {
			it.done(errIngestClosed)
		}
	}
}

func (g *ingester) run() {
	defer close(g.done)
	for {
		var batch []ingestItem
		select {
		case group, ok := <-g.in:
			if !ok {
				return
			}
			batch = append(batch, group...)
		case <-g.n.ctx.Done():
			g.drain()
			return
		}
	fill:
		for len(batch) < ingestBatch {
			select {
			case group := <-g.in:
				batch = append(batch, group...)
			default:
				break fill
			}
		}
		g.store(batch)
	}
}

// drain fails what is still queued when the node stops.
func (g *ingester) drain() {
	for {
		select {
		case group := <-g.in:
			for _, it := range group {
				it.done(errIngestClosed)
			}
		default:
			return
		}
	}
}

// store commits a batch, one transaction per Via.
func (g *ingester) store(batch []ingestItem) {
	byVia := make(map[string][]ingestItem, 1)
	for _, it := range batch {
		byVia[it.via] = append(byVia[it.via], it)
	}
	for via, items := range byVia {
		msgs := make([]wire.Message, len(items))
		for i, it := range items {
			msgs[i] = it.m
		}
		// What the messages tell a thing's person is recorded in the same
		// commit. The store must finish even while the node stops: a peer
		// waits for the answer that says the message is durable.
		steps := g.n.feedbackSteps(msgs)
		added, outs, err := g.n.db.Ingest(context.WithoutCancel(g.n.ctx), msgs, via, steps)
		// Answer first: a peer waits for the word that its message is
		// durable, which it is now; what this device makes of the
		// message (events, a thing's feedback tracked, a command taken)
		// is its own business.
		for _, it := range items {
			it.done(err)
		}
		if err != nil {
			continue
		}
		var fresh []wire.Message
		for i := range msgs {
			if added[i] {
				fresh = append(fresh, msgs[i])
			}
		}
		g.n.announce(fresh, via)
		for i, s := range steps {
			if s != nil && added[i] {
				g.n.feedbackTracked(&msgs[i], s, outs[i])
			}
		}
	}
}

func (g *ingester) close() { <-g.done }

// received counts and announces a message new to this device, stored
// alone (by sync or an import), and records what it tells the thing
// model.
func (n *Node) received(m wire.Message, via string) {
	msgs := []wire.Message{m}
	n.announce(msgs, via)
	n.trackThingMessages(msgs)
}

// announce counts and publishes messages new to this device, and hands a
// thing's commands to its runtime.
func (n *Node) announce(msgs []wire.Message, via string) {
	if len(msgs) == 0 {
		return
	}
	switch via {
	case localdb.ViaP2P:
		n.counts.recvP2P.Add(int64(len(msgs)))
	case localdb.ViaRelayed:
		n.counts.recvRelayed.Add(int64(len(msgs)))
	case localdb.ViaServer:
		n.counts.recvServer.Add(int64(len(msgs)))
	case localdb.ViaSync:
		n.counts.recvSync.Add(int64(len(msgs)))
	case localdb.ViaGossip:
		n.counts.recvGossip.Add(int64(len(msgs)))
	}
	for _, m := range msgs {
		n.events.publish(EventMessage, HistoryEntry{Message: m, Via: via})
	}
	if n.thing != nil {
		for _, m := range msgs {
			n.thing.intake(m, via)
		}
	}
}

// isAnswerKind reports whether err is a peer's or server's answer of the
// given kind ("forbidden", …).
func isAnswerKind(err error, kind string) bool {
	var ae *wire.AnswerError
	return errors.As(err, &ae) && strings.HasPrefix(ae.Msg, kind)
}
