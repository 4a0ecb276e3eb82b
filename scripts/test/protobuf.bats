#!/usr/bin/env bats
# --format protobuf end to end through RabbitMQ (127.0.0.1:5672, guest/guest),
# checked with independent tools: protoc (Debian protobuf-compiler) encodes
# the messages rabbitmq-source must read and decodes (protoc --decode) the
# messages rabbitmq-sink wrote; amqp-tools (amqp-publish, amqp-consume) move
# the binary messages, one message a record. The messages are the golden
# cases of common/format/testdata/protobuf (orders.Order: nested messages,
# repeated fields, a map, a oneof, an enum, bytes, int64, Timestamp,
# Duration, Struct). Needs $CULVERT_BIN/file-source, file-sink,
# rabbitmq-source and rabbitmq-sink (built when missing).

bats_require_minimum_version 1.5.0

setup_file() {
	ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
	export ROOT
	: "${CULVERT_BIN:=$ROOT/bin}"
	export CULVERT_BIN
	for m in sources/file-source sinks/file-sink sources/rabbitmq-source sinks/rabbitmq-sink; do
		[ -x "$CULVERT_BIN/$(basename $m)" ] || make -s -C "$ROOT/$m" build >&2
	done
}

setup() {
	load common
	culvert_setup
	command -v protoc >/dev/null || { echo "protoc (Debian package protobuf-compiler) is missing: make tools installs it"; return 1; }
	command -v amqp-consume >/dev/null || { echo "amqp-tools are missing: make tools installs them"; return 1; }
	URL=$RABBITMQ_URL
	PB="$ROOT/common/format/testdata/protobuf"
	PROTO=(--format protobuf --proto-file "$PB/orders.proto" --proto-message orders.Order)
	RSRC="$CULVERT_BIN/rabbitmq-source"
	RSNK="$CULVERT_BIN/rabbitmq-sink"
	# What amqp-consume runs on each message (its body on standard input).
	printf '#!/bin/sh\nprotoc -I"%s" -I/usr/include --decode=orders.Order "%s/orders.proto" && echo ---\n' "$PB" "$PB" >"$T/decode"
	chmod +x "$T/decode"
	Q="culvert-bats-protobuf-$$-$RANDOM$RANDOM"
	rabbitmq_queue "$Q"
}

teardown() {
	[ -z "${PID:-}" ] || kill "$PID" 2>/dev/null || true
	amqp-delete-queue -u "$URL" -q "$Q" >/dev/null 2>&1 || true
}

# decode: protoc's text form of the orders.Order on standard input.
decode() {
	protoc -I"$PB" -I/usr/include --decode=orders.Order "$PB/orders.proto"
}

# golden NAME: the golden case NAME's JSON, one line, keys sorted.
golden() { jq -cS . "$PB/golden/$1.json"; }

CASES=(full pickup empty)

@test "protobuf: rabbitmq-sink --format protobuf writes messages protoc --decode reads as protoc's own encoding" {
	for c in "${CASES[@]}"; do golden "$c"; done >"$T/in.jsonl"
	"$SRC" --bus "$BUS" --topic t --path "$T/in.jsonl" --log-level warn
	"$RSNK" --bus "$BUS" --topic t --url "$URL" --routing-key "$Q" --from beginning --stop-at-end "${PROTO[@]}" --log-level warn
	# One message a record; protoc decodes each.
	timeout 30 amqp-consume -u "$URL" -q "$Q" -c ${#CASES[@]} "$T/decode" >"$T/decoded.txt"
	for c in "${CASES[@]}"; do decode <"$PB/golden/$c.bin"; echo ---; done >"$T/want.txt"
	diff "$T/want.txt" "$T/decoded.txt"
	grep -q 'customer_id: 9007199254740993' "$T/decoded.txt"
	grep -q 'seconds: 1767225600' "$T/decoded.txt"
}

@test "protobuf: rabbitmq-source --format protobuf reads what protoc --encode wrote, as protojson" {
	for c in "${CASES[@]}"; do
		amqp-publish -u "$URL" -r "$Q" -p <"$PB/golden/$c.bin"
	done
	"$RSRC" --bus "$BUS" --topic t --url "$URL" --queue "$Q" "${PROTO[@]}" 2>"$T/err" &
	PID=$!
	wait_topic t ${#CASES[@]} "$PID" "$T/err" >/dev/null
	stop_cleanly "$PID" "$T/err"
	PID=
	diff <(for c in "${CASES[@]}"; do golden "$c"; done) <(read_topic t | jq -cS .)
}

@test "protobuf: round trip rabbitmq-sink -> RabbitMQ -> rabbitmq-source, with a transform on the decoded value" {
	for c in "${CASES[@]}"; do golden "$c"; done >"$T/in.jsonl"
	"$SRC" --bus "$BUS" --topic in --path "$T/in.jsonl" --log-level warn
	"$RSNK" --bus "$BUS" --topic in --url "$URL" --routing-key "$Q" --from beginning --stop-at-end "${PROTO[@]}" --log-level warn
	"$RSRC" --bus "$BUS" --topic out --url "$URL" --queue "$Q" "${PROTO[@]}" --filter '.status != "STATUS_PENDING"' --map '{order_id, customer_id, city: .ship_to.city, n: (.lines | length)}' 2>"$T/err" &
	PID=$!
	wait_topic out 2 "$PID" "$T/err" >/dev/null
	stop_cleanly "$PID" "$T/err"
	PID=
	[ "$(read_topic out | jq -cS .)" = '{"city":"Paris","customer_id":"9007199254740993","n":2,"order_id":"o-1001"}
{"city":null,"customer_id":"-42","n":0,"order_id":"o-1002"}' ]
	[ "$(rabbitmq_ready "$Q")" = 0 ]
}

@test "protobuf: a truncated message is a dead letter with its raw bytes and where it broke; the next is published" {
	head -c 298 "$PB/golden/full.bin" | amqp-publish -u "$URL" -r "$Q" -p
	amqp-publish -u "$URL" -r "$Q" -p <"$PB/golden/pickup.bin"
	"$RSRC" --bus "$BUS" --topic t --url "$URL" --queue "$Q" "${PROTO[@]}" 2>"$T/err" &
	PID=$!
	wait_topic t 1 "$PID" "$T/err" >/dev/null
	wait_topic t.dlq 1 "$PID" "$T/err" >/dev/null
	stop_cleanly "$PID" "$T/err"
	PID=
	[ "$(read_topic t | jq -c .order_id)" = '"o-1002"' ]
	read_topic t.dlq --output full >"$T/dlq.jsonl"
	[ "$(wc -l <"$T/dlq.jsonl")" -eq 1 ]
	[ "$(jq -r .value_base64 "$T/dlq.jsonl")" = "$(head -c 298 "$PB/golden/full.bin" | base64 -w0)" ]
	[ "$(jq -r '.headers | from_entries | ."culvert.stage"' "$T/dlq.jsonl")" = decode ]
	[ "$(jq -r '.headers | from_entries | ."culvert.error"' "$T/dlq.jsonl")" = "not a orders.Order Protobuf message (298 bytes): at byte 288, field tags (15): unexpected EOF" ]
}

@test "protobuf: a sink's value that is not an orders.Order is a dead letter; the others are sent" {
	printf '%s\n' '{"order_id":"o-1","colour":"red"}' '{"order_id":"o-2","customer_id":"12"}' >"$T/in.jsonl"
	"$SRC" --bus "$BUS" --topic t --path "$T/in.jsonl" --log-level warn
	"$RSNK" --bus "$BUS" --topic t --url "$URL" --routing-key "$Q" --from beginning --stop-at-end "${PROTO[@]}" --log-level warn
	timeout 30 amqp-consume -u "$URL" -q "$Q" -c 1 "$T/decode" >"$T/decoded.txt"
	[ "$(cat "$T/decoded.txt")" = $'order_id: "o-2"\ncustomer_id: 12\n---' ]
	read_topic t.dlq --output full >"$T/dlq.jsonl"
	[ "$(jq -c .value "$T/dlq.jsonl")" = '{"order_id":"o-1","colour":"red"}' ]
	[ "$(jq -r '.headers | from_entries | ."culvert.stage"' "$T/dlq.jsonl")" = encode ]
	[[ "$(jq -r '.headers | from_entries | ."culvert.error"' "$T/dlq.jsonl")" == 'not the JSON of a orders.Order message: '*'unknown field "colour"' ]]
}

@test "protobuf: --proto-descriptor-set (protoc -o) reads the same as --proto-file" {
	protoc -I"$PB" -I/usr/include --include_imports -o "$T/orders.pb" "$PB/orders.proto"
	amqp-publish -u "$URL" -r "$Q" -p <"$PB/golden/full.bin"
	"$RSRC" --bus "$BUS" --topic t --url "$URL" --queue "$Q" --format protobuf --proto-descriptor-set "$T/orders.pb" --proto-message orders.Order 2>"$T/err" &
	PID=$!
	wait_topic t 1 "$PID" "$T/err" >/dev/null
	stop_cleanly "$PID" "$T/err"
	PID=
	[ "$(read_topic t | jq -cS .)" = "$(golden full)" ]
}

@test "protobuf: a proto file that does not parse, an unknown message, a missing option: exit 2 naming the option" {
	assert_bad_option proto-file "$RSRC" --bus "$BUS" --topic t --url "$URL" --queue "$Q" --format protobuf --proto-file "$PB/bad.proto" --proto-message orders.Order
	[[ "$stderr" == *"bad.proto:5:3: syntax error"* ]]
	assert_bad_option proto-message "$RSNK" --bus "$BUS" --topic t --url "$URL" --routing-key "$Q" "${PROTO[@]/orders.Order/orders.Invoice}"
	[[ "$stderr" == *"no message orders.Invoice"* ]]
	assert_bad_option proto-file "$SNK" --bus "$BUS" --topic t --path "$T/out" --format protobuf --proto-message orders.Order
	assert_bad_option proto-message "$SRC" --bus "$BUS" --topic t --path "$T/in" --proto-message orders.Order
	[[ "$stderr" == *"only with --format protobuf"* ]]
}
