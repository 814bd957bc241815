package servertest

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/mqtter/mqtter/wire"
)

// Timeout is how long a Client waits for an answer or a push.
const Timeout = 10 * time.Second

// Client is a real paho MQTT client logged in as one device of an account.
type Client struct {
	t       testing.TB
	User    string
	Device  string
	c       paho.Client
	nextID  atomic.Int64
	mu      sync.Mutex
	waiters map[string]chan []byte // request topic → answer
	pushes  chan Push
}

// Push is a packet the server pushed to the client.
type Push struct {
	Topic string
	Body  []byte
}

// Dial connects as user/password with client id device, or fails the test.
func Dial(t testing.TB, inst *Instance, user, password, device string) *Client {
	t.Helper()
	c, err := TryDial(t, inst.MQTT, user, password, device)
	if err != nil {
		t.Fatalf("connect %s/%s: %v", user, device, err)
	}
	return c
}

// TryDial connects and returns the CONNECT error instead of failing.
func TryDial(t testing.TB, broker, user, password, device string) (*Client, error) {
	t.Helper()
	return TryDialTLS(t, broker, user, password, device, nil)
}

// TryDialTLS is TryDial with a TLS config for ssl:// and wss:// brokers.
func TryDialTLS(t testing.TB, broker, user, password, device string, tlsConf *tls.Config) (*Client, error) {
	t.Helper()
	cl, _, err := dial(t, broker, user, password, device, tlsConf, true)
	return cl, err
}

// DialSession connects like Dial, with a persistent session when clean is
// false (MQTT 3.1.1 clean session false), and returns whether the CONNACK
// said a stored session was resumed.
func DialSession(t testing.TB, inst *Instance, user, password, device string, clean bool) (*Client, bool) {
	t.Helper()
	cl, present, err := dial(t, inst.MQTT, user, password, device, nil, clean)
	if err != nil {
		t.Fatalf("connect %s/%s: %v", user, device, err)
	}
	return cl, present
}

// TryDialSession is DialSession returning the CONNECT error instead.
func TryDialSession(t testing.TB, inst *Instance, user, password, device string, clean bool) (*Client, error) {
	t.Helper()
	cl, _, err := dial(t, inst.MQTT, user, password, device, nil, clean)
	return cl, err
}

func dial(t testing.TB, broker, user, password, device string, tlsConf *tls.Config, clean bool) (*Client, bool, error) {
	cl := &Client{t: t, User: user, Device: device, waiters: make(map[string]chan []byte), pushes: make(chan Push, 10000)}
	// OrderMatters keeps pushes in the order the server wrote them (tests
	// check replay order); receive never blocks, so this cannot deadlock.
	opts := paho.NewClientOptions().AddBroker(broker).SetClientID(device).
		SetUsername(user).SetPassword(password).SetCleanSession(clean).
		SetAutoReconnect(false).SetConnectRetry(false).SetKeepAlive(30 * time.Second).
		SetOrderMatters(true).SetDefaultPublishHandler(cl.receive)
	if tlsConf != nil {
		opts.SetTLSConfig(tlsConf)
	}
	cl.c = paho.NewClient(opts)
	tok := cl.c.Connect()
	if !tok.WaitTimeout(Timeout) {
		return nil, false, fmt.Errorf("connect: timeout")
	}
	if err := tok.Error(); err != nil {
		return nil, false, err
	}
	t.Cleanup(cl.Close)
	return cl, tok.(*paho.ConnectToken).SessionPresent(), nil
}

func (cl *Client) receive(_ paho.Client, m paho.Message) {
	cl.mu.Lock()
	ch, ok := cl.waiters[m.Topic()]
	if ok {
		delete(cl.waiters, m.Topic())
	}
	cl.mu.Unlock()
	if ok {
		ch <- m.Payload()
		return
	}
	select {
	case cl.pushes <- Push{m.Topic(), m.Payload()}:
	default:
		cl.t.Errorf("%s: push buffer full, dropped %s", cl.Device, m.Topic())
	}
}

// Close disconnects.
func (cl *Client) Close() {
	if cl.c.IsConnected() {
		cl.c.Disconnect(100)
	}
}

// Connected reports whether the connection is up.
func (cl *Client) Connected() bool { return cl.c.IsConnectionOpen() }

// Raw publishes body on topic (QoS 1) and returns the answer published back
// on the identical topic.
func (cl *Client) Raw(topic string, body []byte) ([]byte, error) {
	return cl.RawQoS(topic, 1, body)
}

// RawQoS is Raw at the given QoS (0 or 1).
func (cl *Client) RawQoS(topic string, qos byte, body []byte) ([]byte, error) {
	ch := make(chan []byte, 1)
	cl.mu.Lock()
	cl.waiters[topic] = ch
	cl.mu.Unlock()
	tok := cl.c.Publish(topic, qos, false, body)
	if !tok.WaitTimeout(Timeout) || tok.Error() != nil {
		return nil, fmt.Errorf("publish %s: %v", topic, tok.Error())
	}
	select {
	case b := <-ch:
		return b, nil
	case <-time.After(Timeout):
		cl.mu.Lock()
		delete(cl.waiters, topic)
		cl.mu.Unlock()
		return nil, fmt.Errorf("no answer on %s within %v", topic, Timeout)
	}
}

// Call sends im://modulus/<method> with body (marshalled unless []byte) and
// returns the parsed answer, failing the test if none comes.
func (cl *Client) Call(method string, body any) wire.Answer {
	cl.t.Helper()
	return cl.CallTopic(wire.RequestTopic("modulus", method, cl.Device+"-"+strconv.FormatInt(cl.nextID.Add(1), 10)), body)
}

// CallTopic is Call on an explicit topic.
func (cl *Client) CallTopic(topic string, body any) wire.Answer {
	cl.t.Helper()
	raw, ok := body.([]byte)
	if !ok {
		var err error
		if raw, err = json.Marshal(body); err != nil {
			cl.t.Fatalf("marshal body: %v", err)
		}
	}
	ans, err := cl.Raw(topic, raw)
	if err != nil {
		cl.t.Fatalf("%s: %v", cl.Device, err)
	}
	a, err := wire.ParseAnswer(ans)
	if err != nil {
		cl.t.Fatalf("%s: answer on %s is not an Answer: %v: %s", cl.Device, topic, err, ans)
	}
	return a
}

// OK calls method and fails the test unless it succeeds; it decodes the
// Result into out when out is not nil.
func (cl *Client) OK(method string, body any, out any) {
	cl.t.Helper()
	a := cl.Call(method, body)
	if a.Error != "" {
		cl.t.Fatalf("%s %s(%v): Error %q", cl.Device, method, body, a.Error)
	}
	if out != nil {
		if err := json.Unmarshal(a.Result, out); err != nil {
			cl.t.Fatalf("%s %s: result %s: %v", cl.Device, method, a.Result, err)
		}
	}
}

// Fail calls method, fails the test if it succeeds, and returns the
// answer's Error.
func (cl *Client) Fail(method string, body any) string {
	cl.t.Helper()
	a := cl.Call(method, body)
	if a.Error == "" {
		cl.t.Fatalf("%s %s(%v) = %s, want an Error", cl.Device, method, body, a.Result)
	}
	if string(a.Result) != "null" {
		cl.t.Errorf("%s %s(%v): Error %q with Result %s, want Result null", cl.Device, method, body, a.Error, a.Result)
	}
	return a.Error
}

// NextAnyPush waits for the next push, whatever its topic.
func (cl *Client) NextAnyPush() Push {
	cl.t.Helper()
	select {
	case p := <-cl.pushes:
		return p
	case <-time.After(Timeout):
		cl.t.Fatalf("%s: no push within %v", cl.Device, Timeout)
		return Push{}
	}
}

// Drain returns the pushes that arrive until none has come for quiet.
func (cl *Client) Drain(quiet time.Duration) []Push {
	var out []Push
	for {
		select {
		case p := <-cl.pushes:
			out = append(out, p)
		case <-time.After(quiet):
			return out
		}
	}
}

// NextPush waits for the next push on topic, skipping (and dropping) pushes
// on other topics.
func (cl *Client) NextPush(topic string) Push {
	cl.t.Helper()
	deadline := time.After(Timeout)
	for {
		select {
		case p := <-cl.pushes:
			if p.Topic == topic {
				return p
			}
		case <-deadline:
			cl.t.Fatalf("%s: no push on %s within %v", cl.Device, topic, Timeout)
			return Push{}
		}
	}
}

// News waits for the next impush://modulus/news and decodes it.
func (cl *Client) News() wire.News {
	cl.t.Helper()
	p := cl.NextPush(wire.PushNews)
	var n wire.News
	if err := json.Unmarshal(p.Body, &n); err != nil {
		cl.t.Fatalf("news body %s: %v", p.Body, err)
	}
	return n
}

// NoPush asserts that no push on topic arrives within d.
func (cl *Client) NoPush(topic string, d time.Duration) {
	cl.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case p := <-cl.pushes:
			if p.Topic == topic {
				cl.t.Fatalf("%s: unexpected push on %s: %s", cl.Device, topic, p.Body)
			}
		case <-deadline:
			return
		}
	}
}

// Paho gives tests the underlying client.
func (cl *Client) Paho() paho.Client { return cl.c }

// NewDeviceKey returns a fresh libp2p Ed25519 key and its peer id, which a
// node uses as its MQTT client id.
func NewDeviceKey(t testing.TB) (crypto.PrivKey, string) {
	t.Helper()
	key, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatalf("generate key: %v", err)
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatalf("peer id: %v", err)
	}
	return key, id.String()
}

// Proof returns a register_device body for this connection's device with
// key (whose peer id must be the client id) and addrs, proven over a fresh
// device_challenge.
func (cl *Client) Proof(key crypto.PrivKey, addrs []string) wire.RegisterDevice {
	cl.t.Helper()
	var ch wire.DeviceChallenge
	cl.OK(wire.MethodDeviceChallenge, wire.Empty{}, &ch)
	req := wire.RegisterDevice{Addrs: addrs}
	if err := wire.ProveDevice(&req, key, cl.User, ch.Challenge); err != nil {
		cl.t.Fatalf("prove device: %v", err)
	}
	return req
}

// Register registers this connection's device as a node does, proving key.
func (cl *Client) Register(key crypto.PrivKey, addrs []string) {
	cl.t.Helper()
	cl.OK(wire.MethodRegisterDevice, cl.Proof(key, addrs), nil)
}
