#!/usr/bin/env bats
# kafka-sink run as a user would. Kafka itself cannot be installed on this
# machine: setup_file starts scripts/kfake (franz-go's kfake cluster in a
# process of its own, built into $CULVERT_BIN when missing) and every test
# uses its own Kafka topics. kafka-source plays the reading side. Needs
# $CULVERT_BIN/{kafka-sink,kafka-source,file-source,file-sink}, go, jq.

bats_require_minimum_version 1.5.0

load ../../../scripts/test/common

setup_file() {
	kfake_setup_file sources/kafka-source
}

teardown_file() {
	kfake_teardown_file
}

setup() {
	culvert_setup
	KS="$CULVERT_BIN/kafka-sink"
	KSRC="$CULVERT_BIN/kafka-source"
	ID="b$RANDOM$RANDOM"
	PIDS=()
}

teardown() {
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}

@test "metadata names the connector and its Kafka options" {
	run --separate-stderr "$KS" metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.name == "kafka-sink" and .direction == "sink"'
	echo "$output" | jq -e '.schema.properties | has("brokers") and has("kafka_topic") and has("compression") and has("linger")
		and has("batch_max_bytes") and has("sasl_mechanism") and has("username") and has("password") and has("tls_ca")'
	echo "$output" | jq -e '.schema.properties.password.writeOnly == true'
	echo "$output" | jq -e '.schema.required | index("brokers") != null and index("kafka_topic") != null'
}

@test "version and --help" {
	assert_version "$KS" kafka-sink
	assert_help "$KS" Examples: --brokers --kafka-topic --compression --linger --batch-max-bytes --sasl-mechanism --tls-ca "Exit status"
}

@test "bad flags exit 2 and name the option; the password never shows" {
	check() { assert_bad_option "$1" "$KS" --topic t --bus "$BUS" --password s3cret "${@:2}"; }
	check --kafka-topic --brokers h --username u
	check --brokers --kafka-topic k --username u
	check --username --brokers h --kafka-topic k
	check --compression --brokers h --kafka-topic k --username u --compression brotli
	check --sasl-mechanism --brokers h --kafka-topic k --username u --sasl-mechanism kerberos
	run --separate-stderr "$KS" --topic t --brokers h --kafka-topic k --username u --password s3cret config
	[ "$status" -eq 0 ]
	[[ "$output" != *s3cret* ]]
}

@test "an unreachable broker: exit 1 naming it, without the password" {
	run --separate-stderr timeout 30 "$KS" --topic t --bus "$BUS" --brokers 127.0.0.1:1 --kafka-topic k \
		--username u --password s3cret --max-retries 1
	[ "$status" -eq 1 ]
	[[ "$stderr" == *127.0.0.1:1* ]]
	[[ "$stderr" != *s3cret* ]]
}

@test "end to end: file-source, kafka-sink, Kafka, kafka-source, file-sink give back every line" {
	for i in $(seq 1 3000); do echo "{\"seq\":$i}"; done >"$T/in.jsonl"
	"$SRC" --topic in --bus "$BUS" --path "$T/in.jsonl" 2>/dev/null
	run --separate-stderr timeout 60 "$KS" --topic in --bus "$BUS" --from beginning --stop-at-end \
		--brokers "$KAFKA" --kafka-topic "$ID" --compression lz4 --linger 2ms
	[ "$status" -eq 0 ] || { echo "$stderr"; false; }
	"$KSRC" --topic out --bus "$BUS" --brokers "$KAFKA" --kafka-topic "$ID" --kafka-group "$ID" 2>"$T/ksrc.err" &
	PIDS+=($!)
	run wait_topic out 3000
	[ "$status" -eq 0 ]
	sort <"$T/in.jsonl" >"$T/want"
	printf '%s\n' "$output" | sort >"$T/got"
	cmp "$T/want" "$T/got"
	stop_cleanly "${PIDS[0]}" "$T/ksrc.err"
}

@test "a record larger than --batch-max-bytes goes to the dead-letter topic" {
	big=$(head -c 3000 /dev/zero | tr '\0' x)
	printf '%s\n' '{"a":1}' "{\"big\":\"$big\"}" '{"a":2}' | "$SRC" --topic in --bus "$BUS" --path - 2>/dev/null
	run --separate-stderr timeout 60 "$KS" --topic in --bus "$BUS" --from beginning --stop-at-end \
		--brokers "$KAFKA" --kafka-topic "$ID" --batch-max-bytes 2048
	[ "$status" -eq 0 ] || { echo "$stderr"; false; }
	run --separate-stderr read_topic in.dlq --output full
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | wc -l)" -eq 1 ]
	echo "$output" | jq -e '(.value.big | length) == 3000 and ((.headers | map({(.key): .value}) | add) as $h
		| $h["culvert.stage"] == "sink" and $h["culvert.connector"] == "kafka-sink" and ($h["culvert.error"] | test("MESSAGE_TOO_LARGE")))'
}

@test "the kafka:// bus: file-source and file-sink over Kafka, a source resumes, two sinks share a group" {
	for i in $(seq 1 5000); do echo "{\"seq\":$i}"; done >"$T/in.jsonl"
	KBUS="kafka://$KAFKA?partitions=3"
	run --separate-stderr timeout 60 "$SRC" --topic "$ID" --bus "$KBUS" --path "$T/in.jsonl"
	[ "$status" -eq 0 ] || { echo "$stderr"; false; }
	# The source position is on the bus: a second run publishes nothing.
	run --separate-stderr timeout 60 "$SRC" --topic "$ID" --bus "$KBUS" --path "$T/in.jsonl" --log-format json
	[ "$status" -eq 0 ]
	echo "$stderr" | grep '"message":"stopped"' | jq -e '.records_in == 0'
	# Two sinks in one group share the 3 partitions of another topic: lines
	# are published in chunks until both have written some.
	"$SNK" --topic "s$ID" --bus "$KBUS" --path "$T/a" --from beginning --group shared 2>"$T/a.err" &
	PIDS+=($!)
	"$SNK" --topic "s$ID" --bus "$KBUS" --path "$T/b" --from beginning --group shared 2>"$T/b.err" &
	PIDS+=($!)
	n=0
	while [ ! -s "$T/a" ] || [ ! -s "$T/b" ]; do
		[ $n -lt 20000 ] || { echo "after $n lines one sink still has written nothing"; false; }
		seq $((n + 1)) $((n + 100)) | "$SRC" --topic "s$ID" --bus "$KBUS" --path - --batch-size 10 2>/dev/null
		n=$((n + 100))
		sleep 0.1
	done
	for _ in $(seq 1 300); do
		[ "$(cat "$T/a" "$T/b" | sort -u | wc -l)" -ge $n ] && break
		sleep 0.1
	done
	stop_cleanly "${PIDS[0]}" "$T/a.err"
	stop_cleanly "${PIDS[1]}" "$T/b.err"
	echo "lines written by each sink: $(wc -l <"$T/a") $(wc -l <"$T/b")"
	sort -u "$T/a" "$T/b" | cmp - <(seq 1 $n | sort)
	# --stop-at-end over Kafka: a new group reads everything and exits.
	run --separate-stderr timeout 60 "$SNK" --topic "$ID" --bus "kafka://$KAFKA" --path - --from beginning --stop-at-end --group all
	[ "$status" -eq 0 ]
	[ "$(printf '%s\n' "$output" | wc -l)" -eq 5000 ]
}
