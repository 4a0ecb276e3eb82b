#!/usr/bin/env bats
# --metrics-addr: health, metrics, status, pause and resume of a running
# file-sink, over HTTP (bash's /dev/tcp: no curl needed). Needs
# $CULVERT_BIN/file-sink and $CULVERT_BIN/file-source, jq and timeout.

bats_require_minimum_version 1.5.0

load ../../../scripts/test/common

setup() {
	culvert_setup
	pid=""
}

teardown() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -9 "$pid"
	fi
}

# http METHOD PATH: sets HTTP_STATUS and HTTP_BODY; fails if nothing listens.
http() {
	{ exec 5<>"/dev/tcp/127.0.0.1/$PORT"; } 2>/dev/null || return 1
	printf '%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n' "$1" "$2" >&5
	local resp
	resp=$(timeout 10 cat <&5)
	exec 5<&-
	HTTP_STATUS=$(printf '%s\n' "$resp" | head -n 1 | cut -d' ' -f2)
	HTTP_BODY=${resp#*$'\r\n\r\n'}
}

# start_sink ARGS...: starts file-sink on a free port, waits until /readyz
# answers 200. A random port is tried again when it is taken.
start_sink() {
	for attempt in 1 2 3 4 5; do
		PORT=$((20000 + RANDOM % 40000))
		"$SNK" --topic t --bus "$BUS" --path "$T/out" --from beginning --log-format json \
			--metrics-addr "127.0.0.1:$PORT" "$@" >/dev/null 2>"$T/snk.err" 3>&- &
		pid=$!
		for try in $(seq 1 100); do
			if ! kill -0 "$pid" 2>/dev/null; then
				break
			fi
			if http GET /readyz && [ "$HTTP_STATUS" = 200 ]; then
				return 0
			fi
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null || ! grep -q "address already in use" "$T/snk.err"; then
			cat "$T/snk.err"
			echo "file-sink did not become ready"
			return 1
		fi
	done
	return 1
}

# lines N: waits until the output has N lines.
lines() {
	for try in $(seq 1 100); do
		[ "$(wc -l <"$T/out" 2>/dev/null || echo 0)" -ge "$1" ] && return 0
		sleep 0.1
	done
	echo "output has $(wc -l <"$T/out") lines, want $1"
	return 1
}

# stop: SIGTERM, then the exit status must be 0.
stop() {
	local p=$pid
	pid=""
	stop_cleanly "$p" "$T/snk.err"
}

@test "/healthz, /readyz, /metrics and /status of a running sink; SIGTERM exits 0 and closes the server" {
	publish t '{"n":1}' '{"n":2}' '{"n":3}'
	start_sink
	http GET /healthz
	[ "$HTTP_STATUS" = 200 ]
	lines 3
	publish t '{"n":4}'
	lines 4
	http GET /metrics
	[ "$HTTP_STATUS" = 200 ]
	echo "$HTTP_BODY" | grep -Fx 'culvert_records_sent_total{connector="file-sink",instance="file-sink"} 4'
	echo "$HTTP_BODY" | grep -Fx 'culvert_records_received_total{connector="file-sink",instance="file-sink"} 4'
	echo "$HTTP_BODY" | grep -Fx 'culvert_bytes_sent_total{connector="file-sink",instance="file-sink"} 28'
	echo "$HTTP_BODY" | grep -F 'culvert_batch_write_seconds_count{connector="file-sink",instance="file-sink"}'
	# Option values never appear in the metrics.
	run grep -cF "$BUS" <<<"$HTTP_BODY"
	[ "$output" = 0 ]
	http GET /status
	echo "$HTTP_BODY" | jq -e '.state == "running" and .totals.in == 4 and .totals.out == 4 and .connector == "file-sink"'
	stop
	if http GET /healthz; then
		echo "the metrics server still answers after exit"
		false
	fi
}

@test "POST /pause holds new records until POST /resume" {
	publish t a
	start_sink
	lines 1
	http POST /pause
	[ "$HTTP_STATUS" = 200 ]
	echo "$HTTP_BODY" | jq -e '.state == "paused"'
	publish t b c
	sleep 1
	[ "$(paste -sd, "$T/out")" = a ]
	http GET /status
	echo "$HTTP_BODY" | jq -e '.state == "paused" and .totals.out == 1 and .lag == 2'
	http GET /readyz
	[ "$HTTP_STATUS" = 200 ]
	http POST /resume
	[ "$HTTP_STATUS" = 200 ]
	lines 3
	[ "$(paste -sd, "$T/out")" = a,b,c ]
	stop
}

@test "SIGTERM while paused exits 0" {
	publish t a
	start_sink
	lines 1
	http POST /pause
	publish t b
	stop
	[ "$(paste -sd, "$T/out")" = a ]
	# b was not committed: the group reads it next time.
	run --separate-stderr timeout 30 "$SNK" --topic t --bus "$BUS" --path - --stop-at-end
	[ "$output" = b ]
}

@test "a --metrics-addr that is taken exits 1 and names it" {
	start_sink
	run --separate-stderr timeout 30 "$SNK" --topic t --bus "$BUS" --path - --metrics-addr "127.0.0.1:$PORT"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"127.0.0.1:$PORT"* ]]
	stop
}

@test "--progress-interval logs a progress line" {
	publish t '{"n":1}'
	start_sink --progress-interval 200ms
	lines 1
	sleep 0.5
	stop
	grep '"message":"progress"' "$T/snk.err" | head -n 1 | jq -e '.level == "info" and .records_out == 1 and (.out_per_s | type == "number")'
}

@test "a secret used by a transform never shows in /metrics, /status or the log" {
	cat >"$T/s.yaml" <<-YAML
		meta:
		  type: file-sink
		  topic: t
		  secrets: [{name: SINK_SECRET}]
		transforms:
		  - map: '.token = "\${{ secrets.SINK_SECRET }}"'
	YAML
	export SINK_SECRET=hush-5e5e-7a7a
	start_sink --config "$T/s.yaml" --log-level debug
	publish t '{"a":1}'
	lines 1
	grep -q hush-5e5e-7a7a "$T/out" # the data carries it
	http GET /metrics
	[ "$HTTP_STATUS" = 200 ]
	[[ "$HTTP_BODY" == *culvert_records_sent_total* ]]
	[[ "$HTTP_BODY" != *hush-5e5e* ]]
	http GET /status
	[ "$HTTP_STATUS" = 200 ]
	[[ "$HTTP_BODY" != *hush-5e5e* ]]
	stop
	! grep -q hush-5e5e "$T/snk.err"
	# The debug log did show the transform as written: with the reference.
	grep -qF '.token = \"${{ secrets.SINK_SECRET }}\"' "$T/snk.err"
}
