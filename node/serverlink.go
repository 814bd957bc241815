package node

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multiaddr"

	"github.com/mqtter/mqtter/mqttlink"
	"github.com/mqtter/mqtter/wire"
)

// onConnect runs after every (re)connect to the server: it registers this
// device with its current addresses, refreshes what the node knows of its
// relations, then lets the outbox and the sync loop catch up.
func (n *Node) onConnect(ctx context.Context, l *mqttlink.Link) {
	if !n.waitStarted() {
		return
	}
	n.counts.serverConnects.Add(1)
	// The proof of the key binds this peer id to the account: until it is
	// in, related devices are not told of this one.
	reg, err := l.RegisterDevice(ctx, n.key, n.advertised())
	if err != nil {
		n.log.Warn("register_device failed", "err", err)
	} else {
		n.relay.told(reg.Relay)
	}
	if err := n.refresh(ctx); err != nil {
		n.log.Warn("refresh after connect", "err", err)
	}
	n.out.kick()
	n.syncer.Kick(true)
	n.thing.onConnect()
}

// waitStarted waits until start has set the node up, and reports false
// if the node stops first. The link calls back from the moment it starts,
// before start has set n.link (a connect that quick crashed the node).
func (n *Node) waitStarted() bool {
	select {
	case <-n.started:
		return true
	case <-n.ctx.Done():
		return false
	}
}

// onServerState publishes server link changes as events.
func (n *Node) onServerState(connected bool, err error) {
	ev := map[string]string{"server": ServerDisconnected}
	if connected {
		ev["server"] = ServerConnected
	}
	if err != nil {
		ev["error"] = err.Error()
	}
	n.events.publish(EventServer, ev)
}

// refresh asks the server for the relations, the devices of related
// accounts, the groups and the things' feeds, and caches them.
func (n *Node) refresh(ctx context.Context) error {
	var rels []wire.Relation
	if err := n.link.Call(ctx, wire.MethodListRelations, wire.Empty{}, &rels); err != nil {
		return err
	}
	n.setRelations(ctx, rels)
	var peers []wire.PeerInfo
	if err := n.link.Call(ctx, wire.MethodPeers, wire.Empty{}, &peers); err != nil {
		return err
	}
	if err := n.db.ReplacePeers(ctx, peers); err != nil {
		n.log.Warn("cache peers", "err", err)
	}
	n.book.setPeers(peers)
	for _, p := range peers {
		id, err := peer.Decode(p.Device)
		if err != nil || id == n.self {
			continue
		}
		var addrs []multiaddr.Multiaddr
		for _, a := range p.Addrs {
			if ma, err := multiaddr.NewMultiaddr(a); err == nil {
				addrs = append(addrs, ma)
			}
		}
		if len(addrs) > 0 {
			n.host.AddAddrs(id, addrs)
		}
	}
	var groups []wire.Group
	if err := n.link.Call(ctx, wire.MethodListFeeds, wire.Empty{}, &groups); err != nil {
		return err
	}
	n.book.setGroups(groups)
	if raw, err := json.Marshal(groups); err == nil {
		if err := n.db.Set(ctx, metaGroups, string(raw)); err != nil {
			n.log.Warn("cache groups", "err", err)
		}
	}
	// A server without things' feeds has none: the thing then sends its
	// state and events as dms, as before.
	feeds := []wire.Group{}
	if err := n.link.Call(ctx, wire.MethodListThingFeeds, wire.Empty{}, &feeds); err != nil && !isAnswerKind(err, errUnknownMethod) {
		return err
	}
	n.book.setThingFeeds(feeds)
	if raw, err := json.Marshal(feeds); err == nil {
		if err := n.db.Set(ctx, metaThingFeeds, string(raw)); err != nil {
			n.log.Warn("cache things' feeds", "err", err)
		}
	}
	n.syncGossip(ctx)
	n.out.kick()
	return nil
}

// refreshRelations asks the server for this account's relations only and
// puts them in the book, within a few seconds.
func (n *Node) refreshRelations(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var rels []wire.Relation
	if err := n.link.Call(ctx, wire.MethodListRelations, wire.Empty{}, &rels); err != nil {
		return err
	}
	n.setRelations(ctx, rels)
	return nil
}

func (n *Node) setRelations(ctx context.Context, rels []wire.Relation) {
	if err := n.db.ReplaceRelations(ctx, rels); err != nil {
		n.log.Warn("cache relations", "err", err)
	}
	n.book.setRelations(rels)
}

// kickRefresh asks the refresh loop for a refresh soon.
func (n *Node) kickRefresh() {
	select {
	case n.refreshKick <- struct{}{}:
	default:
	}
}

// refreshLoop runs the refreshes that pushes ask for, a few at most per
// second however many pushes come.
func (n *Node) refreshLoop() {
	defer n.wg.Done()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.refreshKick:
		}
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(100 * time.Millisecond): // let a burst of pushes settle
		}
		if !n.link.Connected() {
			continue
		}
		if err := n.refresh(n.ctx); err != nil && !errors.Is(err, context.Canceled) {
			n.log.Info("refresh", "err", err)
		}
	}
}

// onPush handles the server's pushes, in arrival order, on the link's push
// goroutine; it hands messages to the ingester and never waits for the
// database.
func (n *Node) onPush(topic string, body []byte) {
	if !n.waitStarted() {
		return
	}
	switch topic {
	case wire.PushNews:
		var news wire.News
		if err := json.Unmarshal(body, &news); err != nil {
			n.log.Warn("bad news push", "err", err)
			return
		}
		n.receiveFromServer(news.Message, news.LastSeqID)
	case wire.PushRelations:
		var rels []wire.Relation
		if err := json.Unmarshal(body, &rels); err != nil {
			n.log.Warn("bad relations push", "err", err)
			return
		}
		n.setRelations(n.ctx, rels)
		n.kickRefresh()
	case wire.PushRelation:
		var ev wire.RelationEvent
		if err := json.Unmarshal(body, &ev); err != nil {
			n.log.Warn("bad relation push", "err", err)
			return
		}
		n.events.publish(EventRelation, ev)
		n.thing.onRelation(ev)
		n.kickRefresh()
	case wire.PushPresence:
		var p wire.Presence
		if err := json.Unmarshal(body, &p); err != nil {
			n.log.Warn("bad presence push", "err", err)
			return
		}
		known := n.book.setStatus(p.Device, p.Status)
		n.events.publish(EventPresence, p)
		if p.Status == wire.StatusOnline {
			// A device that comes online registers its (new) addresses
			// right after connecting: ask for them a moment later.
			n.kickRefresh()
			time.AfterFunc(time.Second, n.kickRefresh)
		} else if !known {
			n.kickRefresh()
		}
	default:
		n.log.Debug("push on an unknown topic", "topic", topic)
	}
}
