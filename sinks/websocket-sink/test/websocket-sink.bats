#!/usr/bin/env bats
# websocket-sink run as a user would. Its clients are websocket-source
# processes (each publishing what it receives to its own topic); its remote
# server is the test server of websocket-source (test/wsserver). Needs
# $CULVERT_BIN/websocket-sink, file-source and file-sink (make test builds
# them), go (websocket-source is built when $CULVERT_BIN lacks it), jq and
# timeout.

bats_require_minimum_version 1.5.0

load ../../../scripts/test/common

setup_file() {
	local src="$BATS_TEST_DIRNAME/../../../sources/websocket-source"
	build_helper "$src" ./test/wsserver "$BATS_FILE_TMPDIR/wsserver"
	if [ ! -x "$CULVERT_BIN/websocket-source" ]; then
		build_helper "$src" . "$BATS_FILE_TMPDIR/websocket-source"
	fi
}

setup() {
	culvert_setup
	WSK="$CULVERT_BIN/websocket-sink"
	WSRC="$CULVERT_BIN/websocket-source"
	[ -x "$WSRC" ] || WSRC="$BATS_FILE_TMPDIR/websocket-source"
	WSSERVER="$BATS_FILE_TMPDIR/wsserver"
	[ -x "$WSK" ] && [ -x "$WSRC" ]
}

teardown() {
	for p in ${PIDS:-}; do { kill -9 "$p" && wait "$p"; } 2>/dev/null || true; done
}

@test "metadata, version and --help" {
	run --separate-stderr "$WSK" metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.name == "websocket-sink" and .direction == "sink"'
	echo "$output" | jq -e '.schema.properties.slow_client.enum == ["drop", "disconnect"] and .schema.properties.wait_for_clients.default == 0
		and .schema.properties.client_buffer.default == 1024 and .schema.properties.header.writeOnly == true'
	assert_version "$WSK" websocket-sink
	assert_help "$WSK" Examples: --listen --path --url --client-buffer --slow-client --wait-for-clients --tls-cert --tls-key --tls-ca \
		--header --max-retries CULVERT_WEBSOCKET_SINK_LISTEN "Exit status"
}

@test "bad flags and values exit 2 and name the option" {
	check() { assert_bad_option "$1" "$WSK" --topic t --bus "$BUS" "${@:2}"; }
	check --listen
	check --url --listen :8080 --url ws://h/
	check --listen --listen 8080
	check --path --listen :8080 --path ws
	check --slow-client --listen :8080 --slow-client block
	check --client-buffer --listen :8080 --client-buffer 0
	check --wait-for-clients --url ws://h/ --wait-for-clients 1
	check --tls-key --listen :8080 --tls-cert c.pem
	check --url --url https://h/
	check --header --url ws://h/ --header 'X-Token s3cr3t'
	[[ "$stderr" != *s3cr3t* ]]
}

@test "broadcast to two clients (websocket-source processes): each gets every record, in order" {
	addr=127.0.0.1:$(free_port)
	seq 1 2000 | sed 's/^/{"n":/; s/$/}/' >"$T/in.jsonl"
	"$WSK" --topic in --bus "$BUS" --listen "$addr" --path /orders --wait-for-clients 2 --from beginning >/dev/null 2>"$T/sink.err" 3>&- &
	sink=$!
	PIDS="$sink"
	# Published before any client connects: held until both are there.
	"$SRC" --topic in --bus "$BUS" --path "$T/in.jsonl" 2>/dev/null
	for c in a b; do
		"$WSRC" --topic "$c" --bus "$BUS" --url "ws://$addr/orders" --linger 0s >/dev/null 2>"$T/$c.err" 3>&- &
		PIDS="$PIDS $!"
		eval "pid_$c=$!"
	done
	wait_topic a 2000 || { cat "$T/sink.err" "$T/a.err"; false; }
	wait_topic b 2000 || { cat "$T/sink.err" "$T/b.err"; false; }
	# More records while both are connected.
	seq 2001 2500 | sed 's/^/{"n":/; s/$/}/' >"$T/more.jsonl"
	"$SRC" --topic in --bus "$BUS" --path "$T/more.jsonl" 2>/dev/null
	wait_topic a 2500
	wait_topic b 2500
	# Each client connected once: no one was dropped as slow.
	[ "$(grep -c '"message":"client connected"' "$T/sink.err")" -eq 2 ]
	stop_cleanly "$sink" "$T/sink.err"
	stop_cleanly "$pid_a" "$T/a.err"
	stop_cleanly "$pid_b" "$T/b.err"
	cat "$T/in.jsonl" "$T/more.jsonl" >"$T/want"
	diff "$T/want" <(read_topic a)
	diff "$T/want" <(read_topic b)
	grep -q 'waiting for clients' "$T/sink.err"
}

@test "--url pushes every record to a remote server, in order, and commits" {
	out="$T/server.out"
	"$WSSERVER" -addr 127.0.0.1:0 -collect "$out" >"$T/addr" 2>/dev/null &
	PIDS="$!"
	for _ in $(seq 1 100); do [ -s "$T/addr" ] && break; sleep 0.05; done
	addr=$(head -1 "$T/addr")
	seq 1 1000 >"$T/in"
	"$SRC" --topic in --bus "$BUS" --path "$T/in" 2>/dev/null
	run --separate-stderr timeout 60 "$WSK" --topic in --bus "$BUS" --url "ws://$addr/in?token=tk-3e" --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	[[ "$stderr" != *tk-3e* ]]
	diff "$T/in" "$out"
	# Committed: a second run writes nothing more.
	run --separate-stderr timeout 60 "$WSK" --topic in --bus "$BUS" --url "ws://$addr/in" --stop-at-end
	[ "$status" -eq 0 ]
	[ "$(wc -l <"$out")" -eq 1000 ]
}

@test "--url with nothing listening and --max-retries: exit 1 with one clear message" {
	addr=127.0.0.1:$(free_port)
	run --separate-stderr timeout 30 "$WSK" --topic in --bus "$BUS" --url "ws://$addr/" --max-retries 1
	[ "$status" -eq 1 ]
	[ "$(echo "$stderr" | grep -c 'giving up after 2 failed connection attempts (--max-retries 1)')" -eq 1 ]
}
