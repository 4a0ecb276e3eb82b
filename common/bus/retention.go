package bus

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// ParseRetentionAge parses a retention age as TopicConfig.RetentionAge
// holds it: a Go duration (36h), whole days (7d), or "unlimited" (also
// -1), which is -1.
func ParseRetentionAge(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if s == "unlimited" || s == "-1" {
		return -1, nil
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.ParseInt(d, 10, 64); err == nil && n > 0 && n < 1e5 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, errors.New("must be a positive duration (such as 12h or 7d) or unlimited, not " + strconv.Quote(s))
	}
	return d, nil
}

// ParseRetentionBytes parses a retention size as TopicConfig.RetentionBytes
// holds it: a number of bytes with an optional KiB, MiB, GiB or TiB unit,
// or "unlimited" (also -1), which is -1.
func ParseRetentionBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "unlimited" || s == "-1" {
		return -1, nil
	}
	num, mult := s, int64(1)
	for i, u := range []string{"KiB", "MiB", "GiB", "TiB"} {
		if n, ok := strings.CutSuffix(num, u); ok {
			num, mult = strings.TrimSpace(n), int64(1)<<(10*(i+1))
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, errors.New("must be a positive number of bytes (units KiB, MiB, GiB, TiB) or unlimited, not " + strconv.Quote(s))
	}
	return n * mult, nil
}
