package bench

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"
)

// A target is a running broker with links through it for the relay phases.
type target struct {
	name   string
	broker *broker
	links  []*link
}

// newIMTarget starts `mqtter server` with accounts send<i> and recv<i> and
// makes n friend links between them.
func newIMTarget(ctx context.Context, bin, dir string, n int) (*target, error) {
	users := make([]string, 0, 2*n)
	for i := range n {
		users = append(users, fmt.Sprintf("send%d", i), fmt.Sprintf("recv%d", i))
	}
	b, err := startMQTTer(ctx, bin, dir, MQTTer, users)
	if err != nil {
		return nil, err
	}
	return newTarget(ctx, MQTTer, b, n, func(ctx context.Context, i int) (*link, error) {
		return newIMLink(ctx, b.url(), fmt.Sprintf("send%d", i), fmt.Sprintf("recv%d", i))
	})
}

// newPubSubTarget starts Mosquitto and makes n publisher/subscriber links.
func newPubSubTarget(ctx context.Context, bin, dir string, n int) (*target, error) {
	b, err := startMosquitto(ctx, bin, dir, Mosquitto)
	if err != nil {
		return nil, err
	}
	return newTarget(ctx, Mosquitto, b, n, func(ctx context.Context, i int) (*link, error) {
		return newPubSubLink(ctx, b.url(), i)
	})
}

// newTarget makes n links through b, a few at a time. On error it undoes
// everything, b included.
func newTarget(ctx context.Context, name string, b *broker, n int, newLink func(context.Context, int) (*link, error)) (*target, error) {
	t := &target{name: name, broker: b, links: make([]*link, n)}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range n {
		g.Go(func() error {
			l, err := newLink(gctx, i)
			t.links[i] = l
			return err
		})
	}
	if err := g.Wait(); err != nil {
		msg := t.close()
		if msg != "" {
			err = fmt.Errorf("%w\n%s", err, msg)
		}
		return nil, err
	}
	return t, nil
}

// close disconnects the links and stops the broker. It returns what went
// wrong with the broker process, if anything: an exit before it was asked.
func (t *target) close() string {
	for _, l := range t.links {
		if l != nil {
			l.close()
		}
	}
	return t.broker.shutdown()
}
