#!/usr/bin/env bats
# redis-source run as a user would, against the machine's Redis
# (127.0.0.1:6379) and private redis-server processes. redis-cli feeds it
# and checks what it acknowledged; helpers are in
# common/client/redis/redistest/redis.bash. Needs
# $CULVERT_BIN/{redis-source,file-source,file-sink}, redis-cli, redis-server, jq, curl.

bats_require_minimum_version 1.5.0

load ../../../scripts/test/common
load ../../../common/client/redis/redistest/redis

setup_file() {
	redis_setup_file
}

setup() {
	culvert_setup
	redis_setup
	RS="$CULVERT_BIN/redis-source"
}

teardown() {
	redis_teardown
}

@test "metadata names the connector and its options; the URL is write-only" {
	run --separate-stderr "$RS" metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.name == "redis-source" and .direction == "source"'
	echo "$output" | jq -e '.schema.properties | has("url") and has("stream") and has("list") and has("channel") and has("group") and has("consumer") and has("start") and has("claim_idle") and has("value_field") and has("key_field") and has("processing") and has("pop") and has("count")'
	echo "$output" | jq -e '.schema.properties.url.writeOnly == true and .schema.properties.url.default == "redis://127.0.0.1:6379"'
	echo "$output" | jq -e '.schema.properties.start.enum == ["all", "new"]'
}

@test "version and --help" {
	assert_version "$RS" redis-source
	assert_help "$RS" Examples: --url --stream --list --channel --group --consumer --start --claim-idle --value-field --key-field --processing --pop --count at-most-once
}

@test "bad flags exit 2 and name the option" {
	check() { assert_bad_option "$1" "$RS" --topic t --bus "$BUS" "${@:2}"; }
	check --stream
	check --stream --stream s --channel c
	check --group --list l --group g
	check --pop --stream s --pop left
	check --start --stream s --start sometime
	check --claim-idle --stream s --claim-idle 0s
	check --url --stream s --url 'redis://me:s3cret@h?bogus=1'
	[[ "$stderr" != *s3cret* ]]
}

@test "a password in --url shows neither in logs, errors nor config" {
	run --separate-stderr "$RS" --topic t --bus "$BUS" --stream s --url 'redis://me:s3cret@127.0.0.1:1' --log-level debug --max-retries 1
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"127.0.0.1:1"* ]]
	[[ "$stderr" != *s3cret* ]]
	run --separate-stderr "$RS" config --topic t --stream s --url 'redis://me:s3cret@127.0.0.1:1'
	[ "$status" -eq 0 ]
	[[ "$output" != *s3cret* ]]
}

@test "stream: 10,000 entries in order, acknowledged, resumed by the consumer group" {
	xadd_seq "$ID:s" 1 10000
	"$RS" --topic orders --bus "$BUS" --stream "$ID:s" --group g --value-field v >/dev/null 2>"$T/src.err" &
	pid=$!
	PIDS+=($pid)
	wait_topic orders 10000 $pid "$T/src.err" >/dev/null
	stop_cleanly $pid "$T/src.err"
	diff <(seq 1 10000) <(read_topic orders | jq .n)
	[ "$(pending "$ID:s" g)" -eq 0 ]
	[ "$(group_field "$ID:s" g lag)" -eq 0 ]
	read_topic orders --output full | head -1 | jq -e --arg id "$(rcli XRANGE "$ID:s" - + COUNT 1 | head -1)" '.headers == [{"key": "redis.id", "value": $id}]'
	# A second run publishes only what came since.
	xadd_seq "$ID:s" 10001 10003
	"$RS" --topic orders --bus "$BUS" --stream "$ID:s" --group g --value-field v >/dev/null 2>"$T/src2.err" &
	pid=$!
	PIDS+=($pid)
	wait_topic orders 10003 $pid "$T/src2.err" >/dev/null
	stop_cleanly $pid "$T/src2.err"
	diff <(seq 1 10003) <(read_topic orders | jq .n)
	[ "$(pending "$ID:s" g)" -eq 0 ]
}

@test "stream: every field as a JSON object, a field as the key" {
	rcli XADD "$ID:s" '*' id o-1 amount 12.5 >/dev/null
	"$RS" --topic j --bus "$BUS" --stream "$ID:s" --key-field id >/dev/null 2>"$T/src.err" &
	pid=$!
	PIDS+=($pid)
	wait_topic j 1 $pid "$T/src.err" >/dev/null
	stop_cleanly $pid "$T/src.err"
	[ "$(read_topic j)" = '{"amount":"12.5","id":"o-1"}' ]
	read_topic j --output full | jq -e '.key == "o-1"'
	# The default group is culvert_ and the topic.
	[ "$(pending "$ID:s" culvert_j)" -eq 0 ]
}

@test "stream: kill -9 with entries pending, then another consumer claims them: none lost" {
	xadd_seq "$ID:s" 1 100000
	# Kill later and later until a kill lands with entries delivered and
	# not acknowledged.
	for delay in 0.1 0.15 0.2 0.25 0.3 0.4 0.5 0.6 0.8 1; do
		"$RS" --topic k --bus "$BUS" --stream "$ID:s" --group g --consumer c1 --value-field v --count 100 >/dev/null 2>>"$T/c1.err" &
		pid=$!
		sleep "$delay"
		kill -9 $pid
		wait $pid || true
		[ "$(pending "$ID:s" g)" -gt 0 ] && break
	done
	left=$(pending "$ID:s" g)
	[ "$left" -gt 0 ] || { echo "no kill left entries pending"; cat "$T/c1.err"; false; }
	echo "$left entries pending after kill -9"
	[ "$(rcli XPENDING "$ID:s" g - + 10 c1 | wc -l)" -gt 0 ]
	# c2 takes over what c1 left pending once idle for --claim-idle.
	"$RS" --topic k --bus "$BUS" --stream "$ID:s" --group g --consumer c2 --value-field v --claim-idle 1s >/dev/null 2>"$T/c2.err" &
	pid=$!
	PIDS+=($pid)
	wait_distinct k 100000 $pid "$T/c2.err" >/dev/null
	for _ in $(seq 1 50); do [ "$(pending "$ID:s" g)" -eq 0 ] && break; sleep 0.1; done
	stop_cleanly $pid "$T/c2.err"
	grep -q "claimed entries pending longer than --claim-idle" "$T/c2.err"
	[ "$(pending "$ID:s" g)" -eq 0 ]
	[ "$(group_field "$ID:s" g lag)" -eq 0 ]
	# Every entry, in order of first appearance but for the claimed ones
	# (at-least-once: an entry on the bus before the kill may come again).
	diff <(seq 1 100000) <(read_topic k | jq .n | sort -n -u)
}

@test "stream: a poison entry goes to the dead-letter topic and is acknowledged" {
	rcli XADD "$ID:s" '*' v '{"a":1}' >/dev/null
	rcli XADD "$ID:s" '*' v 'not json' >/dev/null
	rcli XADD "$ID:s" '*' v '{"a":2}' >/dev/null
	"$RS" --topic p --bus "$BUS" --stream "$ID:s" --group g --value-field v --map '.b = 1' >/dev/null 2>"$T/src.err" &
	pid=$!
	PIDS+=($pid)
	wait_topic p.dlq 1 $pid "$T/src.err" >/dev/null
	wait_topic p 2 $pid "$T/src.err" >/dev/null
	stop_cleanly $pid "$T/src.err"
	[ "$(read_topic p | jq -c -s .)" = '[{"a":1,"b":1},{"a":2,"b":1}]' ]
	[ "$(read_topic p.dlq)" = "not json" ]
	read_topic p.dlq --output full | jq -e '(.headers | map({(.key): .value}) | add) as $h | $h["culvert.stage"] == "transform"'
	[ "$(pending "$ID:s" g)" -eq 0 ]
}

@test "list: a reliable queue; after kill -9 the processing list is delivered again first" {
	lpush_seq "$ID:l" 1 100000
	for delay in 0.1 0.15 0.2 0.25 0.3 0.4 0.5 0.6 0.8 1; do
		"$RS" --topic q --bus "$BUS" --list "$ID:l" --count 100 >/dev/null 2>>"$T/l1.err" &
		pid=$!
		sleep "$delay"
		kill -9 $pid
		wait $pid || true
		[ "$(rcli LLEN "$ID:l:processing")" -gt 0 ] && break
	done
	left=$(rcli LLEN "$ID:l:processing")
	[ "$left" -gt 0 ] || { echo "no kill left items in the processing list"; cat "$T/l1.err"; false; }
	"$RS" --topic q --bus "$BUS" --list "$ID:l" >/dev/null 2>"$T/l2.err" &
	pid=$!
	PIDS+=($pid)
	wait_distinct q 100000 $pid "$T/l2.err" >/dev/null
	for _ in $(seq 1 50); do [ "$(rcli LLEN "$ID:l:processing")" -eq 0 ] && break; sleep 0.1; done
	stop_cleanly $pid "$T/l2.err"
	grep -q '"redelivered":'"$left" "$T/l2.err"
	[ "$(rcli EXISTS "$ID:l" "$ID:l:processing")" -eq 0 ]
	diff <(seq 1 100000) <(read_topic q | jq .n | sort -n -u)
}

@test "pubsub: channels and patterns, the channel as key (at-most-once)" {
	port=$(free_port)
	"$RS" --topic ps --bus "$BUS" --channel "$ID:a" --channel "$ID:p:*" --metrics-addr "127.0.0.1:$port" >/dev/null 2>"$T/src.err" &
	pid=$!
	PIDS+=($pid)
	for _ in $(seq 1 100); do [ "$(rcli PUBSUB NUMPAT)" -ge 1 ] && [ "$(rcli PUBSUB NUMSUB "$ID:a" | tail -1)" -eq 1 ] && break; sleep 0.1; done
	curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null
	seq 1 500 | awk -v c="$ID:a" '{ printf "PUBLISH %s \047{\"n\":%d}\047\n", c, $1 }' | rcli >/dev/null
	rcli PUBLISH "$ID:p:x" '{"n":501}' >/dev/null
	rcli PUBLISH "$ID:other" '{"n":0}' >/dev/null
	wait_topic ps 501 $pid "$T/src.err" >/dev/null
	stop_cleanly $pid "$T/src.err"
	diff <(seq 1 501) <(read_topic ps | jq .n)
	[ "$(read_topic ps --output full | jq -r .key | uniq | paste -sd,)" = "$ID:a,$ID:p:x" ]
	grep -q "at-most-once" "$T/src.err"
}

@test "a restart of the Redis server mid-stream: the source recovers by itself, nothing lost" {
	RPORT=$(free_port)
	start_redis "$RPORT" "$T/redis"
	xadd_seq "$ID:r" 1 3000
	"$RS" --topic r --bus "$BUS" --url "redis://127.0.0.1:$RPORT" --stream "$ID:r" --group g --value-field v >/dev/null 2>"$T/src.err" &
	pid=$!
	PIDS+=($pid)
	wait_topic r 1000 $pid "$T/src.err" >/dev/null
	stop_redis
	sleep 1.5
	start_redis "$RPORT" "$T/redis"
	xadd_seq "$ID:r" 3001 10000
	wait_distinct r 10000 $pid "$T/src.err" >/dev/null
	for _ in $(seq 1 50); do [ "$(pending "$ID:r" g)" -eq 0 ] && break; sleep 0.1; done
	stop_cleanly $pid "$T/src.err"
	grep -q "failed, retrying" "$T/src.err"
	grep -q "reconnected to redis" "$T/src.err"
	[ "$(pending "$ID:r" g)" -eq 0 ]
	diff <(seq 1 10000) <(read_topic r | jq .n | awk '!seen[$0]++')
	stop_redis
}
