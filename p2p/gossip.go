package p2p

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	pb "github.com/libp2p/go-libp2p-pubsub/pb"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// GossipProtocolID is the GossipSub protocol MQTTER hosts speak to each
// other (GossipSub v1.2 under a name of its own): a host speaking plain
// floodsub or another network's gossip gets no topic traffic from us.
const GossipProtocolID protocol.ID = "/mqtter/gossip/1.2.0"

// Verdict is a Validate decision on a gossiped message.
type Verdict int

const (
	// Accept delivers the message here and forwards it to the mesh.
	Accept Verdict = iota
	// Ignore drops it without blame (say, this node cannot judge it yet).
	Ignore
	// Reject drops it and lowers the score of the peer that sent it.
	Reject
)

// GossipConfig says who may take part in which topic.
type GossipConfig struct {
	// MayJoin reports whether peer id may be in topic's mesh: only such
	// peers are grafted, sent the topic's messages or asked for them, and
	// only their messages are accepted. Required.
	MayJoin func(id peer.ID, topic string) bool
	// Validate judges a message of topic that peer sent us (it relayed
	// it, and need not be its author). The value it returns is handed to
	// Deliver with an accepted message. Required.
	Validate func(ctx context.Context, sender peer.ID, topic string, data []byte) (any, Verdict)
	// Deliver takes each accepted message from another host, once, with
	// Validate's value; it runs on the topic's reader and must not block
	// for long. Required.
	Deliver func(sender peer.ID, topic string, val any)
	// MaxMessageSize bounds a gossiped message (and its RPC); 0 keeps
	// pubsub's default (1 MiB).
	MaxMessageSize int
	// HeartbeatInterval is how often meshes are mended; 0 keeps
	// GossipSub's default (1 s).
	HeartbeatInterval time.Duration
}

// Gossip is the host's GossipSub router: topics joined by the node, a peer
// filter and a validator that only let in the peers its config allows, and
// the counts of what happened.
type Gossip struct {
	h    *Host
	cfg  GossipConfig
	log  *slog.Logger
	ps   *pubsub.PubSub
	ctx  context.Context
	stop context.CancelFunc
	wg   sync.WaitGroup

	jmu    sync.Mutex // one Join or Leave at a time
	mu     sync.Mutex // topics; never held across a call into pubsub
	topics map[string]*gossipTopic
	// tmu guards what pubsub's event loop tells the tracer and the
	// score inspector, so taking it never waits on that loop.
	tmu    sync.Mutex
	mesh   map[string]map[peer.ID]bool // by topic, as GRAFT and PRUNE say
	scores map[peer.ID]float64         // GossipSub's last word on each peer

	published, delivered, rejected, ignored, unreached atomic.Int64
}

type gossipTopic struct {
	t      *pubsub.Topic
	sub    *pubsub.Subscription
	cancel context.CancelFunc
}

// GossipStats are Gossip's counters and meshes.
type GossipStats struct {
	Published int64 `json:"published"` // messages this host published
	Delivered int64 `json:"delivered"` // messages of others accepted and delivered
	Rejected  int64 `json:"rejected"`  // messages refused, their sender blamed
	Ignored   int64 `json:"ignored"`   // messages dropped without blame
	Unreached int64 `json:"unreached"` // publishes with no mesh peer to take them
	// Topics are the topics joined, with the peers in each one's mesh.
	Topics map[string][]string `json:"topics"`
}

// StartGossip starts GossipSub on the host. It stops with the host (or
// with Close).
func (h *Host) StartGossip(cfg GossipConfig) (*Gossip, error) {
	if cfg.MayJoin == nil || cfg.Validate == nil || cfg.Deliver == nil {
		return nil, errors.New("p2p: gossip: MayJoin, Validate and Deliver are required")
	}
	ctx, stop := context.WithCancel(h.ctx)
	g := &Gossip{
		h: h, cfg: cfg, log: h.log.With("part", "gossip"), ctx: ctx, stop: stop,
		topics: make(map[string]*gossipTopic),
		mesh:   make(map[string]map[peer.ID]bool),
	}
	params := pubsub.DefaultGossipSubParams()
	if cfg.HeartbeatInterval > 0 {
		params.HeartbeatInterval = cfg.HeartbeatInterval
	}
	opts := []pubsub.Option{
		pubsub.WithGossipSubParams(params),
		pubsub.WithGossipSubProtocols([]protocol.ID{GossipProtocolID}, gossipFeatures),
		// MQTTER messages carry their author's signature (the device key)
		// and are checked by Validate; pubsub's own envelope is anonymous,
		// and a message is known by a hash of its bytes, so a forged copy
		// under a real MsgId never shadows the real one.
		pubsub.WithMessageSignaturePolicy(pubsub.StrictNoSign),
		pubsub.WithNoAuthor(),
		pubsub.WithMessageIdFn(func(m *pb.Message) string {
			sum := sha256.Sum256(m.GetData())
			return string(sum[:20])
		}),
		// Publishes go to the mesh only, never to every peer that says it
		// subscribed: the mesh is what MayJoin guards.
		pubsub.WithFloodPublish(false),
		pubsub.WithPeerExchange(false),
		pubsub.WithPeerFilter(func(id peer.ID, topic string) bool { return cfg.MayJoin(id, topic) }),
		pubsub.WithPeerScore(scoreParams(), scoreThresholds()),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(g.setScores), time.Second),
		pubsub.WithRawTracer(meshTracer{g}),
		pubsub.WithLogger(h.log.With("part", "pubsub")),
	}
	if cfg.MaxMessageSize > 0 {
		opts = append(opts, pubsub.WithMaxMessageSize(cfg.MaxMessageSize))
	}
	ps, err := pubsub.NewGossipSub(ctx, h.h, opts...)
	if err != nil {
		stop()
		return nil, fmt.Errorf("p2p: gossip: %w", err)
	}
	g.ps = ps
	return g, nil
}

// gossipFeatures says what a peer's protocol supports. A peer whose
// protocol GossipSub has not recorded yet (its subscriptions came on its
// own stream before ours to it opened) counts as a mesh peer too: no peer
// speaks anything else to us, and GossipSub sends every message of a topic
// to the peers it takes for plain floodsub ones, past the mesh and its
// filter, so a peer that just reconnected (a member removed a moment ago,
// still a friend) would otherwise get what is published in that moment.
func gossipFeatures(f pubsub.GossipSubFeature, p protocol.ID) bool {
	switch f {
	case pubsub.GossipSubFeatureMesh:
		return p == GossipProtocolID || p == ""
	case pubsub.GossipSubFeatureIdontwant:
		return p == GossipProtocolID
	}
	return false
}

// scoreParams blame what GossipSub can see go wrong: invalid messages above
// all (a rejected message costs its sender 100, squared), broken promises
// and floods. Colocation is not counted: the devices of a household or a
// test share an address.
func scoreParams() *pubsub.PeerScoreParams {
	return &pubsub.PeerScoreParams{
		SkipAtomicValidation:      true,
		AppSpecificScore:          func(peer.ID) float64 { return 0 },
		BehaviourPenaltyWeight:    -10,
		BehaviourPenaltyThreshold: 2,
		BehaviourPenaltyDecay:     0.9,
		DecayInterval:             time.Second,
		DecayToZero:               0.01,
		RetainScore:               10 * time.Minute,
		Topics:                    map[string]*pubsub.TopicScoreParams{},
	}
}

// topicScore is each topic's part: invalid messages weigh the most, and
// decay slowly (about a tenth of the count left after a minute).
func topicScore() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		SkipAtomicValidation:           true,
		TopicWeight:                    1,
		TimeInMeshQuantum:              time.Second, // unweighted; pubsub divides by it
		InvalidMessageDeliveriesWeight: -100,
		InvalidMessageDeliveriesDecay:  0.96,
	}
}

// scoreThresholds: below -100 (one rejected message) a peer gets no
// gossip; below -400 nothing we publish; below -1000 we ignore it.
func scoreThresholds() *pubsub.PeerScoreThresholds {
	return &pubsub.PeerScoreThresholds{
		SkipAtomicValidation:        true,
		GossipThreshold:             -100,
		PublishThreshold:            -400,
		GraylistThreshold:           -1000,
		AcceptPXThreshold:           1,
		OpportunisticGraftThreshold: 1,
	}
}

// Join subscribes to topic, with its validator; joining a topic joined
// already does nothing.
func (g *Gossip) Join(topic string) error {
	g.jmu.Lock()
	defer g.jmu.Unlock()
	g.mu.Lock()
	_, ok := g.topics[topic]
	g.mu.Unlock()
	if ok {
		return nil
	}
	err := g.ps.RegisterTopicValidator(topic, func(ctx context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		if from == g.h.ID() {
			return pubsub.ValidationAccept // our own publish, checked before it
		}
		if !g.cfg.MayJoin(from, topic) {
			g.rejected.Add(1)
			g.log.Info("gossip: rejected a message from a peer outside the topic", "topic", topic, "from", from.String())
			return pubsub.ValidationReject
		}
		val, v := g.cfg.Validate(ctx, from, topic, m.GetData())
		switch v {
		case Accept:
			m.ValidatorData = val
			return pubsub.ValidationAccept
		case Ignore:
			g.ignored.Add(1)
			return pubsub.ValidationIgnore
		}
		g.rejected.Add(1)
		return pubsub.ValidationReject
	})
	if err != nil {
		return fmt.Errorf("p2p: gossip: validator of %s: %w", topic, err)
	}
	t, err := g.ps.Join(topic)
	if err != nil {
		g.ps.UnregisterTopicValidator(topic)
		return fmt.Errorf("p2p: gossip: join %s: %w", topic, err)
	}
	if err := t.SetScoreParams(topicScore()); err != nil {
		t.Close()
		g.ps.UnregisterTopicValidator(topic)
		return fmt.Errorf("p2p: gossip: score of %s: %w", topic, err)
	}
	sub, err := t.Subscribe()
	if err != nil {
		t.Close()
		g.ps.UnregisterTopicValidator(topic)
		return fmt.Errorf("p2p: gossip: subscribe %s: %w", topic, err)
	}
	ctx, cancel := context.WithCancel(g.ctx)
	g.mu.Lock()
	g.topics[topic] = &gossipTopic{t: t, sub: sub, cancel: cancel}
	g.mu.Unlock()
	g.wg.Go(func() { g.read(ctx, topic, sub) })
	return nil
}

// read hands the topic's accepted messages of others to Deliver.
func (g *Gossip) read(ctx context.Context, topic string, sub *pubsub.Subscription) {
	for {
		m, err := sub.Next(ctx)
		if err != nil {
			return // cancelled: left, or closing
		}
		if m.ReceivedFrom == g.h.ID() {
			continue
		}
		g.delivered.Add(1)
		g.cfg.Deliver(m.ReceivedFrom, topic, m.ValidatorData)
	}
}

// Leave unsubscribes from topic; leaving a topic not joined does nothing.
func (g *Gossip) Leave(topic string) {
	g.jmu.Lock()
	defer g.jmu.Unlock()
	g.mu.Lock()
	gt, ok := g.topics[topic]
	delete(g.topics, topic)
	g.mu.Unlock()
	if !ok {
		return
	}
	gt.cancel()
	gt.sub.Cancel()
	if err := gt.t.Close(); err != nil {
		g.log.Debug("gossip: close topic", "topic", topic, "err", err)
	}
	if err := g.ps.UnregisterTopicValidator(topic); err != nil {
		g.log.Debug("gossip: unregister validator", "topic", topic, "err", err)
	}
}

// Joined returns the topics joined, sorted.
func (g *Gossip) Joined() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Sorted(maps.Keys(g.topics))
}

// ErrNotJoined is returned by Publish for a topic not joined.
var ErrNotJoined = errors.New("p2p: gossip: topic not joined")

// ErrNoMeshPeers is returned by Publish when no peer of the topic's mesh
// could take the message: it reached nobody.
var ErrNoMeshPeers = errors.New("p2p: gossip: no mesh peers in the topic")

// Publish sends data to topic's mesh. It returns how many mesh peers
// there were to take it, and ErrNoMeshPeers when there were none (the
// message is published anyway, for peers that graft later).
func (g *Gossip) Publish(ctx context.Context, topic string, data []byte) (int, error) {
	g.mu.Lock()
	gt, ok := g.topics[topic]
	g.mu.Unlock()
	peers := len(g.MeshPeers(topic))
	if !ok {
		return 0, fmt.Errorf("%w: %s", ErrNotJoined, topic)
	}
	if err := gt.t.Publish(ctx, data); err != nil {
		return 0, fmt.Errorf("p2p: gossip: publish to %s: %w", topic, err)
	}
	g.published.Add(1)
	if peers == 0 {
		g.unreached.Add(1)
		return 0, fmt.Errorf("%w: %s", ErrNoMeshPeers, topic)
	}
	return peers, nil
}

func (g *Gossip) setScores(scores map[peer.ID]float64) {
	g.tmu.Lock()
	g.scores = scores
	g.tmu.Unlock()
}

// Score is the peer's GossipSub score as last inspected (each second): 0
// for a peer that did nothing wrong, negative once it sent what Validate
// rejected.
func (g *Gossip) Score(id peer.ID) float64 {
	g.tmu.Lock()
	defer g.tmu.Unlock()
	return g.scores[id]
}

// MeshPeers returns the peers in topic's mesh now, sorted.
func (g *Gossip) MeshPeers(topic string) []peer.ID {
	g.tmu.Lock()
	defer g.tmu.Unlock()
	return slices.Sorted(maps.Keys(g.mesh[topic]))
}

// Evict drops the peers of topic that MayJoin no longer allows: their
// connection is closed, which takes them out of every mesh at once (a
// peer still related in another way reconnects when there is something
// to say to it, and its subscription then stays out of topic's mesh). It
// returns the peers dropped, and returns once GossipSub has let them go,
// so nothing published after it reaches them.
func (g *Gossip) Evict(ctx context.Context, topic string) []peer.ID {
	g.mu.Lock()
	gt, ok := g.topics[topic]
	g.mu.Unlock()
	if !ok {
		return nil
	}
	var gone []peer.ID
	for _, id := range append(gt.t.ListPeers(), g.MeshPeers(topic)...) {
		if !slices.Contains(gone, id) && !g.cfg.MayJoin(id, topic) {
			gone = append(gone, id)
		}
	}
	for _, id := range gone {
		if err := g.h.h.Network().ClosePeer(id); err != nil {
			g.log.Debug("gossip: close an evicted peer", "peer", id.String(), "err", err)
		}
		g.log.Info("gossip: evicted a peer no longer in the topic", "topic", topic, "peer", id.String())
	}
	// The mesh is what a publish goes to; GossipSub takes a closed peer
	// out of it on its event loop, the loop publishes go through.
	for len(gone) > 0 && ctx.Err() == nil {
		mesh := g.MeshPeers(topic)
		if !slices.ContainsFunc(gone, func(id peer.ID) bool { return slices.Contains(mesh, id) }) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	return gone
}

// Stats returns the counters and each joined topic's mesh.
func (g *Gossip) Stats() GossipStats {
	s := GossipStats{
		Published: g.published.Load(), Delivered: g.delivered.Load(),
		Rejected: g.rejected.Load(), Ignored: g.ignored.Load(), Unreached: g.unreached.Load(),
		Topics: make(map[string][]string),
	}
	for _, t := range g.Joined() {
		peers := g.MeshPeers(t)
		ids := make([]string, len(peers))
		for i, p := range peers {
			ids[i] = p.String()
		}
		s.Topics[t] = ids
	}
	return s
}

// Close leaves every topic and stops the router.
func (g *Gossip) Close() {
	for _, t := range g.Joined() {
		g.Leave(t)
	}
	g.stop()
	g.wg.Wait()
}

// meshTracer keeps Gossip's view of each topic's mesh from GossipSub's
// GRAFT and PRUNE events (pubsub has no accessor for it).
type meshTracer struct{ g *Gossip }

func (t meshTracer) Graft(p peer.ID, topic string) {
	t.g.tmu.Lock()
	defer t.g.tmu.Unlock()
	m := t.g.mesh[topic]
	if m == nil {
		m = make(map[peer.ID]bool)
		t.g.mesh[topic] = m
	}
	m[p] = true
}

func (t meshTracer) Prune(p peer.ID, topic string) {
	t.g.tmu.Lock()
	defer t.g.tmu.Unlock()
	delete(t.g.mesh[topic], p)
}

func (t meshTracer) OnClosedOutboundStream(p peer.ID) {
	t.g.tmu.Lock()
	defer t.g.tmu.Unlock()
	for _, m := range t.g.mesh {
		delete(m, p)
	}
}

func (t meshTracer) Leave(topic string) {
	t.g.tmu.Lock()
	defer t.g.tmu.Unlock()
	delete(t.g.mesh, topic)
}

func (meshTracer) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (meshTracer) Join(string)                                          {}
func (meshTracer) ValidateMessage(*pubsub.Message)                      {}
func (meshTracer) DeliverMessage(*pubsub.Message)                       {}
func (meshTracer) RejectMessage(*pubsub.Message, string)                {}
func (meshTracer) DuplicateMessage(*pubsub.Message)                     {}
func (meshTracer) ThrottlePeer(peer.ID)                                 {}
func (meshTracer) RecvRPC(*pubsub.RPC)                                  {}
func (meshTracer) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (meshTracer) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (meshTracer) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (meshTracer) UndeliverableMessage(*pubsub.Message)                 {}
