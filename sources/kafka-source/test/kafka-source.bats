#!/usr/bin/env bats
# kafka-source run as a user would. Kafka itself cannot be installed on this
# machine: setup_file starts scripts/kfake (franz-go's kfake cluster in a
# process of its own, built into $CULVERT_BIN when missing) and every test
# uses its own Kafka topics and groups. kafka-sink fills the Kafka topics.
# Needs $CULVERT_BIN/{kafka-source,kafka-sink,file-source,file-sink}, go, jq.

bats_require_minimum_version 1.5.0

load ../../../scripts/test/common

setup_file() {
	kfake_setup_file sinks/kafka-sink
}

teardown_file() {
	kfake_teardown_file
}

setup() {
	culvert_setup
	KSRC="$CULVERT_BIN/kafka-source"
	KS="$CULVERT_BIN/kafka-sink"
	ID="b$RANDOM$RANDOM"
	PIDS=()
}

teardown() {
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}

# to_kafka N: produces N JSON records {"seq":1..N} to the Kafka topic $ID.
to_kafka() {
	seq 1 "$1" | sed 's/.*/{"seq":&}/' | publish "feed$ID"
	timeout 60 "$KS" --topic "feed$ID" --bus "$BUS" --from beginning --stop-at-end --group "feed$ID" \
		--brokers "$KAFKA" --kafka-topic "$ID" 2>/dev/null
}

@test "metadata names the connector and its Kafka options" {
	run --separate-stderr "$KSRC" metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.name == "kafka-source" and .direction == "source"'
	echo "$output" | jq -e '.schema.properties | has("brokers") and has("kafka_topic") and has("kafka_topic_regex") and has("kafka_group")
		and has("start_offset") and has("sasl_mechanism") and has("password") and has("tls") and has("tls_cert")'
	echo "$output" | jq -e '.schema.properties.start_offset.enum == ["earliest", "latest"]'
	echo "$output" | jq -e '.schema.properties.password.writeOnly == true'
}

@test "version and --help" {
	assert_version "$KSRC" kafka-source
	assert_help "$KSRC" Examples: --brokers --kafka-topic --kafka-topic-regex --kafka-group --start-offset --password --tls "Exit status"
}

@test "bad flags exit 2 and name the option; the password never shows" {
	check() { assert_bad_option "$1" "$KSRC" --topic t --bus "$BUS" --username u --password s3cret "${@:2}"; }
	check --kafka-topic --brokers h
	check --kafka-topic-regex --brokers h --kafka-topic-regex '('
	check --brokers --kafka-topic k
	check --start-offset --brokers h --kafka-topic k --start-offset middle
}

@test "records carry the Kafka coordinates as headers" {
	to_kafka 3
	"$KSRC" --topic out --bus "$BUS" --brokers "$KAFKA" --kafka-topic "$ID" --kafka-group "$ID" 2>"$T/err" &
	PIDS+=($!)
	run wait_distinct out 3
	[ "$status" -eq 0 ]
	stop_cleanly "${PIDS[0]}" "$T/err"
	run --separate-stderr read_topic out --output full
	echo "$output" | jq -e -s --arg t "$ID" 'length == 3 and all(.[]; (.headers | map({(.key): .value}) | add) as $h
		| $h["kafka.topic"] == $t and ($h["kafka.partition"] | test("^[0-9]+$")) and ($h["kafka.offset"] | test("^[0-9]+$")))'
}

@test "kill -9 mid-stream, restart: every record is on the bus (at-least-once)" {
	to_kafka 20000
	# A deliberately slow --map keeps the first run busy long enough to be
	# killed in the middle.
	"$KSRC" --topic out --bus "$BUS" --brokers "$KAFKA" --kafka-topic "$ID" --kafka-group "$ID" --max-poll-records 200 \
		--batch-size 200 --session-timeout 2s --map '. as $x | reduce range(0; 1000) as $i (0; . + 1) | $x' 2>/dev/null &
	pid=$!
	PIDS+=($pid)
	run wait_distinct out 1
	[ "$status" -eq 0 ]
	kill -9 $pid
	run wait_distinct out 0
	at_kill=$(printf '%s' "$output" | grep -c '' || true)
	echo "records on the bus at the kill: $at_kill"
	[ "$at_kill" -gt 0 ] && [ "$at_kill" -lt 20000 ]
	# The new member gets the partitions once the killed one's session (2s) expired.
	"$KSRC" --topic out --bus "$BUS" --brokers "$KAFKA" --kafka-topic "$ID" --kafka-group "$ID" --session-timeout 2s 2>"$T/err" &
	PIDS+=($!)
	run wait_distinct out 20000
	[ "$status" -eq 0 ]
	[ "$(printf '%s\n' "$output" | wc -l)" -eq 20000 ]
	stop_cleanly "${PIDS[1]}" "$T/err"
}

@test "--start-offset latest: a new group skips what is already in Kafka" {
	to_kafka 5
	"$KSRC" --topic out --bus "$BUS" --brokers "$KAFKA" --kafka-topic "$ID" --kafka-group "$ID" --start-offset latest 2>"$T/err" &
	PIDS+=($!)
	sleep 2
	seq 6 7 | sed 's/.*/{"seq":&}/' | publish "feed$ID"
	timeout 60 "$KS" --topic "feed$ID" --bus "$BUS" --stop-at-end --group "feed$ID" --brokers "$KAFKA" --kafka-topic "$ID" 2>/dev/null
	run wait_distinct out 2
	[ "$status" -eq 0 ]
	[ "$(printf '%s\n' "$output" | paste -sd,)" = '{"seq":6},{"seq":7}' ]
	stop_cleanly "${PIDS[0]}" "$T/err"
}
