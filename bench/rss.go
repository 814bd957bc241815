package bench

import (
	"context"
	"fmt"
	"time"
)

// RSSResult is one broker's resident memory before and with idle clients.
type RSSResult struct {
	Broker string
	Conns  int   // clients connected
	Failed int   // clients that could not connect
	Before int64 // bytes, started and settled, no clients
	With   int64 // bytes, Conns clients connected and settled
	Err    string
}

// measureIdleRSS reads b's resident memory after settling, connects one
// client per spec (50 at a time), waits settle again and reads it again.
func measureIdleRSS(ctx context.Context, name string, b *broker, specs []dialSpec, settle time.Duration) RSSResult {
	res := RSSResult{Broker: name}
	if err := sleep(ctx, settle); err != nil {
		res.Err = err.Error()
		return res
	}
	before, err := b.rss()
	if err != nil {
		res.Err = err.Error()
		return res
	}
	res.Before = before
	clients, failed, err := dialAll(ctx, specs, 50)
	defer disconnectAll(clients)
	res.Conns, res.Failed = len(clients), failed
	if err != nil {
		res.Err = fmt.Sprintf("%d of %d clients could not connect; first: %v", failed, len(specs), err)
	}
	if err := sleep(ctx, settle); err != nil {
		res.Err = err.Error()
		return res
	}
	with, err := b.rss()
	if err != nil {
		res.Err = err.Error()
		return res
	}
	res.With = with
	return res
}

// idleSpecs returns n client specs for url spread over accounts: device
// j of account k is "<prefix>-k-j".
func idleSpecs(url, prefix string, accounts []string, password string, n int) []dialSpec {
	specs := make([]dialSpec, n)
	for i := range specs {
		spec := dialSpec{url: url, clientID: fmt.Sprintf("%s-%d", prefix, i), password: password}
		if len(accounts) > 0 {
			k := i % len(accounts)
			spec.user = accounts[k]
			spec.clientID = fmt.Sprintf("%s-%s-%d", prefix, accounts[k], i/len(accounts))
		}
		specs[i] = spec
	}
	return specs
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
