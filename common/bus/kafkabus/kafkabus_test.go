package kafkabus_test

import (
	"testing"

	"github.com/culvert-dev/culvert/common/bus/bustest"
	_ "github.com/culvert-dev/culvert/common/bus/kafkabus"
	"github.com/culvert-dev/culvert/common/client/kafka/kafkatest"
)

func TestMain(m *testing.M) { bustest.Main(m) }

func TestConformance(t *testing.T) {
	// kfake, in this process; the suite's child processes reach it over TCP.
	addr := kafkatest.Start(t)
	bustest.Run(t, func(t *testing.T) string {
		// A short session timeout, so that a killed member's partition is
		// taken over within a few seconds.
		return "kafka://" + addr + "?session_timeout=2s"
	})
}
