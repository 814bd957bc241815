package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/p2p"
	"github.com/mqtter/mqtter/wire"
)

// Groups over GossipSub (docs/protocol.md, "Gossip"): each group is a
// topic its members' devices join; a message published there reaches the
// online members through the mesh, and goes to the server too, which
// sequences it, stores it and carries it to whoever is offline. A thing's
// feed ("t:<thing>") travels the same way among its readers: the thing,
// the persons bound to it and the things associated with it; the book
// lists it as a group whose members are those readers.

// gossipTopicPrefix starts every group's topic name.
const gossipTopicPrefix = "/mqtter/feeds/1/"

// gossipTopic names the topic of a group's feeds.
func gossipTopic(feeds string) string { return gossipTopicPrefix + feeds }

// GossipTopic names the GossipSub topic of a group's feeds, for a program
// that publishes there with a p2p host of its own (the gossip benchmark).
func GossipTopic(feeds string) string { return gossipTopic(feeds) }

// feedsOfTopic is gossipTopic's inverse; it reports false for a topic
// that names no group and no thing's feed.
func feedsOfTopic(topic string) (string, bool) {
	feeds, ok := strings.CutPrefix(topic, gossipTopicPrefix)
	if !ok {
		return "", false
	}
	f, err := wire.ParseFeeds(feeds)
	if err != nil || f.Kind != wire.FeedsGroup && f.Kind != wire.FeedsThing {
		return "", false
	}
	return feeds, true
}

// gossipMaxMessage bounds a gossiped message: a frame's body.
const gossipMaxMessage = wire.DefaultMaxBody

// startGossip starts GossipSub on the node's host, guarded by the book.
func (n *Node) startGossip() error {
	g, err := n.host.StartGossip(p2p.GossipConfig{
		MayJoin:           n.mayGossip,
		Validate:          n.validateGossip,
		Deliver:           n.deliverGossip,
		MaxMessageSize:    gossipMaxMessage + 4<<10, // the RPC around it
		HeartbeatInterval: n.cfg.GossipHeartbeat,
	})
	if err != nil {
		return err
	}
	n.gossip = g
	return nil
}

// mayGossip is the topic's membership rule: a device may be in a group's
// mesh, and send into it, when the book knows it as a device of a member
// of the group. The book is the server's word, cached, so the rule holds
// with the server down.
func (n *Node) mayGossip(id peer.ID, topic string) bool {
	feeds, ok := feedsOfTopic(topic)
	if !ok {
		return false
	}
	owner, ok := n.book.account(id.String())
	if !ok {
		return false
	}
	member, err := bookRights{n.book}.Member(feeds, owner)
	return err == nil && member
}

// validateGossip judges a gossiped message by the rule every path follows
// (docs/protocol.md, "Who may write"): well formed, unsequenced, of the
// topic's group, signed by a device of From, and From a member. One that
// breaks it is rejected, which costs its sender score; one this node
// cannot judge yet (a device the book does not know) is ignored.
func (n *Node) validateGossip(_ context.Context, sender peer.ID, topic string, data []byte) (any, p2p.Verdict) {
	feeds, _ := feedsOfTopic(topic)
	m := new(wire.Message)
	err := json.Unmarshal(data, m)
	switch {
	case err != nil:
		err = fmt.Errorf("%s: %w", errBadRequest, err)
	case m.Feeds != feeds:
		err = fmt.Errorf("%s: a message of %.80s in the topic of %s", errBadRequest, m.Feeds, feeds)
	default:
		err = n.checkGossipShape(m)
	}
	if errors.Is(err, errUnknownDevice) {
		n.log.Info("gossip: ignored a message from a device not in the book", "from", sender.String(), "device", m.Device)
		return nil, p2p.Ignore
	}
	if err == nil {
		err = m.Verify()
	}
	if err == nil {
		err = n.checkMember(m)
	}
	if err != nil {
		n.counts.refused.Add(1)
		n.log.Warn("gossip: rejected a message", "from", sender.String(), "msg_id", m.MsgId, "err", err)
		return nil, p2p.Reject
	}
	return m, p2p.Accept
}

// errUnknownDevice: the book knows no account of the message's Device.
var errUnknownDevice = errors.New("device not in the book")

// checkGossipShape is checkDirectShape for a message that may have come
// through other members: its Device is its author's, not the sender's.
func (n *Node) checkGossipShape(m *wire.Message) error {
	if err := checkPeerMessage(m, "by gossip"); err != nil {
		return err
	}
	owner, ok := n.book.account(m.Device)
	if !ok {
		return errUnknownDevice
	}
	if owner != m.From {
		return fmt.Errorf("%s: device %s does not belong to %s", errForbidden, m.Device, m.From)
	}
	return nil
}

// deliverGossip stores an accepted gossiped message like a direct one.
func (n *Node) deliverGossip(_ peer.ID, _ string, val any) {
	m, ok := val.(*wire.Message)
	if !ok {
		return
	}
	n.ingest.addAsync(*m, localdb.ViaGossip, func(err error) {
		if err != nil {
			n.log.Error("store a gossiped message", "msg_id", m.MsgId, "err", err)
		}
	})
}

// syncGossip joins the topics of the groups and things' feeds in the book
// and leaves the others, evicts from each topic the devices no longer of its members
// (before it returns: nothing published after reaches them), and dials
// members' devices where a mesh is thin.
func (n *Node) syncGossip(ctx context.Context) {
	if n.gossip == nil {
		return
	}
	want := make(map[string]bool)
	for _, feeds := range n.book.gossipFeeds() {
		want[gossipTopic(feeds)] = true
	}
	for _, t := range n.gossip.Joined() {
		if !want[t] {
			n.gossip.Leave(t)
			n.log.Info("gossip: left a topic no longer ours (a group or a thing's feed)", "topic", t)
		}
	}
	for t := range want {
		if err := n.gossip.Join(t); err != nil {
			n.log.Warn("gossip: join", "topic", t, "err", err)
			continue
		}
		ectx, cancel := context.WithTimeout(ctx, 2*time.Second)
		n.gossip.Evict(ectx, t)
		cancel()
	}
	n.meshDial()
}

// meshLow is how many mesh peers a group's topic wants before the node
// stops dialling its members' devices (GossipSub's D_lo).
const meshLow = 5

// meshDial connects to devices of members of groups whose mesh is thin:
// those the server last said are online, with addresses, at most meshLow
// a round. GossipSub grafts them at its next heartbeat. The dials run
// under the node's context, whoever asked.
func (n *Node) meshDial() {
	for _, t := range n.gossip.Joined() {
		if len(n.gossip.MeshPeers(t)) >= meshLow {
			continue
		}
		feeds, _ := feedsOfTopic(t)
		g, ok := n.book.group(feeds)
		if !ok {
			continue
		}
		dialled := 0
		for _, tg := range n.book.devicesOf(g.Members...) {
			if dialled >= meshLow {
				break
			}
			if tg.id == n.self || len(tg.addrs) == 0 || n.book.offline(tg.id.String()) || n.host.IsConnected(tg.id) {
				continue
			}
			dialled++
			go func() {
				dctx, cancel := context.WithTimeout(n.ctx, n.cfg.DirectTimeout)
				defer cancel()
				if err := n.host.Connect(dctx, tg.id, tg.addrs); err != nil {
					n.log.Debug("gossip: dial a member's device", "device", tg.id.String(), "err", err)
				}
			}()
		}
	}
}

// meshLoop mends thin meshes now and then (members come online), and
// logs a group's topic as it loses its last mesh peer or finds its first.
func (n *Node) meshLoop() {
	defer n.wg.Done()
	t := time.NewTicker(meshEvery)
	defer t.Stop()
	empty := make(map[string]bool)
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			n.meshDial()
			for _, topic := range n.gossip.Joined() {
				none := len(n.gossip.MeshPeers(topic)) == 0
				if none != empty[topic] {
					feeds, _ := feedsOfTopic(topic)
					if none {
						n.log.Info("gossip: no mesh peers in a topic; its messages go to connected devices and the server", "feeds", feeds)
					} else {
						n.log.Info("gossip: a topic has mesh peers again", "feeds", feeds)
					}
				}
				empty[topic] = none
			}
		}
	}
}

// meshEvery is how often meshLoop looks at the meshes.
const meshEvery = 10 * time.Second

// gossipSend publishes a group's messages to its topic, each once: a
// message stays in the outbox for its server leg, and its retries do not
// publish it again. It returns the messages published to no mesh peer
// (the caller sends those directly to the devices connected now).
func (n *Node) gossipSend(ctx context.Context, feeds string, msgs []wire.Message) []wire.Message {
	if n.gossip == nil {
		return msgs
	}
	topic := gossipTopic(feeds)
	var unreached []wire.Message
	for _, m := range msgs {
		if n.gossiped.has(m.MsgId) {
			continue
		}
		body, err := json.Marshal(&m)
		if err != nil {
			n.log.Error("encode message", "msg_id", m.MsgId, "err", err)
			continue
		}
		peers, err := n.gossip.Publish(ctx, topic, body)
		if errors.Is(err, p2p.ErrNotJoined) {
			if err = n.gossip.Join(topic); err == nil {
				peers, err = n.gossip.Publish(ctx, topic, body)
			}
		}
		if err != nil {
			n.recordFailure(localdb.ViaGossip, "", m.MsgId, err)
			unreached = append(unreached, m)
			continue
		}
		n.gossiped.add(m.MsgId)
		n.counts.sentGossip.Add(1)
		n.events.publish(EventReceipt, Receipt{MsgId: m.MsgId, Feeds: m.Feeds, Path: localdb.ViaGossip, Peers: peers})
	}
	return unreached
}

// gossipedSet remembers the MsgIds published by gossip lately (the last
// gossipRemembered), so that an outbox retry does not publish again.
type gossipedSet struct {
	mu   sync.Mutex
	ids  map[string]bool
	ring []string
	next int
}

const gossipRemembered = 4096

func (s *gossipedSet) has(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ids[id]
}

func (s *gossipedSet) add(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ids == nil {
		s.ids = make(map[string]bool)
		s.ring = make([]string, gossipRemembered)
	}
	if s.ids[id] {
		return
	}
	delete(s.ids, s.ring[s.next])
	s.ring[s.next] = id
	s.ids[id] = true
	s.next = (s.next + 1) % gossipRemembered
}
