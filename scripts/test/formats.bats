#!/usr/bin/env bats
# --format json|bytes|csv end to end with file-source and file-sink over an
# embedded bus, checked with an independent CSV tool: Miller (mlr, Debian
# package miller; make tools installs it). Needs $CULVERT_BIN/file-source
# and file-sink (built when missing).

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
}

# An input with what CSV is hard about: quoted delimiters and quotes,
# empty fields, unicode, numbers that are not JSON numbers (007), and
# booleans.
edge_csv() {
	cat <<-'EOF'
	id,name,amount,ok,note
	1,"Smith, John",12.50,true,
	2,"say ""hi""",-3,false,x
	3,Zoë 日本 😀,007,TRUE,"a;b"
	4,,0,,"  spaced  "
	5,last,1e3,false,€
	EOF
}

@test "formats: csv round trip file-source -> bus -> file-sink, read back by mlr as the input" {
	edge_csv >"$T/in.csv"
	"$SRC" --bus "$BUS" --topic t --path "$T/in.csv" --format csv --log-level warn
	"$SNK" --bus "$BUS" --topic t --path "$T/out.csv" --format csv --from beginning --stop-at-end --log-level warn
	# The same records, field by field, as Miller reads them.
	diff <(mlr --icsv --ojson cat "$T/in.csv") <(mlr --icsv --ojson cat "$T/out.csv")
	[ "$(grep -c '^id,name,amount,ok,note$' "$T/out.csv")" -eq 1 ]
	# What jq saw on the bus: typed values, empty fields as null.
	"$SNK" --bus "$BUS" --topic t --group jq --path "$T/bus.jsonl" --from beginning --stop-at-end --log-level warn
	[ "$(sed -n 1p "$T/bus.jsonl")" = '{"id":1,"name":"Smith, John","amount":12.50,"ok":true,"note":null}' ]
	[ "$(sed -n 3p "$T/bus.jsonl")" = '{"id":3,"name":"Zoë 日本 😀","amount":"007","ok":"TRUE","note":"a;b"}' ]
}

@test "formats: file-sink --format csv writes what mlr reads as the JSON it was given" {
	cat >"$T/in.jsonl" <<-'EOF'
	{"order_id":"o-1","amount":512.5,"product":"widget, large","note":"he said \"hi\"\nthen left"}
	{"order_id":"o-2","amount":3,"product":"gizmo ✓","note":null}
	{"amount":7,"order_id":"o-3","product":"","note":"tab\there"}
	EOF
	"$SRC" --bus "$BUS" --topic t --path "$T/in.jsonl" --log-level warn
	"$SNK" --bus "$BUS" --topic t --path "$T/out.csv" --format csv --from beginning --stop-at-end --log-level warn
	[ "$(head -1 "$T/out.csv")" = "order_id,amount,product,note" ]
	# Every value as text, as a CSV file holds it (null is empty).
	want=$(jq -c '{order_id, amount, product, note} | with_entries(.value = (.value // "" | tostring))' "$T/in.jsonl")
	got=$(mlr --icsv --ojsonl -S cat "$T/out.csv" | jq -c '{order_id, amount, product, note}')
	[ "$got" = "$want" ] || { diff <(echo "$want") <(echo "$got"); return 1; }
}

@test "formats: a bad CSV row is a dead letter with its raw bytes and row number; the rest is published" {
	printf 'a,b,c\n1,2,3\n4,5\n"6,7,8\n9,"x ""y""",10\n' >"$T/in.csv"
	run --separate-stderr "$SRC" --bus "$BUS" --topic t --path "$T/in.csv" --format csv --filter '.a > 1' --log-level warn
	[ "$status" -eq 0 ] || { echo "$stderr"; return 1; }
	"$SNK" --bus "$BUS" --topic t --path "$T/out.jsonl" --from beginning --stop-at-end --log-level warn
	[ "$(cat "$T/out.jsonl")" = '{"a":9,"b":"x \"y\"","c":10}' ]
	"$SNK" --bus "$BUS" --topic t.dlq --path - --output full --from beginning --stop-at-end --log-level warn >"$T/dlq.jsonl"
	run jq -r '[.value, (.headers | from_entries | ."culvert.stage", ."culvert.error", ."culvert.offset")] | @tsv' "$T/dlq.jsonl"
	[ "${lines[0]}" = "$(printf '4,5\tdecode\trow 3: expected 3 fields (a,b,c), got 2\t12')" ]
	[[ "${lines[1]}" == "$(printf '"6,7,8\tdecode\trow 4: not a CSV row: extraneous or missing " in quoted-field')"* ]]
	[ "${#lines[@]}" -eq 2 ]
}

@test "formats: a value that is not a flat object is a dead letter of file-sink --format csv" {
	printf '%s\n' '{"a":1,"b":2}' '{"a":{"x":1},"b":2}' '[1,2]' '{"a":3,"c":4}' '{"b":5}' >"$T/in.jsonl"
	"$SRC" --bus "$BUS" --topic t --path "$T/in.jsonl" --log-level warn
	run --separate-stderr "$SNK" --bus "$BUS" --topic t --path "$T/out.csv" --format csv --from beginning --stop-at-end --log-level warn
	[ "$status" -eq 0 ]
	[ "$(cat "$T/out.csv")" = "$(printf 'a,b\n1,2\n,5')" ]
	"$SNK" --bus "$BUS" --topic t.dlq --path - --output full --from beginning --stop-at-end --log-level warn >"$T/dlq.jsonl"
	run jq -r '.headers | from_entries | ."culvert.stage" + ": " + ."culvert.error"' "$T/dlq.jsonl"
	[[ "${lines[0]}" == 'encode: field "a" is an object'* ]]
	[[ "${lines[1]}" == 'encode: value is an array, not a JSON object'* ]]
	[[ "${lines[2]}" == 'encode: field "c" is not a column (columns: a,b)'* ]]
}

@test "formats: file-sink writes the CSV header once per file, not again after a restart" {
	printf '%s\n' '{"x":1,"y":"a"}' '{"x":2,"y":"b"}' >"$T/in.jsonl"
	"$SRC" --bus "$BUS" --topic t --path "$T/in.jsonl" --log-level warn
	"$SNK" --bus "$BUS" --topic t --path "$T/out.csv" --format csv --from beginning --stop-at-end --batch-linger 0s --log-level warn
	printf '%s\n' '{"y":"c","x":3}' >>"$T/in.jsonl"
	"$SRC" --bus "$BUS" --topic t --path "$T/in.jsonl" --log-level warn
	# The restarted sink takes the columns from the file's header row.
	"$SNK" --bus "$BUS" --topic t --path "$T/out.csv" --format csv --from beginning --stop-at-end --log-level warn
	[ "$(cat "$T/out.csv")" = "$(printf 'x,y\n1,a\n2,b\n3,c')" ]
	# Other columns than the file's: exit 1 naming both, nothing written.
	run --separate-stderr "$SNK" --bus "$BUS" --topic t --group other --path "$T/out.csv" --format csv --csv-columns y,x --from beginning --stop-at-end
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"its header row has the columns x,y, --csv-columns says y,x"* ]]
	[ "$(wc -l <"$T/out.csv")" -eq 4 ]
}

@test "formats: file-source --format csv killed with kill -9 mid-file reads the rest with the file's header" {
	mlr -n put 'end { for (i = 1; i <= 300000; i += 1) { print i . ",name " . i . "," . (i % 7) } }' | sed '1i id,name,n' >"$T/in.csv"
	for _ in 1 2 3 4; do
		# Small reads and batches: many bus writes, so the kill lands
		# mid-file (with batches of 100, 100,000 rows took less than the
		# 0.8 s of the four runs once the bus compressed its batches).
		"$SRC" --bus "$BUS" --topic t --path "$T/in.csv" --format csv --read-size 512 --batch-size 10 --log-level warn &
		pid=$!
		sleep 0.2
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" || true
	done
	"$SNK" --bus "$BUS" --topic t --group probe --path "$T/probe.jsonl" --from beginning --stop-at-end --log-level warn
	n=$(wc -l <"$T/probe.jsonl")
	echo "# after the kills: $n rows published" >&3
	[ "$n" -gt 0 ]
	[ "$n" -lt 300000 ]
	"$SRC" --bus "$BUS" --topic t --path "$T/in.csv" --format csv --log-level warn
	"$SNK" --bus "$BUS" --topic t --path "$T/out.jsonl" --from beginning --stop-at-end --log-level warn
	# Every row once, each read with the header (no header row as data).
	[ "$(jq -s 'length' "$T/out.jsonl")" -eq 300000 ]
	[ "$(jq -s '[.[].id] | unique | length' "$T/out.jsonl")" -eq 300000 ]
	[ "$(jq -c 'select((.id | type) != "number" or .name != "name \(.id)" or .n != .id % 7)' "$T/out.jsonl" | wc -l)" -eq 0 ]
	! "$SNK" --bus "$BUS" --topic t.dlq --path - --from beginning --stop-at-end --log-level warn | grep -q .
}

@test "formats: --csv-delimiter and --csv-columns: a tab-separated file without a header" {
	printf '1\tred, dark\t"q"\n2\t\tplain\n' >"$T/in.tsv"
	"$SRC" --bus "$BUS" --topic t --path "$T/in.tsv" --format csv --csv-delimiter '\t' --csv-columns id,colour,word --log-level warn
	"$SNK" --bus "$BUS" --topic t --path "$T/out.jsonl" --from beginning --stop-at-end --log-level warn
	[ "$(cat "$T/out.jsonl")" = "$(printf '%s\n' '{"id":1,"colour":"red, dark","word":"q"}' '{"id":2,"colour":null,"word":"plain"}')" ]
	"$SNK" --bus "$BUS" --topic t --group semi --path "$T/out.csv" --format csv --csv-delimiter ';' --from beginning --stop-at-end --log-level warn
	[ "$(head -1 "$T/out.csv")" = "id;colour;word" ]
	diff <(mlr --icsv --ifs ';' --ojsonl cat "$T/out.csv" | jq -c .) <(jq -c '.colour //= ""' "$T/out.jsonl")
}

@test "formats: bytes passes any bytes untouched; jq reads them as strings" {
	printf 'ERROR one\nok\nERROR \377\376 binary\n{"not": "parsed"}\n' >"$T/in.txt"
	"$SRC" --bus "$BUS" --topic all --path "$T/in.txt" --format bytes --log-level warn
	"$SNK" --bus "$BUS" --topic all --path "$T/all.txt" --format bytes --from beginning --stop-at-end --log-level warn
	cmp "$T/in.txt" "$T/all.txt"
	"$SRC" --bus "$BUS" --topic errors --path "$T/in.txt" --format bytes --filter 'test("ERROR")' --map 'ascii_downcase' --log-level warn
	"$SNK" --bus "$BUS" --topic errors --path "$T/errors.txt" --format bytes --from beginning --stop-at-end --log-level warn
	[ "$(cat "$T/errors.txt")" = "error one" ]
	# The line that is not UTF-8 cannot be a jq string: a dead letter, as it was.
	"$SNK" --bus "$BUS" --topic errors.dlq --path "$T/dlq.txt" --format bytes --from beginning --stop-at-end --log-level warn
	cmp "$T/dlq.txt" <(printf 'ERROR \377\376 binary\n')
}

@test "formats: bad format options exit 2 naming the option" {
	run --separate-stderr "$SRC" --topic t --path x --format xml
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"--format: value must be one of 'json', 'bytes', 'csv'"* ]]
	run --separate-stderr "$SNK" --topic t --path x --csv-columns a,b
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"--csv-columns: applies only with --format csv"* ]]
	run --separate-stderr "$SRC" --topic t --path x --format csv --csv-delimiter ';;'
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"--csv-delimiter: must be one character"* ]]
	run --separate-stderr "$SNK" --bus "$BUS" --topic t --path x --format csv --output full
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"--output: full writes one JSON object per record"* ]]
}
