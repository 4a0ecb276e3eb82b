package mqtt_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho"

	"github.com/culvert-dev/culvert/common/client/mqtt"
	"github.com/culvert-dev/culvert/common/client/mqtt/mqtttest"
)

// BenchmarkBatchedSends publishes batches at QoS 1 to a private Mosquitto
// with its default settings (Nagle's algorithm on) and waits for each
// batch's PUBACKs before the next, as mqtt-sink's Write does, without and
// with Options.QuickAck; it reports messages/s (make bench runs it):
//
//	go test -run '^$' -bench BatchedSends -benchtime 5000x ./common/client/mqtt
func BenchmarkBatchedSends(b *testing.B) {
	br := mqtttest.Start(b, false)
	o := mqtt.ConnOptions{URL: br.URL(), ConnectTimeout: 5e9}
	cfg, err := o.Config()
	if err != nil {
		b.Fatal(err)
	}
	payload := []byte(`{"order_id":"o-1","customer_id":"c-4654","amount":2.08,"product":"gasket"}`)
	for _, batch := range []int{20, 1000} {
		for _, quick := range []bool{false, true} {
			b.Run(fmt.Sprintf("batch=%d/quickack=%v", batch, quick), func(b *testing.B) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
				defer cancel()
				conn, err := mqtt.Connect(ctx, cfg, mqtt.Options{ClientID: fmt.Sprintf("bench-%d-%v", batch, quick), EndSession: true, QuickAck: quick})
				if err != nil {
					b.Fatal(err)
				}
				defer conn.Close()
				cli, err := conn.Client(ctx)
				if err != nil {
					b.Fatal(err)
				}
				acks := make([]<-chan packets.ControlPacket, 0, batch)
				b.ResetTimer()
				for sent := 0; sent < b.N; {
					acks = acks[:0]
					for range min(batch, b.N-sent) {
						ch, err := conn.Send(ctx, cli, &paho.Publish{Topic: "bench/batched", QoS: 1, Payload: payload})
						if err != nil {
							b.Fatal(err)
						}
						acks = append(acks, ch)
					}
					for _, ch := range acks {
						if p := <-ch; p.Content == nil {
							b.Fatal("a message left the session unacknowledged")
						}
					}
					sent += len(acks)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
			})
		}
	}
}
