package bench

import (
	"context"
	"fmt"
)

// runRSS starts each broker afresh, connects Idle clients to it and reads
// its resident memory: MQTTER (clients spread over up to 10 accounts), a
// bare mochi broker (what MQTTER is built on) and Mosquitto.
func (res *Results) runRSS(ctx context.Context, dir string) {
	cfg := res.Config
	n := cfg.Idle

	accounts := make([]string, min(10, n))
	for i := range accounts {
		accounts[i] = fmt.Sprintf("idle%d", i)
	}
	res.progress("mqtter: memory with %d idle connections over %d accounts", n, len(accounts))
	if b, err := startMQTTer(ctx, cfg.MQTTer, dir, "mqtter-rss", accounts); err != nil {
		res.failed(MQTTer+" (memory)", err)
	} else {
		res.measureRSS(ctx, MQTTer, b, idleSpecs(b.url(), "mqb-idle", accounts, benchPassword, n))
	}

	res.progress("bare mochi: memory with %d idle connections", n)
	if bin, err := buildBareMochi(ctx, cfg.BareMochi, dir); err != nil {
		res.failed(BareMochi, err)
	} else if b, err := startBareMochi(ctx, bin, dir, "baremochi"); err != nil {
		res.failed(BareMochi, err)
	} else {
		res.measureRSS(ctx, BareMochi, b, idleSpecs(b.url(), "mqb-idle", nil, "", n))
	}

	if cfg.SkipMosquitto {
		return
	}
	bin, err := findMosquitto(cfg.Mosquitto)
	if err != nil {
		res.note(err.Error() + "; its columns are empty")
		return
	}
	res.progress("mosquitto: memory with %d idle connections", n)
	if b, err := startMosquitto(ctx, bin, dir, "mosquitto-rss"); err != nil {
		res.failed(Mosquitto+" (memory)", err)
	} else {
		res.measureRSS(ctx, Mosquitto, b, idleSpecs(b.url(), "mqb-idle", nil, "", n))
	}
}

func (res *Results) measureRSS(ctx context.Context, name string, b *broker, specs []dialSpec) {
	r := measureIdleRSS(ctx, name, b, specs, res.Config.Settle)
	if r.Err != "" {
		res.Problems = append(res.Problems, fmt.Sprintf("%s, connecting %d idle clients: %s", name, len(specs), r.Err))
	}
	if msg := b.shutdown(); msg != "" {
		res.Problems = append(res.Problems, msg)
	}
	res.RSS = append(res.RSS, r)
}
