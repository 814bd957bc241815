// Package mqttlink is a node's MQTT connection to the central server: it logs
// in with paho, correlates requests with their answers by topic, hands pushes
// to the caller in order, and reconnects with backoff, running the caller's
// on-connect work (such as register_device) after every connect.
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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

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
	MaxBackoff  time.Duration // longest wait between connect attempts; default 30 s

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

	mu      sync.Mutex
	waiters map[string]chan []byte
	pushes  []push
	pushed  chan struct{}
	up      bool
	lastErr error
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
		cfg.MaxBackoff = 30 * time.Second
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
	}
	opts := paho.NewClientOptions().AddBroker(cfg.Server).SetClientID(cfg.ClientID).
		SetUsername(cfg.User).SetPassword(cfg.Password).SetCleanSession(true).
		SetKeepAlive(cfg.KeepAlive).SetPingTimeout(10 * time.Second).
		SetConnectTimeout(10 * time.Second).SetWriteTimeout(10 * time.Second).
		SetAutoReconnect(true).SetMaxReconnectInterval(cfg.MaxBackoff).
		SetConnectRetry(false).SetOrderMatters(false).
		SetDefaultPublishHandler(l.receive).
		SetOnConnectHandler(func(paho.Client) { l.setState(true, nil) }).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			l.setState(false, fmt.Errorf("connection lost: %w", err))
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

// connectLoop makes the first connection, retrying with backoff; paho
// reconnects by itself after that.
func (l *Link) connectLoop() {
	defer l.wg.Done()
	backoff := 250 * time.Millisecond
	for {
		tok := l.client.Connect()
		select {
		case <-tok.Done():
		case <-l.ctx.Done():
			return
		}
		err := tok.Error()
		if err == nil {
			return
		}
		if refused(err) {
			l.setState(false, fmt.Errorf("%w: %v", ErrRefused, err))
			return
		}
		l.setState(false, fmt.Errorf("connect: %w", err))
		l.log.Info("server unreachable, retrying", "server", l.cfg.Server, "in", backoff, "err", err)
		select {
		case <-time.After(backoff):
		case <-l.ctx.Done():
			return
		}
		backoff = min(2*backoff, l.cfg.MaxBackoff)
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
	if !up {
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

// Close disconnects and waits for the link's goroutines.
func (l *Link) Close() {
	l.cancel()
	if l.client.IsConnectionOpen() {
		l.client.Disconnect(250)
	}
	l.wg.Wait()
}
