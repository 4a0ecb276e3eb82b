package all

import (
	_ "github.com/culvert-dev/culvert/common/bus/amqpbus"  // amqp:// and amqps://
	_ "github.com/culvert-dev/culvert/common/bus/embedded" // file: and plain paths
	_ "github.com/culvert-dev/culvert/common/bus/kafkabus" // kafka://
	_ "github.com/culvert-dev/culvert/common/bus/natsbus"  // nats:
	_ "github.com/culvert-dev/culvert/common/bus/redisbus" // redis:// and rediss://
)
