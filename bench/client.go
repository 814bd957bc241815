package bench

import (
	"context"
	"fmt"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/sync/errgroup"
)

// A dialSpec says how one paho client connects.
type dialSpec struct {
	url, clientID, user, password string
}

// dial connects a paho client, MQTT 3.1.1, clean session, no automatic
// reconnect: a dropped connection must show up in the figures, not be
// papered over. onMessage is the default publish handler: it receives
// everything that arrives, subscribed or not, and must not block.
func dial(ctx context.Context, spec dialSpec, onMessage func(topic string, payload []byte)) (paho.Client, error) {
	opts := paho.NewClientOptions().
		AddBroker(spec.url).
		SetClientID(spec.clientID).
		SetUsername(spec.user).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetConnectTimeout(15 * time.Second).
		SetKeepAlive(60 * time.Second).
		SetPingTimeout(15 * time.Second).
		SetOrderMatters(true)
	if spec.user != "" {
		// MQTT 3.1.1 forbids a password without a user name.
		opts.SetPassword(spec.password)
	}
	if onMessage != nil {
		opts.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			onMessage(m.Topic(), m.Payload())
		})
	}
	c := paho.NewClient(opts)
	if err := wait(ctx, c.Connect()); err != nil {
		return nil, fmt.Errorf("connect %s as %q/%q: %w", spec.url, spec.user, spec.clientID, err)
	}
	return c, nil
}

// wait waits for a paho token, or ctx.
func wait(ctx context.Context, t paho.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// disconnectAll disconnects clients a few at a time.
func disconnectAll(clients []paho.Client) {
	var g errgroup.Group
	g.SetLimit(50)
	for _, c := range clients {
		if c == nil {
			continue
		}
		g.Go(func() error {
			c.Disconnect(50)
			return nil
		})
	}
	_ = g.Wait()
}

// dialAll connects one client per spec, at most limit at a time. It keeps
// going past failures: it returns the clients that connected, how many did
// not, and the first error.
func dialAll(ctx context.Context, specs []dialSpec, limit int) (clients []paho.Client, failed int, firstErr error) {
	all := make([]paho.Client, len(specs))
	errs := make([]error, len(specs))
	var g errgroup.Group
	g.SetLimit(limit)
	for i, spec := range specs {
		if ctx.Err() != nil {
			break
		}
		g.Go(func() error {
			all[i], errs[i] = dial(ctx, spec, func(string, []byte) {})
			return nil
		})
	}
	_ = g.Wait()
	for i, c := range all {
		switch {
		case c != nil:
			clients = append(clients, c)
		case errs[i] != nil:
			failed++
			if firstErr == nil {
				firstErr = errs[i]
			}
		}
	}
	return clients, failed, firstErr
}
