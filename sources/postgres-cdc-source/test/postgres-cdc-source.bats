#!/usr/bin/env bats
# postgres-cdc-source run as a user would, against a private PostgreSQL
# server with wal_level=logical (common/client/sqldb/sqltest/pg.bash:
# initdb and pg_ctl on a spare port; the machine's server has
# wal_level=replica), each test in a database of its own. What the source
# published is checked against what psql reads, and the slot's state with
# psql. The orders example on into MariaDB is sinks/sql-sink's test.
# Needs $CULVERT_BIN/{postgres-cdc-source,file-source,file-sink},
# psql, curl, jq and PostgreSQL's server programs (initdb, pg_ctl).

bats_require_minimum_version 1.5.0

load ../../../scripts/test/common
load ../../../common/client/sqldb/sqltest/pg

setup_file() {
	pg_start
}

teardown_file() {
	pg_remove
}

setup() {
	culvert_setup
	CS="$CULVERT_BIN/postgres-cdc-source"
	PIDS=()
}

teardown() {
	local p
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	if [ -n "${DB:-}" ]; then
		psql -XAtq "$PGSRV/$DB" -c "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = current_database()" >/dev/null 2>&1 || true
		psql -XAtq "$PGSRV/postgres" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" || true
	fi
}

# start_source ERRFILE ARG...: starts the source in the background; sets pid.
start_source() {
	local err=$1
	shift
	"$CS" "$@" >/dev/null 2>"$err" &
	pid=$!
	PIDS+=($pid)
}

# wait_slot SLOT: waits until the connector streams from the slot (past
# the snapshot), so that what the test changes next is a change, not a
# snapshot row.
wait_slot() {
	for _ in $(seq 1 200); do
		[ "$(q "SELECT count(*) FROM pg_replication_slots s JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE s.slot_name = '$1' AND r.state IN ('catchup', 'streaming')")" = 1 ] && return 0
		sleep 0.1
	done
	echo "slot $1 is not streaming"
	return 1
}

# pending SLOT: the changes the slot still holds past its confirmed
# position, read with psql once the connector let go of it.
pending() {
	local n
	for _ in $(seq 1 100); do
		if n=$(q "SELECT count(*) FROM pg_logical_slot_peek_binary_changes('$1', NULL, NULL, 'proto_version', '1', 'publication_names', 'culvert') WHERE get_byte(data, 0) IN (73, 85, 68, 84)" 2>/dev/null); then
			echo "$n"
			return 0
		fi
		sleep 0.1
	done
	echo "slot $1 stayed active"
	return 1
}

# replay: the rows a topic of change records leaves, id|item|qty a line,
# by id: each r, c and u sets its row, each d removes it.
replay() {
	jq -rs 'reduce .[] as $c ({}; if $c.op == "d" then del(.[$c.before.id | tostring]) else .[$c.after.id | tostring] = $c.after end)
		| [.[]] | sort_by(.id) | .[] | "\(.id)|\(.item)|\(.qty // "")"'
}

@test "metadata names the connector and its options; the URL is write-only" {
	run --separate-stderr "$CS" metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.name == "postgres-cdc-source" and .direction == "source"'
	echo "$output" | jq -e '.schema.properties | has("url") and has("publication") and has("slot") and has("table") and has("snapshot") and has("slot_drop_on_stop") and has("status_interval") and has("max_tx_records")'
	echo "$output" | jq -e '.schema.properties.url.writeOnly == true and .schema.properties.snapshot.enum == ["initial", "never"]'
}

@test "version and --help" {
	assert_version "$CS" postgres-cdc-source
	assert_help "$CS" Examples: --url --publication --slot --table --snapshot --slot-drop-on-stop --status-interval --max-tx-records --max-retries
}

@test "bad flags exit 2 and name the option" {
	check() { assert_bad_option "$1" "$CS" --topic t --bus "$BUS" "${@:2}"; }
	check --url
	check --url --url 'mysql://root:s3cret@127.0.0.1:3306/test'
	check --url --url 'postgres://u:s3cret@h:notaport/db'
	check --slot --url "$PGSRV/x" --slot 'Bad-Slot'
	check --publication --url "$PGSRV/x" --publication 'a b'
	check --table --url "$PGSRV/x" --table 'a.b.c'
	check --snapshot --url "$PGSRV/x" --snapshot sometimes
	check --status-interval --url "$PGSRV/x" --status-interval 0s
	[[ "$stderr" != *s3cret* ]]
}

@test "the machine's PostgreSQL has wal_level=replica: exit 1 saying what to change" {
	[ "$(psql -XAtq -h 127.0.0.1 -U postgres -d postgres -c 'SHOW wal_level')" = replica ]
	run --separate-stderr "$CS" --topic t --bus "$BUS" --url postgres://postgres@127.0.0.1:5432/postgres --max-retries 1
	[ "$status" -eq 1 ]
	[[ "$stderr" == *"wal_level is replica: logical replication needs wal_level = logical"* ]]
}

@test "a snapshot of 1,000 rows, then 1,015 changes in one transaction: replayed, they are what psql reads; the slot holds nothing after a clean stop" {
	pg_newdb
	q "CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL, qty int)"
	q "INSERT INTO orders SELECT i, 'item ' || i, i % 7 FROM generate_series(1, 1000) i"
	port=$(free_port)
	start_source "$T/src.err" --topic o --bus "$BUS" --url "$U" --slot s1 --status-interval 200ms --metrics-addr "127.0.0.1:$port"
	wait_topic o 1000 $pid "$T/src.err" >/dev/null
	wait_slot s1
	q "BEGIN; INSERT INTO orders SELECT i, 'item ' || i, NULL FROM generate_series(1001, 2000) i;
		UPDATE orders SET qty = qty + 100 WHERE id <= 10; DELETE FROM orders WHERE id BETWEEN 11 AND 15; COMMIT"
	wait_topic o 2015 $pid "$T/src.err" >/dev/null
	curl -sf "127.0.0.1:$port/metrics" | grep -q '^culvert_replication_slot_lag_bytes{.*slot="s1"'
	stop_cleanly $pid "$T/src.err"
	diff <(q "SELECT id, item, coalesce(qty::text, '') FROM orders ORDER BY id") <(read_topic o | replay)
	[ "$(read_topic o | jq -r .op | sort | uniq -c | awk '{print $2 $1}' | paste -sd' ')" = "c1000 d5 r1000 u10" ]
	# The primary key is the record key; a transaction's changes share its txid.
	[ "$(read_topic o --output full | jq -c '.key | fromjson' | sed -n '1p;1001p')" = "$(printf '{"id":1}\n{"id":1001}')" ]
	[ "$(read_topic o | jq -r 'select(.op != "r") | .source.txid' | sort -u | wc -l)" -eq 1 ]
	[ "$(pending s1)" = 0 ]
	grep -q '"message":"created the replication slot"' "$T/src.err"
}

@test "a second run reuses the slot: no snapshot, only what changed meanwhile, nothing twice" {
	pg_newdb
	q "CREATE TABLE orders (id int PRIMARY KEY, item text, qty int)"
	q "INSERT INTO orders VALUES (1, 'a', 1)"
	start_source "$T/src.err" --topic o --bus "$BUS" --url "$U" --slot again
	wait_topic o 1 $pid "$T/src.err" >/dev/null
	stop_cleanly $pid "$T/src.err"
	q "INSERT INTO orders VALUES (2, 'b', 2); UPDATE orders SET qty = 10 WHERE id = 1"
	start_source "$T/src2.err" --topic o --bus "$BUS" --url "$U" --slot again
	wait_topic o 3 $pid "$T/src2.err" >/dev/null
	sleep 1
	stop_cleanly $pid "$T/src2.err"
	[ "$(read_topic o | jq -r .op | paste -sd' ')" = "r c u" ]
	grep -q "reusing the replication slot (no snapshot)" "$T/src2.err"
	[ "$(pending again)" = 0 ]
}

@test "--slot-drop-on-stop: psql sees the slot while the source runs, and not after" {
	pg_newdb
	q "CREATE TABLE t (id int PRIMARY KEY)"
	q "INSERT INTO t VALUES (1)"
	start_source "$T/src.err" --topic tmp --bus "$BUS" --url "$U" --slot throwaway --slot-drop-on-stop
	wait_topic tmp 1 $pid "$T/src.err" >/dev/null
	[ "$(q "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'throwaway'")" = 1 ]
	stop_cleanly $pid "$T/src.err"
	[ "$(q "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'throwaway'")" = 0 ]
}

@test "a table without a primary key is reported at start; its records have a null key" {
	pg_newdb
	q "CREATE TABLE notes (body text)"
	q "ALTER TABLE notes REPLICA IDENTITY FULL"
	start_source "$T/src.err" --topic n --bus "$BUS" --url "$U" --slot nokey
	wait_slot nokey
	q "INSERT INTO notes VALUES ('x'); UPDATE notes SET body = 'y'; DELETE FROM notes"
	wait_topic n 3 $pid "$T/src.err" >/dev/null
	stop_cleanly $pid "$T/src.err"
	grep '"table":"public.notes"' "$T/src.err" | grep -q 'table without a primary key'
	[ "$(read_topic n --output full | jq -c '.key' | sort -u)" = null ]
	[ "$(read_topic n | jq -c '[.op, .before, .after]' | paste -sd' ')" = '["c",null,{"body":"x"}] ["u",{"body":"x"},{"body":"y"}] ["d",{"body":"y"},null]' ]
}

@test "a restart of the PostgreSQL server mid-stream: the source reconnects by itself, nothing lost" {
	pg_newdb
	q "CREATE TABLE t (id int PRIMARY KEY)"
	start_source "$T/src.err" --topic r --bus "$BUS" --url "$U" --slot restart --status-interval 200ms
	wait_slot restart
	(
		for i in $(seq 0 59); do
			until psql -XAtq "$PGSRV/$DB" -c "INSERT INTO t SELECT generate_series($((i * 100 + 1)), $((i * 100 + 100)))" 2>/dev/null; do sleep 0.2; done
			sleep 0.05
		done
	) &
	writer=$!
	wait_topic r 1000 $pid "$T/src.err" >/dev/null
	pg_down fast
	sleep 1
	pg_up
	wait $writer
	wait_distinct r 6000 $pid "$T/src.err" >/dev/null
	stop_cleanly $pid "$T/src.err"
	grep -q "replication connection lost" "$T/src.err"
	grep -q "replication resumed after reconnecting" "$T/src.err"
	diff <(q "SELECT id FROM t ORDER BY id") <(read_topic r | jq -r .after.id | sort -n | uniq)
	[ "$(pending restart)" = 0 ]
}
