#!/usr/bin/env bats
# rabbitmq-source's command line, run as a user would, against the RabbitMQ
# at 127.0.0.1:5672 (guest/guest) with amqp-tools (amqp-publish,
# amqp-declare-queue, amqp-delete-queue) as the independent client. Every
# test has its own embedded bus and its own queue. Needs
# $CULVERT_BIN/rabbitmq-source and file-sink, jq, timeout and rabbitmqctl.

bats_require_minimum_version 1.5.0

load ../../../scripts/test/common

URL=$RABBITMQ_URL

setup() {
	culvert_setup
	RS="$CULVERT_BIN/rabbitmq-source"
	[ -x "$RS" ]
	Q="culvert-bats-src-$$-$RANDOM$RANDOM"
	rabbitmq_queue "$Q"
}

teardown() {
	[ -z "${RESTARTED:-}" ] || rabbitmqctl start_app >/dev/null 2>&1 || true
	[ -z "${PID:-}" ] || kill "$PID" 2>/dev/null || true
	amqp-delete-queue -u "$URL" -q "$Q" >/dev/null 2>&1 || true
}

# topic TOPIC: every value of TOPIC, one per line. (amqp-publish -l keeps
# each line's newline in the message body: blank lines are dropped.)
topic() { read_topic "$1" | grep -v '^$'; }

@test "metadata names the connector and marks the URL secret" {
	run --separate-stderr "$RS" metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.name == "rabbitmq-source" and .direction == "source"'
	echo "$output" | jq -e '.schema.required | index("url") != null and index("queue") != null'
	echo "$output" | jq -e '.schema.properties.url.writeOnly == true and .schema.properties.prefetch.default == 10000'
}

@test "version and --help" {
	assert_version "$RS" rabbitmq-source
	assert_help "$RS" Examples: --url --queue --queue-type --exchange --exchange-type --binding-key --passive --prefetch \
		--max-retries --username --password --tls-ca --tls-insecure-skip-verify --topic CULVERT_RABBITMQ_SOURCE_URL "Exit status"
}

@test "bad flags exit 2, name the option and never show the password" {
	check() { assert_bad_option "$1" "$RS" --topic t --bus "$BUS" "${@:2}"; }
	check --url --queue q
	check --queue --url "$URL"
	check --url --url 'ftp://u:s3cret@h' --queue q
	check --binding-key --url "$URL" --queue q --binding-key a
	check --prefetch --url "$URL" --queue q --prefetch 0
}

@test "config redacts the password; a refused password exits 1 without showing it" {
	run --separate-stderr "$RS" config --topic t --url 'amqp://guest:s3cret@127.0.0.1:5672/' --queue q
	[ "$status" -eq 0 ]
	[[ "$output" != *s3cret* ]]
	run --separate-stderr timeout 30 "$RS" --topic t --bus "$BUS" --url 'amqp://guest:s3cret@127.0.0.1:5672/' --queue "$Q"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"check the user and password"* ]]
	[[ "$stderr" != *s3cret* ]]
}

@test "10,000 messages reach the topic in order, and all are acknowledged" {
	seq 1 10000 | amqp-publish -u "$URL" -r "$Q" -l -p -C text/plain
	"$RS" --topic orders --bus "$BUS" --url "$URL" --queue "$Q" 2>"$T/err" &
	PID=$!
	wait_distinct orders 10000 "$PID" "$T/err"
	stop_cleanly "$PID" "$T/err"
	PID=
	diff <(seq 1 10000) <(topic orders)
	[ "$(rabbitmq_ready "$Q")" = 0 ]
	# Routing key and content type come along.
	read_topic orders --output full | head -1 |
		jq -e --arg q "$Q" '.key == $q and (.headers | from_entries | .["amqp.content_type"] == "text/plain")'
}

@test "a poison message goes to the dead-letter topic and is not requeued" {
	printf '{"n":1}\nnot json\n{"n":2}\n' | amqp-publish -u "$URL" -r "$Q" -l -p
	"$RS" --topic orders --bus "$BUS" --url "$URL" --queue "$Q" --map '.n += 10' 2>"$T/err" &
	PID=$!
	wait_distinct orders 2 "$PID" "$T/err"
	wait_distinct orders.dlq 1 "$PID" "$T/err"
	stop_cleanly "$PID" "$T/err"
	PID=
	[ "$(topic orders | tr -d ' ')" = $'{"n":11}\n{"n":12}' ]
	[[ "$(topic orders.dlq)" == "not json"* ]]
	[ "$(rabbitmq_ready "$Q")" = 0 ]
}

@test "a RabbitMQ restart mid-stream: the source recovers by itself, nothing lost" {
	seq 1 2000 | amqp-publish -u "$URL" -r "$Q" -l -p
	"$RS" --topic orders --bus "$BUS" --url "$URL" --queue "$Q" --prefetch 20 --batch-size 20 --linger 0s 2>"$T/err" &
	PID=$!
	wait_distinct orders 200 "$PID" "$T/err"
	RESTARTED=1
	rabbitmqctl stop_app >/dev/null
	sleep 1
	rabbitmqctl start_app >/dev/null
	RESTARTED=
	seq 2001 3000 | amqp-publish -u "$URL" -r "$Q" -l -p
	wait_distinct orders 3000 "$PID" "$T/err"
	stop_cleanly "$PID" "$T/err"
	PID=
	diff <(seq 1 3000) <(topic orders | sort -n -u)
	echo "records: $(topic orders | wc -l) for 3000 messages"
	grep -q reconnecting "$T/err"
	[ "$(rabbitmq_ready "$Q")" = 0 ]
}
