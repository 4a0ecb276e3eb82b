#!/usr/bin/env bats
# file-source's command line, run as a user would: every test has its own
# embedded bus under $BATS_TEST_TMPDIR. Needs $CULVERT_BIN/file-source and
# $CULVERT_BIN/file-sink (make test builds them), jq and timeout.

bats_require_minimum_version 1.5.0

load ../../../scripts/test/common

setup() {
	culvert_setup
	ROOT="$(cd "$BATS_TEST_DIRNAME/../../.." && pwd)"
}

gen_orders() {
	if [ -x "$CULVERT_BIN/gen-orders" ]; then
		"$CULVERT_BIN/gen-orders" "$@"
	else
		(cd "$ROOT/scripts" && go run ./gen-orders "$@")
	fi
}

@test "metadata names the connector, its direction and version" {
	run --separate-stderr "$SRC" metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.name == "file-source" and .direction == "source" and (.version | length > 0) and (.description | length > 0)'
}

@test "metadata schema has the shared and own options, required and defaults" {
	run --separate-stderr "$SRC" metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.schema.properties | has("topic") and has("bus") and has("map") and has("filter") and has("arraymap") and has("filter_map")
		and has("dlq_topic") and has("on_error") and has("batch_size") and has("linger")
		and has("path") and has("delimiter") and has("follow") and has("poll_interval") and has("read_size")'
	echo "$output" | jq -e '.schema.required | index("topic") != null and index("path") != null'
	echo "$output" | jq -e '.schema.properties.batch_size.default == 5000 and .schema.properties.batch_size.minimum == 1'
	echo "$output" | jq -e '.schema.properties.delimiter.default == "\\n" and .schema.properties.poll_interval.default == "250ms"'
	echo "$output" | jq -e '.schema.properties.read_size.default == 262144 and .schema.properties.linger.default == "5ms"'
	echo "$output" | jq -e '.schema.properties.on_error.enum == ["dlq", "fail", "skip"] and .schema.additionalProperties == false'
}

@test "metadata needs no flags and no environment" {
	run --separate-stderr env -i "$SRC" metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.name == "file-source"'
	# Nor does a bad environment disturb it.
	run --separate-stderr env -i CULVERT_BATCH_SIZE=zero CULVERT_BUS=/nonexistent/x "$SRC" metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.schema.properties.batch_size.default == 5000'
}

@test "version prints the name and the metadata's version" {
	assert_version "$SRC" file-source
}

@test "--help shows examples and every option" {
	assert_help "$SRC" Examples: --path --delimiter --follow --poll-interval --read-size --topic --bus --map --filter --arraymap \
		--filter-map --on-error --batch-size --linger CULVERT_FILE_SOURCE_PATH "Exit status"
}

@test "bad flags and values exit 2 and name the option" {
	printf 'x\n' >"$T/in"
	check() { assert_bad_option "$1" "$SRC" --topic t --bus "$BUS" "${@:2}"; }
	check --batch-size --path "$T/in" --batch-size 0
	check --from --path "$T/in" --from middle
	check --filter --path "$T/in" --filter '.a >'
	check --path
	check --follow --path - --follow
	check --delimiter --path "$T/in" --delimiter '\q'
	check --read-size --path "$T/in" --read-size 1
	check --linger --path "$T/in" --linger soon
	check --on-error --path "$T/in" --on-error ignore
	run --separate-stderr "$SRC" --path "$T/in" --bus "$BUS"
	[ "$status" -eq 2 ]
	[[ "$stderr" == *--topic* ]]
}

@test "a missing file exits 1 naming it" {
	run --separate-stderr "$SRC" --topic t --bus "$BUS" --path "$T/nope.jsonl"
	[ "$status" -eq 1 ]
	[[ "$stderr" == *nope.jsonl* ]]
}

@test "CULVERT_TOPIC and CULVERT_FILTER configure it; a flag beats the environment" {
	printf '{"a":1}\n{"a":2}\n{"a":3}\n' >"$T/in"
	CULVERT_TOPIC=envtopic CULVERT_FILTER='.a >= 2' run --separate-stderr "$SRC" --bus "$BUS" --path "$T/in"
	[ "$status" -eq 0 ]
	[ "$(read_topic envtopic | jq -c -s .)" = '[{"a":2},{"a":3}]' ]

	CULVERT_TOPIC=envtopic CULVERT_FILTER='.a >= 2' run --separate-stderr "$SRC" --bus "$BUS" --path "$T/in" --topic flagtopic --filter '.a == 1'
	[ "$status" -eq 0 ]
	[ "$(read_topic flagtopic | jq -c -s .)" = '[{"a":1}]' ]
	# The flag's topic got it, not the environment's.
	[ "$(read_topic envtopic | wc -l)" -eq 2 ]
}

@test "the orders example: filter and priority map, end to end" {
	gen_orders -n 1000 >"$T/orders.jsonl"
	[ "$(wc -l <"$T/orders.jsonl")" -eq 1000 ]
	run --separate-stderr "$SRC" --topic orders --bus "$BUS" --path "$T/orders.jsonl" \
		--filter '.amount > 50' \
		--map '.priority = (if .amount > 1000 then "HIGH" elif .amount > 100 then "MEDIUM" else "LOW" end)'
	[ "$status" -eq 0 ]
	timeout 30 "$SNK" --topic orders --bus "$BUS" --path - --from beginning --stop-at-end >"$T/out.jsonl"
	want=$(jq -c 'select(.amount > 50)' "$T/orders.jsonl" | wc -l)
	[ "$want" -gt 0 ]
	[ "$(wc -l <"$T/out.jsonl")" -eq "$want" ]
	jq -e -s 'all(.amount > 50)' "$T/out.jsonl"
	jq -e -s 'all(.priority == (if .amount > 1000 then "HIGH" elif .amount > 100 then "MEDIUM" else "LOW" end))' "$T/out.jsonl"
	jq -e -s '[.[].priority] | unique == ["HIGH", "LOW", "MEDIUM"]' "$T/out.jsonl"
	# Same orders, same order.
	diff <(jq -r 'select(.amount > 50) | .order_id' "$T/orders.jsonl") <(jq -r .order_id "$T/out.jsonl")
}

@test "a second run over the same file publishes only what was appended" {
	printf 'one\ntwo\n' >"$T/in"
	"$SRC" --topic t --bus "$BUS" --path "$T/in" 2>/dev/null
	"$SRC" --topic t --bus "$BUS" --path "$T/in" 2>/dev/null
	printf 'three\n' >>"$T/in"
	"$SRC" --topic t --bus "$BUS" --path "$T/in" 2>/dev/null
	[ "$(read_topic t | paste -sd,)" = "one,two,three" ]
}

@test "standard input with --path -" {
	run --separate-stderr bash -c "printf '{\"a\":1}\n\n{\"a\":2}\n{\"a\":3}' | '$SRC' --topic in --bus '$BUS' --path - --filter '.a != 2'"
	[ "$status" -eq 0 ]
	[ "$(read_topic in | jq -c -s .)" = '[{"a":1},{"a":3}]' ]
}

@test "a NUL delimiter, as in find -print0" {
	printf 'a b\0c\nd\0\0e' | "$SRC" --topic nul --bus "$BUS" --path - --delimiter '\0' 2>/dev/null
	run --separate-stderr read_topic nul --output full
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq -c -s 'map(.value)')" = '["a b","c\nd","e"]' ]
}

@test "a line that is not JSON goes to the dead-letter topic with headers" {
	printf '{"a":1}\nnot json\n{"a":2}\n' >"$T/in"
	run --separate-stderr "$SRC" --topic orders --bus "$BUS" --path "$T/in" --map '.b = 1'
	[ "$status" -eq 0 ]
	[[ "$stderr" == *dead-letter* ]]
	[ "$(read_topic orders | jq -c -s .)" = '[{"a":1,"b":1},{"a":2,"b":1}]' ]
	run --separate-stderr read_topic orders.dlq --output full
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | wc -l)" -eq 1 ]
	echo "$output" | jq -e '.value == "not json"'
	echo "$output" | jq -e '(.headers | map({(.key): .value}) | add) as $h
		| $h["culvert.stage"] == "transform" and $h["culvert.offset"] == "8"
		and $h["culvert.connector"] == "file-source" and $h["culvert.topic"] == "orders"
		and ($h["culvert.error"] | test("not JSON"))'
}

@test "--on-error fail exits 1 and publishes nothing of the batch" {
	printf '{"a":1}\nnot json\n{"a":2}\n' >"$T/in"
	run --separate-stderr "$SRC" --topic orders --bus "$BUS" --path "$T/in" --map . --on-error fail
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"offset 8"* ]]
	[ -z "$(read_topic orders)" ]
	[ -z "$(read_topic orders.dlq)" ]
}

@test "without a transform, lines that are not JSON pass untouched" {
	printf 'plain text\n{broken\n' >"$T/in"
	"$SRC" --topic logs --bus "$BUS" --path "$T/in" 2>/dev/null
	[ "$(read_topic logs | paste -sd'|')" = "plain text|{broken" ]
	[ -z "$(read_topic logs.dlq)" ]
}

@test "SIGTERM stops --follow with status 0; a restart neither repeats nor skips" {
	log="$T/app.log"
	: >"$log"
	"$SRC" --topic logs --bus "$BUS" --path "$log" --follow --poll-interval 20ms --linger 0s >/dev/null 2>"$T/src.err" 3>&- &
	pid=$!
	for i in 1 2 3; do echo "{\"n\":$i}" >>"$log"; done
	n=0
	for try in $(seq 1 100); do
		n=$(read_topic logs | wc -l)
		[ "$n" -ge 3 ] && break
		sleep 0.1
	done
	[ "$n" -eq 3 ] || { kill -9 $pid; cat "$T/src.err"; false; }
	echo '{"n":4}' >>"$log"
	stop_cleanly $pid "$T/src.err"
	# Line 4 was published before the exit or is published by the restart: once either way.
	timeout 30 "$SRC" --topic logs --bus "$BUS" --path "$log" 2>/dev/null
	[ "$(read_topic logs | jq -c -s 'map(.n)')" = '[1,2,3,4]' ]
}

@test "SIGTERM stops a source reading an idle standard input with status 0" {
	mkfifo "$T/fifo"
	"$SRC" --topic s --bus "$BUS" --path - <"$T/fifo" >/dev/null 2>"$T/src.err" 3>&- &
	pid=$!
	exec 4>"$T/fifo" # standard input stays open, with nothing more to read
	printf 'first\n' >&4
	n=0
	for try in $(seq 1 100); do
		n=$(read_topic s | wc -l)
		[ "$n" -ge 1 ] && break
		sleep 0.1
	done
	rc=0
	stop_cleanly $pid "$T/src.err" 10 || rc=$?
	exec 4>&-
	[ "$rc" -eq 0 ]
	[ "$n" -eq 1 ]
	[ "$(read_topic s)" = first ]
}
