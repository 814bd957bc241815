package bench

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/oklog/ulid/v2"
)

// newIMLink connects sender and receiver to an MQTTER server, makes them
// friends over the protocol, and returns a link whose messages are
// im://modulus/send requests from sender, delivered as news pushes to
// receiver. It checks what the server sends back against PROTOCOL.md.
func newIMLink(ctx context.Context, url, sender, receiver string) (*link, error) {
	l := &link{name: sender + "→" + receiver}
	feeds := dmFeeds(sender, receiver)
	senderDevice, receiverDevice := "mqb-"+sender, "mqb-"+receiver

	recv, err := dialIM(ctx, url, receiver, receiverDevice, func(n imNews, at time.Time) {
		m := n.Message
		if m.Feeds != feeds {
			return // not this link's conversation
		}
		if m.From != sender || m.Device != senderDevice {
			l.violation("push of %s has From %q Device %q, want %q %q", m.MsgId, m.From, m.Device, sender, senderDevice)
		}
		if n.Feeds != m.Feeds || m.SeqId <= 0 || n.LastSeqID < m.SeqId {
			l.violation("push of %s: feeds %q last_seq_id %d, message Feeds %q SeqId %d", m.MsgId, n.Feeds, n.LastSeqID, m.Feeds, m.SeqId)
		}
		run, index, ok := parseMessageText(m.Payload.Text)
		if !ok {
			l.violation("push of %s: payload text %q is not what was sent", m.MsgId, m.Payload.Text)
			return
		}
		l.deliver(delivery{run: run, index: index, seq: m.SeqId, at: at})
	})
	if err != nil {
		return nil, err
	}
	l.clients = append(l.clients, recv)
	send, err := dialIM(ctx, url, sender, senderDevice, nil)
	if err != nil {
		l.close()
		return nil, err
	}
	l.clients = append(l.clients, send)

	if _, err := send.request(ctx, "add_friend", map[string]string{"user": receiver}); err != nil {
		l.close()
		return nil, err
	}
	if _, err := recv.request(ctx, "accept_friend", map[string]string{"user": sender}); err != nil {
		l.close()
		return nil, err
	}

	l.publish = func(run, index int) paho.Token {
		msg := imMessage{
			MsgId:      ulid.Make().String(),
			Feeds:      feeds,
			MsgType:    "text",
			From:       sender,
			Payload:    imText{Text: messageText(run, index)},
			TimeCreate: time.Now().UnixMilli(),
			Device:     senderDevice,
		}
		body, _ := json.Marshal(msg) // cannot fail: plain strings and numbers
		return send.call("im://modulus/send?msg_id="+msg.MsgId, body, func(a imAnswer, _ time.Time) {
			if a.Error != "" {
				l.fail(run, index, errors.New(a.Error))
				return
			}
			var r sendResult
			if err := json.Unmarshal(a.Result, &r); err != nil || r.MsgId != msg.MsgId || r.Feeds != feeds || r.SeqId <= 0 {
				l.violation("send answer for %s: Result %.200s (err %v)", msg.MsgId, a.Result, err)
			}
			if a.Trace == "" {
				l.violation("send answer for %s has no Trace", msg.MsgId)
			}
		})
	}
	return l, nil
}
