#!/usr/bin/env bats
# file-source with --config and --secrets, run as a user would. Needs
# $CULVERT_BIN/file-source and $CULVERT_BIN/file-sink (make test builds
# them) and jq.

bats_require_minimum_version 1.5.0

load ../../../scripts/test/common

setup() {
	culvert_setup
	printf '{"amount":10}\n{"amount":60}\n{"amount":70}\n' >"$T/orders.jsonl"
	cat >"$T/c.yaml" <<-YAML
		apiVersion: 0.1.0
		meta:
		  name: orders-from-file
		  type: file-source
		  topic: from-file
		  batch_size: 100
		file:
		  path: $T/orders.jsonl
		  read_size: 4096
		transforms:
		  - filter: '.amount > 50'
		  - map: '.priority = "HIGH"'
	YAML
}

@test "a config file runs the connector with its transforms in order" {
	run --separate-stderr "$SRC" --config "$T/c.yaml" --bus "$BUS"
	[ "$status" -eq 0 ]
	[ "$(read_topic from-file | jq -c -s .)" = '[{"amount":60,"priority":"HIGH"},{"amount":70,"priority":"HIGH"}]' ]
}

@test "precedence: a flag beats the environment, which beats the file, which beats the default" {
	run --separate-stderr "$SRC" config --config "$T/c.yaml"
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.meta.topic == "from-file" and .meta.batch_size == 100 and .file.read_size == 4096 and .meta.linger == "5ms"'
	CULVERT_BATCH_SIZE=200 CULVERT_TOPIC=from-env run --separate-stderr "$SRC" config --config "$T/c.yaml"
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.meta.topic == "from-env" and .meta.batch_size == 200 and .file.read_size == 4096'
	CULVERT_BATCH_SIZE=200 CULVERT_TOPIC=from-env run --separate-stderr "$SRC" config --config "$T/c.yaml" --topic from-flag
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.meta.topic == "from-flag" and .meta.batch_size == 200'
	# A real run publishes to the flag's topic.
	CULVERT_TOPIC=from-env run --separate-stderr "$SRC" --config "$T/c.yaml" --bus "$BUS" --topic from-flag
	[ "$status" -eq 0 ]
	[ "$(read_topic from-flag | wc -l)" -eq 2 ]
}

@test "a JSON config file works too" {
	printf '{"meta": {"type": "file-source", "topic": "j"}, "file": {"path": "%s"}, "transforms": [{"filter": ".amount > 65"}]}\n' "$T/orders.jsonl" >"$T/c.json"
	run --separate-stderr "$SRC" --config "$T/c.json" --bus "$BUS"
	[ "$status" -eq 0 ]
	[ "$(read_topic j | jq -c -s .)" = '[{"amount":70}]' ]
}

@test "validate prints valid and exits 0 without running" {
	run --separate-stderr "$SRC" validate --config "$T/c.yaml" --bus "$BUS"
	[ "$status" -eq 0 ]
	[ "$output" = valid ]
	[ ! -e "$BUS" ]
}

@test "validate exits 2 naming each bad key" {
	cat >"$T/bad.yaml" <<-YAML
		meta:
		  type: file-sink
		  topic: t
		file:
		  path: x
		  poll_interval: soon
		  colour: red
	YAML
	run --separate-stderr "$SRC" validate --config "$T/bad.yaml"
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"meta.type: is file-sink, this is file-source"* ]]
	[[ "$stderr" == *"file.poll_interval: must be a duration like 10s"* ]]
	[[ "$stderr" == *"file.colour: unknown option"* ]]
	[ "$output" != valid ]
	# The same flags as a run are checked.
	run --separate-stderr "$SRC" validate --config "$T/c.yaml" --read-size 1
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"--read-size"* ]]
}

@test "a secret is substituted but shown neither in debug logs nor by config" {
	cat >"$T/s.yaml" <<-YAML
		meta:
		  type: file-source
		  topic: s
		  secrets: [{name: FILE_SECRET}]
		file:
		  path: $T/orders.jsonl
		transforms:
		  - map: '.token = "\${{ secrets.FILE_SECRET }}"'
	YAML
	printf '# secrets\nFILE_SECRET=s3cr3t-9a8b\n' >"$T/secrets.env"
	run --separate-stderr "$SRC" --config "$T/s.yaml" --secrets "$T/secrets.env" --bus "$BUS" --log-level debug --log-format json
	[ "$status" -eq 0 ]
	[[ "$stderr" != *"s3cr3t-9a8b"* ]]
	# The records do carry it: secrets are redacted from output, not from data.
	[ "$(read_topic s | jq -r .token | sort -u)" = s3cr3t-9a8b ]
	# A transform that fails logs its step as written, with the reference.
	sed 's/map: .*/map: '"'"'.amount.x = "${{ secrets.FILE_SECRET }}"'"'"'/' "$T/s.yaml" >"$T/s2.yaml"
	grep -q 'amount.x = "${{ secrets.FILE_SECRET }}"' "$T/s2.yaml"
	run --separate-stderr "$SRC" --config "$T/s2.yaml" --secrets "$T/secrets.env" --bus "$BUS" --topic s2 --log-level debug
	[ "$status" -eq 0 ]
	[[ "$stderr" == *'amount.x = \"${{ secrets.FILE_SECRET }}\"'* ]]
	[[ "$stderr" != *"s3cr3t-9a8b"* ]]
	run --separate-stderr "$SRC" config --config "$T/s.yaml" --secrets "$T/secrets.env"
	[ "$status" -eq 0 ]
	[[ "$output" != *"s3cr3t-9a8b"* ]]
	echo "$output" | jq -e '.transforms == [{"map": ".token = \"${{ secrets.FILE_SECRET }}\""}] and .meta.secrets == [{"name": "FILE_SECRET"}]'
	# A declared secret that is nowhere is named, and exits 2.
	run --separate-stderr "$SRC" validate --config "$T/s.yaml"
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"FILE_SECRET is declared but set neither"* ]]
}

@test "config prints a config file that --config reads back, transforms in the order they run" {
	CULVERT_MAP='.late = 1' run --separate-stderr "$SRC" config --config "$T/c.yaml" --map '.x = 1' --filter '.amount > 60'
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.transforms == [{"map": ".x = 1"}, {"filter": ".amount > 60"}]'
	echo "$output" >"$T/round.yaml"
	run --separate-stderr "$SRC" validate --config "$T/round.yaml"
	[ "$status" -eq 0 ]
	[ "$output" = valid ]
	run --separate-stderr "$SRC" --config "$T/round.yaml" --bus "$BUS"
	[ "$status" -eq 0 ]
	[ "$(read_topic from-file | jq -c -s .)" = '[{"amount":70,"x":1}]' ]
}

@test "Fluvio's apiVersion 0.2.0 layout is read; a SmartModule Culvert cannot run exits 2" {
	cat >"$T/f.yaml" <<-YAML
		apiVersion: 0.2.0
		meta:
		  version: 0.1.0
		  name: orders-from-file
		  type: file-source
		  topic:
		    meta:
		      name: fluvio-topic
		  producer:
		    linger: 10ms
		file:
		  path: $T/orders.jsonl
		transforms:
		  - uses: filter
		    with:
		      expr: '.amount > 65'
	YAML
	run --separate-stderr "$SRC" --config "$T/f.yaml" --bus "$BUS"
	[ "$status" -eq 0 ]
	[ "$(read_topic fluvio-topic | jq -c -s .)" = '[{"amount":70}]' ]
	printf '  - uses: infinyon/jq@0.1.0\n    with: {jq_filter: .a}\n' >>"$T/f.yaml"
	run --separate-stderr "$SRC" validate --config "$T/f.yaml"
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"transforms[1].uses: infinyon/jq@0.1.0 is not a transform Culvert can run"* ]]
}

@test "another connector's variables are not read; an unknown CULVERT_ variable is reported" {
	CULVERT_FILE_SINK_PATH=/nonexistent CULVERT_FILE_SOURCE_PATH="$T/orders.jsonl" run --separate-stderr "$SRC" --topic e --bus "$BUS"
	[ "$status" -eq 0 ]
	[[ "$stderr" != *warning* ]]
	[ "$(read_topic e | wc -l)" -eq 3 ]
	CULVERT_PATH="$T/orders.jsonl" run --separate-stderr "$SRC" validate --topic e
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"CULVERT_PATH is no option of file-source; did you mean CULVERT_FILE_SOURCE_PATH?"* ]]
}
