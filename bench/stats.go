package bench

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Latencies summarises a set of latency samples.
type Latencies struct {
	N                        int
	P50, P90, P99, Max, Mean time.Duration
}

// Summarize computes the percentiles of samples. It sorts samples in place.
func Summarize(samples []time.Duration) Latencies {
	slices.Sort(samples)
	if len(samples) == 0 {
		return Latencies{}
	}
	var sum time.Duration
	for _, d := range samples {
		sum += d
	}
	return Latencies{
		N:    len(samples),
		Mean: sum / time.Duration(len(samples)),
		P50:  Percentile(samples, 50),
		P90:  Percentile(samples, 90),
		P99:  Percentile(samples, 99),
		Max:  samples[len(samples)-1],
	}
}

// Percentile returns the p-th percentile (0 < p <= 100) of sorted samples by
// the nearest-rank method: the smallest sample that at least p% of the
// samples do not exceed. It returns 0 for no samples.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Rate returns count per second over d, or 0 when d is not positive.
func Rate(count int, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(count) / d.Seconds()
}

// FormatDuration prints d in the unit that suits it, with three significant
// digits: 86µs, 1.25ms, 2.10s.
func FormatDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "0"
	case d < time.Microsecond:
		return fmt.Sprintf("%dns", d.Nanoseconds())
	case d < time.Millisecond:
		return trimUnit(float64(d)/float64(time.Microsecond), "µs")
	case d < time.Second:
		return trimUnit(float64(d)/float64(time.Millisecond), "ms")
	default:
		return trimUnit(d.Seconds(), "s")
	}
}

func trimUnit(v float64, unit string) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f%s", v, unit)
	case v >= 10:
		return fmt.Sprintf("%.1f%s", v, unit)
	default:
		return fmt.Sprintf("%.2f%s", v, unit)
	}
}

// FormatRate prints a rate in messages per second, rounded to whole messages.
func FormatRate(r float64) string {
	return fmt.Sprintf("%.0f/s", r)
}

// FormatRatio prints ours/theirs as "1.23×", or "-" when either is unknown.
func FormatRatio(ours, theirs float64) string {
	if ours <= 0 || theirs <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", ours/theirs)
}

// FormatMB prints a byte count in mebibytes with one decimal.
func FormatMB(bytes int64) string {
	if bytes <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f MB", float64(bytes)/(1<<20))
}
