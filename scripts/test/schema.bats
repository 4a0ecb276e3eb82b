#!/usr/bin/env bats
# --schema (typed streams) end to end with file-source and file-sink over an
# embedded bus: CSV fields typed by a JSON Schema, values that do not match
# dead-lettered with the failing path, checked with jq and Miller (mlr,
# Debian package miller; make tools installs it). Needs $CULVERT_BIN/
# file-source and file-sink (built when missing).

bats_require_minimum_version 1.5.0

setup_file() {
	ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
	export ROOT
	: "${CULVERT_BIN:=$ROOT/bin}"
	export CULVERT_BIN
	for m in sources/file-source sinks/file-sink; do
		[ -x "$CULVERT_BIN/$(basename $m)" ] || make -s -C "$ROOT/$m" build >&2
	done
}

setup() {
	load common
	culvert_setup
	command -v mlr >/dev/null || { echo "mlr (Debian package miller) is missing: make tools installs it"; return 1; }
	cat >"$T/order.json" <<-'EOF'
	{
	  "type": "object",
	  "required": ["order_id", "amount"],
	  "properties": {
	    "order_id": {"type": "integer", "minimum": 1},
	    "code": {"type": "string"},
	    "amount": {"type": "number"},
	    "paid": {"type": "boolean"},
	    "note": {"type": ["string", "null"]}
	  }
	}
	EOF
}

# dead_letters TOPIC: each dead letter as value<TAB>stage<TAB>error (a JSON
# value as compact JSON).
dead_letters() {
	"$SNK" --bus "$BUS" --topic "$1" --group dl --path - --output full --from beginning --stop-at-end --log-level warn |
		jq -r '[(.value | if type == "string" then . else tojson end), (.headers | from_entries | ."culvert.stage", ."culvert.error")] | @tsv'
}

@test "schema: file-source --format csv --schema types fields by the schema and dead-letters what does not match" {
	cat >"$T/in.csv" <<-'EOF'
	order_id,code,amount,paid,note
	007,007,12.50,true,
	2,042,x,false,bad amount
	3,A1,-1,TRUE,"hi, there"
	0,z,5,false,zero id
	4,,7,,
	EOF
	run --separate-stderr "$SRC" --bus "$BUS" --topic t --path "$T/in.csv" --format csv --schema "$T/order.json" --log-level warn
	[ "$status" -eq 0 ] || { echo "$stderr"; return 1; }
	"$SNK" --bus "$BUS" --topic t --path "$T/out.jsonl" --from beginning --stop-at-end --log-level warn
	# "007" is 7 where the schema says integer and stays "007" where it says
	# string; an empty field is null where null is allowed, "" where only a
	# string is, and paid (a boolean only) has no null: row 6 is refused.
	[ "$(jq -c '[.order_id, .code, .amount, .paid, .note]' "$T/out.jsonl" | paste -sd' ')" = '[7,"007",12.5,true,null] [3,"A1",-1,true,"hi, there"]' ]
	[ "$(jq -r '[.order_id, .code, .amount, .paid] | map(type) | join(",")' "$T/out.jsonl" | sort -u)" = "number,string,number,boolean" ]
	run dead_letters t.dlq
	# Within a batch, the rows that did not convert come before the values
	# the schema refused.
	[ "${lines[0]}" = "$(printf '2,042,x,false,bad amount\tdecode\trow 3: column "amount": "x" is not a number (--schema)')" ]
	[ "${lines[1]}" = "$(printf '4,,7,,\tdecode\trow 6: column "paid": is empty, and --schema says a boolean')" ]
	[ "${lines[2]}" = "$(printf '{"order_id":0,"code":"z","amount":5,"paid":false,"note":"zero id"}\tdecode\tdoes not match --schema: /order_id: minimum: got 0, want 1')" ]
	[ "${#lines[@]}" -eq 3 ]
	# Miller reads the rows that passed as the input has them.
	"$SNK" --bus "$BUS" --topic t --group csv --path "$T/out.csv" --format csv --from beginning --stop-at-end --log-level warn
	[ "$(mlr --icsv --ojsonl -S cat "$T/out.csv" | jq -c '[.order_id, .code, .note]' | paste -sd' ')" = '["7","007",""] ["3","A1","hi, there"]' ]
}

@test "schema: file-sink --schema checks values before --format csv encodes them; the rest is written" {
	cat >"$T/in.jsonl" <<-'EOF'
	{"order_id":1,"code":"a","amount":2.5,"paid":true,"note":null}
	{"order_id":"2","code":"b","amount":3,"paid":false,"note":"x"}
	{"order_id":3,"code":"c","paid":false,"note":"x"}
	{"order_id":4,"code":"d","amount":4,"paid":false,"note":"y"}
	EOF
	"$SRC" --bus "$BUS" --topic t --path "$T/in.jsonl" --log-level warn
	run --separate-stderr "$SNK" --bus "$BUS" --topic t --path "$T/out.csv" --format csv --schema "$T/order.json" --from beginning --stop-at-end --log-level warn
	[ "$status" -eq 0 ] || { echo "$stderr"; return 1; }
	want=$(jq -c 'select(.order_id == 1 or .order_id == 4) | map_values(if . == null then "" else tostring end)' "$T/in.jsonl")
	got=$(mlr --icsv --ojsonl -S cat "$T/out.csv" | jq -c .)
	[ "$got" = "$want" ] || { diff <(echo "$want") <(echo "$got"); return 1; }
	run dead_letters t.dlq
	[ "${lines[0]}" = "$(printf '%s\tencode\tdoes not match --schema: /order_id: expected integer, got string' "$(sed -n 2p "$T/in.jsonl")")" ]
	[ "${lines[1]}" = "$(printf '%s\tencode\tdoes not match --schema: /amount: missing (required)' "$(sed -n 3p "$T/in.jsonl")")" ]
	[ "${#lines[@]}" -eq 2 ]
}

@test "schema: a schema file that is not JSON Schema is refused with exit 2 naming --schema" {
	echo '{"type": 5}' >"$T/bad.json"
	printf 'a\n1\n' >"$T/in.csv"
	run --separate-stderr "$SRC" --bus "$BUS" --topic t --path "$T/in.csv" --format csv --schema "$T/bad.json"
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"--schema: $T/bad.json is not a valid JSON Schema: /type: "* ]]
	run --separate-stderr "$SNK" --bus "$BUS" --topic t --path "$T/out" --schema "$T/missing.json"
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"--schema: cannot read the schema file"* ]]
	run --separate-stderr "$SRC" --bus "$BUS" --topic t --path "$T/in.csv" --format bytes --schema "$T/order.json"
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"--schema: does not apply with --format bytes"* ]]
}

@test "schema: --schema checks what avro, protobuf and cloudevents decoded: a value that does not match is a dead letter naming the path" {
	AVSC="$ROOT/common/format/testdata/avro/order.avsc"
	PB="$ROOT/common/format/testdata/protobuf"
	PROTO=(--format protobuf --proto-file "$PB/orders.proto" --proto-message orders.Order)
	echo '{"type":"object","properties":{"amount":{"type":"string","pattern":"^[0-9]"}}}' >"$T/avro.json"
	echo '{"type":"object","properties":{"customer_id":{"type":"string","pattern":"^[0-9]+$"}}}' >"$T/proto.json"
	echo '{"type":"object","properties":{"n":{"type":"integer"}}}' >"$T/ce.json"
	# Avro: an object container file of two orders (file-sink wrote it), the second's amount negative.
	for a in 12.50 -1.00; do
		printf '{"order_id":1,"customer":"a","amount":"%s","price":"1.000","created":"2024-05-01T12:30:00.123Z","shipped":null,"day":"2024-05-01","id":"5f0c6ab1-3c1e-4a5e-9a43-0b6f7e4f2a10","status":"PAID","tags":[],"attrs":{},"blob":"","score":0,"ratio":0,"ok":true,"note":null,"priority":"high"}\n' "$a"
	done >"$T/orders.jsonl"
	"$SRC" --bus "$BUS" --topic json --path "$T/orders.jsonl" --log-level warn
	"$SNK" --bus "$BUS" --topic json --path "$T/orders.avro" --format avro --avro-schema "$AVSC" --from beginning --stop-at-end --log-level warn
	"$SRC" --bus "$BUS" --topic avro --path "$T/orders.avro" --format avro --avro-schema "$AVSC" --schema "$T/avro.json" --log-level error
	[ "$(read_topic avro | jq -r .amount)" = 12.50 ]
	run dead_letters avro.dlq
	[ "${#lines[@]}" -eq 1 ]
	[ "$(cut -f2- <<<"${lines[0]}")" = "$(printf "decode\tdoes not match --schema: /amount: '-1.00' does not match pattern '^[0-9]'")" ]
	[ "$(cut -f1 <<<"${lines[0]}" | jq -r .amount)" = -1.00 ]
	# Protobuf: length-delimited orders.Order messages (file-sink wrote them); pickup's customer_id is -42.
	for c in full pickup; do jq -c . "$PB/golden/$c.json"; done >"$T/pb.jsonl"
	"$SRC" --bus "$BUS" --topic pbjson --path "$T/pb.jsonl" --log-level warn
	"$SNK" --bus "$BUS" --topic pbjson --path "$T/orders.bin" "${PROTO[@]}" --from beginning --stop-at-end --log-level warn
	"$SRC" --bus "$BUS" --topic pb --path "$T/orders.bin" "${PROTO[@]}" --schema "$T/proto.json" --log-level error
	[ "$(read_topic pb | jq -r .order_id)" = o-1001 ]
	run dead_letters pb.dlq
	[ "${#lines[@]}" -eq 1 ]
	[ "$(cut -f2- <<<"${lines[0]}")" = "$(printf "decode\tdoes not match --schema: /customer_id: '-42' does not match pattern '^[0-9]+\$'")" ]
	# CloudEvents: structured events, one a line; the schema checks the data.
	printf '%s\n' '{"specversion":"1.0","id":"1","source":"/s","type":"t","data":{"n":1}}' '{"specversion":"1.0","id":"2","source":"/s","type":"t","data":{"n":"one"}}' >"$T/events.jsonl"
	"$SRC" --bus "$BUS" --topic ce --path "$T/events.jsonl" --format cloudevents --schema "$T/ce.json" --log-level error
	[ "$(read_topic ce --output full | jq -c '[.value, (.headers | from_entries | .ce_id)]')" = '[{"n":1},"1"]' ]
	run dead_letters ce.dlq
	[ "${#lines[@]}" -eq 1 ]
	[ "${lines[0]}" = "$(printf '{"n":"one"}\tdecode\tdoes not match --schema: /n: expected integer, got string')" ]
}
