// Package mqttlink is a node's MQTT connection to the central server: it logs
// in with paho, correlates requests with their answers by topic, hands pushes
// to the caller in order, and reconnects with backoff, running the caller's
// on-connect work (such as register_device) after every connect.
//
// The reconnect loop is ours, not paho's: paho doubles its wait up to its
// maximum and resets it only after a long quiet period, so after outages close
// together a node stayed away for up to 30 s after the server was back. Here
// every loss starts again from a short wait, waits are capped at MaxBackoff
// (2 s by default) and jittered, so a server restart does not bring every
// node back at the same instant.
//
// Answers and pushes arrive on topics the client never subscribed to, so all
// of them come through paho's default publish handler, which only files them
// and returns: it never blocks and never publishes, so it cannot deadlock
// paho's router.
package mqttlink

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/mqtter/mqtter/wire"
)

// ErrRefused is returned when the server refuses the login (wrong password,
// unknown account, device of another account); retrying will not help.
var ErrRefused = errors.New("login refused")

// ErrNotConnected is returned by Call while the link is down.
var ErrNotConnected = errors.New("not connected to the server")

// Config says where and as whom to connect.
type Config struct {
	Server   string // tcp://host:port, ssl://host:port or ws://host:port/path
	User     string
	Password string
	ClientID string // the device id
	TLS      *tls.Config

	KeepAlive   time.Duration // default 30 s
	CallTimeout time.Duration // default 10 s
	MaxBackoff  time.Duration // longest wait between connect attempts; default 2 s

	// OnConnect runs, in its own goroutine, after every successful connect.
	OnConnect func(ctx context.Context, l *Link)
	// OnPush gets every push in arrival order, from one goroutine. It may
	// call Call.
	OnPush func(topic string, body []byte)
	// OnState is told when the link goes up or down (err says why).
	OnState func(connected bool, err error)

	Logger *slog.Logger
}

// Link is a connection to the server that keeps itself up.
type Link struct {
	cfg    Config
	log    *slog.Logger
	client paho.Client
	prefix string
	seq    atomic.Uint64

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	waiters  map[string]chan []byte
	pushes   []push
	pushed   chan struct{}
	up       bool
	connects uint64 // successful connects so far
	lastErr  error
	lost     chan struct{} // a connection that was up went down
}

type push struct {
	topic string
	body  []byte
}

// Start begins connecting in the background and returns at once. The first
// attempt that the server refuses ends the attempts: Wait returns
// ErrRefused.
func Start(cfg Config) *Link {
	if cfg.KeepAlive <= 0 {
		cfg.KeepAlive = 30 * time.Second
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 10 * time.Second
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &Link{
		cfg: cfg, log: cfg.Logger, prefix: wire.NewTrace()[:8] + "-",
		ctx: ctx, cancel: cancel,
		waiters: make(map[string]chan []byte),
		pushed:  make(chan struct{}, 1),
		lost:    make(chan struct{}, 1),
	}
	opts := paho.NewClientOptions().AddBroker(cfg.Server).SetClientID(cfg.ClientID).
		SetUsername(cfg.User).SetPassword(cfg.Password).SetCleanSession(true).
		SetKeepAlive(cfg.KeepAlive).SetPingTimeout(10 * time.Second).
		SetConnectTimeout(connectTimeout).SetWriteTimeout(10 * time.Second).
		SetAutoReconnect(false).
		SetConnectRetry(false).SetOrderMatters(false).
		SetDefaultPublishHandler(l.receive).
		SetOnConnectHandler(func(paho.Client) { l.setState(true, nil) }).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			l.setState(false, fmt.Errorf("connection lost: %w", err))
			select {
			case l.lost <- struct{}{}:
			default:
			}
		})
	if cfg.TLS != nil {
		opts.SetTLSConfig(cfg.TLS)
	}
	l.client = paho.NewClient(opts)
	l.wg.Add(2)
	go l.connectLoop()
	go l.deliverPushes()
	return l
}

// firstBackoff is the wait before the second attempt of a series; each
// further one doubles it up to MaxBackoff.
const firstBackoff = 250 * time.Millisecond

// connectTimeout bounds one connect attempt.
const connectTimeout = 10 * time.Second

// connectLoop connects, waits for the connection to be lost, and connects
// again, until Close or a refused login. Each series of attempts starts
// after a random wait of up to firstBackoff (so the nodes a restart
// dropped do not all come back in the same instant) and then waits a
// jittered, doubling backoff capped at MaxBackoff between attempts.
func (l *Link) connectLoop() {
	defer l.wg.Done()
	first := true
	for {
		if !first {
			select {
			case <-l.lost:
			case <-l.ctx.Done():
				return
			}
			if !l.sleep(jitter(firstBackoff)) {
				return
			}
		}
		first = false
		if !l.connect() {
			return
		}
	}
}

// connect tries until a connection is up (true) or the login is refused or
// the link closed (false).
func (l *Link) connect() bool {
	backoff := firstBackoff
	for {
		tok := l.client.Connect()
		select {
		case <-tok.Done():
		case <-l.ctx.Done():
			// Let the attempt finish so that Close, which waits for this
			// loop, sees (and closes) a connection it made.
			tok.WaitTimeout(connectTimeout + time.Second)
			return false
		}
		err := tok.Error()
		if err == nil {
			return true
		}
		if refused(err) {
			l.setState(false, fmt.Errorf("%w: %v", ErrRefused, err))
			return false
		}
		l.setState(false, fmt.Errorf("connect: %w", err))
		wait := jitter(min(backoff, l.cfg.MaxBackoff))
		l.log.Info("server unreachable, retrying", "server", l.cfg.Server, "in", wait, "err", err)
		if !l.sleep(wait) {
			return false
		}
		backoff = min(2*backoff, l.cfg.MaxBackoff)
	}
}

// jitter returns a duration drawn evenly from [d/2, d].
func jitter(d time.Duration) time.Duration {
	if d <= 1 {
		return d
	}
	return d/2 + rand.N(d/2+1)
}

// sleep waits d, false if the link closed meanwhile.
func (l *Link) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-l.ctx.Done():
		return false
	}
}

func refused(err error) bool {
	return errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) || errors.Is(err, packets.ErrorRefusedNotAuthorised) ||
		errors.Is(err, packets.ErrorRefusedIDRejected)
}

func (l *Link) setState(up bool, err error) {
	l.mu.Lock()
	changed := l.up != up
	l.up, l.lastErr = up, err
	if up {
		l.connects++
	} else {
		// Calls in flight will not be answered on this connection.
		for topic, ch := range l.waiters {
			close(ch)
			delete(l.waiters, topic)
		}
	}
	l.mu.Unlock()
	if up {
		l.log.Info("connected to server", "server", l.cfg.Server)
		if l.cfg.OnConnect != nil {
			l.wg.Add(1)
			go func() {
				defer l.wg.Done()
				l.cfg.OnConnect(l.ctx, l)
			}()
		}
	} else if changed {
		l.log.Warn("disconnected from server", "server", l.cfg.Server, "err", err)
	}
	if l.cfg.OnState != nil && (changed || err != nil) {
		l.cfg.OnState(up, err)
	}
}

// Connected reports whether the link is up now.
func (l *Link) Connected() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.up
}

// Connects returns how many times the link has connected so far. It
// changes with every reconnect: the same count read twice means the link
// did not reconnect in between (it may have gone down since; Connected
// says).
func (l *Link) Connects() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.connects
}

// Err returns why the link is down, nil while it is up.
func (l *Link) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastErr
}

// Wait blocks until the link is up, the login is refused (ErrRefused), or
// ctx ends.
func (l *Link) Wait(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		l.mu.Lock()
		up, err := l.up, l.lastErr
		l.mu.Unlock()
		if up {
			return nil
		}
		if errors.Is(err, ErrRefused) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the server: %w", ctx.Err())
		case <-t.C:
		}
	}
}

func (l *Link) receive(_ paho.Client, m paho.Message) {
	topic := m.Topic()
	l.mu.Lock()
	if ch, ok := l.waiters[topic]; ok {
		delete(l.waiters, topic)
		l.mu.Unlock()
		ch <- m.Payload()
		return
	}
	if strings.HasPrefix(topic, wire.SchemeIM+"://") {
		l.mu.Unlock()
		l.log.Debug("answer nobody waits for", "topic", topic)
		return
	}
	l.pushes = append(l.pushes, push{topic, m.Payload()})
	l.mu.Unlock()
	select {
	case l.pushed <- struct{}{}:
	default:
	}
}

func (l *Link) deliverPushes() {
	defer l.wg.Done()
	for {
		select {
		case <-l.ctx.Done():
			return
		case <-l.pushed:
		}
		for {
			l.mu.Lock()
			batch := l.pushes
			l.pushes = nil
			l.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for _, p := range batch {
				if l.cfg.OnPush != nil {
					l.cfg.OnPush(p.topic, p.body)
				}
			}
		}
	}
}

// Call sends im://modulus/<method> with req as its JSON body and decodes
// the Result into out (unless out is nil). An Error answer is returned as a
// *wire.AnswerError.
func (l *Link) Call(ctx context.Context, method string, req, out any) error {
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("%s: encode request: %w", method, err)
	}
	id := l.prefix + strconv.FormatUint(l.seq.Add(1), 10)
	raw, err := l.Request(ctx, wire.RequestTopic("modulus", method, id), body)
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	if err := wire.DecodeAnswer(raw, out); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	return nil
}

// Request publishes body on topic and returns the answer on the identical
// topic.
func (l *Link) Request(ctx context.Context, topic string, body []byte) ([]byte, error) {
	ch := make(chan []byte, 1)
	l.mu.Lock()
	if !l.up {
		l.mu.Unlock()
		return nil, ErrNotConnected
	}
	l.waiters[topic] = ch
	l.mu.Unlock()
	forget := func() {
		l.mu.Lock()
		if l.waiters[topic] == ch {
			delete(l.waiters, topic)
		}
		l.mu.Unlock()
	}
	ctx, cancel := context.WithTimeout(ctx, l.cfg.CallTimeout)
	defer cancel()
	tok := l.client.Publish(topic, 1, false, body)
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			forget()
			return nil, fmt.Errorf("publish: %w", err)
		}
	case <-ctx.Done():
		forget()
		return nil, fmt.Errorf("publish: %w", ctx.Err())
	}
	select {
	case b, ok := <-ch:
		if !ok {
			return nil, ErrNotConnected
		}
		return b, nil
	case <-ctx.Done():
		forget()
		return nil, fmt.Errorf("no answer: %w", ctx.Err())
	}
}

// RegisterDevice registers this connection's device with its addresses,
// proving that it holds key, the libp2p key whose peer id is the client
// id: it asks device_challenge and signs the answer into register_device.
// It returns the answer: the server's relay addresses, if it runs one.
func (l *Link) RegisterDevice(ctx context.Context, key crypto.PrivKey, addrs []string) (wire.Registered, error) {
	var ch wire.DeviceChallenge
	if err := l.Call(ctx, wire.MethodDeviceChallenge, wire.Empty{}, &ch); err != nil {
		return wire.Registered{}, err
	}
	req := wire.RegisterDevice{Addrs: addrs}
	if err := wire.ProveDevice(&req, key, l.cfg.User, ch.Challenge); err != nil {
		return wire.Registered{}, err
	}
	var reg wire.Registered
	err := l.Call(ctx, wire.MethodRegisterDevice, req, &reg)
	return reg, err
}

// Close disconnects and waits for the link's goroutines; safe to call
// twice.
func (l *Link) Close() {
	l.cancel()
	if l.client.IsConnectionOpen() {
		l.client.Disconnect(250)
	}
	l.wg.Wait()
	// An attempt that was under way when Close began may have connected.
	if l.client.IsConnectionOpen() {
		l.client.Disconnect(250)
	}
}
