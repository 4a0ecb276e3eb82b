#!/usr/bin/env bats
# nats-source run as a user would, against the machine's NATS server
# (127.0.0.1:4222, JetStream on) and private nats-server processes. The
# machine has no nats CLI: natsc, a small client written with nats.go alone
# (common/client/nats/natstest/natsc), is built in setup_file and plays the
# other side; helpers are in common/client/nats/natstest/nats.bash. Needs $CULVERT_BIN/{nats-source,file-source,file-sink}, go, jq.

bats_require_minimum_version 1.5.0

load ../../../scripts/test/common
load ../../../common/client/nats/natstest/nats

setup_file() {
	nats_setup_file
}

setup() {
	culvert_setup
	nats_setup
	NS="$CULVERT_BIN/nats-source"
}

teardown() {
	nats_teardown
}

@test "metadata names the connector and its options; the URL is write-only" {
	run --separate-stderr "$NS" metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.name == "nats-source" and .direction == "source"'
	echo "$output" | jq -e '.schema.properties | has("url") and has("subject") and has("queue_group") and has("stream") and has("durable") and has("deliver") and has("ack_wait") and has("max_ack_pending") and has("buffer")'
	echo "$output" | jq -e '.schema.properties.url.writeOnly == true and .schema.properties.url.default == "nats://127.0.0.1:4222"'
	echo "$output" | jq -e '.schema.properties.deliver.enum == ["all", "new"]'
}

@test "version and --help" {
	assert_version "$NS" nats-source
	assert_help "$NS" Examples: --url --subject --queue-group --stream --durable --deliver --ack-wait --max-ack-pending --buffer at-most-once
}

@test "bad flags exit 2 and name the option" {
	check() { assert_bad_option "$1" "$NS" --topic t --bus "$BUS" "${@:2}"; }
	check --subject
	check --subject --subject 'a.>.b'
	check --queue-group --stream S --queue-group q
	check --durable --subject a --durable d
	check --deliver --stream S --deliver sometime
	check --url --subject a --url 'redis://u:s3cret@h'
	[[ "$stderr" != *s3cret* ]]
}

@test "a password in --url shows neither in logs, errors nor config" {
	run --separate-stderr "$NS" --topic t --bus "$BUS" --subject a --url 'nats://me:s3cret@127.0.0.1:1' --log-level debug --max-retries 1
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"127.0.0.1:1"* ]]
	[[ "$stderr" != *s3cret* ]]
	run --separate-stderr "$NS" config --topic t --subject a --url 'nats://me:s3cret@127.0.0.1:1'
	[ "$status" -eq 0 ]
	[[ "$output" != *s3cret* ]]
}

@test "JetStream: 10,000 messages in order, acknowledged, resumed by the durable consumer" {
	stream "S$ID" "$ID.>"
	"$NATSC" pub --js -n 10000 -H 'Origin: bats' "$ID.orders"
	"$NS" --topic orders --bus "$BUS" --stream "S$ID" --durable d >/dev/null 2>"$T/src.err" &
	pid=$!
	PIDS+=($pid)
	wait_topic orders 10000
	stop_cleanly $pid "$T/src.err"
	diff <(seq 1 10000) <(topic orders | jq .n)
	topic orders --output full | head -1 | jq -e --arg s "$ID.orders" '.key == $s and (.headers | map(select(.key == "Origin" and .value == "bats")) | length == 1)'
	[ "$("$NATSC" consumer "S$ID" d | jq -c '[.ack_pending, .pending]')" = "[0,0]" ]
	# A second run publishes only what came since.
	"$NATSC" pub --js -n 3 "$ID.orders"
	"$NS" --topic orders --bus "$BUS" --stream "S$ID" --durable d >/dev/null 2>"$T/src2.err" &
	pid=$!
	PIDS+=($pid)
	wait_topic orders 10003
	stop_cleanly $pid "$T/src2.err"
	diff <(seq 1 10000; seq 1 3) <(topic orders | jq .n)
}

@test "core NATS: wildcard subjects, the subject as key" {
	port=$(free_port)
	"$NS" --topic core --bus "$BUS" --subject "$ID.*.cpu" --metrics-addr "127.0.0.1:$port" >/dev/null 2>"$T/src.err" &
	pid=$!
	PIDS+=($pid)
	wait_ready "$port"
	"$NATSC" pub -n 500 "$ID.h1.cpu"
	"$NATSC" pub -n 1 "$ID.h1.mem"
	wait_topic core 500
	stop_cleanly $pid "$T/src.err"
	diff <(seq 1 500) <(topic core | jq .n)
	[ "$(topic core --output full | jq -r .key | sort -u)" = "$ID.h1.cpu" ]
}

@test "a poison message goes to the dead-letter topic and is acknowledged" {
	stream "S$ID" "$ID"
	printf '{"a":1}\nnot json\n{"a":2}\n' | "$NATSC" pub --js --stdin "$ID"
	"$NS" --topic p --bus "$BUS" --stream "S$ID" --durable d --map '.b = 1' --ack-wait 1s >/dev/null 2>"$T/src.err" &
	pid=$!
	PIDS+=($pid)
	wait_topic p.dlq 1
	wait_topic p 2
	sleep 1.5 # past --ack-wait: nothing comes again
	stop_cleanly $pid "$T/src.err"
	[ "$(topic p | jq -c -s .)" = '[{"a":1,"b":1},{"a":2,"b":1}]' ]
	[ "$(topic p.dlq)" = "not json" ]
	topic p.dlq --output full | jq -e '(.headers | map({(.key): .value}) | add) as $h | $h["culvert.stage"] == "transform" and $h["culvert.offset"] == "2"'
	[ "$("$NATSC" consumer "S$ID" d | jq -c '[.ack_pending, .pending]')" = "[0,0]" ]
}

@test "a restart of the NATS server mid-stream: the source recovers by itself, nothing lost" {
	port=$(free_port)
	start_server "$port" "$T/store"
	U="nats://127.0.0.1:$port"
	"$NATSC" --url "$U" stream-add "S$ID" "$ID"
	"$NATSC" --url "$U" pub --js -n 3000 "$ID"
	"$NS" --topic r --bus "$BUS" --url "$U" --stream "S$ID" --durable d --ack-wait 5s >/dev/null 2>"$T/src.err" &
	pid=$!
	PIDS+=($pid)
	wait_topic r 1000
	stop_server
	sleep 1
	start_server "$port" "$T/store"
	for _ in $(seq 1 50); do "$NATSC" --url "$U" pub --js -n 7000 --start 3001 "$ID" 2>/dev/null && break; sleep 0.2; done
	wait_topic r 10000
	stop_cleanly $pid "$T/src.err"
	grep -q "reconnected to nats" "$T/src.err"
	stop_server
	# Every message, in order of first appearance (at-least-once: one
	# acknowledged during the outage may come again).
	diff <(seq 1 10000) <(topic r | jq .n | awk '!seen[$0]++')
}

@test "TLS: a private nats-server with generated certificates" {
	certs "$T"
	port=$(free_port)
	start_server "$port" "$T/store" --tls --tlscert "$T/cert.pem" --tlskey "$T/key.pem"
	U="tls://127.0.0.1:$port"
	"$NATSC" --url "$U" --ca "$T/ca.pem" stream-add "S$ID" "$ID"
	"$NATSC" --url "$U" --ca "$T/ca.pem" pub --js -n 100 "$ID"
	"$NS" --topic tls --bus "$BUS" --url "$U?tls_ca=$T/ca.pem" --stream "S$ID" >/dev/null 2>"$T/src.err" &
	pid=$!
	PIDS+=($pid)
	wait_topic tls 100
	stop_cleanly $pid "$T/src.err"
	diff <(seq 1 100) <(topic tls | jq .n)
	# Without the CA, the certificate is not trusted: exit 1, saying so.
	run --separate-stderr "$NS" --topic tls --bus "$BUS" --url "$U" --stream "S$ID"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *certificate* ]]
	stop_server
}
