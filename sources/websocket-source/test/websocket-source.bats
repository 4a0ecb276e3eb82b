#!/usr/bin/env bats
# websocket-source run as a user would, against a small WebSocket server
# (test/wsserver, built in setup_file). Needs $CULVERT_BIN/websocket-source,
# file-source and file-sink (make test builds them), go, jq and timeout.

bats_require_minimum_version 1.5.0

load ../../../scripts/test/common

setup_file() {
	build_helper "$BATS_TEST_DIRNAME/.." ./test/wsserver "$BATS_FILE_TMPDIR/wsserver"
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

# server ADDR ARGS...: starts wsserver on ADDR (127.0.0.1:0 for any port);
# sets SERVER_PID and SERVER_ADDR.
server() {
	local addr=$1 out="$T/server.$RANDOM"
	shift
	"$WSSERVER" -addr "$addr" "$@" >"$out" 2>>"$T/server.err" &
	SERVER_PID=$!
	PIDS="${PIDS:-} $SERVER_PID"
	wait_file "$out" "$SERVER_PID" || true
	SERVER_ADDR=$(head -1 "$out")
	[ -n "$SERVER_ADDR" ] || { cat "$T/server.err"; return 1; }
}

@test "metadata, version and --help" {
	run --separate-stderr "$WS" metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.name == "websocket-source" and .direction == "source" and (.schema.required | index("url") != null)'
	echo "$output" | jq -e '.schema.properties.header.writeOnly == true and .schema.properties.ping_interval.default == "30s" and .schema.properties.max_retries.default == 0'
	assert_version "$WS" websocket-source
	assert_help "$WS" Examples: --url --header --subscribe --ping-interval --max-retries --read-limit --tls-ca CULVERT_WEBSOCKET_SOURCE_URL "Exit status"
}

@test "bad flags and values exit 2 and name the option" {
	check() { assert_bad_option "$1" "$WS" --topic t --bus "$BUS" "${@:2}"; }
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
	diff <(read_topic feed) <(for i in $(seq 0 199); do echo "msg-$i"; done)
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
