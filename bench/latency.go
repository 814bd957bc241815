package bench

import (
	"context"
	"fmt"
	"time"
)

// measureLatency sends warmup+n messages over l one at a time, each after
// the previous one arrived, and returns the send→receive times of the last n.
func measureLatency(ctx context.Context, l *link, run, warmup, n int, timeout time.Duration) ([]time.Duration, error) {
	type event struct {
		index int
		at    time.Time
		err   error
	}
	events := make(chan event, 64)
	l.setSink(&sink{
		deliver: func(d delivery) {
			if d.run == run {
				select {
				case events <- event{index: d.index, at: d.at}:
				default: // full only under a flood of duplicates; a drop shows as a timeout
				}
			}
		},
		fail: func(r, index int, err error) {
			if r == run {
				select {
				case events <- event{index: index, err: err}:
				default:
				}
			}
		},
	})
	defer l.setSink(nil)

	samples := make([]time.Duration, 0, n)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for i := range warmup + n {
		timer.Reset(timeout)
		start := time.Now()
		published := l.publish(run, i).Done()
	await:
		for {
			select {
			case e := <-events:
				if e.index != i {
					continue // a duplicate of an earlier message
				}
				if e.err != nil {
					return samples, fmt.Errorf("message %d refused: %w", i, e.err)
				}
				if i >= warmup {
					samples = append(samples, e.at.Sub(start))
				}
				break await
			case <-published:
				published = nil
			case <-timer.C:
				return samples, fmt.Errorf("message %d not received within %v", i, timeout)
			case <-ctx.Done():
				return samples, ctx.Err()
			}
		}
	}
	return samples, nil
}
