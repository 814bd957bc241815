package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/oklog/ulid/v2"
)

// newPubSubLink connects a publisher and a subscriber to a plain MQTT broker;
// the subscriber takes its own topic at QoS 1. Messages are QoS 1 publishes
// of the same JSON body an MQTTER send carries, so both brokers move the
// same bytes.
func newPubSubLink(ctx context.Context, url string, k int) (*link, error) {
	topic := fmt.Sprintf("mqbench/%d", k)
	l := &link{name: topic}
	subID, pubID := fmt.Sprintf("mqb-sub-%d", k), fmt.Sprintf("mqb-pub-%d", k)

	sub, err := dial(ctx, dialSpec{url: url, clientID: subID}, func(_ string, payload []byte) {
		at := time.Now()
		var m imMessage
		if err := json.Unmarshal(payload, &m); err != nil {
			l.violation("received %.100q: %v", payload, err)
			return
		}
		run, index, ok := parseMessageText(m.Payload.Text)
		if !ok {
			l.violation("received text %q", m.Payload.Text)
			return
		}
		l.deliver(delivery{run: run, index: index, at: at})
	})
	if err != nil {
		return nil, err
	}
	l.clients = append(l.clients, sub)
	if err := wait(ctx, sub.Subscribe(topic, 1, nil)); err != nil {
		l.close()
		return nil, fmt.Errorf("subscribe %s: %w", topic, err)
	}
	pub, err := dial(ctx, dialSpec{url: url, clientID: pubID}, nil)
	if err != nil {
		l.close()
		return nil, err
	}
	l.clients = append(l.clients, pub)

	l.publish = func(run, index int) paho.Token {
		body, _ := json.Marshal(imMessage{
			MsgId:      ulid.Make().String(),
			Feeds:      "dm:" + pubID + ":" + subID,
			MsgType:    "text",
			From:       pubID,
			Payload:    imText{Text: messageText(run, index)},
			TimeCreate: time.Now().UnixMilli(),
			Device:     pubID,
		})
		return pub.Publish(topic, 1, false, body)
	}
	return l, nil
}
