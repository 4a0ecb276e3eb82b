// Command rabbitmq-sink publishes each record of a topic to a RabbitMQ
// exchange with publisher confirms, committing the topic's offset only once
// RabbitMQ confirmed.
package main

import "github.com/culvert-dev/culvert/common/cli"

func main() { cli.RunSink(info, newSink) }
