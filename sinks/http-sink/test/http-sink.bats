#!/usr/bin/env bats
# http-sink's command line, run as a user would, against a local HTTP
# endpoint (test/tool serve, built in setup_file) that logs every request it
# gets as a JSON line. Each test has its own embedded bus, filled with
# file-source (or test/tool publish, for keyed records). Needs
# $CULVERT_BIN/http-sink, file-source and file-sink, go, jq and timeout.

bats_require_minimum_version 1.5.0

load ../../../scripts/test/common

setup_file() {
	TOOL="$BATS_FILE_TMPDIR/tool"
	build_helper "$BATS_TEST_DIRNAME/.." ./test/tool "$TOOL"
	export TOOL
}

setup() {
	culvert_setup
	HSNK="$CULVERT_BIN/http-sink"
	[ -x "$HSNK" ]
	SERVER_PID=
}

teardown() {
	if [ -n "$SERVER_PID" ]; then
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
}

# serve [ARGS...]: starts the test endpoint and sets URL; requests are logged to $T/log.
serve() {
	"$TOOL" serve -url-file "$T/url" -log "$T/log" "$@" 3>&- &
	SERVER_PID=$!
	wait_file "$T/url" "$SERVER_PID"
	URL=$(cat "$T/url")
}

# sink ARGS...: runs http-sink over topic t to $URL until caught up.
sink() {
	timeout 60 "$HSNK" --topic t --bus "$BUS" --endpoint "$URL" --from beginning --stop-at-end --log-format json "$@"
}

# delivered: the bodies the endpoint answered 2xx to, one per line.
delivered() {
	jq -r 'select(.status < 300) | .body' "$T/log"
}

@test "version, help and metadata" {
	assert_version "$HSNK" http-sink
	assert_help "$HSNK" Examples: --endpoint --header --batch-size --batch-format --max-in-flight --ordered --rate-limit --max-retries --tls-ca CULVERT_HTTP_SINK_ENDPOINT
	run --separate-stderr env -i "$HSNK" metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.name == "http-sink" and .direction == "sink" and (.schema.required | index("endpoint") != null) and .schema.properties.header.writeOnly == true'
}

@test "bad options exit 2 naming the option, without the secret" {
	run --separate-stderr "$HSNK" --topic t --bus "$BUS" --endpoint ftp://example.com/
	[ "$status" -eq 2 ]
	[[ "$stderr" == *--endpoint* ]]
	run --separate-stderr "$HSNK" --topic t --bus "$BUS" --endpoint http://example.com/ --header 'Authorization Bearer s3cret'
	[ "$status" -eq 2 ]
	[[ "$stderr" == *--header* ]]
	[[ "$stderr" != *s3cret* ]]
	run --separate-stderr "$HSNK" --topic t --bus "$BUS" --endpoint http://example.com/ --batch-format csv
	[ "$status" -eq 2 ]
	[[ "$stderr" == *--batch-format* ]]
}

@test "503 twice, then success: retried, delivered once each, in order" {
	serve -fail 503,503
	publish t '{"n":1}' '{"n":2}' '{"n":3}'
	run --separate-stderr sink
	[ "$status" -eq 0 ]
	[ "$(jq -s length "$T/log")" -eq 5 ]
	[ "$(delivered | paste -sd ' ')" = '{"n":1} {"n":2} {"n":3}' ]
	[[ "$stderr" == *"request failed, retrying"*"503 Service Unavailable"* ]]
	[[ "$stderr" == *'"records_out":3'* ]]
	# Committed: a second run sends nothing.
	run --separate-stderr sink
	[ "$status" -eq 0 ]
	[ "$(jq -s length "$T/log")" -eq 5 ]
}

@test "400 goes to the dead-letter topic with the status and response body" {
	serve -reject bad
	publish t '{"ok":1}' '{"bad":1}' '{"ok":2}'
	run --separate-stderr sink
	[ "$status" -eq 0 ]
	[ "$(delivered | paste -sd ' ')" = '{"ok":1} {"ok":2}' ]
	[ "$(jq -s length "$T/log")" -eq 3 ] # a refusal is not retried
	timeout 30 "$SNK" --topic t.dlq --bus "$BUS" --path "$T/dlq" --output full --from beginning --stop-at-end 2>/dev/null
	[ "$(wc -l <"$T/dlq")" -eq 1 ]
	jq -e '.value == {"bad":1}
		and (.headers | from_entries | .["culvert.http.status"] == "400"
			and .["culvert.http.body"] == "{\"error\":\"rejected by the test endpoint\"}"
			and .["culvert.stage"] == "sink"
			and (.["culvert.error"] | startswith("HTTP 400 Bad Request")))' "$T/dlq"
}

@test "Retry-After is honoured" {
	serve -fail 429 -retry-after 2
	publish t '{"n":1}'
	run --separate-stderr sink
	[ "$status" -eq 0 ]
	[ "$(jq -s length "$T/log")" -eq 2 ]
	jq -s -e '.[1].time - .[0].time >= 2' "$T/log"
	[ "$(delivered)" = '{"n":1}' ]
}

@test "gives up after --max-retries with exit 1 and commits nothing" {
	serve -fail 500,500,500
	publish t '{"n":1}' '{"n":2}'
	run --separate-stderr sink --max-retries 2
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"giving up after 3 attempts"*"500 Internal Server Error"* ]]
	[ -z "$(delivered)" ]
	# The endpoint is healthy now: the same records are sent again.
	run --separate-stderr sink
	[ "$status" -eq 0 ]
	[ "$(delivered | paste -sd ' ')" = '{"n":1} {"n":2}' ]
}

@test "batches as NDJSON and as JSON arrays" {
	serve
	seq 1 250 | sed 's/.*/{"n":&}/' >"$T/in"
	timeout 30 "$SRC" --topic t --bus "$BUS" --path "$T/in" 2>/dev/null
	run --separate-stderr sink --batch-size 100 --group nd
	[ "$status" -eq 0 ]
	jq -s -e 'length >= 3 and all(.content_type == "application/x-ndjson")' "$T/log"
	[ "$(jq -r .body "$T/log" | grep -c .)" -eq 250 ]
	diff <(jq -r .body "$T/log" | grep .) "$T/in"

	: >"$T/log"
	run --separate-stderr sink --batch-size 100 --batch-format json-array --group arr
	[ "$status" -eq 0 ]
	jq -s -e 'length >= 3 and all(.content_type == "application/json" and (.body | fromjson | type == "array" and length <= 100))' "$T/log"
	diff <(jq -c '.body | fromjson | .[]' "$T/log") "$T/in"
}

@test "--ordered keeps each key's order with 4 requests in flight, and nothing is lost" {
	serve -delay-max 3ms -fail-every 13
	for i in $(seq 1 100); do
		for k in a b c d e f; do
			printf '%s\t{"k":"%s","i":%d}\n' "$k" "$k" "$i"
		done
	done | "$TOOL" publish -bus "$BUS" -topic t
	run --separate-stderr sink --max-in-flight 4 --ordered --max-retries 0
	[ "$status" -eq 0 ]
	[ "$(delivered | wc -l)" -eq 600 ]
	for k in a b c d e f; do
		diff <(delivered | jq -r "select(.k == \"$k\") | .i") <(seq 1 100)
	done
	# Requests did overlap.
	[ "$(jq -s 'length' "$T/log")" -gt 600 ]
}

@test "--max-in-flight without --ordered loses nothing" {
	serve -delay-max 2ms -fail-every 7
	seq 1 1000 | sed 's/.*/{"n":&}/' >"$T/in"
	timeout 30 "$SRC" --topic t --bus "$BUS" --path "$T/in" 2>/dev/null
	run --separate-stderr sink --max-in-flight 8 --max-retries 0
	[ "$status" -eq 0 ]
	diff <(delivered | sort) <(sort "$T/in")
}

@test "header values and URL credentials never reach the logs or config" {
	serve -fail 503
	publish t '{"n":1}'
	URL="${URL/http:\/\//http://user:pa55w0rd@}?token=t0k3n"
	run --separate-stderr sink --header 'Authorization: Bearer s3cr3t-value' --log-level debug
	[ "$status" -eq 0 ]
	jq -e -s '.[1].authorization == "Bearer s3cr3t-value"' "$T/log"
	[[ "$stderr" != *s3cr3t-value* ]]
	[[ "$stderr" != *pa55w0rd* ]]
	[[ "$stderr" != *t0k3n* ]]
	run --separate-stderr "$HSNK" config --topic t --endpoint "$URL" --header 'Authorization: Bearer s3cr3t-value'
	[ "$status" -eq 0 ]
	[[ "$output" != *s3cr3t-value* ]]
	[[ "$output" != *pa55w0rd* ]]
	[[ "$output" != *t0k3n* ]]
	echo "$output" | jq -e '.http.header == ["Authorization: *****"] and (.http.endpoint | contains("user:*****@"))'
}

@test "SIGTERM stops cleanly after delivering what was read" {
	serve
	publish t '{"n":1}'
	"$HSNK" --topic t --bus "$BUS" --endpoint "$URL" --from beginning 2>"$T/err" 3>&- &
	local pid=$!
	for _ in $(seq 1 100); do
		[ "$(delivered | wc -l)" -ge 1 ] && break
		sleep 0.1
	done
	publish t '{"n":2}'
	for _ in $(seq 1 100); do
		[ "$(delivered | wc -l)" -ge 2 ] && break
		sleep 0.1
	done
	stop_cleanly "$pid" "$T/err"
	[ "$(delivered | paste -sd ' ')" = '{"n":1} {"n":2}' ]
}
