#!/usr/bin/env bats
# The culvert command, run as a user would, on the embedded bus and on Redis
# (the machine's server at 127.0.0.1:6379, keys under a prefix unique to the
# test, deleted afterwards): every subcommand of topics, groups, consume,
# produce and dlq, the refusals (an active group without --force, a reset
# past the end, an unknown topic or group: exit 2 naming it) and a --bus
# password that never shows. Dead letters are made by file-source, active
# group members by file-sink.
# Needs $CULVERT_BIN/culvert, file-source and file-sink (built when
# missing), redis-cli, jq.

bats_require_minimum_version 1.5.0

load common

setup_file() {
	ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
	export ROOT
	: "${CULVERT_BIN:=$ROOT/bin}"
	export CULVERT_BIN
	[ -x "$CULVERT_BIN/culvert" ] || (cd "$ROOT/catalog" && CGO_ENABLED=0 go build -o "$CULVERT_BIN/" ./cmd/culvert) >&2
	for m in sources/file-source sinks/file-sink; do
		[ -x "$CULVERT_BIN/$(basename $m)" ] || make -s -C "$ROOT/$m" build >&2
	done
}

setup() {
	culvert_setup
	C="$CULVERT_BIN/culvert"
	ID="$(date +%s)$RANDOM$RANDOM"
	REDIS_PREFIX="culvert-bats-$ID"
	REDIS="redis://127.0.0.1:6379/?prefix=$REDIS_PREFIX"
	PIDS=()
}

teardown() {
	local p
	for p in "${PIDS[@]}"; do
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	redis-cli -p 6379 --scan --pattern "$REDIS_PREFIX*" 2>/dev/null | xargs -r redis-cli -p 6379 del >/dev/null 2>&1 || true
}

# c BUS ARG...: culvert on BUS.
c() {
	local b=$1
	shift
	timeout 60 "$C" --bus "$b" "$@"
}

# src BUS TOPIC [OPTION...]: publishes standard input's lines to TOPIC on BUS with file-source.
src() {
	local b=$1 topic=$2
	shift 2
	timeout 60 "$SRC" --bus "$b" --topic "$topic" --path - "$@" 2>/dev/null
}

# refused WANT ARG...: culvert ARG... exits 2, names WANT on stderr and prints nothing on stdout.
refused() {
	local want=$1
	shift
	run --separate-stderr timeout 60 "$C" "$@"
	[ "$status" -eq 2 ] || { echo "culvert $*: exit $status: $stderr"; return 1; }
	[[ "$stderr" == *"$want"* ]] || { echo "culvert $*: stderr does not name $want: $stderr"; return 1; }
	[ -z "$output" ] || { echo "culvert $*: wrote to stdout: $output"; return 1; }
}

# json_int NAME: the first integer member NAME of the JSON on standard
# input, exactly (jq reads numbers as float64, and Redis offsets, stream
# IDs, are beyond 2^53).
json_int() {
	grep -o "\"$1\": *[0-9]*" | head -1 | grep -o '[0-9]*$'
}

# active BUS TOPIC GROUP: starts file-sink as an active member of GROUP on
# TOPIC and waits until culvert lists the group as active.
active() {
	"$SNK" --bus "$1" --topic "$2" --group "$3" --path /dev/null --from beginning 2>"$T/sink.err" &
	PIDS+=($!)
	SINK_PID=$!
	for _ in $(seq 1 100); do
		[ "$(c "$1" groups list --topic "$2" -o json | jq -r --arg g "$3" '.[] | select(.group == $g) | .active')" = true ] && return 0
		kill -0 "$SINK_PID" 2>/dev/null || { cat "$T/sink.err"; return 1; }
		sleep 0.1
	done
	echo "group $3 not active after 10s"
	return 1
}

check_topics() {
	local b=$1
	run c "$b" topics create t1 --retention-age 2d --retention-bytes 64MiB
	[ "$status" -eq 0 ]
	[ "$output" = "created topic t1" ]
	refused "already exists" --bus "$b" topics create t1
	printf 'a\nb\nc\n' | c "$b" produce t1
	run c "$b" topics describe t1 -o json
	[ "$status" -eq 0 ]
	[ "$(jq -r '.name, .records, .retention.retention_age, .retention.retention_bytes, (.partitions | length)' <<<"$output" | paste -sd ' ')" = "t1 3 172800000000000 67108864 1" ]
	run c "$b" topics alter t1 --retention-age 7d
	[ "$status" -eq 0 ]
	[[ "$output" == *"7d / 64.0 MiB"* ]]
	run c "$b" topics list
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == TOPIC*RECORDS*BYTES*FIRST*LAST*RETENTION*GROUPS ]]
	[[ "$output" == *"t1 "*" 3 "*"7d / 64.0 MiB"* ]]
	run c "$b" topics describe t1
	[ "$status" -eq 0 ]
	[[ "$output" == *"records:    3"* ]]
	[[ "$output" == *"no consumer groups"* ]]
	refused '"nope"' --bus "$b" topics describe nope
	refused '--retention-age' --bus "$b" topics alter t1 --retention-age soon
	run c "$b" topics delete t1
	[ "$status" -eq 0 ]
	[ "$output" = "deleted topic t1" ]
	[ "$(c "$b" topics list -o json)" = "[]" ]
	refused '"t1"' --bus "$b" topics delete t1
}

check_produce_consume() {
	local b=$1
	printf '{"n":1}\nplain\n{"n":3}\n' | c "$b" produce t --key k1 --header h=v
	run c "$b" consume t
	[ "$status" -eq 0 ]
	[ "$output" = $'{"n":1}\nplain\n{"n":3}' ]
	run c "$b" consume t -n 2 --key --headers
	[ "$status" -eq 0 ]
	[ "$output" = $'[k1] {h="v"} {"n":1}\n[k1] {h="v"} plain' ]
	run c "$b" consume t -o json
	[ "$status" -eq 0 ]
	[ "$(jq -c '[.key, .value, .headers[0].value, .partition]' <<<"${lines[0]}")" = '["k1",{"n":1},"v",0]' ]
	[ "$(jq -r .value <<<"${lines[1]}")" = plain ]
	# --from an offset: the second record's.
	second=$(json_int offset <<<"${lines[1]}")
	run c "$b" consume t --from "$second"
	[ "$status" -eq 0 ]
	[ "$output" = $'plain\n{"n":3}' ]
	run c "$b" consume t --from end
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	run c "$b" consume t --from 1h
	[ "$status" -eq 0 ]
	[ "${#lines[@]}" -eq 3 ]
	# --follow prints what comes, until SIGTERM.
	"$C" --bus "$b" consume t --from end --follow >"$T/follow.out" 2>"$T/follow.err" &
	local pid=$!
	PIDS+=("$pid")
	for _ in $(seq 1 100); do
		[ "$(c "$b" groups list --topic t -o json | jq length)" -ge 1 ] && break
		sleep 0.1
	done
	printf 'x\ny\n' | c "$b" produce t
	for _ in $(seq 1 100); do
		[ "$(grep -c '' "$T/follow.out")" -ge 2 ] && break
		sleep 0.1
	done
	[ "$(cat "$T/follow.out")" = $'x\ny' ]
	stop_cleanly "$pid" "$T/follow.err"
	# A closed pipe (head) ends consume with 0.
	seq 1 100000 | c "$b" produce big
	run bash -c '"$0" --bus "$1" consume big | head -1; exit "${PIPESTATUS[0]}"' "$C" "$b"
	[ "$status" -eq 0 ]
	[ "$output" = 1 ]
	# consume's own groups are gone.
	[ "$(c "$b" groups list -o json)" = "[]" ]
	refused '"nope"' --bus "$b" consume nope
	refused '--from' --bus "$b" consume t --from yesterday
	local end
	end=$(c "$b" topics describe t -o json | json_int end)
	refused 'out of range' --bus "$b" consume t --from $((end + 1000))
}

check_groups() {
	local b=$1
	seq 1 5 | c "$b" produce t
	active "$b" t live
	run c "$b" groups list
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == TOPIC*GROUP*COMMITTED*END*LAG*ACTIVE*MEMBERS ]]
	[[ "$output" == *"t "*"live "*" yes "* ]]
	run c "$b" groups describe live -o json
	[ "$status" -eq 0 ]
	[ "$(jq -r '.[0].topic, .[0].active' <<<"$output" | paste -sd ' ')" = "t true" ]
	refused "--force" --bus "$b" groups reset live --topic t --to-earliest
	refused "--force" --bus "$b" topics delete t
	refused "--force" --bus "$b" groups delete live --topic t
	stop_cleanly "$SINK_PID" "$T/sink.err"
	for _ in $(seq 1 100); do
		[ "$(c "$b" groups describe live -o json | jq -r '.[0].active')" = false ] && break
		sleep 0.1
	done
	run c "$b" groups reset live --topic t --to-earliest -o json
	[ "$status" -eq 0 ]
	[ "$(jq '.[0].lag' <<<"$output")" -eq 5 ]
	run c "$b" groups reset live --topic t --to-latest -o json
	[ "$status" -eq 0 ]
	[ "$(jq '.[0].lag' <<<"$output")" -eq 0 ]
	run c "$b" groups reset live --topic t --to-time 1h -o json
	[ "$status" -eq 0 ]
	[ "$(jq '.[0].lag' <<<"$output")" -eq 5 ]
	# The third record's offset, then one past the end.
	local third end
	third=$(c "$b" consume t -o json | sed -n 3p | json_int offset)
	end=$(c "$b" topics describe t -o json | json_int end)
	run c "$b" groups reset live --topic t --to-offset "$third" -o json
	[ "$status" -eq 0 ]
	[ "$(json_int committed <<<"$output")" = "$third" ]
	refused "out of range" --bus "$b" groups reset live --topic t --to-offset $((end + 1000))
	refused "exactly one" --bus "$b" groups reset live --topic t
	refused '"nope"' --bus "$b" groups describe nope
	refused '"nope"' --bus "$b" groups reset live --topic nope --to-earliest
	run c "$b" groups delete live --topic t
	[ "$status" -eq 0 ]
	refused '"live"' --bus "$b" groups describe live
	# Forced: the topic goes with its active group.
	active "$b" t live2
	run c "$b" topics delete t --force
	[ "$status" -eq 0 ]
	refused '"t"' --bus "$b" topics describe t
}

check_dlq() {
	local b=$1
	printf '{"a":1}\nnot json\n{"a":"x"}\n{"a":"x"}\n' | src "$b" orders --map '.a + 1'
	run c "$b" dlq list -o json
	[ "$status" -eq 0 ]
	[ "$(jq -c '[.[] | [.dlq, .topic, .step, .count]]' <<<"$output")" = '[["orders.dlq","orders","decode",1],["orders.dlq","orders","--map .a + 1",2]]' ]
	run c "$b" dlq list
	[ "$status" -eq 0 ]
	[[ "${lines[0]}" == DLQ*TOPIC*CONNECTOR*STEP*ERROR*COUNT* ]]
	[[ "$output" == *"cannot add"* ]]
	# --where leaves the value that is not JSON out; --map fixes the others.
	run c "$b" dlq replay orders.dlq --where '.a != null' --map '{a: 0}'
	[ "$status" -eq 0 ]
	[[ "$output" == "replayed 2 dead letters of orders.dlq (2 to orders); left out by --where: 1"* ]]
	run c "$b" consume orders --headers
	[ "$status" -eq 0 ]
	[ "${lines[0]}" = '{} 2' ]
	[[ "${lines[1]}" == '{culvert.replayed="orders.dlq@'*'"} {"a":0}' ]]
	[ "${#lines[@]}" -eq 3 ]
	# Never twice: a second replay, even after the group is reset, has nothing to do.
	c "$b" groups reset culvert-replay --topic orders.dlq --to-earliest >/dev/null
	run c "$b" dlq replay orders.dlq -o json
	[ "$status" -eq 0 ]
	[ "$(jq -c '[.replayed, .already_replayed]' <<<"$output")" = '[{},3]' ]
	[ "$(c "$b" consume orders | grep -c '')" -eq 3 ]
	# Another group replays everything again, to another topic.
	run c "$b" dlq replay orders.dlq --group again --to fixed
	[ "$status" -eq 0 ]
	[ "$(c "$b" consume fixed)" = $'not json\n{"a":"x"}\n{"a":"x"}' ]
	refused '"nope.dlq"' --bus "$b" dlq replay nope.dlq
	refused '--map' --bus "$b" dlq replay orders.dlq --map '.a +'
}

@test "embedded: topics create, list, describe, alter, delete" { check_topics "$BUS"; }
@test "redis: topics create, list, describe, alter, delete" { check_topics "$REDIS"; }

@test "embedded: produce and consume (--key, --headers, -o json, -n, --from, --follow)" { check_produce_consume "$BUS"; }
@test "redis: produce and consume (--key, --headers, -o json, -n, --from, --follow)" { check_produce_consume "$REDIS"; }

@test "embedded: groups list, describe, reset, delete; an active group needs --force" { check_groups "$BUS"; }
@test "redis: groups list, describe, reset, delete; an active group needs --force" { check_groups "$REDIS"; }

@test "embedded: dlq list and replay, never twice" { check_dlq "$BUS"; }
@test "redis: dlq list and replay, never twice" { check_dlq "$REDIS"; }

@test "bad usage exits 2 naming the option; a --bus password never shows" {
	refused "a subcommand is needed" topics
	refused "did you mean list" topics lst
	refused "--output" --bus "$BUS" topics list -o yaml
	refused "unknown flag: --nope" --bus "$BUS" consume t --nope
	refused "--bus" --bus 'ftp://u:s3cret@h/' topics list
	run --separate-stderr timeout 60 "$C" --bus 'redis://u:s3cret@127.0.0.1:1/?max_retries=-1&dial_timeout=200ms' topics list
	[ "$status" -eq 1 ]
	[[ "$stderr" == *'u:*****@'* ]]
	[[ "$stderr" != *s3cret* ]]
	# The environment's --bus is redacted too.
	run --separate-stderr env CULVERT_BUS='ftp://u:s3cret@h/' timeout 60 "$C" groups list
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"--bus"* ]]
	[[ "$stderr" != *s3cret* ]]
	run "$C" version
	local re='^culvert [^ ]+ [(]go'
	[[ "$output" =~ $re ]]
	run "$C" --help
	for sub in topics groups consume produce dlq; do [[ "$output" == *"$sub"* ]]; done
}
