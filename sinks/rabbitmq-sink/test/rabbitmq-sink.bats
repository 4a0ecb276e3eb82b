#!/usr/bin/env bats
# rabbitmq-sink's command line, run as a user would, against the RabbitMQ
# at 127.0.0.1:5672 (guest/guest) with amqp-tools (amqp-consume,
# amqp-declare-queue, amqp-delete-queue) and rabbitmqctl as the independent
# client. Every test has its own embedded bus, filled with file-source, and
# its own queue. Needs $CULVERT_BIN/rabbitmq-sink and file-source, jq and
# timeout.

bats_require_minimum_version 1.5.0

load ../../../scripts/test/common

URL=$RABBITMQ_URL

setup() {
	culvert_setup
	RK="$CULVERT_BIN/rabbitmq-sink"
	[ -x "$RK" ]
	Q="culvert-bats-snk-$$-$RANDOM$RANDOM"
	rabbitmq_queue "$Q"
	# amqp-consume runs a command per message: this one prints the body as a line.
	printf '#!/bin/sh\ncat\necho\n' >"$T/line"
	chmod +x "$T/line"
}

teardown() {
	[ -z "${RESTARTED:-}" ] || rabbitmqctl start_app >/dev/null 2>&1 || true
	[ -z "${PID:-}" ] || kill "$PID" 2>/dev/null || true
	amqp-delete-queue -u "$URL" -q "$Q" >/dev/null 2>&1 || true
}

# consume N: the bodies of the next N messages of the queue, one per line.
consume() {
	timeout 60 amqp-consume -u "$URL" -q "$Q" -c "$1" -p 100 "$T/line"
}

@test "metadata names the connector and marks the URL secret" {
	run --separate-stderr "$RK" metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.name == "rabbitmq-sink" and .direction == "sink"'
	echo "$output" | jq -e '.schema.required | index("url") != null'
	echo "$output" | jq -e '.schema.properties.url.writeOnly == true and .schema.properties.exchange.default == ""'
}

@test "version and --help" {
	assert_version "$RK" rabbitmq-sink
	assert_help "$RK" Examples: --url --exchange --exchange-type --passive --routing-key --routing-key-from-key --mandatory \
		--max-retries --username --password --tls-ca --tls-insecure-skip-verify --topic --group CULVERT_RABBITMQ_SINK_URL "Exit status"
}

@test "bad flags exit 2, name the option and never show the password" {
	check() { assert_bad_option "$1" "$RK" --topic t --bus "$BUS" "${@:2}"; }
	check --url --routing-key q
	check --url --url 'ftp://u:s3cret@h'
	check --routing-key-from-key --url "$URL" --routing-key q --routing-key-from-key
	check --passive --url "$URL" --passive --routing-key q
	check --routing-key --url "$URL"
	check --exchange-type --url "$URL" --exchange x --exchange-type big
}

@test "a refused password exits 1 without showing it" {
	printf 'x\n' | publish t
	run --separate-stderr timeout 30 "$RK" --topic t --bus "$BUS" --url 'amqp://guest:s3cret@127.0.0.1:5672' --routing-key "$Q" --from beginning --stop-at-end
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"check the user and password"* ]]
	[[ "$stderr" != *s3cret* ]]
}

@test "10,000 records reach the queue, in order, confirmed" {
	seq 1 10000 | publish orders
	run --separate-stderr timeout 60 "$RK" --topic orders --bus "$BUS" --url "$URL" --routing-key "$Q" --mandatory --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	[ "$(rabbitmq_ready "$Q")" = 10000 ]
	diff <(seq 1 200) <(consume 200)
	[ "$(rabbitmq_ready "$Q")" = 9800 ]
	# A second run of the same group has nothing left to send.
	run --separate-stderr timeout 60 "$RK" --topic orders --bus "$BUS" --url "$URL" --routing-key "$Q" --stop-at-end
	[ "$status" -eq 0 ]
	[ "$(rabbitmq_ready "$Q")" = 9800 ]
}

@test "unroutable records go to the dead-letter topic with the reply" {
	printf '{"n":1}\n{"n":2}\n' | publish orders
	run --separate-stderr timeout 60 "$RK" --topic orders --bus "$BUS" --url "$URL" --routing-key "no-such-queue-$Q" --mandatory --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	read_topic orders.dlq --output full >"$T/dead"
	[ "$(wc -l <"$T/dead")" = 2 ]
	jq -e -s '.[0].value == {"n":1} and (.[0].headers | from_entries | .["amqp.reply_code"] == "312" and .["amqp.reply_text"] == "NO_ROUTE" and .["culvert.stage"] == "sink")' "$T/dead"
}

@test "a RabbitMQ restart while publishing: the sink recovers by itself, nothing lost" {
	: >"$T/in"
	"$SRC" --topic orders --bus "$BUS" --path "$T/in" --follow --poll-interval 10ms 2>/dev/null &
	FEED=$!
	"$RK" --topic orders --bus "$BUS" --url "$URL" --routing-key "$Q" --mandatory --from beginning 2>"$T/err" &
	PID=$!
	seq 1 300 >>"$T/in"
	diff <(seq 1 100) <(consume 100)
	RESTARTED=1
	rabbitmqctl stop_app >/dev/null
	seq 301 450 >>"$T/in"
	sleep 1
	rabbitmqctl start_app >/dev/null
	RESTARTED=
	seq 451 600 >>"$T/in"
	consume 500 >"$T/rest" || true
	kill "$FEED"
	stop_cleanly "$PID" "$T/err"
	PID=
	left=$(rabbitmq_ready "$Q")
	[ "$left" -eq 0 ] || consume "$left" >>"$T/rest"
	# Every record arrived; duplicates (a batch sent again after the restart) are allowed.
	diff <(seq 101 600) <(sort -n -u "$T/rest")
	echo "messages after the first 100: $(wc -l <"$T/rest") for 500 records"
	grep -q reconnecting "$T/err"
}
