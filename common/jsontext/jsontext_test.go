package jsontext

import (
	"math"
	"testing"

	"github.com/itchyny/gojq"
)

// TestAsGojq: strings and numbers are written byte for byte as gojq
// writes them (FuzzFastPath in transform checks many more).
func TestAsGojq(t *testing.T) {
	for _, s := range []string{"", "plain", "a\"b\\c", "\b\f\n\r\t\x00\x1f\x7f", "<>&", "\u2028\u2029", "é€😀", "\xff\xfe", "a\xc3"} {
		want, _ := gojq.Marshal(s)
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Errorf("AppendString(%q) = %s, want %s", s, got, want)
		}
	}
	for _, f := range []float64{0, math.Copysign(0, -1), 1, -1.5, 1e-6, 1e-7, 123456789, 1e20, 1e21, 1.7976931348623157e308, math.Inf(1), math.Inf(-1), math.NaN(), 0.1 + 0.2, 5e-324} {
		want, _ := gojq.Marshal(f)
		if got := AppendFloat(nil, f); string(got) != string(want) {
			t.Errorf("AppendFloat(%v) = %s, want %s", f, got, want)
		}
	}
}
