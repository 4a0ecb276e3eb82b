package kafkabus_test

import (
	"testing"

	"github.com/culvert-dev/culvert/common/bus/bustest"
	_ "github.com/culvert-dev/culvert/common/bus/kafkabus"
	"github.com/culvert-dev/culvert/common/client/kafka/kafkatest"
)

func TestMain(m *testing.M) { bustest.Main(m) }

// newSpec starts a kfake cluster, in this process, for the test; the
// suite's child processes reach it over TCP. Topics get one partition (the
// default) and group members a short session timeout, so that a killed
// member's partition is taken over within a few seconds.
func newSpec(t *testing.T) string {
	return "kafka://" + kafkatest.Start(t) + "?session_timeout=2s"
}

func TestConformance(t *testing.T) {
	addr := kafkatest.Start(t)
	bustest.Run(t, func(*testing.T) string { return "kafka://" + addr + "?session_timeout=2s" })
}

func TestAdmin(t *testing.T) { bustest.RunAdmin(t, newSpec) }
