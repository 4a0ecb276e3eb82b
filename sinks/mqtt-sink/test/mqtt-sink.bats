#!/usr/bin/env bats
# mqtt-sink's command line, run as a user would, with mosquitto_sub as the
# independent subscriber: the shared Mosquitto (127.0.0.1:1883) for
# ordinary tests, a private one for the restart and TLS tests. Needs
# $CULVERT_BIN/mqtt-sink and file-source, mosquitto-clients, openssl, jq.

bats_require_minimum_version 1.5.0

load ../../../scripts/test/common
load ../../../common/client/mqtt/mqtttest/mosquitto

setup() {
	culvert_setup
	MQK="$CULVERT_BIN/mqtt-sink"
	[ -x "$MQK" ]
	MT=$(mqtt_topic)
}

teardown() {
	[ -z "${sub:-}" ] || kill "$sub" 2>/dev/null || true
	[ -z "${pid:-}" ] || kill -9 "$pid" 2>/dev/null || true
	broker_stop
}

# feed TOPIC: publishes standard input's lines to TOPIC on the bus.
feed() {
	timeout 30 "$SRC" --topic "$1" --bus "$BUS" --path - 2>/dev/null
}

# subscribe URL FILTER COUNT [mosquitto_sub options]: receives COUNT
# messages of FILTER into $T/got in the background (sub is its pid). A
# persistent session is made first (subscribe, then leave), so nothing
# published from now on is missed however long the subscriber takes; its
# receive maximum is raised so that Mosquitto (20 in flight, then 1000
# queued by default) drops nothing when the subscriber falls behind.
subscribe() {
	local url=${1/tcp:/mqtt:} filter=$2 n=$3 id="bats-$$-$RANDOM$RANDOM"
	shift 3
	mosquitto_sub -V 5 -L "$url/$filter" -q 1 -i "$id" -c -x 60 -E
	mosquitto_sub -V 5 -L "$url/$filter" -q 1 -i "$id" -c -x 60 -D connect receive-maximum 65535 -C "$n" -W 60 "$@" >"$T/got" 2>"$T/sub.err" &
	sub=$!
}

@test "metadata, version and help" {
	run --separate-stderr "$MQK" metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.name == "mqtt-sink" and .direction == "sink"'
	echo "$output" | jq -e '.schema.properties.qos.default == 1 and .schema.properties.password.writeOnly == true and .schema.properties.url.writeOnly == true'
	assert_version "$MQK" mqtt-sink
	assert_help "$MQK" Examples: --url --mqtt-topic --mqtt-topic-from-key --qos --retain --tls-ca --group --stop-at-end CULVERT_MQTT_SINK_URL
}

@test "bad options exit 2 naming the option" {
	run --separate-stderr "$MQK" --topic out --bus "$BUS" --url tcp://h
	[ "$status" -eq 2 ]
	[[ "$stderr" == *--mqtt-topic* ]]
	run --separate-stderr "$MQK" --topic out --bus "$BUS" --url tcp://h --mqtt-topic 'a/+'
	[ "$status" -eq 2 ]
	[[ "$stderr" == *--mqtt-topic* ]]
	run --separate-stderr "$MQK" --topic out --bus "$BUS" --url 'ftp://u:s3cret@h' --mqtt-topic a
	[ "$status" -eq 2 ]
	[[ "$stderr" == *--url* ]] && [[ "$stderr" != *s3cret* ]]
}

@test "10,000 records at QoS 1 arrive in order, and are committed" {
	seq 1 10000 | feed out
	subscribe tcp://127.0.0.1:1883 "$MT" 10000
	run --separate-stderr timeout 60 "$MQK" --topic out --bus "$BUS" --url tcp://127.0.0.1:1883 --mqtt-topic "$MT" --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	wait "$sub"
	sub=
	diff "$T/got" <(seq 1 10000)
	# Committed: a second run sends nothing.
	subscribe tcp://127.0.0.1:1883 "$MT" 1 -W 2
	run --separate-stderr timeout 60 "$MQK" --topic out --bus "$BUS" --url tcp://127.0.0.1:1883 --mqtt-topic "$MT" --stop-at-end
	[ "$status" -eq 0 ]
	wait "$sub" || true
	sub=
	[ ! -s "$T/got" ]
}

@test "the record key names the topic; an unusable key goes to the dead-letter topic" {
	# mqtt-source keys its records with their MQTT topics.
	"$CULVERT_BIN/mqtt-source" --topic keyed --bus "$BUS" --url tcp://127.0.0.1:1883 --mqtt-topic "$MT/in/#" --mqtt-topic "$MT/warm" \
		--clean-session 2>"$T/src.err" &
	pid=$!
	# Subscribed once a warm-up (to a topic the test does not watch) is on the bus.
	for _ in $(seq 1 50); do
		mosquitto_pub -L "mqtt://127.0.0.1:1883/$MT/warm" -q 1 -m warm
		[ "$(timeout 30 "$SNK" --topic keyed --bus "$BUS" --path - --from beginning --stop-at-end --group "w-$RANDOM" 2>/dev/null | wc -l)" -ge 1 ] && break
		sleep 0.2
	done
	mosquitto_pub -L "mqtt://127.0.0.1:1883/$MT/in/x" -q 1 -m one
	mosquitto_pub -L "mqtt://127.0.0.1:1883/$MT/in/y" -q 1 -m two
	for _ in $(seq 1 50); do
		[ "$(timeout 30 "$SNK" --topic keyed --bus "$BUS" --path - --from beginning --stop-at-end --group "w-$RANDOM" 2>/dev/null | grep -c -v warm)" -ge 2 ] && break
		sleep 0.2
	done
	stop_cleanly $pid "$T/src.err" >/dev/null
	pid=
	# Records keyed $MT/warm, $MT/in/x and $MT/in/y, plus one with no key.
	echo unkeyed | feed keyed
	subscribe tcp://127.0.0.1:1883 "$MT/in/#" 2 -v
	run --separate-stderr timeout 60 "$MQK" --topic keyed --bus "$BUS" --url tcp://127.0.0.1:1883 --mqtt-topic-from-key --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	wait "$sub"
	sub=
	[ "$(cat "$T/got")" = "$MT/in/x one
$MT/in/y two" ]
	[ "$(timeout 30 "$SNK" --topic keyed.dlq --bus "$BUS" --path - --from beginning --stop-at-end 2>/dev/null)" = unkeyed ]
}

@test "a broker restart mid-stream: the sink recovers by itself, nothing lost" {
	broker_start
	id="bats-sub-$$-$RANDOM"
	# A persistent subscriber session, so that nothing is dropped while
	# the subscriber is away: subscribe, leave, come back after the restart.
	mosquitto_sub -V 5 -L "${MQ_URL/tcp:/mqtt:}/$MT" -q 1 -i "$id" -c -x 300 -E
	# Half the records before the restart, half after it: the sink is
	# mid-stream whatever its speed, and must reconnect to send the rest.
	seq 1 10000 | feed out
	"$MQK" --topic out --bus "$BUS" --url "$MQ_URL" --mqtt-topic "$MT" --from beginning 2>"$T/snk.err" &
	pid=$!
	for _ in $(seq 1 100); do
		grep -q '"message":"connected"' "$T/snk.err" && break
		sleep 0.1
	done
	broker_restart 0.5
	seq 10001 20000 | feed out
	# Duplicates are allowed (at least once): wait for 20,000 distinct.
	mosquitto_sub -V 5 -L "${MQ_URL/tcp:/mqtt:}/$MT" -q 1 -i "$id" -c -x 300 -D connect receive-maximum 65535 >"$T/got" 2>/dev/null &
	sub=$!
	for _ in $(seq 1 300); do
		[ "$(sort -u "$T/got" | wc -l)" -ge 20000 ] && break
		sleep 0.1
	done
	stop_cleanly "$pid" "$T/snk.err" >/dev/null
	pid=
	diff <(sort -n -u "$T/got") <(seq 1 20000)
	grep -q 'reconnected to mqtt' "$T/snk.err" || { cat "$T/snk.err"; false; }
}

@test "TLS with a client certificate, QoS 2, retained" {
	broker_start tls
	seq 1 100 | feed out
	subscribe "$MQ_URL" "$MT" 100
	run --separate-stderr timeout 60 "$MQK" --topic out --bus "$BUS" --url "$MQ_TLS_URL" --tls-ca "$MQ_DIR/ca.pem" \
		--tls-cert "$MQ_DIR/client.pem" --tls-key "$MQ_DIR/client.key" --mqtt-topic "$MT" --qos 2 --retain --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	wait "$sub"
	sub=
	diff "$T/got" <(seq 1 100)
	# The last message is retained for new subscribers.
	[ "$(mosquitto_sub -L "${MQ_URL/tcp:/mqtt:}/$MT" -C 1 -W 5)" = 100 ]
}
