#!/usr/bin/env bats
# file-sink's command line, run as a user would: every test has its own
# embedded bus under $BATS_TEST_TMPDIR, filled with file-source. Needs
# $CULVERT_BIN/file-sink and $CULVERT_BIN/file-source, jq and timeout.

bats_require_minimum_version 1.5.0

load ../../../scripts/test/common

setup() {
	culvert_setup
}

@test "metadata names the connector, its direction and version" {
	run --separate-stderr "$SNK" metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.name == "file-sink" and .direction == "sink" and (.version | length > 0) and (.description | length > 0)'
}

@test "metadata schema has the shared and own options, required and defaults" {
	run --separate-stderr "$SNK" metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.schema.properties | has("topic") and has("bus") and has("map") and has("filter") and has("arraymap") and has("filter_map")
		and has("dlq_topic") and has("on_error") and has("group") and has("from") and has("stop_at_end")
		and has("path") and has("output") and has("fsync")'
	echo "$output" | jq -e '.schema.properties | has("batch_size") | not'
	echo "$output" | jq -e '.schema.required | index("topic") != null and index("path") != null'
	echo "$output" | jq -e '.schema.properties.from.default == "end" and .schema.properties.from.enum == ["beginning", "end"]'
	echo "$output" | jq -e '.schema.properties.output.default == "value" and .schema.properties.output.enum == ["value", "full"]'
}

@test "metadata needs no flags and no environment" {
	run --separate-stderr env -i "$SNK" metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.name == "file-sink"'
	run --separate-stderr env -i CULVERT_FROM=middle "$SNK" metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.schema.properties.from.default == "end"'
}

@test "version prints the name and the metadata's version" {
	assert_version "$SNK" file-sink
}

@test "--help shows examples and every option" {
	assert_help "$SNK" Examples: --path --output --fsync --group --from --stop-at-end --topic --bus --map --filter --on-error \
		CULVERT_FILE_SINK_OUTPUT "Exit status"
}

@test "bad flags and values exit 2 and name the option" {
	check() { assert_bad_option "$1" "$SNK" --topic t --bus "$BUS" "${@:2}"; }
	check --from --path - --from middle
	check --output --path - --output yaml
	check --filter --path - --filter '.a >'
	check --path
	check --batch-size --path - --batch-size 0
	check --shutdown-timeout --path - --shutdown-timeout later
	run --separate-stderr "$SNK" --path - --bus "$BUS"
	[ "$status" -eq 2 ]
	[[ "$stderr" == *--topic* ]]
}

@test "--stop-at-end on an empty topic exits 0 promptly" {
	start=$SECONDS
	run --separate-stderr timeout 10 "$SNK" --topic empty --bus "$BUS" --path - --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	[ $((SECONDS - start)) -lt 5 ]
}

@test "end to end: file-source then file-sink reproduce the file" {
	for i in $(seq 1 3000); do echo "{\"seq\":$i}"; done >"$T/in.jsonl"
	"$SRC" --topic t --bus "$BUS" --path "$T/in.jsonl" 2>/dev/null
	run --separate-stderr timeout 30 "$SNK" --topic t --bus "$BUS" --path "$T/out.jsonl" --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	cmp "$T/in.jsonl" "$T/out.jsonl"
	# --path appends.
	timeout 30 "$SNK" --topic t --bus "$BUS" --path "$T/out.jsonl" --from beginning --stop-at-end --group again 2>/dev/null
	[ "$(wc -l <"$T/out.jsonl")" -eq 6000 ]
}

@test "--output full writes key, value, headers, time and offset as JSON" {
	publish t '{"a":1}' 'plain text'
	run --separate-stderr timeout 30 "$SNK" --topic t --bus "$BUS" --path - --from beginning --stop-at-end --output full
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | wc -l)" -eq 2 ]
	echo "$output" | jq -e -s '.[0] | .key == null and .value == {"a":1} and .offset == 0 and (.time | test("^20[0-9-]+T[0-9:.]+Z$")) and (has("headers") | not)'
	echo "$output" | jq -e -s '.[1] | .value == "plain text" and .offset == 1'
	echo "$output" | jq -e -s 'map(keys) | .[0] == ["key", "offset", "time", "value"]'
}

@test "transforms apply in command-line order" {
	publish t '{"a":0}' '{"a":5}'
	run --separate-stderr timeout 30 "$SNK" --topic t --bus "$BUS" --path - --from beginning --stop-at-end --group g1 --map '.a = 1' --filter '.a == 1'
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq -c -s .)" = '[{"a":1},{"a":1}]' ]
	run --separate-stderr timeout 30 "$SNK" --topic t --bus "$BUS" --path - --from beginning --stop-at-end --group g2 --filter '.a == 1' --map '.a = 1'
	[ "$status" -eq 0 ]
	[ -z "$output" ]
}

@test "a consumer group resumes after its last commit" {
	publish t one two
	run --separate-stderr timeout 30 "$SNK" --topic t --bus "$BUS" --path - --from beginning --stop-at-end --group g
	[ "$output" = $'one\ntwo' ]
	publish t three
	run --separate-stderr timeout 30 "$SNK" --topic t --bus "$BUS" --path - --from beginning --stop-at-end --group g
	[ "$status" -eq 0 ]
	[ "$output" = three ]
}

@test "--from end: a new group skips what is already on the topic" {
	publish t old
	run --separate-stderr timeout 30 "$SNK" --topic t --bus "$BUS" --path - --stop-at-end --group g
	[ "$status" -eq 0 ]
	[ -z "$output" ]
	publish t new
	run --separate-stderr timeout 30 "$SNK" --topic t --bus "$BUS" --path - --stop-at-end --group g
	[ "$output" = new ]
}

@test "CULVERT_TOPIC and CULVERT_FILTER configure it; a flag beats the environment" {
	publish envtopic '{"a":1}' '{"a":2}'
	publish flagtopic '{"a":3}' '{"a":4}'
	CULVERT_TOPIC=envtopic CULVERT_FILTER='.a > 1' run --separate-stderr timeout 30 "$SNK" --bus "$BUS" --path - --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	[ "$output" = '{"a":2}' ]
	CULVERT_TOPIC=envtopic CULVERT_FILTER='.a > 1' run --separate-stderr timeout 30 "$SNK" --bus "$BUS" --path - --from beginning --stop-at-end \
		--topic flagtopic --filter '.a == 3'
	[ "$status" -eq 0 ]
	[ "$output" = '{"a":3}' ]
}

@test "a record that is not JSON goes to the dead-letter topic with headers" {
	publish orders '{"a":1}' 'not json' '{"a":2}'
	run --separate-stderr timeout 30 "$SNK" --topic orders --bus "$BUS" --path - --from beginning --stop-at-end --map '.b = .a'
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | jq -c -s .)" = '[{"a":1,"b":1},{"a":2,"b":2}]' ]
	run --separate-stderr timeout 30 "$SNK" --topic orders.dlq --bus "$BUS" --path - --from beginning --stop-at-end --output full
	[ "$status" -eq 0 ]
	[ "$(echo "$output" | wc -l)" -eq 1 ]
	echo "$output" | jq -e '.value == "not json" and ((.headers | map({(.key): .value}) | add) as $h
		| $h["culvert.stage"] == "transform" and $h["culvert.offset"] == "1"
		and $h["culvert.connector"] == "file-sink" and $h["culvert.topic"] == "orders"
		and ($h["culvert.error"] | test("not JSON")))'
}

@test "SIGTERM stops a waiting sink with status 0 after committing what it wrote" {
	publish t a
	"$SNK" --topic t --bus "$BUS" --path "$T/out" --from beginning --group g >/dev/null 2>"$T/snk.err" 3>&- &
	pid=$!
	for try in $(seq 1 100); do
		[ -s "$T/out" ] && break
		sleep 0.1
	done
	publish t b
	for try in $(seq 1 100); do
		[ "$(wc -l <"$T/out")" -ge 2 ] && break
		sleep 0.1
	done
	stop_cleanly $pid "$T/snk.err"
	[ "$(paste -sd, "$T/out")" = a,b ]
	# Committed: the group has nothing left to read.
	run --separate-stderr timeout 30 "$SNK" --topic t --bus "$BUS" --path - --stop-at-end --group g
	[ -z "$output" ]
}
