#!/usr/bin/env bash
# chaos.sh: a pipeline (file-source -> topic -> file-sink) run through what
# goes wrong in production, then checked for lost and duplicated records.
#
#   scripts/chaos.sh [-n RECORDS] [-kills K] [-seed S] [-bin DIR] [-size TMPFS_SIZE] [-full SECONDS]
#
# Two phases, each with RECORDS numbered JSON records ({"seq":1} ...) that
# the script appends to an input file in 100 chunks while file-source
# --follow publishes them and file-sink (--group chaos) writes them out:
#
#   embedded  the embedded bus on a small tmpfs (-size, 32m; about 40 bytes
#             a record plus the bus's 8 MiB reserve must fit) mounted for the
#             run; file-source and file-sink are each killed with kill -9 K
#             times at random moments (seeded with -seed) and restarted; a
#             third of the way in, a filler file fills the tmpfs and is
#             removed -full seconds (3) later.
#   redis     a private redis-server (free port, --appendonly yes
#             --appendfsync always, data in the run's directory; never the
#             machine's Redis) restarted with SIGTERM half-way, plus the same
#             K kills of each connector.
#
# A connector that exits by itself (not killed) is restarted too and
# counted. When the input is complete, file-source is stopped and run once
# more without --follow (it must exit 0 at the end of its input), then
# file-sink is stopped and run once more with --stop-at-end (exit 0). Checks:
#   - 0 lost: every input record is in the sink's output at least once;
#   - 0 duplicated where the guarantee says so: the topic, read by a fresh
#     group, holds each record exactly once and in input order (a source
#     writes its records and its position in one transaction: SQLite, or
#     Redis MULTI/EXEC);
#   - the sink's output may hold duplicates (at-least-once): counted, printed.
# Exit 0 when every check holds, 1 with a message on a violation, 2 on bad
# usage. Needs root (mount), redis-server, redis-cli, python3 and the built
# file-source and file-sink (-bin, default bin/ of the repository). Every
# wait has a timeout; whatever the script started is killed, and the tmpfs
# unmounted, on exit. The run's directory is removed on success and kept
# (its path printed) on failure.

set -euo pipefail

N=20000
KILLS=5
SEED=$$
BIN="$(cd "$(dirname "$0")/.." && pwd)/bin"
SIZE=32m
FULL=3

usage() {
	echo "usage: $0 [-n RECORDS] [-kills K] [-seed S] [-bin DIR] [-size TMPFS_SIZE] [-full SECONDS]" >&2
	exit 2
}

while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || usage
	case $1 in
	-n) N=$2 ;;
	-kills) KILLS=$2 ;;
	-seed) SEED=$2 ;;
	-bin) BIN=$2 ;;
	-size) SIZE=$2 ;;
	-full) FULL=$2 ;;
	*) usage ;;
	esac
	shift 2
done
[[ "$N" =~ ^[1-9][0-9]*$ ]] || { echo "chaos: -n must be a positive number of records" >&2; exit 2; }
[[ "$KILLS" =~ ^[0-9]+$ ]] || { echo "chaos: -kills must be a number" >&2; exit 2; }
[[ "$SEED" =~ ^[0-9]+$ ]] || { echo "chaos: -seed must be a number" >&2; exit 2; }
[[ "$FULL" =~ ^[0-9]+$ ]] || { echo "chaos: -full must be a number of seconds" >&2; exit 2; }
for b in file-source file-sink; do
	[ -x "$BIN/$b" ] || { echo "chaos: -bin: no $BIN/$b (make build)" >&2; exit 2; }
done
[ "$(id -u)" -eq 0 ] || { echo "chaos: must run as root (it mounts a tmpfs)" >&2; exit 2; }
for c in redis-server redis-cli python3 mount umount; do
	command -v "$c" >/dev/null || { echo "chaos: needs $c" >&2; exit 2; }
done

RANDOM=$SEED
CHUNKS=100
W=$(mktemp -d "${TMPDIR:-/tmp}/culvert-chaos.XXXXXX")
MNT=$W/tmpfs
SRC_PID='' SNK_PID='' REDIS_PID=''
OK=0

cleanup() {
	local p
	for p in $SRC_PID $SNK_PID $REDIS_PID; do
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if mountpoint -q "$MNT" 2>/dev/null; then
		umount "$MNT" 2>/dev/null || umount -l "$MNT" || true
	fi
	if [ "$OK" -eq 1 ]; then
		rm -rf "$W"
	else
		echo "chaos: logs and files kept in $W" >&2
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say() { echo "chaos: $*"; }

# fail MESSAGE: prints MESSAGE and the end of the connectors' logs, exits 1.
fail() {
	echo "chaos: FAIL: $*"
	local f
	for f in "$W"/*.err; do
		[ -f "$f" ] || continue
		echo "--- $(basename "$f") (last lines)"
		tail -n 5 "$f" | cut -c1-300
	done
	exit 1
}

# wait_exit PID SECONDS: waits until PID (a child) exited; sets RC to its
# exit status, or to "timeout" (and kills it with kill -9) after SECONDS.
# (Not run in $(...): a subshell cannot wait for the script's children.)
wait_exit() {
	local pid=$1 secs=$2
	RC=0
	for _ in $(seq 1 $((secs * 10))); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		kill -9 "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		RC=timeout
		return
	fi
	wait "$pid" || RC=$?
}

start_source() {
	"$BIN/file-source" --bus "$URL" --topic chaos --path "$IN" --follow --poll-interval 50ms \
		--log-format json 2>>"$W/$PHASE-source.err" &
	SRC_PID=$!
}

start_sink() {
	"$BIN/file-sink" --bus "$URL" --topic chaos --group chaos --from beginning --path "$OUT" \
		--log-format json 2>>"$W/$PHASE-sink.err" &
	SNK_PID=$!
}

# kill9 WHICH: kill -9 of the source or the sink at a random moment within
# the next 0.1 s, and a restart after up to 0.3 s.
kill9() {
	sleep "0.0$((RANDOM % 10))"
	if [ "$1" = source ]; then
		kill -9 "$SRC_PID" 2>/dev/null || true
		wait "$SRC_PID" 2>/dev/null || true
		sleep "0.$((RANDOM % 4))"
		start_source
	else
		# Behind: the sink had not written the last record appended so far.
		[ "$(tail -n 1 "$OUT" 2>/dev/null)" = "$(tail -n 1 "$IN")" ] || SNK_BEHIND=$((SNK_BEHIND + 1))
		kill -9 "$SNK_PID" 2>/dev/null || true
		wait "$SNK_PID" 2>/dev/null || true
		sleep "0.$((RANDOM % 4))"
		start_sink
	fi
}

# check_alive: restarts a connector that exited by itself, counting it.
check_alive() {
	local rc
	if ! kill -0 "$SRC_PID" 2>/dev/null; then
		rc=0
		wait "$SRC_PID" || rc=$?
		SRC_EXITS=$((SRC_EXITS + 1))
		say "$PHASE: file-source exited by itself with status $rc; restarting it"
		start_source
	fi
	if ! kill -0 "$SNK_PID" 2>/dev/null; then
		rc=0
		wait "$SNK_PID" || rc=$?
		SNK_EXITS=$((SNK_EXITS + 1))
		say "$PHASE: file-sink exited by itself with status $rc; restarting it"
		start_sink
	fi
}

FILLED_AT=
fill_disk() {
	# dd stops with "No space left on device": the tmpfs is full.
	dd if=/dev/zero of="$MNT/filler" bs=1M 2>/dev/null || true
	say "$PHASE: tmpfs filled ($(df -h --output=avail "$MNT" | tail -n 1 | tr -d ' ') left)"
	FILLED_AT=$SECONDS
}

free_disk() {
	if [ -n "$FILLED_AT" ]; then
		rm -f "$MNT/filler"
		FILLED_AT=
		say "$PHASE: tmpfs freed"
	fi
}

# free_port: a port nothing listens on, below Linux's ephemeral range
# (32768-60999), so that no client connection takes it while Redis restarts.
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
}

start_redis() {
	redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --dir "$W/redis" --appendonly yes \
		--appendfsync always --save '' --daemonize no >>"$W/redis-server.log" 2>&1 &
	REDIS_PID=$!
	for _ in $(seq 1 100); do
		[ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ] && return 0
		kill -0 "$REDIS_PID" 2>/dev/null || break
		sleep 0.1
	done
	tail -n 5 "$W/redis-server.log"
	fail "redis-server on port $REDIS_PORT does not answer"
}

restart_redis() {
	kill -TERM "$REDIS_PID"
	local rc
	wait_exit "$REDIS_PID" 30
	rc=$RC
	sleep 1
	start_redis
	say "$PHASE: redis-server restarted (it had exited with status $rc)"
}

# phase NAME URL MIDWAY: one run of the pipeline over the bus at URL, with
# MIDWAY (fill_disk or restart_redis) at a third of the input.
phase() {
	PHASE=$1 URL=$2
	local midway=$3 c per=$(((N + CHUNKS - 1) / CHUNKS)) from to rc start=$SECONDS
	IN=$W/$PHASE.in OUT=$W/$PHASE.out
	SRC_EXITS=0 SNK_EXITS=0 SNK_BEHIND=0
	: >"$IN"
	local -a src_kills=() snk_kills=()
	for c in $(seq 0 $((CHUNKS - 1))); do src_kills[c]=0 snk_kills[c]=0; done
	for _ in $(seq 1 "$KILLS"); do
		c=$((1 + RANDOM % (CHUNKS - 2)))
		src_kills[c]=$((src_kills[c] + 1))
		c=$((1 + RANDOM % (CHUNKS - 2)))
		snk_kills[c]=$((snk_kills[c] + 1))
	done
	start_source
	start_sink
	for c in $(seq 0 $((CHUNKS - 1))); do
		from=$((c * per + 1))
		to=$(((c + 1) * per))
		[ "$to" -le "$N" ] || to=$N
		[ "$from" -le "$to" ] && seq "$from" "$to" | sed 's/.*/{"seq":&}/' >>"$IN"
		[ "$c" -eq $((CHUNKS / 3)) ] && "$midway"
		if [ -n "$FILLED_AT" ] && [ $((SECONDS - FILLED_AT)) -ge "$FULL" ]; then free_disk; fi
		for _ in $(seq 1 "${src_kills[c]}"); do kill9 source; done
		for _ in $(seq 1 "${snk_kills[c]}"); do kill9 sink; done
		check_alive
		sleep 0.05
	done
	# Hold the disk full for its -full seconds even when the input was quicker.
	if [ -n "$FILLED_AT" ]; then
		while [ $((SECONDS - FILLED_AT)) -lt "$FULL" ]; do check_alive; sleep 0.2; done
		free_disk
	fi
	check_alive
	# The input is complete: the follower stops, and one run without --follow
	# must publish the rest and exit 0 at the end of the file.
	kill -TERM "$SRC_PID"
	wait_exit "$SRC_PID" 60
	rc=$RC
	SRC_PID=
	[ "$rc" = 0 ] || say "$PHASE: file-source --follow exited with status $rc after SIGTERM"
	"$BIN/file-source" --bus "$URL" --topic chaos --path "$IN" --log-format json 2>>"$W/$PHASE-source.err" &
	SRC_PID=$!
	wait_exit "$SRC_PID" 300
	rc=$RC
	SRC_PID=
	[ "$rc" = 0 ] || fail "$PHASE: the last file-source run (no --follow) exited with status $rc"
	kill -TERM "$SNK_PID"
	wait_exit "$SNK_PID" 60
	rc=$RC
	SNK_PID=
	[ "$rc" = 0 ] || say "$PHASE: file-sink exited with status $rc after SIGTERM"
	"$BIN/file-sink" --bus "$URL" --topic chaos --group chaos --path "$OUT" --stop-at-end \
		--log-format json 2>>"$W/$PHASE-sink.err" &
	SNK_PID=$!
	wait_exit "$SNK_PID" 300
	rc=$RC
	SNK_PID=
	[ "$rc" = 0 ] || fail "$PHASE: the last file-sink --stop-at-end run exited with status $rc"

	# 0 lost: every input record in the sink's output.
	local lost total distinct garbled
	lost=$(comm -23 <(sort -u "$IN") <(sort -u "$OUT") | wc -l)
	total=$(wc -l <"$OUT")
	distinct=$(sort -u "$OUT" | wc -l)
	garbled=$(comm -13 <(sort -u "$IN") <(sort -u "$OUT") | wc -l)
	if [ "$lost" -gt 0 ]; then
		{ comm -23 <(sort -u "$IN") <(sort -u "$OUT") | head -n 5 | sed 's/^/  lost: /'; } || true # head closes the pipe early (pipefail)
		fail "$PHASE: $lost of $N records lost (not in the sink's output)"
	fi
	say "$PHASE: 0 lost: all $N records in the sink's output"
	say "$PHASE: sink output: $total lines, $((total - distinct)) duplicates (at-least-once)"
	if [ "$garbled" -gt 0 ]; then
		say "$PHASE: FINDING: $garbled lines of the sink's output are no input record (a write cut by kill -9?):"
		{ comm -13 <(sort -u "$IN") <(sort -u "$OUT") | head -n 3 | cut -c1-100 | sed 's/^/  /'; } || true # head closes the pipe early (pipefail)
	fi
	# 0 duplicated in the topic: a fresh group reads exactly the input.
	timeout 300 "$BIN/file-sink" --bus "$URL" --topic chaos --group "verify-$RANDOM" --from beginning \
		--stop-at-end --path - 2>>"$W/$PHASE-verify.err" >"$W/$PHASE.topic" ||
		fail "$PHASE: reading the topic back failed"
	if ! cmp -s "$IN" "$W/$PHASE.topic"; then
		local tl td
		tl=$(wc -l <"$W/$PHASE.topic")
		td=$(sort -u "$W/$PHASE.topic" | wc -l)
		{ diff "$IN" "$W/$PHASE.topic" | head -n 6 | sed 's/^/  /'; } || true # head closes the pipe early (pipefail)
		fail "$PHASE: the topic does not hold each record once and in order: $tl records, $td distinct, $((tl - td)) duplicated, want $N"
	fi
	say "$PHASE: 0 duplicated: the topic holds each of the $N records once, in order"
	say "$PHASE: $KILLS kill -9 of file-source, $KILLS of file-sink ($SNK_BEHIND while it was behind the input), exits by themselves: source $SRC_EXITS, sink $SNK_EXITS; $((SECONDS - start)) s"
	local f n
	for f in source sink; do
		n=$(grep -cE '"level":"(warn|error)"' "$W/$PHASE-$f.err" || true)
		say "$PHASE: file-$f logged $n warnings and errors$([ "$n" -eq 0 ] || printf ', the first: %s' "$(grep -m 1 -E '"level":"(warn|error)"' "$W/$PHASE-$f.err" | cut -c1-240)")"
	done
}

say "seed $SEED, $N records, $KILLS kills of each connector, run directory $W"
mkdir -p "$MNT" "$W/redis"
mount -t tmpfs -o "size=$SIZE" tmpfs "$MNT"
phase embedded "$MNT/bus" fill_disk
say "embedded: the tmpfs holds $(du -sh "$MNT" | cut -f1) at the end, of $SIZE (the bus keeps a reserve: see README)"
umount "$MNT"

REDIS_PORT=$(free_port)
start_redis
phase redis "redis://127.0.0.1:$REDIS_PORT?claim_idle=2s" restart_redis
kill -TERM "$REDIS_PID"
wait_exit "$REDIS_PID" 30
REDIS_PID=

OK=1
say "PASS"
