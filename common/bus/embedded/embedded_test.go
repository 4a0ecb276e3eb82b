package embedded_test

import (
	"testing"

	"github.com/culvert-dev/culvert/common/bus/bustest"
	_ "github.com/culvert-dev/culvert/common/bus/embedded"
)

func TestMain(m *testing.M) { bustest.Main(m) }

func TestConformance(t *testing.T) {
	bustest.Run(t, func(t *testing.T) string {
		// A short lease so that the takeover test runs in seconds.
		return "file://" + t.TempDir() + "?lease=1s"
	})
}
