# Loaded by the SQL connectors' bats tests after scripts/test/common
# (postgres-cdc-source, sql-sink): a private PostgreSQL server with
# wal_level=logical (the machine's has wal_level=replica) that a test may
# also stop and start, started with initdb and pg_ctl on a spare port as
# sqltest.StartPostgres does: as the user postgres when run as root, since
# initdb refuses root. psql is the independent client.

# pg_bindir: the directory of initdb and pg_ctl (PG_BIN, pg_config
# --bindir, or the newest /usr/lib/postgresql/*/bin).
pg_bindir() {
	if [ -n "${PG_BIN:-}" ]; then echo "$PG_BIN"; return; fi
	local d
	d=$(pg_config --bindir 2>/dev/null || true)
	if [ -x "$d/initdb" ]; then echo "$d"; return; fi
	ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1
}

# as_pg COMMAND...: runs COMMAND as the user postgres when root.
as_pg() {
	if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# pg_start [SETTING...]: initdb and start a server in a new directory with
# wal_level=logical and the SETTINGs (name=value); exports PGBASE, PGB_PORT
# and PGSRV (the server's URL, without a database).
pg_start() {
	local bin opts s
	bin=$(pg_bindir)
	PGBASE=$(mktemp -d /tmp/culvert-pg-bats-XXXXXX)
	PGB_PORT=$(free_port)
	chmod 755 "$PGBASE"
	[ "$(id -u)" != 0 ] || chown postgres "$PGBASE"
	as_pg "$bin/initdb" -D "$PGBASE/data" -A trust -U postgres --no-sync -E UTF8 >/dev/null
	opts="-p $PGB_PORT -k $PGBASE -c listen_addresses=127.0.0.1 -c fsync=off -c wal_level=logical -c max_replication_slots=20 -c max_wal_senders=20"
	for s in "$@"; do opts="$opts -c $s"; done
	echo "$opts" >"$PGBASE/opts"
	pg_up
	export PGBASE PGB_PORT PGSRV="postgres://postgres@127.0.0.1:$PGB_PORT"
}

# pg_up: starts the server (again).
pg_up() {
	as_pg "$(pg_bindir)/pg_ctl" -D "$PGBASE/data" -o "$(cat "$PGBASE/opts")" -l "$PGBASE/log" -w -t 60 start >/dev/null
}

# pg_down [MODE]: stops the server (pg_ctl -m MODE: fast by default).
pg_down() {
	as_pg "$(pg_bindir)/pg_ctl" -D "$PGBASE/data" -m "${1:-fast}" -w -t 60 stop >/dev/null
}

# pg_remove: stops the server at once and removes its directory.
pg_remove() {
	[ -n "${PGBASE:-}" ] || return 0
	pg_down immediate 2>/dev/null || true
	rm -rf "$PGBASE"
}

# pg_newdb: a database of the test's own; sets DB and U (its URL).
pg_newdb() {
	DB="t$$_$RANDOM"
	psql -XAtq "$PGSRV/postgres" -c "CREATE DATABASE $DB"
	U="$PGSRV/$DB?sslmode=disable"
}

# q SQL: runs SQL in the test's database, unaligned, tuples only.
q() { psql -XAtq "$PGSRV/$DB" -c "$1"; }
