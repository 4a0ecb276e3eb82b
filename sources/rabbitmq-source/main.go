// Command rabbitmq-source consumes a RabbitMQ queue and publishes each
// message to a topic, acknowledging it to RabbitMQ only once it is durable
// on the bus.
package main

import "github.com/culvert-dev/culvert/common/cli"

func main() { cli.RunSource(info, newSource) }
