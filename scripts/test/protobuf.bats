#!/usr/bin/env bats
# --format protobuf end to end through RabbitMQ (127.0.0.1:5672, guest/guest),
# checked with independent tools: protoc (Debian protobuf-compiler) encodes
# the messages rabbitmq-source must read and decodes (protoc --decode) the
# messages rabbitmq-sink wrote; amqp-tools (amqp-publish, amqp-consume) move
# the binary messages, one message a record. The messages are the golden
# cases of common/format/testdata/protobuf (orders.Order: nested messages,
# repeated fields, a map, a oneof, an enum, bytes, int64, Timestamp,
# Duration, Struct). With --schema-registry, values are in the Confluent
# wire format (byte 0, schema id, message indexes, message): the registry
# is registryd, the small one of common/format/registry/registrytest (no
# registry server installs here), and protoc decodes what follows the
# header; orders.proto imports money.proto, registered as a schema
# reference. Files (file-source, file-sink) hold length-delimited messages,
# which python3-protobuf (Debian python3-protobuf: _VarintBytes,
# _DecodeVarint32, classes protoc --python_out made) writes and splits.
# Needs $CULVERT_BIN/file-source, file-sink, rabbitmq-source and
# rabbitmq-sink (built when missing).

bats_require_minimum_version 1.5.0

setup_file() {
	ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
	export ROOT
	: "${CULVERT_BIN:=$ROOT/bin}"
	export CULVERT_BIN
	for m in sources/file-source sinks/file-sink sources/rabbitmq-source sinks/rabbitmq-sink; do
		[ -x "$CULVERT_BIN/$(basename $m)" ] || make -s -C "$ROOT/$m" build >&2
	done
	REGISTRYD="$BATS_FILE_TMPDIR/registryd"
	export REGISTRYD
	(cd "$ROOT/common" && go build -o "$REGISTRYD" ./format/registry/registrytest/registryd)
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
	[ -z "${RPID:-}" ] || kill "$RPID" 2>/dev/null || true
	amqp-delete-queue -u "$URL" -q "$Q" >/dev/null 2>&1 || true
}

# decode: protoc's text form of the orders.Order on standard input.
decode() {
	protoc -I"$PB" -I/usr/include --decode=orders.Order "$PB/orders.proto"
}

# registry: starts registryd, sets REG to its URL and RPID.
registry() {
	"$REGISTRYD" >"$T/registry.url" &
	RPID=$!
	for _ in $(seq 1 100); do [ -s "$T/registry.url" ] && break; sleep 0.05; done
	REG=$(cat "$T/registry.url")
	[ -n "$REG" ]
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

@test "protobuf: round trip through RabbitMQ with --schema-registry (Confluent wire format), the message after the header decoded by protoc" {
	registry
	SHOP=(--format protobuf --proto-file "$PB/shop.proto" --schema-registry "$REG")
	printf '%s\n' '{"order_id":"o-1","customer_id":"9007199254740993","lines":[{"sku":"a","quantity":2}],"created_at":"2026-01-01T00:00:00.123Z"}' >"$T/in.jsonl"
	"$SRC" --bus "$BUS" --topic t --path "$T/in.jsonl" --log-level warn
	# Not registered, no --schema-auto-register: exit 2 naming --proto-file.
	assert_bad_option proto-file "$RSNK" --bus "$BUS" --topic t --url "$URL" --routing-key "$Q" "${SHOP[@]}" --proto-message shop.Order
	[[ "$stderr" == *'not registered under subject "t-value"'* ]]
	"$RSNK" --bus "$BUS" --topic t --url "$URL" --routing-key "$Q" --from beginning --stop-at-end "${SHOP[@]}" --proto-message shop.Order --schema-auto-register --log-level warn
	[ "$(curl -fsS "$REG/subjects/t-value/versions/latest" | jq -r '[.id, .schemaType] | @tsv')" = $'1\tPROTOBUF' ]
	# The header (0, schema id 1, message indexes [0] as the byte 0), then what protoc decodes.
	printf '#!/bin/sh\nf=$(mktemp); cat >"$f"; head -c 6 "$f" | od -An -tx1 | tr -d " \\n"; echo; tail -c +7 "$f" | protoc -I"%s" --decode=shop.Order "%s/shop.proto"; rm -f "$f"\n' "$PB" "$PB" >"$T/wire"
	chmod +x "$T/wire"
	timeout 30 amqp-consume -u "$URL" -q "$Q" -c 1 "$T/wire" >"$T/wire.out"
	[ "$(head -1 "$T/wire.out")" = 000000000100 ]
	grep -q '^customer_id: 9007199254740993$' "$T/wire.out"
	grep -q '^  sku: "a"$' "$T/wire.out"
	grep -q '^  nanos: 123000000$' "$T/wire.out"
	# Back: the same message again, a shop.Refund protoc encoded (indexes [1]: bytes 2 2),
	# and one with a schema id the registry does not know.
	"$RSNK" --bus "$BUS" --topic t --group again --url "$URL" --routing-key "$Q" --from beginning --stop-at-end "${SHOP[@]}" --proto-message shop.Order --log-level warn
	{ printf '\0\0\0\0\1\2\2'; printf 'order_id: "o-9"\ncents: -250\n' | protoc -I"$PB" --encode=shop.Refund "$PB/shop.proto"; } | amqp-publish -u "$URL" -r "$Q" -p
	printf '\0\0\0\0\x2a\0\x0a\x01x' | amqp-publish -u "$URL" -r "$Q" -p
	"$RSRC" --bus "$BUS" --topic back --url "$URL" --queue "$Q" --format protobuf --schema-registry "$REG" 2>"$T/err" &
	PID=$!
	wait_topic back 2 "$PID" "$T/err" >/dev/null
	wait_topic back.dlq 1 "$PID" "$T/err" >/dev/null
	stop_cleanly "$PID" "$T/err"
	PID=
	[ "$(read_topic back | jq -cS .)" = '{"created_at":"2026-01-01T00:00:00.123Z","customer_id":"9007199254740993","lines":[{"quantity":2,"sku":"a"}],"order_id":"o-1"}
{"cents":"-250","order_id":"o-9"}' ]
	read_topic back.dlq --output full >"$T/dlq.jsonl"
	# The raw bytes (text, so in "value"): 0, schema id 42, index 0, a message.
	[ "$(jq -c .value "$T/dlq.jsonl")" = '"\u0000\u0000\u0000\u0000*\u0000\n\u0001x"' ]
	[ "$(jq -r '.headers | from_entries | ."culvert.error"' "$T/dlq.jsonl")" = "unknown schema id 42: the registry says: Schema 42 not found" ]
}

# wire_decode: a script for amqp-consume printing the 6-byte header of the
# wire-format message on its standard input in hex, then protoc's decoding
# of the orders.Order after it.
wire_decode() {
	printf '#!/bin/sh\nf=$(mktemp); cat >"$f"; head -c 6 "$f" | od -An -tx1 | tr -d " \\n"; echo; tail -c +7 "$f" | protoc -I"%s" -I/usr/include --decode=orders.Order "%s/orders.proto"; rm -f "$f"\n' "$PB" "$PB" >"$T/wire"
	chmod +x "$T/wire"
}

@test "protobuf: schema references with --schema-registry: money.proto registered under its import path and referenced; a sink without --proto-file; the source compiles both" {
	registry
	golden full >"$T/in.jsonl"
	"$SRC" --bus "$BUS" --topic t --path "$T/in.jsonl" --log-level warn
	# Not registered, no --schema-auto-register: exit 2 naming --proto-file and the import.
	assert_bad_option proto-file "$RSNK" --bus "$BUS" --topic t --url "$URL" --routing-key "$Q" "${PROTO[@]}" --schema-registry "$REG"
	[[ "$stderr" == *'money.proto (imported by orders.proto) is not registered under subject "money.proto"'* ]]
	"$RSNK" --bus "$BUS" --topic t --url "$URL" --routing-key "$Q" --from beginning --stop-at-end "${PROTO[@]}" --schema-registry "$REG" --schema-auto-register --log-level warn
	# The registry holds money.proto under the subject money.proto, and orders.proto under t-value referring to it.
	curl -fsS "$REG/subjects/money.proto/versions/1" | jq -e --rawfile m "$PB/money.proto" '.id == 1 and .schemaType == "PROTOBUF" and .schema == $m'
	curl -fsS "$REG/subjects/t-value/versions/latest" | jq -e --rawfile o "$PB/orders.proto" '.id == 2 and .schema == $o and .references == [{"name":"money.proto","subject":"money.proto","version":1}]'
	wire_decode
	timeout 30 amqp-consume -u "$URL" -q "$Q" -c 1 "$T/wire" >"$T/wire.out"
	[ "$(head -1 "$T/wire.out")" = 000000000200 ]
	diff <(decode <"$PB/golden/full.bin") <(tail -n +2 "$T/wire.out")
	# A sink without --proto-file takes t-value's latest schema (and money.proto) and writes the same.
	"$RSNK" --bus "$BUS" --topic t --group latest --url "$URL" --routing-key "$Q" --from beginning --stop-at-end --format protobuf --schema-registry "$REG" --proto-message orders.Order --log-level warn
	timeout 30 amqp-consume -u "$URL" -q "$Q" -c 1 "$T/wire" >"$T/wire2.out"
	diff "$T/wire.out" "$T/wire2.out"
	# The source reads each value by its schema id, compiling orders.proto with money.proto from the registry.
	"$RSNK" --bus "$BUS" --topic t --group again --url "$URL" --routing-key "$Q" --from beginning --stop-at-end "${PROTO[@]}" --schema-registry "$REG" --log-level warn
	"$RSRC" --bus "$BUS" --topic back --url "$URL" --queue "$Q" --format protobuf --schema-registry "$REG" 2>"$T/err" &
	PID=$!
	wait_topic back 1 "$PID" "$T/err" >/dev/null
	stop_cleanly "$PID" "$T/err"
	PID=
	[ "$(read_topic back | jq -cS .)" = "$(golden full)" ]
	# A source does not take --proto-message without --proto-file.
	assert_bad_option proto-message "$RSRC" --bus "$BUS" --topic back --url "$URL" --queue "$Q" --format protobuf --schema-registry "$REG" --proto-message orders.Order
}

@test "protobuf: file-sink writes length-delimited messages that python3-protobuf splits (protoc decodes each); file-source reads what python3-protobuf wrote" {
	PY=/usr/bin/python3
	$PY -c 'import google.protobuf' 2>/dev/null || { echo "python3-protobuf (Debian package) is missing: make tools installs it"; return 1; }
	protoc -I"$PB" -I/usr/include --python_out="$T" orders.proto money.proto
	# split FILE DIR: each length-delimited message of FILE, split with
	# python's own varint reader and parsed as an orders.Order, written to
	# DIR/N.bin; prints how many.
	cat >"$T/split.py" <<-'PY'
	import sys; sys.path.insert(0, sys.argv[2])
	import orders_pb2
	from google.protobuf.internal.decoder import _DecodeVarint32
	data, pos, n = open(sys.argv[1], "rb").read(), 0, 0
	while pos < len(data):
	    size, pos = _DecodeVarint32(data, pos)
	    msg = data[pos:pos + size]
	    assert len(msg) == size, "message %d cut short" % (n + 1)
	    orders_pb2.Order().ParseFromString(msg)
	    n += 1
	    open("%s/%d.bin" % (sys.argv[2], n), "wb").write(msg)
	    pos += size
	print(n)
	PY
	# write FILE...: the messages of the FILEs, each parsed as an
	# orders.Order and written after its length (as writeDelimitedTo).
	cat >"$T/write.py" <<-'PY'
	import os, sys; sys.path.insert(0, os.path.dirname(sys.argv[0]))
	import orders_pb2
	from google.protobuf.internal.encoder import _VarintBytes
	for path in sys.argv[1:]:
	    m = orders_pb2.Order(); m.ParseFromString(open(path, "rb").read())
	    b = m.SerializeToString()
	    sys.stdout.buffer.write(_VarintBytes(len(b)) + b)
	PY
	for c in "${CASES[@]}"; do golden "$c"; done >"$T/in.jsonl"
	"$SRC" --bus "$BUS" --topic t --path "$T/in.jsonl" --log-level warn
	"$SNK" --bus "$BUS" --topic t --path "$T/out.bin" --from beginning --stop-at-end "${PROTO[@]}" --log-level warn
	mkdir "$T/msgs"
	[ "$($PY "$T/split.py" "$T/out.bin" "$T/msgs")" = ${#CASES[@]} ]
	i=0
	for c in "${CASES[@]}"; do
		i=$((i + 1))
		diff <(decode <"$PB/golden/$c.bin") <(decode <"$T/msgs/$i.bin")
	done
	# The empty message: its length prefix 0, no bytes.
	[ "$(stat -c %s "$T/msgs/3.bin")" = 0 ]
	# Back: python's file through file-source, one record a message.
	$PY "$T/write.py" $(for c in "${CASES[@]}"; do echo "$PB/golden/$c.bin"; done) >"$T/py.bin"
	"$SRC" --bus "$BUS" --topic back --path "$T/py.bin" "${PROTO[@]}" --log-level warn
	diff <(for c in "${CASES[@]}"; do golden "$c"; done) <(read_topic back | jq -cS .)
	# A file that ends inside a message (pickup, 4 bytes short; the empty
	# one after it gone): full is read, pickup is a dead letter.
	head -c -5 "$T/py.bin" >"$T/cut.bin"
	"$SRC" --bus "$BUS" --topic cut --path "$T/cut.bin" "${PROTO[@]}" --log-level warn 2>/dev/null
	[ "$(read_topic cut | jq -r .order_id)" = o-1001 ]
	[[ "$(read_topic cut.dlq --output full | jq -r '.headers | from_entries | ."culvert.error"')" == *"the stream ends inside"* ]]
}
