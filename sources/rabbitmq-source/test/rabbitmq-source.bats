#!/usr/bin/env bats
# rabbitmq-source's command line, run as a user would, against the RabbitMQ
# at 127.0.0.1:5672 (guest/guest) with amqp-tools (amqp-publish,
# amqp-declare-queue, amqp-delete-queue) as the independent client. Every
# test has its own embedded bus and its own queue. Needs
# $CULVERT_BIN/rabbitmq-source and file-sink, jq, timeout and rabbitmqctl.

bats_require_minimum_version 1.5.0

load ../../../scripts/test/common

URL=amqp://guest:guest@127.0.0.1:5672

setup() {
	culvert_setup
	RS="$CULVERT_BIN/rabbitmq-source"
	[ -x "$RS" ]
	Q="culvert-bats-src-$$-$RANDOM$RANDOM"
	# Other tests restart the shared RabbitMQ now and then: wait for it.
	for _ in $(seq 1 60); do
		amqp-declare-queue -u "$URL" -d -q "$Q" >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	amqp-declare-queue -u "$URL" -d -q "$Q"
}

teardown() {
	[ -z "${RESTARTED:-}" ] || rabbitmqctl start_app >/dev/null 2>&1 || true
	[ -z "${PID:-}" ] || kill "$PID" 2>/dev/null || true
	amqp-delete-queue -u "$URL" -q "$Q" >/dev/null 2>&1 || true
}

# topic TOPIC: every value of TOPIC, one per line. (amqp-publish -l keeps
# each line's newline in the message body: blank lines are dropped.)
topic() {
	timeout 30 "$SNK" --topic "$1" --bus "$BUS" --path - --from beginning --stop-at-end --group "bats-$RANDOM$RANDOM" 2>/dev/null | grep -v '^$'
}

# wait_distinct TOPIC N: waits until TOPIC has N distinct values.
wait_distinct() {
	for _ in $(seq 1 300); do
		[ "$(topic "$1" | sort -u | wc -l)" -ge "$2" ] && return 0
		kill -0 "$PID" || { cat "$T/err"; return 1; }
		sleep 0.2
	done
	echo "topic $1 has $(topic "$1" | sort -u | wc -l) distinct values, want $2"
	return 1
}

# ready_messages: how many messages wait in the queue.
ready_messages() {
	rabbitmqctl -q list_queues name messages | awk -v q="$Q" '$1 == q { print $2 }'
}

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
		--reconnect-attempts --topic CULVERT_URL "Exit status"
}

@test "bad flags exit 2, name the option and never show the password" {
	check() {
		local want=$1
		shift
		run --separate-stderr "$RS" --topic t --bus "$BUS" "$@"
		[ "$status" -eq 2 ] || { echo "$*: exit $status"; return 1; }
		[[ "$stderr" == *"$want"* ]] || { echo "$*: stderr does not name $want: $stderr"; return 1; }
		[[ "$stderr" != *s3cret* ]] || { echo "$*: shows the password: $stderr"; return 1; }
	}
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
	wait_distinct orders 10000
	stop_cleanly "$PID" "$T/err"
	PID=
	diff <(seq 1 10000) <(topic orders)
	[ "$(ready_messages)" = 0 ]
	# Routing key and content type come along.
	timeout 30 "$SNK" --topic orders --bus "$BUS" --path - --from beginning --stop-at-end --output full 2>/dev/null | head -1 |
		jq -e --arg q "$Q" '.key == $q and (.headers | from_entries | .["amqp.content_type"] == "text/plain")'
}

@test "a poison message goes to the dead-letter topic and is not requeued" {
	printf '{"n":1}\nnot json\n{"n":2}\n' | amqp-publish -u "$URL" -r "$Q" -l -p
	"$RS" --topic orders --bus "$BUS" --url "$URL" --queue "$Q" --map '.n += 10' 2>"$T/err" &
	PID=$!
	wait_distinct orders 2
	wait_distinct orders.dlq 1
	stop_cleanly "$PID" "$T/err"
	PID=
	[ "$(topic orders | tr -d ' ')" = $'{"n":11}\n{"n":12}' ]
	[[ "$(topic orders.dlq)" == "not json"* ]]
	[ "$(ready_messages)" = 0 ]
}

@test "a RabbitMQ restart mid-stream: the source recovers by itself, nothing lost" {
	seq 1 2000 | amqp-publish -u "$URL" -r "$Q" -l -p
	"$RS" --topic orders --bus "$BUS" --url "$URL" --queue "$Q" --prefetch 20 --batch-size 20 --linger 0s 2>"$T/err" &
	PID=$!
	wait_distinct orders 200
	RESTARTED=1
	rabbitmqctl stop_app >/dev/null
	sleep 1
	rabbitmqctl start_app >/dev/null
	RESTARTED=
	seq 2001 3000 | amqp-publish -u "$URL" -r "$Q" -l -p
	wait_distinct orders 3000
	stop_cleanly "$PID" "$T/err"
	PID=
	diff <(seq 1 3000) <(topic orders | sort -n -u)
	echo "records: $(topic orders | wc -l) for 3000 messages"
	grep -q reconnecting "$T/err"
	[ "$(ready_messages)" = 0 ]
}
