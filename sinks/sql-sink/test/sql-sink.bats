#!/usr/bin/env bats
# sql-sink run as a user would, against the machine's PostgreSQL
# (127.0.0.1:5432, user postgres) and MariaDB (127.0.0.1:3306, root), a
# private PostgreSQL server (initdb and pg_ctl, on a spare port) for the
# restart, and SQLite files. What the sink wrote is read with psql, mysql
# and sqlite3 (python3's sqlite3 module where sqlite3 is not installed),
# never with the connector itself.
# Needs $CULVERT_BIN/{sql-sink,file-source,file-sink,culvert,postgres-cdc-source},
# psql, mysql, jq and the PostgreSQL server programs (the private server:
# common/client/sqldb/sqltest/pg.bash).

bats_require_minimum_version 1.5.0

load ../../../scripts/test/common
load ../../../common/client/sqldb/sqltest/pg

setup() {
	culvert_setup
	SQ="$CULVERT_BIN/sql-sink"
	DB="culvert_bats_$$_$RANDOM"
	PG="postgres://postgres@127.0.0.1:5432/$DB"
	MY="mysql://root@127.0.0.1:3306/$DB"
	psql -q -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $DB"
	mysql -h 127.0.0.1 -u root -e "CREATE DATABASE $DB"
	PIDS=()
}

teardown() {
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	pg_remove
	psql -q -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
	mysql -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS $DB" || true
}

pg() { psql -h 127.0.0.1 -U postgres -d "$DB" -At "$@"; }
my() { mysql -h 127.0.0.1 -u root -D "$DB" -N -B -e "$@"; }
lite() {
	if command -v sqlite3 >/dev/null; then
		sqlite3 "$1" "$2"
	else
		python3 -c 'import sqlite3, sys
for r in sqlite3.connect(sys.argv[1]).execute(sys.argv[2]): print("|".join("" if v is None else str(v) for v in r))' "$1" "$2"
	fi
}

# headers TOPIC: the dead letters of TOPIC, one JSON object a line:
# {"value": ..., "error": culvert.error, "state": culvert.sql.state}.
headers() {
	read_topic "$1" --output full | jq -c '(.headers | map({(.key): .value}) | add) as $h
		| {value, error: $h["culvert.error"], state: $h["culvert.sql.state"]}'
}

@test "metadata names the connector and its options; the URL and the password are write-only" {
	run --separate-stderr "$SQ" metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.name == "sql-sink" and .direction == "sink"'
	echo "$output" | jq -e '.schema.properties | has("url") and has("table") and has("columns") and has("mode") and has("key_columns") and has("cdc") and has("auto_create") and has("auto_evolve")'
	echo "$output" | jq -e '.schema.properties.url.writeOnly == true and .schema.properties.password.writeOnly == true'
	echo "$output" | jq -e '.schema.properties.mode.enum == ["insert", "upsert"] and .schema.properties.mode.default == "insert"'
}

@test "version and --help, which states the guarantee of each mode" {
	assert_version "$SQ" sql-sink
	assert_help "$SQ" Examples: --url --table --columns --mode --key-columns --cdc --auto-create --auto-evolve --max-retries \
		"--mode insert is at-least-once" "--mode upsert and --cdc make redelivery harmless" SQLSTATE "never dead-lettered" TIMESTAMPTZ JSONB
}

@test "bad flags exit 2 and name the option, never showing the password" {
	check() { assert_bad_option "$1" "$SQ" --topic t --bus "$BUS" "${@:2}"; }
	check --table --url "$PG"
	check --url --table t
	check --url --table t --url 'oracle://u:s3cret@h/x'
	check --url --table t --url 'postgres://u:s3cret@h:notaport/x'
	check --key-columns --table t --url "$PG" --mode upsert
	check --mode --table t --url "$PG" --mode merge
	check --table --table '.x |' --url "$PG"
	check --columns --table t --url "$PG" --columns 'a,,b'
	check --format --table t --url "$PG" --format csv
}

@test "PostgreSQL: 10,000 orders with COPY, checked with psql; committed, so a second run writes nothing" {
	pg -c "CREATE TABLE orders (id BIGINT PRIMARY KEY, customer TEXT, amount NUMERIC(10,2), priority TEXT, created TIMESTAMPTZ, tags JSONB)"
	seq 1 10000 | awk '{ printf "{\"id\":%d,\"customer\":\"c-%d\",\"amount\":%d.25,\"priority\":\"LOW\",\"created\":\"2026-12-07T10:00:00.%03dZ\",\"tags\":[\"a\",\"b\\\"c\"]}\n", $1, $1 % 7, $1, $1 % 1000 }' | publish orders
	run --separate-stderr "$SQ" --topic orders --bus "$BUS" --url "$PG" --table orders --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	[ "$(pg -c 'SELECT COUNT(*), SUM(id), SUM(amount) FROM orders')" = "10000|50005000|50007500.00" ]
	[ "$(pg -c "SELECT customer, created AT TIME ZONE 'UTC', tags->>1 FROM orders WHERE id = 1234")" = 'c-2|2026-12-07 10:00:00.234|b"c' ]
	run --separate-stderr "$SQ" --topic orders --bus "$BUS" --url "$PG" --table orders --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	[ "$(pg -c 'SELECT COUNT(*) FROM orders')" = 10000 ]
	[ -z "$(read_topic orders.dlq)" ]
}

@test "rows the database refuses go to the dead-letter topic with their SQLSTATE; the rest of the batch commits" {
	pg -c "CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL CHECK (v >= 0))"
	publish t '{"id":1,"v":1}' '{"id":2,"v":"two"}' '{"id":3,"v":-3}' '{"id":4,"v":4}' '{"id":1,"v":5}' 'not json' '{"id":6,"v":6,"w":1}'
	run --separate-stderr "$SQ" --topic t --bus "$BUS" --url "$PG" --table t --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	[ "$(pg -c 'SELECT id, v FROM t ORDER BY id' | paste -sd' ')" = "1|1 4|4" ]
	headers t.dlq >"$T/dead"
	cat "$T/dead"
	[ "$(jq -r .state "$T/dead" | paste -sd' ')" = "22P02 23514 23505 null null" ]
	jq -se '.[0].error | startswith("refused by the database: SQLSTATE 22P02: invalid input syntax for type integer")' "$T/dead"
	jq -se '.[3].error == "the value is not JSON" and (.[4].error | test("field \"w\" is not a column of table t"))' "$T/dead"
}

@test "MariaDB: upserts by key, redelivered, checked with mysql: each key once, as its last record left it" {
	my "CREATE TABLE items (sku VARCHAR(20) PRIMARY KEY, qty INT, price DECIMAL(8,2), seen DATETIME(3), ok BOOLEAN)"
	publish items '{"sku":"a","qty":1,"price":1.5,"seen":"2026-12-07T10:00:00.5Z","ok":true}' '{"sku":"b","qty":2}' \
		'{"sku":"a","qty":10,"price":2.25,"seen":"2026-12-07T12:00:00+02:00","ok":false}' '{"sku":"c","qty":3}'
	for g in first again; do
		run --separate-stderr "$SQ" --topic items --bus "$BUS" --url "$MY" --table items --mode upsert --key-columns sku \
			--group "$g" --from beginning --stop-at-end
		[ "$status" -eq 0 ]
		[ "$(my 'SELECT sku, qty, price, seen, ok FROM items ORDER BY sku' | tr '\t' '|' | paste -sd' ')" = \
			"a|10|2.25|2026-12-07 10:00:00.000|0 b|2|NULL|NULL|NULL c|3|NULL|NULL|NULL" ]
	done
}

@test "SQLite: --auto-create makes the table from the first records, --auto-evolve adds a column; checked with sqlite3" {
	publish ev '{"id":1,"name":"a","score":1.5,"ok":true,"tags":["x"]}' '{"id":2,"name":"b"}'
	run --separate-stderr "$SQ" --topic ev --bus "$BUS" --url "sqlite://$T/ev.db" --table events --auto-create --mode upsert --key-columns id --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	lite "$T/ev.db" "SELECT sql FROM sqlite_master WHERE name = 'events'" | grep -F 'CREATE TABLE "events" ("id" INTEGER NOT NULL, "name" TEXT, "score" REAL, "ok" INTEGER, "tags" TEXT, PRIMARY KEY ("id"))'
	[ "$(lite "$T/ev.db" 'SELECT id, name, score, ok, tags FROM events ORDER BY id' | paste -sd' ')" = '1|a|1.5|1|["x"] 2|b|||' ]
	publish ev '{"id":3,"name":"c","extra":7}'
	run --separate-stderr "$SQ" --topic ev --bus "$BUS" --url "sqlite://$T/ev.db" --table events --mode upsert --key-columns id --from beginning --stop-at-end --group g2
	[ "$status" -eq 0 ]
	[ "$(read_topic ev.dlq)" = '{"id":3,"name":"c","extra":7}' ]
	run --separate-stderr "$SQ" --topic ev --bus "$BUS" --url "sqlite://$T/ev.db" --table events --mode upsert --key-columns id --auto-evolve --from beginning --stop-at-end --group g3
	[ "$status" -eq 0 ]
	[ "$(lite "$T/ev.db" 'SELECT id, extra FROM events ORDER BY id' | paste -sd' ')" = '1| 2| 3|7' ]
}

@test "--cdc: change events as postgres-cdc-source makes them replicate into MariaDB, checked with mysql" {
	# Each event with the primary key as its record key, as the source makes it.
	ev() {
		printf '{"op":"%s","before":%s,"after":%s,"source":{"lsn":"0/16B3748","table":"public.orders","schema":"public","txid":%d,"ts":"2026-12-07T10:00:00.123Z"}}\n' "$2" "$3" "$4" "$5" |
			"$CULVERT_BIN/culvert" produce cdc --bus "$BUS" --key "{\"id\":$1}"
	}
	ev 1 r null '{"id":1,"customer":"c-1","amount":10.5,"created":"2026-12-07T09:00:00Z"}' 1
	ev 2 c null '{"id":2,"customer":"c-2","amount":20,"created":"2026-12-07T09:30:00Z"}' 2
	ev 2 u '{"id":2}' '{"id":2,"customer":"c-2","amount":25,"created":"2026-12-07T09:30:00.250+01:00"}' 3
	ev 3 c null '{"id":3,"customer":"c-3","amount":30,"created":"2026-12-07T09:45:00Z"}' 4
	ev 1 d '{"id":1,"customer":"c-1","amount":10.5,"created":"2026-12-07T09:00:00Z"}' null 5
	ev 9 d null null 6
	run --separate-stderr "$SQ" --topic cdc --bus "$BUS" --url "$MY" --cdc --auto-create --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	# The table is named after source.table, its key after the record key.
	my "SHOW CREATE TABLE orders" | grep -q 'PRIMARY KEY (`id`)'
	[ "$(my 'SELECT id, customer, amount FROM orders ORDER BY id' | tr '\t' '|' | paste -sd' ')" = "2|c-2|25 3|c-3|30" ]
	[ -z "$(read_topic cdc.dlq)" ]
	# Redelivered from the start: the same rows.
	run --separate-stderr "$SQ" --topic cdc --bus "$BUS" --url "$MY" --cdc --group again --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	[ "$(my 'SELECT id, customer, amount FROM orders ORDER BY id' | tr '\t' '|' | paste -sd' ')" = "2|c-2|25 3|c-3|30" ]
	# A truncate empties the table.
	ev 0 t null null 7
	run --separate-stderr "$SQ" --topic cdc --bus "$BUS" --url "$MY" --cdc --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	[ "$(my 'SELECT COUNT(*) FROM orders')" = 0 ]
}

@test "a restart of the PostgreSQL server mid-stream: the sink waits for it, nothing lost, nothing dead-lettered" {
	pg_start
	U="postgres://postgres@127.0.0.1:$PGB_PORT/postgres"
	ppg() { psql -h 127.0.0.1 -p "$PGB_PORT" -U postgres -d postgres -At "$@"; }
	ppg -c "CREATE TABLE t (seq BIGSERIAL PRIMARY KEY, n INT NOT NULL)"
	seq 1 3000 | sed 's/.*/{"n":&}/' | publish r
	"$SQ" --topic r --bus "$BUS" --url "$U" --table t --from beginning >/dev/null 2>"$T/sink.err" &
	pid=$!
	PIDS+=($pid)
	for _ in $(seq 1 300); do [ "$(ppg -c 'SELECT COUNT(*) FROM t' 2>/dev/null)" = 3000 ] && break; sleep 0.2; done
	[ "$(ppg -c 'SELECT COUNT(*) FROM t')" = 3000 ]
	pg_down fast
	seq 3001 6000 | sed 's/.*/{"n":&}/' | publish r
	sleep 2
	pg_up
	seq 6001 10000 | sed 's/.*/{"n":&}/' | publish r
	for _ in $(seq 1 300); do [ "$(ppg -c 'SELECT COUNT(DISTINCT n) FROM t' 2>/dev/null)" = 10000 ] && break; sleep 0.2; done
	stop_cleanly $pid "$T/sink.err"
	grep -q "lost the database connection" "$T/sink.err"
	grep -q "reconnected to the database" "$T/sink.err"
	# Every record, in order of first appearance (at-least-once: a batch
	# whose commit was lost with the server may be written twice).
	diff <(seq 1 10000) <(ppg -c 'SELECT n FROM t ORDER BY seq' | awk '!seen[$0]++')
	[ -z "$(read_topic r.dlq)" ]
}

@test "the orders example: PostgreSQL -> postgres-cdc-source (filter, priority map) -> sql-sink --cdc -> MariaDB, checked with mysql" {
	pg_start
	ppg() { psql -h 127.0.0.1 -p "$PGB_PORT" -U postgres -d postgres -At "$@"; }
	ppg -c "CREATE TABLE orders (order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, amount NUMERIC(10,2) NOT NULL, product TEXT NOT NULL)"
	my "CREATE TABLE orders (order_id VARCHAR(20) PRIMARY KEY, customer_id VARCHAR(20), amount DECIMAL(10,2), product VARCHAR(20), priority VARCHAR(8))"
	ppg -c "INSERT INTO orders SELECT 'o-' || g, 'c-' || (g % 7), (g * 37 % 1500) + 0.25, 'widget' FROM generate_series(1, 200) g"
	"$CULVERT_BIN/postgres-cdc-source" --topic shop --bus "$BUS" --url "postgres://postgres@127.0.0.1:$PGB_PORT/postgres" \
		--table public.orders --slot orders_bats --filter '.op == "d" or .after.amount > 50' \
		--map 'if .after then .after.priority = (if .after.amount > 1000 then "HIGH" elif .after.amount > 100 then "MEDIUM" else "LOW" end) else . end' \
		>/dev/null 2>"$T/cdc.err" &
	cpid=$!
	PIDS+=($cpid)
	"$SQ" --topic shop --bus "$BUS" --url "$MY" --cdc --from beginning >/dev/null 2>"$T/sink.err" &
	spid=$!
	PIDS+=($spid)
	# Changes after the snapshot: an update, a delete, an insert.
	for _ in $(seq 1 300); do [ "$(my 'SELECT COUNT(*) FROM orders')" -ge 150 ] 2>/dev/null && break; sleep 0.2; done
	ppg -c "UPDATE orders SET amount = 2000.50 WHERE order_id = 'o-2'" -c "DELETE FROM orders WHERE order_id = 'o-3'" \
		-c "INSERT INTO orders VALUES ('o-201', 'c-1', 75, 'gadget'), ('o-202', 'c-2', 10, 'gadget')"
	want() {
		ppg -c "SELECT order_id, customer_id, amount, product, CASE WHEN amount > 1000 THEN 'HIGH' WHEN amount > 100 THEN 'MEDIUM' ELSE 'LOW' END
			FROM orders WHERE amount > 50 ORDER BY order_id" | tr '|' '\t'
	}
	for _ in $(seq 1 300); do [ "$(my 'SELECT * FROM orders ORDER BY order_id')" = "$(want)" ] && break; sleep 0.2; done
	stop_cleanly $spid "$T/sink.err"
	stop_cleanly $cpid "$T/cdc.err"
	diff <(want) <(my 'SELECT * FROM orders ORDER BY order_id')
	[ "$(my "SELECT priority FROM orders WHERE order_id = 'o-2'")" = HIGH ]
	[ -z "$(my "SELECT order_id FROM orders WHERE order_id IN ('o-3', 'o-202')")" ]
	[ -z "$(read_topic shop.dlq)" ]
}
