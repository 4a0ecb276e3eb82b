package bus

import (
	"testing"
	"time"
)

func TestParseRetention(t *testing.T) {
	for in, want := range map[string]time.Duration{"7d": 7 * 24 * time.Hour, "36h": 36 * time.Hour, "1s": time.Second, "unlimited": -1, "-1": -1} {
		if got, err := ParseRetentionAge(in); err != nil || got != want {
			t.Errorf("ParseRetentionAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "0d", "-2h", "7x", "d"} {
		if _, err := ParseRetentionAge(in); err == nil {
			t.Errorf("ParseRetentionAge(%q): no error", in)
		}
	}
	for in, want := range map[string]int64{"1000": 1000, "64MiB": 64 << 20, "2 GiB": 2 << 30, "unlimited": -1, "-1": -1} {
		if got, err := ParseRetentionBytes(in); err != nil || got != want {
			t.Errorf("ParseRetentionBytes(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "0", "-5", "1KB", "9999999TiB"} {
		if _, err := ParseRetentionBytes(in); err == nil {
			t.Errorf("ParseRetentionBytes(%q): no error", in)
		}
	}
}
