package node

import (
	"context"
	"encoding/json"
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/mqtter/mqtter/localdb"
	"github.com/mqtter/mqtter/wire"
)

// sendDirect sends msgs, in order, straight to the devices of the
// conversation's other members: for a dm every device of the other account
// that may be reachable; a group's go to its topic's mesh (gossipSend), and
// those that found no mesh peer only to the devices connected now (the
// server carries group messages anyway). Each device gets the whole batch
// as one pipelined burst of frames (p2p.Host.RequestAll), so a batch costs
// one round trip, not one per message; its messages count as stored there
// up to its first failure, which is recorded. It returns, for each message
// that some device stored, one such device.
func (n *Node) sendDirect(ctx context.Context, f wire.Feeds, feeds string, msgs []wire.Message) map[string]peer.ID {
	members := n.book.members(f, feeds)
	if len(members) == 0 {
		return nil
	}
	gossiped := f.Kind == wire.FeedsGroup || f.Kind == wire.FeedsThing
	if gossiped {
		if msgs = n.gossipSend(ctx, feeds, msgs); len(msgs) == 0 {
			return nil
		}
	}
	serverUp := n.link.Connected()
	var targets []target
	for _, t := range n.book.devicesOf(members...) {
		if t.id == n.self {
			continue
		}
		connected := n.host.IsConnected(t.id)
		switch {
		case connected:
		case gossiped:
			continue // groups and feeds go directly only to devices connected now
		case len(t.addrs) == 0:
			continue
		case serverUp && n.book.offline(t.id.String()):
			continue // the server says it is gone: do not wait for a dial
		}
		targets = append(targets, t)
	}
	if len(targets) == 0 {
		return nil
	}
	bodies := make([][]byte, len(msgs))
	for i := range msgs {
		b, err := json.Marshal(&msgs[i])
		if err != nil {
			n.log.Error("encode message", "msg_id", msgs[i].MsgId, "err", err)
			return nil
		}
		bodies[i] = b
	}
	var mu sync.Mutex
	stored := make(map[string]peer.ID)
	var wg sync.WaitGroup
	for _, t := range targets {
		wg.Go(func() {
			k, err := n.sendBatch(ctx, t, msgs, bodies)
			path := localdb.ViaP2P
			if n.host.Limited(t.id) {
				path = localdb.ViaRelayed
				n.counts.sentRelayed.Add(int64(k))
			}
			mu.Lock()
			for _, m := range msgs[:k] {
				if _, ok := stored[m.MsgId]; !ok {
					stored[m.MsgId] = t.id
					n.events.publish(EventReceipt, Receipt{MsgId: m.MsgId, Feeds: m.Feeds, Path: path, Peer: t.id.String()})
				}
			}
			mu.Unlock()
			if err != nil {
				n.recordFailure(localdb.ViaP2P, t.id, msgs[k].MsgId, err)
			}
		})
	}
	wg.Wait()
	return stored
}

// sendBatch sends msgs (encoded as bodies) to one device in one burst and
// waits for the answers, which come once each message is durable there,
// all within DirectTimeout. It returns how many messages, from the first,
// the device stored, and when that is not all of them, why the next was
// not. The device may still have stored some after a failure: they are
// sent again later, and it keeps one copy.
func (n *Node) sendBatch(ctx context.Context, t target, msgs []wire.Message, bodies [][]byte) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.DirectTimeout)
	defer cancel()
	topics := make([]string, len(msgs))
	for i := range msgs {
		topics[i] = wire.RequestTopic(t.id.String(), wire.MethodSend, msgs[i].MsgId)
	}
	answers, errs := n.host.RequestAll(ctx, t.id, t.addrs, topics, bodies)
	for i := range msgs {
		if errs[i] != nil {
			return i, errs[i]
		}
		a, err := wire.ParseAnswer(answers[i])
		if err == nil {
			err = a.Err()
		}
		if err != nil {
			return i, err
		}
	}
	return len(msgs), nil
}
