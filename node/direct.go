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
// that may be reachable, for a group only the devices connected now (the
// server carries group messages anyway). Each device gets the messages one
// after another and is given up at its first failure, which is recorded.
// It returns, for each message that some device stored, one such device.
func (n *Node) sendDirect(ctx context.Context, f wire.Feeds, feeds string, msgs []wire.Message) map[string]peer.ID {
	members := n.book.members(f, feeds)
	if len(members) == 0 {
		return nil
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
		case f.Kind == wire.FeedsGroup:
			continue // groups go directly only to devices connected now
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
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i, m := range msgs {
				if err := n.sendOne(ctx, t, m, bodies[i]); err != nil {
					n.recordFailure(localdb.ViaP2P, t.id, m.MsgId, err)
					return
				}
				mu.Lock()
				if _, ok := stored[m.MsgId]; !ok {
					stored[m.MsgId] = t.id
					n.events.publish(EventReceipt, Receipt{MsgId: m.MsgId, Feeds: m.Feeds, Path: localdb.ViaP2P, Peer: t.id.String()})
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return stored
}

// sendOne sends one message to one device and waits for its answer, which
// comes once the message is durable there.
func (n *Node) sendOne(ctx context.Context, t target, m wire.Message, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.DirectTimeout)
	defer cancel()
	topic := wire.RequestTopic(t.id.String(), wire.MethodSend, m.MsgId)
	raw, err := n.host.Request(ctx, t.id, t.addrs, topic, body)
	if err != nil {
		return err
	}
	a, err := wire.ParseAnswer(raw)
	if err != nil {
		return err
	}
	return a.Err()
}
