#!/usr/bin/env bats
# redis-sink run as a user would, against the machine's Redis
# (127.0.0.1:6379) and private redis-server processes. What the sink wrote
# is read with redis-cli; helpers are in
# common/client/redis/redistest/redis.bash. Needs
# $CULVERT_BIN/{redis-sink,file-source,file-sink,culvert}, redis-cli, redis-server, jq.

bats_require_minimum_version 1.5.0

load ../../../scripts/test/common
load ../../../common/client/redis/redistest/redis

setup_file() {
	redis_setup_file
}

setup() {
	culvert_setup
	redis_setup
	RK="$CULVERT_BIN/redis-sink"
}

teardown() {
	redis_teardown
}

# produce TOPIC KEY VALUE [--header NAME=VALUE...]: one record with that key.
produce() {
	printf '%s\n' "$3" | "$CULVERT_BIN/culvert" produce "$1" --bus "$BUS" --key "$2" "${@:4}"
}

@test "metadata names the connector and its options; the URL is write-only" {
	run --separate-stderr "$RK" metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.name == "redis-sink" and .direction == "sink"'
	echo "$output" | jq -e '.schema.properties | has("url") and has("command") and has("key") and has("key_from_record") and has("key_prefix") and has("value_field") and has("fields") and has("maxlen") and has("ttl")'
	echo "$output" | jq -e '.schema.properties.url.writeOnly == true and .schema.properties.url.default == "redis://127.0.0.1:6379"'
	echo "$output" | jq -e '.schema.properties.command.enum == ["xadd", "lpush", "rpush", "publish", "set", "hset"]'
}

@test "version and --help" {
	assert_version "$RK" redis-sink
	assert_help "$RK" Examples: --url --command --key --key-from-record --key-prefix --value-field --fields --maxlen --ttl --max-retries --group --from
}

@test "bad flags exit 2 and name the option" {
	check() { assert_bad_option "$1" "$RK" --topic t --bus "$BUS" "${@:2}"; }
	check --key
	check --command --command sadd --key k
	check --key-from-record --key k --key-from-record
	check --key --command set --key k
	check --ttl --key k --ttl 1h
	check --maxlen --command rpush --key k --maxlen 5
	check --fields --command publish --key k --fields
	check --url --key k --url 'redis://me:s3cret@h?bogus=1'
	[[ "$stderr" != *s3cret* ]]
}

@test "a password in --url shows neither in logs, errors nor config" {
	run --separate-stderr "$RK" --topic t --bus "$BUS" --key k --url 'redis://me:s3cret@127.0.0.1:1' --log-level debug --max-retries 1
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"127.0.0.1:1"* ]]
	[[ "$stderr" != *s3cret* ]]
	run --separate-stderr "$RK" config --topic t --key k --url 'redis://me:s3cret@127.0.0.1:1'
	[ "$status" -eq 0 ]
	[[ "$output" != *s3cret* ]]
}

@test "xadd: 10,000 records in order, committed; --maxlen trims about" {
	seq 1 10000 | sed 's/.*/{"n":&}/' | publish orders
	run --separate-stderr "$RK" --topic orders --bus "$BUS" --key "$ID:s" --maxlen 100000 --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	[ "$(rcli XLEN "$ID:s")" -eq 10000 ]
	diff <(seq 1 10000) <(rcli --raw XRANGE "$ID:s" - + | awk 'prev == "value" { print } { prev = $0 }' | jq .n)
	# Everything was committed: a second run writes nothing more.
	run --separate-stderr "$RK" --topic orders --bus "$BUS" --key "$ID:s" --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	[ "$(rcli XLEN "$ID:s")" -eq 10000 ]
	# --maxlen trims about: 2,000 more into a stream kept to about 500.
	seq 1 2000 | sed 's/.*/{"n":&}/' | publish more
	run --separate-stderr "$RK" --topic more --bus "$BUS" --key "$ID:trim" --maxlen 500 --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	n=$(rcli XLEN "$ID:trim")
	[ "$n" -ge 500 ] && [ "$n" -lt 700 ]
	[ "$(rcli --raw XREVRANGE "$ID:trim" + - COUNT 1 | sed -n 3p)" = '{"n":2000}' ]
}

@test "xadd --fields: one field a member of the value" {
	printf '{"id":"o1","amount":12.5,"tags":["a"]}\n' | publish f
	run --separate-stderr "$RK" --topic f --bus "$BUS" --key "$ID:f" --fields --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	[ "$(rcli --raw XRANGE "$ID:f" - + | tail -n +2 | paste -sd' ')" = 'id o1 amount 12.5 tags ["a"]' ]
}

@test "lpush, rpush, set with --ttl, hset by record key" {
	printf '{"n":1}\n{"n":2}\n' | publish l
	run --separate-stderr "$RK" --topic l --bus "$BUS" --command lpush --key "$ID:l" --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	run --separate-stderr "$RK" --topic l --bus "$BUS" --group g2 --command rpush --key "$ID:r" --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	[ "$(rcli LRANGE "$ID:l" 0 -1 | paste -sd,)" = '{"n":2},{"n":1}' ]
	[ "$(rcli LRANGE "$ID:r" 0 -1 | paste -sd,)" = '{"n":1},{"n":2}' ]
	produce k a '{"id":"a","price":1}'
	produce k b '{"id":"b","price":2}'
	produce k a '{"id":"a","price":3}' --header src=bats
	run --separate-stderr "$RK" --topic k --bus "$BUS" --command set --key-prefix "$ID:price:" --ttl 1h --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	[ "$(rcli GET "$ID:price:a")" = '{"id":"a","price":3}' ]
	[ "$(rcli GET "$ID:price:b")" = '{"id":"b","price":2}' ]
	ttl=$(rcli TTL "$ID:price:a")
	[ "$ttl" -gt 3500 ] && [ "$ttl" -le 3600 ]
	run --separate-stderr "$RK" --topic k --bus "$BUS" --group g2 --command hset --key-prefix "$ID:h:" --fields --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	# The last write of a wins; its header is a field too.
	[ "$(rcli HGETALL "$ID:h:a" | paste -sd' ')" = 'id a price 3 src bats' ]
	[ "$(rcli TTL "$ID:h:a")" -eq -1 ]
}

@test "publish: a subscriber gets each record" {
	redis-cli -h 127.0.0.1 -p 6379 SUBSCRIBE "$ID:ch" >"$T/got" 3>&- &
	sub=$!
	PIDS+=($sub)
	for _ in $(seq 1 100); do [ "$(rcli PUBSUB NUMSUB "$ID:ch" | tail -1)" -eq 1 ] && break; sleep 0.1; done
	printf 'one\ntwo\nthree\n' | publish p
	run --separate-stderr "$RK" --topic p --bus "$BUS" --command publish --key "$ID:ch" --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	for _ in $(seq 1 50); do [ "$(grep -c '^three$' "$T/got")" -eq 1 ] && break; sleep 0.1; done
	[ "$(grep -A1 -x message "$T/got" | grep -vx -- '--' | awk 'NR % 2 == 0' | paste -sd,)" = "$ID:ch,$ID:ch,$ID:ch" ]
	[ "$(grep -A2 -x message "$T/got" | grep -vx -- '--' | awk 'NR % 3 == 0' | paste -sd,)" = one,two,three ]
}

@test "a record Redis refuses (WRONGTYPE) or without a key goes to the dead-letter topic; the others are written" {
	rcli SET "$ID:str" x >/dev/null
	produce d "$ID:ok" '{"n":1}'
	produce d "$ID:str" '{"n":2}'
	printf '{"n":3}\n' | publish d
	run --separate-stderr "$RK" --topic d --bus "$BUS" --key-from-record --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	[ "$(rcli XLEN "$ID:ok")" -eq 1 ]
	[ "$(rcli GET "$ID:str")" = x ]
	[ "$(read_topic d.dlq | jq -c -s .)" = '[{"n":2},{"n":3}]' ]
	read_topic d.dlq --output full | head -1 | jq -e '(.headers | map({(.key): .value}) | add) as $h
		| $h["culvert.stage"] == "sink" and ($h["culvert.error"] | test("WRONGTYPE"))'
}

@test "a restart of the Redis server mid-stream: the sink recovers by itself, nothing lost" {
	RPORT=$(free_port)
	start_redis "$RPORT" "$T/redis"
	seq 1 3000 | sed 's/.*/{"n":&}/' | publish r
	"$RK" --topic r --bus "$BUS" --url "redis://127.0.0.1:$RPORT" --key "$ID:r" --from beginning >/dev/null 2>"$T/snk.err" &
	pid=$!
	PIDS+=($pid)
	for _ in $(seq 1 100); do [ "$(rcli XLEN "$ID:r")" -ge 3000 ] && break; sleep 0.1; done
	stop_redis
	seq 3001 6000 | sed 's/.*/{"n":&}/' | publish r
	sleep 1
	start_redis "$RPORT" "$T/redis"
	seq 6001 10000 | sed 's/.*/{"n":&}/' | publish r
	for _ in $(seq 1 300); do [ "$(rcli XLEN "$ID:r")" -ge 10000 ] && break; sleep 0.1; done
	stop_cleanly $pid "$T/snk.err"
	grep -q "writing to redis failed, retrying" "$T/snk.err"
	grep -q "reconnected to redis" "$T/snk.err"
	# Every record, in order of first appearance (at-least-once: a batch
	# retried after the outage may be written twice).
	diff <(seq 1 10000) <(rcli --raw XRANGE "$ID:r" - + | awk 'prev == "value" { print } { prev = $0 }' | jq .n | awk '!seen[$0]++')
	[ -z "$(read_topic r.dlq)" ]
	stop_redis
}
