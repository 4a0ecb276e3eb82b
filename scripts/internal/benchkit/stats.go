package benchkit

import "slices"

// number is what Median takes: rates, seconds, CPU times (time.Duration).
type number interface {
	~int | ~int64 | ~float64
}

// Median is the middle of xs (the mean of the two middle ones of an even
// count); xs is not changed. It panics on none.
func Median[T number](xs []T) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return float64(s[len(s)/2])
	}
	return (float64(s[len(s)/2-1]) + float64(s[len(s)/2])) / 2
}

// Best is the run of rs with the highest rate. It panics on none.
func Best[R any](rs []R, rate func(R) float64) R {
	b := rs[0]
	for _, r := range rs[1:] {
		if rate(r) > rate(b) {
			b = r
		}
	}
	return b
}
