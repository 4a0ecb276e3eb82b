# Loaded by the Redis connectors' bats tests after scripts/test/common:
# `load ../../../common/client/redis/redistest/redis`. redis-cli is the
# independent other side; the machine's Redis is 127.0.0.1:6379 (started by
# scripts/services.sh) and private servers are redis-server processes on
# free ports.

# redis_setup_file: fails unless the machine's Redis answers.
redis_setup_file() {
	[ "$(redis-cli -h 127.0.0.1 -p 6379 PING)" = PONG ] ||
		{ echo "Redis is not running on 127.0.0.1:6379: run scripts/services.sh" >&2; return 1; }
}

# redis_setup: sets ID, a unique prefix for the test's keys (deleted by
# redis_teardown), and PIDS, the processes redis_teardown kills.
redis_setup() {
	ID="culvert-bats:$RANDOM$RANDOM"
	PIDS=()
}

# redis_teardown: kills what the test started and deletes its keys on the
# machine's Redis.
redis_teardown() {
	local p
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	redis-cli --scan --pattern "$ID*" | xargs -r redis-cli DEL >/dev/null
}

# rcli [ARG...]: redis-cli on the machine's Redis, or on $RPORT when set.
rcli() {
	redis-cli -h 127.0.0.1 -p "${RPORT:-6379}" "$@"
}

# start_redis PORT DIR: starts a private redis-server (again) with an
# fsynced append-only file in DIR, waits until it answers; sets SPID.
start_redis() {
	local port=$1 dir=$2
	mkdir -p "$dir"
	redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --appendonly yes --appendfsync always --save '' >>"$dir/redis.log" 2>&1 3>&- &
	SPID=$!
	PIDS+=($SPID)
	for _ in $(seq 1 100); do
		[ "$(redis-cli -p "$port" PING 2>/dev/null)" = PONG ] && return 0
		sleep 0.1
	done
	echo "redis-server on port $port did not start"
	cat "$dir/redis.log"
	return 1
}

# stop_redis: stops the private server with SIGTERM (it fsyncs) and waits.
stop_redis() {
	kill -TERM "$SPID"
	wait "$SPID" || true
}

# resp ARG...: each line of standard input, split at tabs, as the RESP of
# the command ARG... followed by the line's fields: for redis-cli --pipe.
resp() {
	awk -F '\t' -v pre="$*" 'BEGIN { np = split(pre, p, " ") }
		{ printf "*%d\r\n", np + NF; for (i = 1; i <= np; i++) printf "$%d\r\n%s\r\n", length(p[i]), p[i]
		  for (i = 1; i <= NF; i++) printf "$%d\r\n%s\r\n", length($i), $i }'
}

# xadd_seq STREAM FROM TO: adds entries v={"n":FROM}..{"n":TO} to STREAM,
# pipelined (redis-cli --pipe).
xadd_seq() {
	seq "$2" "$3" | awk '{ printf "v\t{\"n\":%d}\n", $1 }' | resp XADD "$1" '*' | rcli --pipe >/dev/null
}

# lpush_seq LIST FROM TO: pushes {"n":FROM}..{"n":TO} on the left of LIST,
# in order, pipelined.
lpush_seq() {
	seq "$2" "$3" | awk '{ printf "{\"n\":%d}\n", $1 }' | resp LPUSH "$1" | rcli --pipe >/dev/null
}

# pending STREAM GROUP: how many entries GROUP has delivered and not acknowledged.
pending() {
	rcli XPENDING "$1" "$2" | head -1
}

# group_field STREAM GROUP FIELD: a field of XINFO GROUPS for GROUP (lag, pending, ...).
group_field() {
	rcli XINFO GROUPS "$1" | awk -v g="$2" -v f="$3" 'prev == "name" { name = $0 } name == g && prev == f { print; exit } { prev = $0 }'
}
