#!/usr/bin/env bats
# --format avro end to end, checked with an independent Avro library:
# python3-avro (Debian package python3-avro; make tools installs it), run
# with Debian's /usr/bin/python3. file-sink writes Avro object container
# files that python3-avro reads; through RabbitMQ (127.0.0.1:5672,
# guest/guest) with a schema registry, values are in the Confluent wire
# format, which python3-avro decodes and encodes. No schema registry
# server installs here: the registry is registryd, the small one of
# common/format/registry/registrytest that answers the documented
# Confluent REST endpoints culvert's client calls. Needs
# $CULVERT_BIN/file-source, file-sink, rabbitmq-source and rabbitmq-sink
# (built when missing).

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
	PY=/usr/bin/python3
	$PY -c 'import avro' 2>/dev/null || { echo "python3-avro (Debian package) is missing: make tools installs it"; return 1; }
	command -v amqp-consume >/dev/null || { echo "amqp-tools are missing: make tools installs them"; return 1; }
	URL=$RABBITMQ_URL
	AVSC="$ROOT/common/format/testdata/avro/order.avsc"
	RSRC="$CULVERT_BIN/rabbitmq-source"
	RSNK="$CULVERT_BIN/rabbitmq-sink"
	Q="culvert-bats-avro-$$-$RANDOM$RANDOM"
	# python3-avro's JSON of a record: logical types as culvert's JSON forms.
	cat >"$T/conv.py" <<-'PY'
	import base64, datetime, decimal, json, uuid
	def conv(o):
	    if isinstance(o, decimal.Decimal): return str(o)
	    if isinstance(o, datetime.datetime): return o.isoformat()
	    if isinstance(o, datetime.date): return o.isoformat()
	    if isinstance(o, bytes): return base64.b64encode(o).decode()
	    if isinstance(o, uuid.UUID): return str(o)
	    raise TypeError(type(o))
	def dumps(rec): return json.dumps(rec, default=conv, ensure_ascii=False, separators=(",", ":"))
	PY
	# readfile FILE: each record of an object container file, one JSON a line.
	cat >"$T/readfile.py" <<-'PY'
	import sys; sys.path.insert(0, sys.argv[2])
	from conv import dumps
	from avro.datafile import DataFileReader
	from avro.io import DatumReader
	with DataFileReader(open(sys.argv[1], "rb"), DatumReader()) as r:
	    for rec in r: print(dumps(rec))
	PY
	# wire SCHEMA: the Confluent wire-format message on stdin: its schema id and datum.
	cat >"$T/wire.py" <<-'PY'
	import io, struct, sys; sys.path.insert(0, sys.argv[2])
	from conv import dumps
	import avro.io, avro.schema
	data = sys.stdin.buffer.read()
	assert data[0] == 0, "magic byte %d" % data[0]
	(sid,) = struct.unpack(">I", data[1:5])
	schema = avro.schema.parse(open(sys.argv[1]).read())
	print(sid, dumps(avro.io.DatumReader(schema).read(avro.io.BinaryDecoder(io.BytesIO(data[5:])))))
	PY
	# encode SCHEMA ID: the wire-format message of the JSON record on stdin
	# (logical types as python3-avro takes them).
	cat >"$T/encode.py" <<-'PY'
	import datetime, decimal, io, json, struct, sys
	import avro.io, avro.schema
	schema = avro.schema.parse(open(sys.argv[1]).read())
	rec = json.load(sys.stdin)
	rec["amount"] = decimal.Decimal(rec["amount"]); rec["price"] = decimal.Decimal(rec["price"])
	rec["created"] = datetime.datetime.fromisoformat(rec["created"])
	rec["day"] = datetime.date.fromisoformat(rec["day"])
	rec["blob"] = bytes.fromhex(rec["blob"])
	buf = io.BytesIO(); buf.write(b"\0" + struct.pack(">I", int(sys.argv[2])))
	avro.io.DatumWriter(schema).write(rec, avro.io.BinaryEncoder(buf))
	sys.stdout.buffer.write(buf.getvalue())
	PY
}

teardown() {
	[ -z "${PID:-}" ] || kill "$PID" 2>/dev/null || true
	[ -z "${RPID:-}" ] || kill "$RPID" 2>/dev/null || true
	[ -z "${Q:-}" ] || amqp-delete-queue -u "$URL" -q "$Q" >/dev/null 2>&1 || true
}

# registry [ARGS]: starts registryd, sets REG to its URL and RPID.
registry() {
	"$REGISTRYD" "$@" >"$T/registry.url" &
	RPID=$!
	for _ in $(seq 1 100); do [ -s "$T/registry.url" ] && break; sleep 0.05; done
	REG=$(cat "$T/registry.url")
	[ -n "$REG" ]
}

# Orders in culvert's JSON forms of order.avsc's types (schema field order).
orders() {
	cat <<-'EOF'
	{"order_id":9007199254740993,"customer":"Zoë \"Z\"","amount":"-12.50","price":"1234.500","created":"2024-05-01T12:30:00.123Z","shipped":"2024-05-02T08:00:00.000001Z","day":"2024-05-01","id":"5f0c6ab1-3c1e-4a5e-9a43-0b6f7e4f2a10","status":"PAID","tags":["a","b"],"attrs":{"x":-1},"blob":"AAEC/w==","score":0.1,"ratio":1.5,"ok":true,"note":{"long":7},"priority":"high"}
	{"order_id":-1,"customer":"日本 😀","amount":"0.00","price":"-0.001","created":"1969-12-31T23:59:59.999Z","shipped":null,"day":"1970-01-01","id":"00000000-0000-0000-0000-000000000000","status":"NEW","tags":[],"attrs":{},"blob":"","score":-1e+300,"ratio":0,"ok":false,"note":null,"priority":"normal"}
	EOF
}

@test "avro: file-sink writes an object container file that python3-avro reads, logical types and all" {
	orders >"$T/in.jsonl"
	"$SRC" --bus "$BUS" --topic t --path "$T/in.jsonl" --log-level warn
	"$SNK" --bus "$BUS" --topic t --path "$T/out.avro" --format avro --avro-schema "$AVSC" --from beginning --stop-at-end --log-level warn
	$PY "$T/readfile.py" "$T/out.avro" "$T" >"$T/py.jsonl"
	[ "$(wc -l <"$T/py.jsonl")" -eq 2 ]
	# python3-avro's values, field by field (jq 1.6 rounds long integers: grep).
	grep -q '^{"order_id":9007199254740993,' "$T/py.jsonl"
	[ "$(sed -n 1p "$T/py.jsonl" | jq -c '[.customer, .amount, .price, .created, .shipped, .day, .id, .status, .attrs, .blob, .note, .priority]')" = \
		'["Zoë \"Z\"","-12.50","1234.500","2024-05-01T12:30:00.123000+00:00","2024-05-02T08:00:00.000001+00:00","2024-05-01","5f0c6ab1-3c1e-4a5e-9a43-0b6f7e4f2a10","PAID",{"x":-1},"AAEC/w==",7,"high"]' ]
	[ "$(sed -n 2p "$T/py.jsonl" | jq -c '[.amount, .price, .created, .shipped, .day, .tags, .blob, .score, .note]')" = \
		'["0.00","-0.001","1969-12-31T23:59:59.999000+00:00",null,"1970-01-01",[],"",-1e+300,null]' ]
	# A second run appends blocks to the same file: python3-avro reads all four.
	cp "$T/in.jsonl" "$T/in2.jsonl"
	"$SRC" --bus "$BUS" --topic t2 --path "$T/in2.jsonl" --log-level warn
	"$SNK" --bus "$BUS" --topic t2 --path "$T/out.avro" --format avro --avro-schema "$AVSC" --from beginning --stop-at-end --log-level warn
	[ "$($PY "$T/readfile.py" "$T/out.avro" "$T" | wc -l)" -eq 4 ]
	# file-source reads the container back: the four records as given.
	"$SRC" --bus "$BUS" --topic back --path "$T/out.avro" --format avro --avro-schema "$AVSC" --log-level warn
	diff <(orders; orders) <(read_topic back)
	[ -z "$(read_topic back.dlq)" ]
}

# pywrite FILE CODEC N PER_BLOCK: python3-avro writes an object container
# file of order.avsc with CODEC (null or deflate): orders 1..N, PER_BLOCK
# datums a block.
pywrite() {
	cat >"$T/write.py" <<-'PY'
	import datetime, decimal, sys
	import avro.schema
	from avro.datafile import DataFileWriter
	from avro.io import DatumWriter
	schema = avro.schema.parse(open(sys.argv[1]).read())
	out, codec, n, per = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
	t0 = datetime.datetime(2024, 5, 1, 12, 30, tzinfo=datetime.timezone.utc)
	with DataFileWriter(open(out, "wb"), DatumWriter(), schema, codec=codec) as w:
	    for i in range(1, n + 1):
	        w.append({"order_id": i, "customer": "c%d" % i, "amount": decimal.Decimal("%d.25" % i),
	                  "price": decimal.Decimal("1.500"), "created": t0 + datetime.timedelta(milliseconds=i),
	                  "shipped": None if i % 2 else t0 + datetime.timedelta(microseconds=i),
	                  "day": datetime.date(2024, 5, 1) + datetime.timedelta(days=i),
	                  "id": "5f0c6ab1-3c1e-4a5e-9a43-0b6f7e4f2a10", "status": "PAID", "tags": ["t%d" % i], "attrs": {"x": i},
	                  "blob": bytes([i % 256]), "score": i / 2, "ratio": 0.5, "ok": i % 2 == 0,
	                  "note": None if i % 3 else "n%d" % i, "priority": "high"})
	        if i % per == 0: w.sync()  # ends the block
	PY
	$PY "$T/write.py" "$AVSC" "$@"
}

@test "avro: file-source reads object container files python3-avro wrote, codec null and deflate, one record a datum" {
	for codec in null deflate; do
		pywrite "$T/$codec.avro" $codec 10 3
		[ "$(head -c 4 "$T/$codec.avro")" = "$(printf 'Obj\001')" ]
		"$SRC" --bus "$BUS" --topic $codec --path "$T/$codec.avro" --format avro --avro-schema "$AVSC" --log-level warn
		read_topic $codec >"$T/$codec.jsonl"
		[ "$(jq -s 'length' "$T/$codec.jsonl")" -eq 10 ]
		[ "$(jq -c '.order_id' "$T/$codec.jsonl" | paste -sd,)" = 1,2,3,4,5,6,7,8,9,10 ]
		# Logical types in culvert's JSON forms.
		[ "$(sed -n 2p "$T/$codec.jsonl")" = '{"order_id":2,"customer":"c2","amount":"2.25","price":"1.500","created":"2024-05-01T12:30:00.002Z","shipped":"2024-05-01T12:30:00.000002Z","day":"2024-05-03","id":"5f0c6ab1-3c1e-4a5e-9a43-0b6f7e4f2a10","status":"PAID","tags":["t2"],"attrs":{"x":2},"blob":"Ag==","score":1,"ratio":0.5,"ok":true,"note":null,"priority":"high"}' ]
		[ "$(sed -n 3p "$T/$codec.jsonl" | jq -c '[.shipped, .note, .day]')" = '[null,{"string":"n3"},"2024-05-04"]' ]
		[ -z "$(read_topic $codec.dlq)" ]
	done
	# The same datums whatever the codec.
	diff "$T/null.jsonl" "$T/deflate.jsonl"
	# A file that is not a container is still one datum a line (here: a JSON line, not a datum).
	echo '{"a":1}' >"$T/lines"
	"$SRC" --bus "$BUS" --topic lines --path "$T/lines" --format avro --avro-schema "$AVSC" --log-level error
	[ -z "$(read_topic lines)" ]
	[ "$(read_topic lines.dlq --output full | jq -r '.headers | from_entries | ."culvert.stage"')" = decode ]
}

@test "avro: file-source killed with kill -9 mid-container resumes after the last whole block: every datum once" {
	pywrite "$T/in.avro" deflate 10000 25
	n=0
	for i in 1 2 3 4 5 6 7 8; do
		# Small reads and batches: many bus writes, so a kill lands mid-file
		# (later and later, until one has published some but not all).
		"$SRC" --bus "$BUS" --topic t --path "$T/in.avro" --format avro --avro-schema "$AVSC" --read-size 512 --batch-size 50 --log-level warn &
		pid=$!
		sleep "$(printf '0.%02d' $((i * 5)))"
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" || true
		n=$(read_topic t | wc -l)
		[ "$n" -eq 0 ] || break
	done
	echo "# after the kills: $n datums published" >&3
	[ "$n" -gt 0 ]
	[ "$n" -lt 10000 ]
	"$SRC" --bus "$BUS" --topic t --path "$T/in.avro" --format avro --avro-schema "$AVSC" --log-level warn
	read_topic t >"$T/out.jsonl"
	[ "$(wc -l <"$T/out.jsonl")" -eq 10000 ]
	[ "$(jq -r .order_id "$T/out.jsonl" | sort -n | uniq | wc -l)" -eq 10000 ]
	[ "$(jq -c 'select(.customer != "c\(.order_id)" or .tags != ["t\(.order_id)"])' "$T/out.jsonl" | wc -l)" -eq 0 ]
	[ -z "$(read_topic t.dlq)" ]
}

@test "avro: a damaged sync marker in a container: the damaged blocks are one dead letter with a precise error, the others read" {
	pywrite "$T/in.avro" null 10 3
	# Blocks of 3, 3, 3 and 1 datums; damage the sync marker after the second.
	$PY - "$T/in.avro" <<-'PY'
	import sys
	data = bytearray(open(sys.argv[1], "rb").read())
	sync = bytes(data[-16:])
	at = [i for i in range(len(data)) if data[i:i+16] == sync]
	assert len(at) == 5, at  # the header's, then one after each block
	data[at[2] + 7] ^= 0xff
	open(sys.argv[1], "wb").write(data)
	print(at[1] + 16, file=open(sys.argv[1] + ".at", "w"))
	PY
	"$SRC" --bus "$BUS" --topic t --path "$T/in.avro" --format avro --avro-schema "$AVSC" --log-level warn
	[ "$(read_topic t | jq -c .order_id | paste -sd,)" = 1,2,3,10 ]
	read_topic t.dlq --output full >"$T/dlq.jsonl"
	[ "$(wc -l <"$T/dlq.jsonl")" -eq 1 ]
	[ "$(jq -r '.headers | from_entries | ."culvert.stage"' "$T/dlq.jsonl")" = decode ]
	[[ "$(jq -r '.headers | from_entries | ."culvert.error"' "$T/dlq.jsonl")" =~ ^"corrupt Avro block at byte $(cat "$T/in.avro.at") of the file: it says "[0-9]+" bytes of datums, but "[0-9]+" bytes come before the next sync marker (a damaged size or sync marker)"$ ]]
}

@test "avro: round trip through RabbitMQ in the registry's wire format, decoded and encoded by python3-avro" {
	registry -user u -password s3cret
	rabbitmq_queue "$Q"
	orders >"$T/in.jsonl"
	"$SRC" --bus "$BUS" --topic t --path "$T/in.jsonl" --log-level warn
	AUTH=(--schema-registry "$REG" --schema-registry-username u --schema-registry-password s3cret)
	"$RSNK" --bus "$BUS" --topic t --url "$URL" --routing-key "$Q" --from beginning --stop-at-end --format avro --avro-schema "$AVSC" --schema-auto-register "${AUTH[@]}" --log-level warn
	# python3-avro decodes each message: schema id 1 (registered under t-value), the same values.
	printf '#!/bin/sh\n%s %s %s %s\n' "$PY" "$T/wire.py" "$AVSC" "$T" >"$T/wire"
	chmod +x "$T/wire"
	timeout 30 amqp-consume -u "$URL" -q "$Q" -c 2 "$T/wire" >"$T/wire.out"
	[ "$(cut -d' ' -f1 "$T/wire.out" | sort -u)" = 1 ]
	grep -q '^1 {"order_id":9007199254740993,' "$T/wire.out"
	[ "$(sed -n 1p "$T/wire.out" | cut -d' ' -f2- | jq -c '[.amount, .created, .day, .note]')" = '["-12.50","2024-05-01T12:30:00.123000+00:00","2024-05-01",7]' ]
	[ "$(curl -fsS -u u:s3cret "$REG/subjects/t-value/versions/latest" | jq .id)" = 1 ]
	# Again into the queue, then rabbitmq-source reads it back: the JSON given.
	"$RSNK" --bus "$BUS" --topic t --group again --url "$URL" --routing-key "$Q" --from beginning --stop-at-end --format avro --avro-schema "$AVSC" "${AUTH[@]}" --log-level warn
	# And a message python3-avro wrote, and one with a schema id the registry does not know.
	printf '{"order_id":5,"customer":"py","amount":"1.05","price":"2.000","created":"2024-01-02T03:04:05.678+00:00","shipped":null,"day":"2024-01-02","id":"5f0c6ab1-3c1e-4a5e-9a43-0b6f7e4f2a10","status":"SHIPPED","tags":["p"],"attrs":{"k":1},"blob":"00ff","score":2.5,"ratio":0.25,"ok":true,"note":"n","priority":"low"}' |
		$PY "$T/encode.py" "$AVSC" 1 >"$T/py.bin"
	amqp-publish -u "$URL" -r "$Q" -p <"$T/py.bin"
	printf '\0\0\0\0\x2a\x02' | amqp-publish -u "$URL" -r "$Q" -p
	"$RSRC" --bus "$BUS" --topic back --url "$URL" --queue "$Q" --format avro "${AUTH[@]}" 2>"$T/err" &
	PID=$!
	wait_topic back 3 "$PID" "$T/err" >/dev/null
	wait_topic back.dlq 1 "$PID" "$T/err" >/dev/null
	stop_cleanly "$PID" "$T/err"
	PID=
	read_topic back >"$T/back.jsonl"
	diff <(orders) <(head -2 "$T/back.jsonl")
	[ "$(sed -n 3p "$T/back.jsonl")" = '{"order_id":5,"customer":"py","amount":"1.05","price":"2.000","created":"2024-01-02T03:04:05.678Z","shipped":null,"day":"2024-01-02","id":"5f0c6ab1-3c1e-4a5e-9a43-0b6f7e4f2a10","status":"SHIPPED","tags":["p"],"attrs":{"k":1},"blob":"AP8=","score":2.5,"ratio":0.25,"ok":true,"note":{"string":"n"},"priority":"low"}' ]
	read_topic back.dlq --output full >"$T/dlq.jsonl"
	# The raw bytes (text, so in "value"): 0, schema id 42, a datum.
	[ "$(jq -c .value "$T/dlq.jsonl")" = '"\u0000\u0000\u0000\u0000*\u0002"' ]
	[ "$(jq -r '.headers | from_entries | ."culvert.stage"' "$T/dlq.jsonl")" = decode ]
	[ "$(jq -r '.headers | from_entries | ."culvert.error"' "$T/dlq.jsonl")" = "unknown schema id 42: the registry says: Schema 42 not found" ]
	! grep -q s3cret "$T/err"
}

@test "avro: a schema that does not parse, a missing subject, an unreachable registry, a missing schema: exit 2 naming the option" {
	assert_bad_option avro-schema "$SNK" --bus "$BUS" --topic t --path "$T/out" --format avro --avro-schema "$ROOT/common/format/testdata/avro/broken.avsc"
	[[ "$stderr" == *"is not an Avro schema"* ]]
	assert_bad_option avro-schema "$SRC" --bus "$BUS" --topic t --path "$T/in" --format avro
	assert_bad_option schema-registry "$RSRC" --bus "$BUS" --topic t --url "$URL" --queue q --format avro --schema-registry http://127.0.0.1:1 --schema-registry-username u --schema-registry-password s3cret
	[[ "$stderr" == *"does not answer"* ]]
	registry
	assert_bad_option avro-schema "$RSNK" --bus "$BUS" --topic t --url "$URL" --routing-key q --format avro --avro-schema "$AVSC" --schema-registry "$REG"
	[[ "$stderr" == *'not registered under subject "t-value"'* ]]
	assert_bad_option schema-registry "$RSNK" --bus "$BUS" --topic t --url "$URL" --routing-key q --format avro --schema-registry "http://u:s3cret@127.0.0.1:1"
}

@test "avro: file-source --follow waits for the header of a container file being written, then reads its blocks as they come" {
	pywrite "$T/in.avro" null 10 3
	# The pieces a writer would write: part of the header, the rest of it
	# with two blocks, the last two blocks.
	$PY - "$T/in.avro" "$T/part" <<-'PY'
	import sys
	data = open(sys.argv[1], "rb").read()
	sync = data[-16:]
	at = [i for i in range(len(data)) if data[i:i+16] == sync]
	cuts = [0, 10, at[2] + 16, len(data)]
	for n in range(3): open("%s%d" % (sys.argv[2], n), "wb").write(data[cuts[n]:cuts[n+1]])
	PY
	: >"$T/f.avro"
	"$SRC" --bus "$BUS" --topic t --path "$T/f.avro" --follow --poll-interval 20ms --format avro --avro-schema "$AVSC" --log-level warn 2>"$T/err" &
	PID=$!
	cat "$T/part0" >>"$T/f.avro"
	sleep 0.1
	cat "$T/part1" >>"$T/f.avro"
	wait_topic t 6 "$PID" "$T/err" >/dev/null
	cat "$T/part2" >>"$T/f.avro"
	wait_topic t 10 "$PID" "$T/err" >/dev/null
	stop_cleanly "$PID" "$T/err"
	PID=
	[ "$(read_topic t | jq -c .order_id | paste -sd,)" = 1,2,3,4,5,6,7,8,9,10 ]
	[ -z "$(read_topic t.dlq)" ]
}

@test "avro: file-source --follow stops at a damaged container header instead of waiting for it" {
	# The magic bytes, a map of one entry whose key has a negative length,
	# and more bytes after it: no writer can make that a header.
	printf 'Obj\001\002\005abc%0100d' 0 >"$T/bad.avro"
	run timeout 20 "$SRC" --bus "$BUS" --topic t --path "$T/bad.avro" --follow --poll-interval 20ms --format avro --avro-schema "$AVSC" --log-level warn
	[ "$status" -eq 1 ]
	[[ "$output" == *"whose header does not read"* ]]
}
