package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/oklog/ulid/v2"
)

// imMessage is the message of PROTOCOL.md §4, unsigned, as a plain MQTT
// device sends it.
type imMessage struct {
	MsgId      string
	Feeds      string
	SeqId      int64
	MsgType    string
	From       string
	Payload    imText
	TimeCreate int64
	Device     string
}

type imText struct {
	Text string `json:"text"`
}

// imAnswer is the answer to every im:// request (PROTOCOL.md §2).
type imAnswer struct {
	Trace  string
	Error  string
	Result json.RawMessage
}

// sendResult is the Result of a successful send.
type sendResult struct {
	MsgId string
	Feeds string
	SeqId int64
}

// imNews is the body of an impush://modulus/news push.
type imNews struct {
	Feeds     string    `json:"feeds"`
	LastSeqID int64     `json:"last_seq_id"`
	Message   imMessage `json:"message"`
}

// newsTopic is the topic of a new-message push.
const newsTopic = "impush://modulus/news"

// dmFeeds returns the conversation of a and b: dm:<a>:<b> with a < b.
func dmFeeds(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return "dm:" + a + ":" + b
}

// requestTopic returns a fresh im://modulus/<method>?msg_id=<ULID> topic and
// the msg_id in it.
func requestTopic(method string) (topic, msgID string) {
	msgID = ulid.Make().String()
	return "im://modulus/" + method + "?msg_id=" + msgID, msgID
}

// An imClient is a paho client speaking MQTTER's request/answer protocol:
// answers come back on the request's own topic, matched here by topic.
type imClient struct {
	paho.Client
	user, device string

	mu      sync.Mutex
	pending map[string]func(imAnswer, time.Time) // by request topic
}

// dialIM connects as user with device id device. onNews gets every
// impush://modulus/news push with the time it arrived.
func dialIM(ctx context.Context, url, user, device string, onNews func(imNews, time.Time)) (*imClient, error) {
	return dialIMRaw(ctx, url, user, device, func(body []byte, at time.Time) {
		var n imNews
		if json.Unmarshal(body, &n) == nil && onNews != nil {
			onNews(n, at)
		}
	})
}

// dialIMRaw is dialIM with the news pushes' bodies as they came, for
// messages whose payload is not a text.
func dialIMRaw(ctx context.Context, url, user, device string, onNews func(body []byte, at time.Time)) (*imClient, error) {
	ic := &imClient{user: user, device: device, pending: make(map[string]func(imAnswer, time.Time))}
	spec := dialSpec{url: url, clientID: device, user: user, password: benchPassword}
	c, err := dial(ctx, spec, func(topic string, payload []byte) {
		now := time.Now()
		switch {
		case strings.HasPrefix(topic, newsTopic):
			if onNews != nil {
				onNews(payload, now)
			}
		case strings.HasPrefix(topic, "im://"):
			ic.mu.Lock()
			onAnswer := ic.pending[topic]
			delete(ic.pending, topic)
			ic.mu.Unlock()
			if onAnswer == nil {
				return // a duplicate answer, or not ours
			}
			var a imAnswer
			if err := json.Unmarshal(payload, &a); err != nil {
				a.Error = fmt.Sprintf("bench: answer is not JSON: %v: %.100q", err, payload)
			}
			onAnswer(a, now)
		}
	})
	if err != nil {
		return nil, err
	}
	ic.Client = c
	return ic, nil
}

// call publishes body on topic (QoS 1) and calls onAnswer, from paho's
// handler goroutine, when the answer arrives.
func (ic *imClient) call(topic string, body []byte, onAnswer func(imAnswer, time.Time)) paho.Token {
	ic.mu.Lock()
	ic.pending[topic] = onAnswer
	ic.mu.Unlock()
	return ic.Publish(topic, 1, false, body)
}

// request calls method with body and waits for the answer's Result.
func (ic *imClient) request(ctx context.Context, method string, body any) (json.RawMessage, error) {
	data, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	topic, _ := requestTopic(method)
	answers := make(chan imAnswer, 1)
	if err := wait(ctx, ic.call(topic, data, func(a imAnswer, _ time.Time) { answers <- a })); err != nil {
		return nil, fmt.Errorf("%s: publish: %w", method, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	select {
	case a := <-answers:
		if a.Error != "" {
			return nil, fmt.Errorf("%s as %s: %w", method, ic.user, errors.New(a.Error))
		}
		return a.Result, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%s as %s: no answer on %s: %w", method, ic.user, topic, ctx.Err())
	}
}
