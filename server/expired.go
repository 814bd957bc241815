package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/mqtter/mqtter/server/store"
	"github.com/mqtter/mqtter/thing"
	"github.com/mqtter/mqtter/wire"
)

// commandMarker is how a news push of a command starts to look: only
// pushes that hold it are decoded to check an expiry.
var commandMarker = []byte(`"MsgType":"command"`)

// withholds reports whether p, about to be written to this session, is a
// news push of a command past its expiry to this session's thing, on a
// device that is not a node (which checks expiries itself): such a
// command is never delivered, and the server records its result,
// timeout, instead. Every news write (live push, CONNECT replay, feeds
// subscription) passes here, at the moment it is written.
func (s *session) withholds(p outPacket, mode deliveryMode, subs []subscription) bool {
	if p.feeds == "" || s.kind != KindThing || !bytes.Contains(p.body, commandMarker) {
		return false
	}
	if mode == modeSubscribed {
		_, onTopic := matchQoS(subs, p.topic)
		_, onAlt := matchQoS(subs, p.alt)
		if !onTopic && !onAlt {
			return false // not delivered anyway
		}
	}
	var news wire.News
	if err := json.Unmarshal(p.body, &news); err != nil {
		return false
	}
	m := news.Message
	if m.MsgType != wire.MsgTypeCommand || m.From == s.account {
		return false
	}
	if f, err := wire.ParseFeeds(m.Feeds); err != nil || f.Kind != wire.FeedsDM || !f.Has(s.account) {
		return false
	}
	c, err := thing.ParseCommand(m.Payload)
	if err != nil || !c.Expired(time.Now()) || s.srv.isNode(s.account, s.device) {
		return false
	}
	s.srv.metrics.things.commandsExpired.Inc()
	s.srv.log.Info("expired command withheld from a device that is not a node", "thing", s.account,
		"device", s.device, "msg_id", m.MsgId, "from", m.From)
	if !s.srv.chore(func(ctx context.Context) { s.srv.answerExpired(ctx, s.account, m, c) }) {
		s.srv.log.Warn("expired command's timeout not recorded: too much work waiting; recorded at its next delivery",
			"thing", s.account, "msg_id", m.MsgId)
	}
	return true
}

// isNode reports whether device is a node of account: a client id that
// is a libp2p peer id whose key the device proved with register_device.
// A plain client cannot pass for one (it cannot prove the key), and a
// peer-id client that has not proven it cannot write at all. In doubt
// (the store fails), it says node: the command is delivered, and the
// device's own expiry check applies, as for any device.
func (s *Server) isNode(account, device string) bool {
	if !wire.IsPeerID(device) {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	owner, err := s.lookupDeviceOwner(ctx, device)
	if errors.Is(err, store.ErrNotFound) {
		return false
	}
	return err != nil || owner == account
}

// expiredResultID is the MsgId of the result the server records for
// command msgID of from that expired undelivered: the same each time, so
// however many deliveries were withheld, one result is stored.
func expiredResultID(from, msgID string) string {
	h := sha256.Sum256([]byte(from + "\x00" + msgID))
	return "expired-" + hex.EncodeToString(h[:20])
}

// answerExpired records, on thing name's behalf, the result timeout of
// command m (c), which expired before it could be delivered: in the
// command's dm, unsigned, Device the server's (wire.ServerDevice), with
// the command's trace, and also to the chain's origin when that is not
// the command's sender.
func (s *Server) answerExpired(ctx context.Context, name string, m wire.Message, c thing.Command) {
	tr := c.Trace
	fb := thing.Feedback{Kind: thing.KindResult, Cmd: m.MsgId, Action: c.Action, Status: thing.ResultTimeout,
		Error: errExpiredUndelivered, Trace: &tr}
	type outcome struct {
		fresh bool
		err   error
	}
	done := make(chan outcome, 1)
	err := s.writeAsThing(ctx, asThing{Thing: name, Device: wire.ServerDevice, Feeds: m.Feeds, Feedback: fb,
		MsgID: expiredResultID(m.From, m.MsgId), At: c.Expires},
		func(_ wire.Message, res store.Appended, err error) {
			done <- outcome{err == nil && !res.Duplicate, err}
		})
	if err != nil {
		s.log.Warn("timeout of an expired command refused", "thing", name, "cmd", m.MsgId, "err", err)
		return
	}
	select {
	case o := <-done:
		if o.err != nil {
			s.log.Warn("timeout of an expired command not stored", "thing", name, "cmd", m.MsgId, "err", o.err)
			return
		}
		if o.fresh {
			s.toOrigin(ctx, name, m.Feeds, &c, fb, c.Expires)
		}
	case <-ctx.Done():
	}
}
