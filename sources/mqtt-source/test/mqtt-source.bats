#!/usr/bin/env bats
# mqtt-source's command line, run as a user would, with mosquitto_pub as
# the independent publisher: the shared Mosquitto (127.0.0.1:1883) for
# ordinary tests, a private one for the restart and TLS tests. Needs
# $CULVERT_BIN/mqtt-source and file-sink, mosquitto-clients, openssl, jq.

bats_require_minimum_version 1.5.0

load ../../../scripts/test/common
load ../../../common/client/mqtt/mqtttest/mosquitto

setup() {
	culvert_setup
	MQS="$CULVERT_BIN/mqtt-source"
	[ -x "$MQS" ]
	MT=$(mqtt_topic)
}

teardown() {
	[ -z "${pid:-}" ] || kill -9 "$pid" 2>/dev/null || true
	broker_stop
}

# values TOPIC: every value of TOPIC but the warm-ups, one per line.
values() {
	timeout 30 "$SNK" --topic "$1" --bus "$BUS" --path - --from beginning --stop-at-end --group "bats-$RANDOM$RANDOM" 2>/dev/null | grep -v '^warmup$' || true
}

# subscribed URL: publishes warm-ups until one is on the topic "in".
subscribed() {
	for _ in $(seq 1 100); do
		mosquitto_pub -L "${1/tcp:/mqtt:}/$MT" -q 1 -m warmup
		[ "$(timeout 30 "$SNK" --topic in --bus "$BUS" --path - --from beginning --stop-at-end --group "w-$RANDOM$RANDOM" 2>/dev/null | wc -l)" -gt 0 ] && return 0
		sleep 0.2
	done
	cat "$T/src.err"
	return 1
}

# wait_count N: waits until the topic "in" has N values (warm-ups aside).
wait_count() {
	for _ in $(seq 1 300); do
		[ "$(values in | wc -l)" -ge "$1" ] && return 0
		kill -0 "$pid" || { cat "$T/src.err"; return 1; }
		sleep 0.2
	done
	echo "only $(values in | wc -l) of $1"
	return 1
}

@test "metadata, version and help" {
	run --separate-stderr "$MQS" metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.name == "mqtt-source" and .direction == "source"'
	echo "$output" | jq -e '.schema.required | index("url") != null and index("mqtt_topic") != null and index("topic") != null'
	echo "$output" | jq -e '.schema.properties.qos.default == 1 and .schema.properties.password.writeOnly == true'
	assert_version "$MQS" mqtt-source
	assert_help "$MQS" Examples: --url --mqtt-topic --qos --client-id --clean-session --key-from --tls-ca CULVERT_MQTT_SOURCE_PASSWORD
}

@test "bad options exit 2 naming the option" {
	run --separate-stderr "$MQS" --topic in --bus "$BUS" --url tcp://h --mqtt-topic 'a/#/b'
	[ "$status" -eq 2 ]
	[[ "$stderr" == *--mqtt-topic* ]]
	run --separate-stderr "$MQS" --topic in --bus "$BUS" --url 'http://u:s3cret@h' --mqtt-topic a
	[ "$status" -eq 2 ]
	[[ "$stderr" == *--url* ]] && [[ "$stderr" != *s3cret* ]]
	run --separate-stderr "$MQS" --topic in --bus "$BUS" --url tcp://h --mqtt-topic a --qos 3
	[ "$status" -eq 2 ]
	[[ "$stderr" == *--qos* ]]
}

@test "the password is never shown" {
	run --separate-stderr env CULVERT_MQTT_SOURCE_PASSWORD=s3cret "$MQS" config --topic in --url tcp://u@127.0.0.1:1 --mqtt-topic a
	[ "$status" -eq 0 ]
	[[ "$output" != *s3cret* ]]
	run --separate-stderr "$MQS" --topic in --bus "$BUS" --url tcp://u:s3cret@127.0.0.1:1 --mqtt-topic a --log-level debug --connect-timeout 2s --max-retries 1
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"connecting to MQTT broker"* ]] && [[ "$stderr" != *s3cret* ]]
}

@test "10,000 messages at QoS 1 arrive, none lost or reordered, keyed by topic" {
	"$MQS" --topic in --bus "$BUS" --url tcp://127.0.0.1:1883 --mqtt-topic "$MT" --clean-session 2>"$T/src.err" &
	pid=$!
	subscribed tcp://127.0.0.1:1883
	seq 1 10000 | mosquitto_pub -L "mqtt://127.0.0.1:1883/$MT" -q 1 -l
	wait_count 10000
	stop_cleanly $pid "$T/src.err" >/dev/null
	pid=
	diff <(values in) <(seq 1 10000)
	timeout 30 "$SNK" --topic in --bus "$BUS" --path - --output full --from beginning --stop-at-end 2>/dev/null | tail -1 |
		jq -e --arg t "$MT" '.key == $t and (.headers | map({(.key): .value}) | add | .["mqtt.topic"] == $t and .["mqtt.qos"] == "1")'
}

@test "messages published while the source is down arrive when it returns" {
	id="bats-offline-$$-$RANDOM"
	args=(--topic in --bus "$BUS" --url tcp://127.0.0.1:1883 --mqtt-topic "$MT" --client-id "$id" --session-expiry 1m)
	"$MQS" "${args[@]}" 2>"$T/src.err" &
	pid=$!
	subscribed tcp://127.0.0.1:1883
	stop_cleanly $pid "$T/src.err" >/dev/null
	seq 1 300 | mosquitto_pub -L "mqtt://127.0.0.1:1883/$MT" -q 1 -l
	"$MQS" "${args[@]}" 2>"$T/src.err" &
	pid=$!
	wait_count 300
	stop_cleanly $pid "$T/src.err" >/dev/null
	pid=
	diff <(values in) <(seq 1 300)
	# Drop the session on the shared broker.
	mosquitto_sub -V 5 -L "mqtt://127.0.0.1:1883/$MT" -i "$id" -E -x 0 >/dev/null
}

@test "a poison message goes to the dead-letter topic" {
	"$MQS" --topic in --bus "$BUS" --url tcp://127.0.0.1:1883 --mqtt-topic "$MT" --clean-session --filter-map '.n' 2>"$T/src.err" &
	pid=$!
	for _ in $(seq 1 100); do
		mosquitto_pub -L "mqtt://127.0.0.1:1883/$MT" -q 1 -m '{"n":0}'
		[ "$(values in | wc -l)" -gt 0 ] && break
		sleep 0.2
	done
	printf '{"n":1}\nnot json\n{"n":2}\n' | mosquitto_pub -L "mqtt://127.0.0.1:1883/$MT" -q 1 -l
	for _ in $(seq 1 100); do
		values in | grep -qx 2 && break
		sleep 0.2
	done
	stop_cleanly $pid "$T/src.err" >/dev/null
	pid=
	[ "$(values in | grep -v '^0$' | tr '\n' ' ')" = "1 2 " ]
	[ "$(values in.dlq)" = "not json" ]
}

@test "a broker restart mid-stream: the source recovers by itself, nothing lost" {
	broker_start
	"$MQS" --topic in --bus "$BUS" --url "$MQ_URL" --mqtt-topic "$MT" --receive-maximum 50 --batch-size 100 2>"$T/src.err" &
	pid=$!
	subscribed "$MQ_URL"
	seq 1 3000 | mosquitto_pub -L "${MQ_URL/tcp:/mqtt:}/$MT" -q 1 -l
	broker_restart
	seq 3001 6000 | mosquitto_pub -L "${MQ_URL/tcp:/mqtt:}/$MT" -q 1 -l
	for _ in $(seq 1 300); do
		[ "$(values in | sort -u | wc -l)" -ge 6000 ] && break
		sleep 0.2
	done
	stop_cleanly $pid "$T/src.err" >/dev/null
	pid=
	diff <(values in | sort -n -u) <(seq 1 6000)
	grep -q 'reconnected to mqtt' "$T/src.err"
}

@test "TLS with a client certificate" {
	broker_start tls
	"$MQS" --topic in --bus "$BUS" --url "$MQ_TLS_URL" --tls-ca "$MQ_DIR/ca.pem" --tls-cert "$MQ_DIR/client.pem" --tls-key "$MQ_DIR/client.key" \
		--mqtt-topic "$MT" --qos 2 2>"$T/src.err" &
	pid=$!
	subscribed "$MQ_URL"
	seq 1 100 | mosquitto_pub -L "${MQ_URL/tcp:/mqtt:}/$MT" -q 2 -l
	wait_count 100
	stop_cleanly $pid "$T/src.err" >/dev/null
	pid=
	diff <(values in) <(seq 1 100)
	# Without the client certificate the broker refuses: exit 1, clearly.
	run --separate-stderr "$MQS" --topic in --bus "$BUS" --url "$MQ_TLS_URL" --tls-ca "$MQ_DIR/ca.pem" --mqtt-topic "$MT" --connect-timeout 3s
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"connecting to MQTT broker"* ]]
}
