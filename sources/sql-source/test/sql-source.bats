#!/usr/bin/env bats
# sql-source run as a user would, against the machine's PostgreSQL
# (127.0.0.1:5432, trust auth, user postgres) and MariaDB (127.0.0.1:3306,
# root without password), and SQLite files. Rows are written with psql,
# mysql and sqlite3, independent clients; the topic is read with file-sink.
# Needs $CULVERT_BIN/{sql-source,file-source,file-sink}, psql, mysql,
# sqlite3, jq.

bats_require_minimum_version 1.5.0

load ../../../scripts/test/common

setup() {
	culvert_setup
	SS="$CULVERT_BIN/sql-source"
	DB="bats_sqlsrc_$$_$RANDOM"
	PG="postgres://postgres@127.0.0.1:5432/$DB"
	MY="mysql://root@127.0.0.1:3306/$DB"
	pids=()
}

teardown() {
	for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	psql -qX -h 127.0.0.1 -U postgres -d postgres -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
	mysql -h 127.0.0.1 -u root -e "DROP DATABASE IF EXISTS $DB" 2>/dev/null || true
}

pg() { psql -qX -v ON_ERROR_STOP=1 -h 127.0.0.1 -U postgres -d "$DB" "$@"; }
my() { mysql -h 127.0.0.1 -u root "$DB" "$@"; }
pg_create() { psql -qX -h 127.0.0.1 -U postgres -d postgres -c "CREATE DATABASE $DB" >/dev/null; }

@test "metadata names the connector and its options; the URL is write-only" {
	run --separate-stderr "$SS" metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.name == "sql-source" and .direction == "source"'
	echo "$output" | jq -e '.schema.properties | has("url") and has("table") and has("query") and has("cursor_column") and has("cursor_start") and has("key_columns") and has("value_column") and has("interval") and has("batch_rows") and has("delay")'
	echo "$output" | jq -e '.schema.properties.url.writeOnly == true'
	echo "$output" | jq -e '.schema.properties.interval.default == "5s"'
}

@test "version and --help" {
	assert_version "$SS" sql-source
	assert_help "$SS" Examples: --url --table --query --cursor-column --cursor-start --key-columns --value-column --interval --batch-rows --delay "concurrent transactions"
}

@test "bad flags exit 2 and name the option" {
	check() { assert_bad_option "$1" "$SS" --topic t --bus "$BUS" "${@:2}"; }
	check --table --url "$PG"
	check --query --url "$PG" --table t --query 'SELECT 1' --cursor-column id
	check --cursor-column --url "$PG" --table t
	check --query --url "$PG" --query 'SELECT * FROM t' --cursor-column id --cursor-start 0
	check --query --url "mysql://u:s3cret@h/db" --query 'SELECT * FROM t WHERE a > ? AND b > ?' --cursor-column id --cursor-start 0
	check --cursor-start --url "$PG" --query 'SELECT * FROM t WHERE id > $1 ORDER BY id' --cursor-column id
	check --url --url 'http://u:s3cret@h/db' --table t --cursor-column id
	check --url --table t --cursor-column id
	check --interval --url "$PG" --table t --cursor-column id --interval 0s
	check --batch-rows --url "$PG" --table t --cursor-column id --batch-rows 0
}

@test "a password in --url shows neither in logs, errors nor config" {
	run --separate-stderr "$SS" --topic t --bus "$BUS" --url 'postgres://me:s3cret@127.0.0.1:1/db' --table t --cursor-column id --max-retries 1 --log-level debug
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"127.0.0.1:1"* ]]
	[[ "$stderr" != *s3cret* ]]
	run --separate-stderr "$SS" config --topic t --url 'postgres://me:s3cret@127.0.0.1:1/db' --table t --cursor-column id
	[ "$status" -eq 0 ]
	[[ "$output" != *s3cret* ]]
}

@test "PostgreSQL: rows inserted with psql become JSON records keyed by id, then only new ones" {
	pg_create
	pg -c "CREATE TABLE orders (id bigserial PRIMARY KEY, amount numeric(14,2), customer text, at timestamptz, tags text[], doc jsonb)" \
		-c "INSERT INTO orders (amount, customer, at, tags, doc) VALUES
			(12.50, 'ann', '2024-05-01 10:00:00.123456+02', '{a,b}', '{\"vip\": true}'),
			(99999999999.99, NULL, NULL, NULL, NULL)"
	"$SS" --topic orders --bus "$BUS" --url "$PG" --table orders --cursor-column id --key-columns id --interval 100ms 2>"$T/err" &
	pid=$!
	pids+=($pid)
	out=$(wait_topic orders 2 $pid "$T/err")
	[ "$(echo "$out" | sed -n 1p)" = '{"id":1,"amount":12.50,"customer":"ann","at":"2024-05-01T08:00:00.123456Z","tags":["a","b"],"doc":{"vip": true}}' ]
	[ "$(echo "$out" | sed -n 2p)" = '{"id":2,"amount":99999999999.99,"customer":null,"at":null,"tags":null,"doc":null}' ]
	pg -c "INSERT INTO orders (amount, customer) VALUES (1, 'bob')"
	out=$(wait_topic orders 3 $pid "$T/err")
	echo "$out" | sed -n 3p | jq -e '.id == 3 and .customer == "bob"'
	stop_cleanly $pid "$T/err"
	[ "$(read_topic orders --output full | jq -r .key | paste -sd ' ')" = '{"id":1} {"id":2} {"id":3}' ]
	# A second run: nothing again, then the new row.
	pg -c "INSERT INTO orders (amount) VALUES (2)"
	"$SS" --topic orders --bus "$BUS" --url "$PG" --table orders --cursor-column id --interval 100ms 2>"$T/err" &
	pid=$!
	pids+=($pid)
	wait_topic orders 4 $pid "$T/err" >/dev/null
	sleep 0.5
	stop_cleanly $pid "$T/err"
	[ "$(read_topic orders | jq -c .id | paste -sd ' ')" = '1 2 3 4' ]
	grep -q 'resuming after the saved position' "$T/err"
}

@test "MariaDB: rows inserted with mysql, a DATETIME(6) cursor with ties, DECIMAL exact, BLOB base64" {
	mysql -h 127.0.0.1 -u root -e "CREATE DATABASE $DB"
	my -e "CREATE TABLE ev (id INT PRIMARY KEY, at DATETIME(6) NOT NULL, price DECIMAL(30,10), raw VARBINARY(8), ok TINYINT(1))"
	my -e "INSERT INTO ev VALUES (1, '2024-05-01 10:00:00.000001', 12345678901234567890.0000000001, x'00ff', 1),
		(2, '2024-05-01 10:00:00.000001', NULL, NULL, 0), (3, '2024-05-01 10:00:01', 1, NULL, NULL)"
	"$SS" --topic ev --bus "$BUS" --url "$MY" --table ev --cursor-column at --key-columns id --batch-rows 1 --interval 100ms 2>"$T/err" &
	pid=$!
	pids+=($pid)
	out=$(wait_topic ev 3 $pid "$T/err")
	[ "$(echo "$out" | sed -n 1p)" = '{"id":1,"at":"2024-05-01T10:00:00.000001Z","price":12345678901234567890.0000000001,"raw":"AP8=","ok":1}' ]
	[ "$(echo "$out" | jq -c .id | paste -sd ' ')" = '1 2 3' ]
	# A row with the last cursor value read and a higher id still comes.
	my -e "INSERT INTO ev (id, at) VALUES (4, '2024-05-01 10:00:01')"
	out=$(wait_topic ev 4 $pid "$T/err")
	stop_cleanly $pid "$T/err"
	[ "$(read_topic ev | jq -c .id | paste -sd ' ')" = '1 2 3 4' ]
}

@test "SQLite: rows inserted with sqlite3, read with --query from --cursor-start" {
	f="$T/app.db"
	sqlite3 "$f" "CREATE TABLE c (id INTEGER PRIMARY KEY, name TEXT); CREATE TABLE o (id INTEGER PRIMARY KEY, cid INT, amount REAL);
		INSERT INTO c VALUES (1, 'ann'); INSERT INTO o VALUES (1, 1, 1.5), (2, 1, 2.5), (3, 1, 3.5);"
	"$SS" --topic o --bus "$BUS" --url "sqlite://$f" --cursor-column id --cursor-start 1 --interval 100ms \
		--query 'SELECT o.id, o.amount, c.name FROM o JOIN c ON c.id = o.cid WHERE o.id > ? ORDER BY o.id' 2>"$T/err" &
	pid=$!
	pids+=($pid)
	wait_topic o 2 $pid "$T/err" >/dev/null
	sqlite3 "$f" "INSERT INTO o VALUES (4, 1, 4.5)"
	out=$(wait_topic o 3 $pid "$T/err")
	stop_cleanly $pid "$T/err"
	[ "$(echo "$out" | paste -sd ' ')" = '{"id":2,"amount":2.5,"name":"ann"} {"id":3,"amount":3.5,"name":"ann"} {"id":4,"amount":4.5,"name":"ann"}' ]
}

@test "kill -9 ten times while psql inserts rows: every row on the topic exactly once" {
	pg_create
	pg -c "CREATE TABLE ev (id bigserial PRIMARY KEY, at timestamptz NOT NULL DEFAULT now(), v text)"
	total=3000
	# psql inserts 30 rows a statement, 100 statements, as fast as it can.
	(for i in $(seq 1 100); do echo "INSERT INTO ev (v) SELECT 'x' || g FROM generate_series(1, 30) g;"; done | pg >/dev/null) &
	writer=$!
	pids+=($writer)
	args=(--topic ev --bus "$BUS" --url "$PG" --table ev --cursor-column at --key-columns id --batch-rows 50 --batch-size 50 --linger 0s --interval 20ms)
	for k in $(seq 1 10); do
		"$SS" "${args[@]}" 2>>"$T/err" &
		pid=$!
		pids+=($pid)
		# Killed at once, or after up to 0.5s of reading.
		sleep "0.$((RANDOM % 6))"
		kill -9 $pid
		wait $pid 2>/dev/null || true
	done
	wait $writer
	[ "$(pg -tAc 'SELECT count(*) FROM ev')" -eq $total ]
	"$SS" "${args[@]}" 2>>"$T/err" &
	pid=$!
	pids+=($pid)
	wait_topic ev $total $pid "$T/err" >/dev/null
	sleep 0.5
	stop_cleanly $pid "$T/err" >/dev/null
	read_topic ev | jq -r .id | sort -n >"$T/ids"
	seq 1 $total >"$T/want"
	# Each id once: nothing lost (every id of the table), nothing repeated.
	diff "$T/want" "$T/ids"
	[ "$(grep -c 'resuming after the saved position' "$T/err")" -ge 5 ]
}
