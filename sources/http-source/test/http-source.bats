#!/usr/bin/env bats
# http-source's command line, run as a user would: every test has its own
# embedded bus under $BATS_TEST_TMPDIR. Needs $CULVERT_BIN/http-source and
# $CULVERT_BIN/file-sink (make test builds them), curl, openssl, python3,
# jq and timeout.

bats_require_minimum_version 1.5.0

load ../../../scripts/test/common

setup() {
	culvert_setup
	HS="$CULVERT_BIN/http-source"
	[ -x "$HS" ]
}

teardown() {
	[ -z "${SRV_PID:-}" ] || kill "$SRV_PID" 2>/dev/null || true
	[ -z "${HS_PID:-}" ] || kill -9 "$HS_PID" 2>/dev/null || true
}

# webhook OPTIONS...: start the webhook on a free port; sets URL and HS_PID.
webhook() {
	PORT=$(free_port)
	URL="http://127.0.0.1:$PORT"
	"$HS" --topic hooks --bus "$BUS" --listen "127.0.0.1:$PORT" "$@" >/dev/null 2>"$T/hs.err" 3>&- &
	HS_PID=$!
	wait_port "$PORT" "$HS_PID" "$T/hs.err"
}

# code ARGS...: the HTTP status curl gets.
code() {
	curl -s -o "$T/body" -w '%{http_code}' "$@"
}

@test "metadata names the connector and its options" {
	run --separate-stderr "$HS" metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.name == "http-source" and .direction == "source"'
	echo "$output" | jq -e '.schema.properties | has("endpoint") and has("stream") and has("listen") and has("next_url") and has("hmac_secret")'
	echo "$output" | jq -e '.schema.properties.auth_token.writeOnly == true and .schema.properties.header.writeOnly == true'
}

@test "version and --help" {
	assert_version "$HS" http-source
	assert_help "$HS" Examples: --endpoint --interval --next-url --stream --delimiter --max-retries --listen --auth-token \
		--hmac-secret --max-body-size --tls-cert --batch-size --linger CULVERT_HTTP_SOURCE_ENDPOINT "Exit status"
}

@test "bad flags exit 2 and name the option" {
	check() { assert_bad_option "$1" "$HS" --topic t --bus "$BUS" "${@:2}"; }
	check --endpoint
	check --endpoint --endpoint ftp://x/y
	check --interval --endpoint http://127.0.0.1:1/ --interval 0s
	check --header --endpoint http://127.0.0.1:1/ --header 'no colon'
	check --stream --listen 127.0.0.1:0 --stream
	check --endpoint --listen 127.0.0.1:0 --endpoint http://127.0.0.1:1/
	check --auth-token --endpoint http://127.0.0.1:1/ --auth-token x
	check --next-url --endpoint http://127.0.0.1:1/ --stream --next-url .next
	check --listen --listen nope
	check --max-body-size --listen 127.0.0.1:0 --max-body-size 0
	check --tls-key --listen 127.0.0.1:0 --tls-cert c.pem
}

@test "webhook: 200 only once durable, then file-sink finds the record" {
	webhook --path /hook --header-to-record X-Event
	[ "$(code -X POST -H 'X-Event: push' --data '{"order_id":"o-1"}' "$URL/hook")" = 200 ]
	[ "$(cat "$T/body")" = '{"records":1}' ]
	# Right after the 200, without stopping the source, the record is on the topic.
	run read_topic hooks
	[ "$status" -eq 0 ]
	[ "$output" = '{"order_id":"o-1"}' ]
	# NDJSON: one record per line.
	[ "$(code -X POST -H 'Content-Type: application/x-ndjson' --data-binary $'{"n":1}\n{"n":2}\n' "$URL/hook")" = 200 ]
	[ "$(cat "$T/body")" = '{"records":2}' ]
	[ "$(code -X POST --data x "$URL/other")" = 404 ]
	stop_cleanly "$HS_PID" "$T/hs.err"
	HS_PID=
	run read_topic hooks
	[ "$output" = $'{"order_id":"o-1"}\n{"n":1}\n{"n":2}' ]
	read_topic hooks --output full | head -1 |
		jq -e '(.headers | from_entries) as $h | $h["http.method"] == "POST" and $h["http.path"] == "/hook" and $h["x-event"] == "push"'
}

@test "webhook: 401 on a bad token, 413 over --max-body-size, nothing published" {
	webhook --auth-token s3cret-token --max-body-size 100
	[ "$(code -X POST --data '{"a":1}' "$URL/")" = 401 ]
	[ "$(code -X POST -H 'Authorization: Bearer wrong' --data '{"a":1}' "$URL/")" = 401 ]
	[ "$(code -X POST -H 'Authorization: Bearer s3cret-token' --data "$(printf '%0200d' 0)" "$URL/")" = 413 ]
	[ "$(code -X POST -H 'Authorization: Bearer s3cret-token' --data '{"a":2}' "$URL/")" = 200 ]
	stop_cleanly "$HS_PID" "$T/hs.err"
	HS_PID=
	! grep -q s3cret-token "$T/hs.err"
	run read_topic hooks
	[ "$output" = '{"a":2}' ]
}

@test "webhook: HMAC signature valid and invalid" {
	webhook --hmac-secret hook-key
	body='{"action":"opened"}'
	sig="sha256=$(printf '%s' "$body" | openssl dgst -sha256 -hmac hook-key | sed 's/^.*= //')"
	[ "$(code -X POST -H "X-Hub-Signature-256: $sig" --data "$body" "$URL/")" = 200 ]
	[ "$(code -X POST -H "X-Hub-Signature-256: $sig" --data '{"action":"forged"}' "$URL/")" = 401 ]
	[ "$(code -X POST --data "$body" "$URL/")" = 401 ]
	stop_cleanly "$HS_PID" "$T/hs.err"
	HS_PID=
	! grep -q hook-key "$T/hs.err"
	run read_topic hooks
	[ "$output" = "$body" ]
}

@test "poll: a file served by python's http.server is published once (If-Modified-Since)" {
	mkdir -p "$T/www"
	printf '[{"id":1},{"id":2}]' >"$T/www/items.json"
	PORT=$(free_port)
	python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$T/www" >/dev/null 2>"$T/srv.err" &
	SRV_PID=$!
	wait_port "$PORT" "$SRV_PID" "$T/srv.err"
	"$HS" --topic items --bus "$BUS" --endpoint "http://127.0.0.1:$PORT/items.json" --interval 100ms --arraymap '.[]' \
		>/dev/null 2>"$T/hs.err" 3>&- &
	HS_PID=$!
	for _ in $(seq 1 100); do
		[ "$(grep -c '"GET /items.json' "$T/srv.err")" -ge 5 ] && break
		sleep 0.1
	done
	stop_cleanly "$HS_PID" "$T/hs.err"
	HS_PID=
	[ "$(grep -c '"GET /items.json HTTP/1.1" 304' "$T/srv.err")" -ge 4 ]
	run read_topic items
	[ "$output" = $'{"id":1}\n{"id":2}' ]
}

@test "--max-retries: a stream that cannot connect exits 1 with one clear message" {
	PORT=$(free_port)
	run --separate-stderr timeout 30 "$HS" --topic s --bus "$BUS" --endpoint "http://127.0.0.1:$PORT/events?token=tok-s3cret" \
		--stream --max-retries 2
	[ "$status" -eq 1 ]
	last=$(tail -1 <<<"$stderr")
	[[ "$last" == "http-source: "*"giving up after 3 failed attempts (--max-retries 2)"*"connection refused" ]]
	[[ "$stderr" != *tok-s3cret* ]]
}
