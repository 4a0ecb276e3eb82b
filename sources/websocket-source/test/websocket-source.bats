#!/usr/bin/env bats
# websocket-source run as a user would, against a small WebSocket server
# (test/wsserver, built in setup_file). Needs $CULVERT_BIN/websocket-source,
# file-source and file-sink (make test builds them), go, jq and timeout.

bats_require_minimum_version 1.5.0

load ../../../scripts/test/common

setup_file() {
	(cd "$BATS_TEST_DIRNAME/.." && go build -o "$BATS_FILE_TMPDIR/wsserver" ./test/wsserver)
}

setup() {
	culvert_setup
	WS="$CULVERT_BIN/websocket-source"
	WSSERVER="$BATS_FILE_TMPDIR/wsserver"
	[ -x "$WS" ]
}

teardown() {
	for p in ${PIDS:-}; do { kill -9 "$p" && wait "$p"; } 2>/dev/null || true; done
}

# topic TOPIC: every value of TOPIC, one per line.
topic() {
	timeout 30 "$SNK" --topic "$1" --bus "$BUS" --path - --from beginning --stop-at-end --group "bats-$RANDOM$RANDOM" 2>/dev/null
}

# wait_topic TOPIC N: waits until TOPIC has at least N records.
wait_topic() {
	local n=0
	for _ in $(seq 1 150); do
		n=$(topic "$1" | wc -l)
		[ "$n" -ge "$2" ] && return 0
		sleep 0.2
	done
	echo "topic $1 has $n of $2 records"
	return 1
}

# server ADDR ARGS...: starts wsserver on ADDR (127.0.0.1:0 for any port);
# sets SERVER_PID and SERVER_ADDR.
server() {
	local addr=$1 out="$T/server.$RANDOM"
	shift
	"$WSSERVER" -addr "$addr" "$@" >"$out" 2>>"$T/server.err" &
	SERVER_PID=$!
	PIDS="${PIDS:-} $SERVER_PID"
	for _ in $(seq 1 100); do
		[ -s "$out" ] && break
		kill -0 "$SERVER_PID" 2>/dev/null || break
		sleep 0.1
	done
	SERVER_ADDR=$(head -1 "$out")
	[ -n "$SERVER_ADDR" ] || { cat "$T/server.err"; return 1; }
}

@test "metadata, version and --help" {
	run --separate-stderr "$WS" metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.name == "websocket-source" and .direction == "source" and (.schema.required | index("url") != null)'
	echo "$output" | jq -e '.schema.properties.header.writeOnly == true and .schema.properties.ping_interval.default == "30s" and .schema.properties.max_retries.default == 0'
	assert_version "$WS" websocket-source
	assert_help "$WS" Examples: --url --header --subscribe --ping-interval --max-retries --read-limit --tls-ca CULVERT_URL "Exit status"
}

@test "bad flags and values exit 2 and name the option" {
	check() {
		local want=$1
		shift
		run --separate-stderr "$WS" --topic t --bus "$BUS" "$@"
		[ "$status" -eq 2 ] || { echo "$*: exit $status"; return 1; }
		[[ "$stderr" == *"$want"* ]] || { echo "$*: stderr does not name $want: $stderr"; return 1; }
		[ -z "$output" ] || { echo "$*: wrote to stdout: $output"; return 1; }
	}
	check --url
	check --url --url http://example.com/
	check --header --url ws://h/ --header 'Authorization Bearer s3cr3t'
	[[ "$stderr" != *s3cr3t* ]]
	check --ping-interval --url ws://h/ --ping-interval soon
	check --max-retries --url ws://h/ --max-retries -2
	check --read-limit --url ws://h/ --read-limit 0
	check --tls-key --url wss://h/ --tls-cert c.pem
}

@test "subscribe messages after each connect; a server restart on the same port loses nothing" {
	server 127.0.0.1:0 -feed -from 0 -count 100 -subscribe 2 -subs "$T/subs"
	addr=$SERVER_ADDR
	"$WS" --topic feed --bus "$BUS" --url "ws://$addr/ws?token=t0k-e9" --linger 0s \
		--subscribe '{"op":"subscribe","channel":"orders"}' --subscribe second >/dev/null 2>"$T/src.err" 3>&- &
	src=$!
	PIDS="$PIDS $src"
	wait_topic feed 100 || { cat "$T/src.err"; false; }
	{ kill -9 "$SERVER_PID" && wait "$SERVER_PID"; } 2>/dev/null || true
	server "$addr" -feed -from 100 -count 100 -subscribe 2 -subs "$T/subs"
	[ "$SERVER_ADDR" = "$addr" ]
	wait_topic feed 200 || { cat "$T/src.err"; false; }
	stop_cleanly "$src" "$T/src.err"
	# Every message of both servers, once, in order.
	diff <(topic feed) <(for i in $(seq 0 199); do echo "msg-$i"; done)
	# The subscribe messages were sent on both connections, in order.
	[ "$(cat "$T/subs")" = "$(printf '%s\n' '{"op":"subscribe","channel":"orders"}' second '{"op":"subscribe","channel":"orders"}' second)" ]
	grep -q 'connection lost, reconnecting' "$T/src.err"
	grep -q '"message":"reconnected"' "$T/src.err"
	! grep -q t0k-e9 "$T/src.err"
}

@test "--max-retries: nothing listening, exit 1 with one clear message" {
	server 127.0.0.1:0 -feed -count 0
	addr=$SERVER_ADDR
	{ kill -9 "$SERVER_PID" && wait "$SERVER_PID"; } 2>/dev/null || true
	run --separate-stderr timeout 30 "$WS" --topic t --bus "$BUS" --url "ws://user:pa55-x@$addr/" --max-retries 2
	[ "$status" -eq 1 ]
	[ "$(echo "$stderr" | grep -c 'giving up after 3 failed connection attempts (--max-retries 2)')" -eq 1 ]
	[[ "$stderr" == *"ws://user:*****@$addr/"* ]]
	[[ "$stderr" != *pa55-x* ]]
}
