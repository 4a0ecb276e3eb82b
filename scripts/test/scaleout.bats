#!/usr/bin/env bats
# Scale-out and server restarts over the distributed buses, run as a user
# would with the real file-source and file-sink:
#
#   - three file-sink processes in one --group read one topic while
#     file-source publishes it; one of them is killed with kill -9 mid-way;
#     at the end every record was written at least once (duplicates are
#     counted and printed: at-least-once allows them). Where the backend
#     shares a topic between members (nats, redis, kafka with partitions),
#     more than one process wrote records; where one member is active at a
#     time (amqp stream queues, the embedded store), another member took over
#     from the killed one.
#   - a private nats-server / redis-server restarted mid-stream: the
#     connectors reconnect by themselves and every line gets written.
#
# NATS and Redis run as private servers on free ports (nothing to clean up,
# and they can be restarted); Kafka is scripts/kfake (franz-go's in-process
# cluster: Kafka cannot be installed here); RabbitMQ is the machine's, with
# a queue prefix unique to the test, deleted afterwards.
# Needs $CULVERT_BIN/file-source and file-sink (built when missing), go,
# /usr/sbin/nats-server, redis-server, rabbitmqctl, python3.

bats_require_minimum_version 1.5.0

load common

N=20000

setup_file() {
	ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
	export ROOT
	: "${CULVERT_BIN:=$ROOT/bin}"
	export CULVERT_BIN
	for m in sources/file-source sinks/file-sink; do
		[ -x "$CULVERT_BIN/$(basename $m)" ] || make -s -C "$ROOT/$m" build >&2
	done
	(cd "$ROOT" && go build -o "$BATS_FILE_TMPDIR/kfake" ./scripts/kfake) >&2
}

setup() {
	culvert_setup
	ID="$(date +%s)$RANDOM$RANDOM"
	PIDS=()
	SERVER_PIDS=()
	AMQP_PREFIX=""
}

teardown() {
	local p
	for p in "${PIDS[@]}" "${SERVER_PIDS[@]}"; do
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [ -n "$AMQP_PREFIX" ]; then
		local q
		for q in $(timeout 60 rabbitmqctl -q list_queues name 2>/dev/null | grep -F "$AMQP_PREFIX"); do
			timeout 30 rabbitmqctl -q delete_queue "$q" </dev/null >/dev/null 2>&1 || true
		done
	fi
}

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT: waits up to 10 s until something listens on PORT.
wait_port() {
	for _ in $(seq 1 100); do
		(exec 5<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "nothing listens on port $1"
	return 1
}

# start_nats PORT DIR: a private nats-server with JetStream, data in DIR.
start_nats() {
	/usr/sbin/nats-server -a 127.0.0.1 -p "$1" -js -sd "$2" >>"$T/nats-server.log" 2>&1 &
	NATS_PID=$!
	SERVER_PIDS+=("$NATS_PID")
	wait_port "$1"
}

# start_redis PORT DIR: a private redis-server that fsyncs every write.
start_redis() {
	mkdir -p "$2"
	redis-server --port "$1" --bind 127.0.0.1 --dir "$2" --appendonly yes --appendfsync always \
		--save '' --daemonize no >>"$T/redis-server.log" 2>&1 &
	REDIS_PID=$!
	SERVER_PIDS+=("$REDIS_PID")
	wait_port "$1"
	for _ in $(seq 1 100); do
		[ "$(redis-cli -p "$1" ping 2>/dev/null)" = PONG ] && return 0
		sleep 0.1
	done
	echo "redis-server on port $1 does not answer"
	return 1
}

# start_kfake: scripts/kfake on a random port; sets KAFKA (host:port).
start_kfake() {
	"$BATS_FILE_TMPDIR/kfake" >"$T/kfake.out" 2>"$T/kfake.log" &
	SERVER_PIDS+=($!)
	for _ in $(seq 1 100); do
		KAFKA=$(head -n1 "$T/kfake.out" 2>/dev/null)
		[ -n "$KAFKA" ] && return 0
		sleep 0.1
	done
	cat "$T/kfake.log"
	echo "kfake printed no address"
	return 1
}

# lines FILE: the number of lines of FILE, 0 when it does not exist.
lines() {
	if [ -f "$1" ]; then wc -l <"$1"; else echo 0; fi
}

# distinct FILE...: the number of distinct lines of the FILEs.
distinct() {
	cat "$@" 2>/dev/null | sort -u | wc -l
}

# report_dups FILE...: prints (to the test's output) how many lines were
# written more than once, and the first of them.
report_dups() {
	local total uniq
	total=$(cat "$@" 2>/dev/null | wc -l)
	uniq=$(distinct "$@")
	echo "# written $total lines, $uniq distinct, $((total - uniq)) duplicates" >&3
	if [ "$total" -gt "$uniq" ]; then
		cat "$@" | sort | uniq -d | head -n 10 | sed 's/^/#   duplicate: /' >&3
	fi
}

# scale_out URL MODE [FLAG...]: the scale-out check on the bus at URL. MODE
# is share (several members work at once) or takeover (one active member at
# a time); the FLAGs go to the source and the sinks.
scale_out() {
	local url=$1 mode=$2 topic="scaleout-$ID" group="so-$ID" i victim=0 most=0
	shift 2
	seq 1 "$N" | sed 's/.*/{"seq":&}/' >"$T/want"
	for i in 1 2 3; do
		"$SNK" --bus "$url" --topic "$topic" --group "$group" --from beginning \
			--path "$T/out$i" --log-format json "$@" 2>"$T/sink$i.err" &
		PIDS[i]=$!
	done
	# The source publishes in 40 bursts of 500 records, 0.1 s apart, so that
	# the sinks are mid-way when one of them is killed.
	(for b in $(seq 0 39); do
		sed -n "$((b * 500 + 1)),$((b * 500 + 500))p" "$T/want"
		sleep 0.1
	done) | "$SRC" --bus "$url" --topic "$topic" --path - --log-format json "$@" 2>"$T/source.err" &
	local src=$!
	PIDS+=("$src")
	# Kill, mid-way, the member that wrote the most so far.
	for _ in $(seq 1 300); do
		[ "$(distinct "$T"/out?)" -ge $((N / 4)) ] && break
		sleep 0.05
	done
	for i in 1 2 3; do
		if [ "$(lines "$T/out$i")" -gt "$most" ]; then
			most=$(lines "$T/out$i")
			victim=$i
		fi
	done
	[ "$victim" -gt 0 ] || { echo "no sink wrote anything in 15 s"; cat "$T"/sink*.err "$T/source.err"; return 1; }
	local written_before
	written_before=$(distinct "$T"/out?)
	kill -9 "${PIDS[victim]}"
	wait "${PIDS[victim]}" 2>/dev/null || true
	echo "# killed sink $victim after it wrote $most lines ($written_before of $N written in all)" >&3
	[ "$written_before" -lt "$N" ] || { echo "everything was written before the kill: not a mid-way kill"; return 1; }
	wait "$src" || { cat "$T/source.err"; echo "file-source failed"; return 1; }
	# Every record written at least once, by the survivors (and the killed one).
	for _ in $(seq 1 300); do
		[ "$(distinct "$T"/out?)" -ge "$N" ] && break
		sleep 0.1
	done
	for i in 1 2 3; do
		echo "# sink $i wrote $(lines "$T/out$i") lines$([ "$i" = "$victim" ] && echo ' (killed)')" >&3
	done
	report_dups "$T"/out?
	cat "$T"/out? | sort -u >"$T/got"
	if ! cmp -s <(sort "$T/want") "$T/got"; then
		echo "records missing or unexpected (< want, > got):"
		diff <(sort "$T/want") "$T/got" | head -n 20
		for i in 1 2 3; do echo "--- sink $i"; tail -n 5 "$T/sink$i.err"; done
		return 1
	fi
	local writers=0 survivors_wrote=0
	for i in 1 2 3; do
		[ "$(lines "$T/out$i")" -gt 0 ] && writers=$((writers + 1))
		[ "$i" != "$victim" ] && [ "$(lines "$T/out$i")" -gt 0 ] && survivors_wrote=1
	done
	if [ "$mode" = share ]; then
		[ "$writers" -ge 2 ] || { echo "only $writers sink process wrote records: the group did not share the topic"; return 1; }
	else
		[ "$writers" -eq 2 ] || { echo "$writers sink processes wrote records: want the killed active one and one that took over"; return 1; }
	fi
	[ "$survivors_wrote" -eq 1 ] || { echo "no surviving sink took over"; return 1; }
	# The survivors stop cleanly.
	for i in 1 2 3; do
		[ "$i" = "$victim" ] && continue
		stop_cleanly "${PIDS[i]}" "$T/sink$i.err" 20 >/dev/null || {
			# The goroutines in Culvert's code, from the SIGQUIT dump.
			awk -v RS= '/culvert-dev/' "$T/sink$i.err" | head -n 200
			tail -n 5 "$T/sink$i.err"
			echo "sink $i did not stop cleanly"
			return 1
		}
	done
}

@test "nats: three sinks in one group share a topic; kill -9 of one loses nothing" {
	local port
	port=$(free_port)
	start_nats "$port" "$T/nats"
	scale_out "nats://127.0.0.1:$port?ack_wait=2s" share
}

@test "redis: three sinks in one group share a topic; kill -9 of one loses nothing" {
	local port
	port=$(free_port)
	start_redis "$port" "$T/redis"
	scale_out "redis://127.0.0.1:$port?claim_idle=2s" share
}

@test "kafka (kfake, --bus-partitions 3): three sinks in one group share a topic; kill -9 of one loses nothing" {
	start_kfake
	scale_out "kafka://$KAFKA?session_timeout=2s" share --bus-partitions 3
}

@test "amqp: one active sink of three; after its kill -9 a standby takes over and nothing is lost" {
	AMQP_PREFIX="so$ID."
	scale_out "amqp://guest:guest@127.0.0.1:5672/?prefix=$AMQP_PREFIX&takeover=500ms" takeover
}

@test "embedded: one active sink of three; after its kill -9 another takes over and nothing is lost" {
	scale_out "$BUS" takeover
}

# restart_mid_stream URL RESTART: file-source --follow publishes lines that
# the test appends to a file, file-sink writes them; after a third of them
# RESTART (a function) restarts the server. Every line must be written at
# least once, and both connectors must still run afterwards.
restart_mid_stream() {
	local url=$1 restart=$2 topic="restart-$ID" m=3000 b
	: >"$T/in"
	"$SRC" --bus "$url" --topic "$topic" --path "$T/in" --follow --poll-interval 50ms --log-format json 2>"$T/source.err" &
	local src=$!
	PIDS+=("$src")
	"$SNK" --bus "$url" --topic "$topic" --group "r-$ID" --from beginning --path "$T/out" --log-format json 2>"$T/sink.err" &
	local snk=$!
	PIDS+=("$snk")
	for b in $(seq 0 29); do
		seq $((b * 100 + 1)) $((b * 100 + 100)) | sed 's/.*/{"line":&}/' >>"$T/in"
		sleep 0.1
		if [ "$b" -eq 9 ]; then
			"$restart"
			echo "# server restarted after $(lines "$T/out") lines were written" >&3
		fi
	done
	for _ in $(seq 1 300); do
		[ "$(distinct "$T/out")" -ge "$m" ] && break
		kill -0 "$src" 2>/dev/null && kill -0 "$snk" 2>/dev/null || break
		sleep 0.1
	done
	report_dups "$T/out"
	local ok=1
	kill -0 "$src" 2>/dev/null || { wait "$src"; echo "file-source exited with status $?:"; tail -n 20 "$T/source.err"; ok=0; }
	kill -0 "$snk" 2>/dev/null || { wait "$snk"; echo "file-sink exited with status $?:"; tail -n 20 "$T/sink.err"; ok=0; }
	if [ "$(distinct "$T/out")" -lt "$m" ]; then
		echo "only $(distinct "$T/out") of $m lines written"
		diff <(sort -u "$T/in") <(sort -u "$T/out") | head -n 10
		ok=0
	fi
	[ "$ok" -eq 1 ] || { echo "--- source log"; grep -iE 'reconnect|error|warn' "$T/source.err" | tail -n 10;
		echo "--- sink log"; grep -iE 'reconnect|error|warn' "$T/sink.err" | tail -n 10; return 1; }
	# What the connectors said about the outage (warnings, errors, and lines
	# that are not JSON although --log-format json was asked for).
	local f
	for f in source sink; do
		grep -v '"level":"info"' "$T/$f.err" | cut -c1-240 | head -n 5 | sed "s/^/# $f: /" >&3 || true
	done
	stop_cleanly "$src" "$T/source.err" 20 >/dev/null || { tail -n 20 "$T/source.err"; echo "file-source did not stop cleanly"; return 1; }
	stop_cleanly "$snk" "$T/sink.err" 20 >/dev/null || { tail -n 20 "$T/sink.err"; echo "file-sink did not stop cleanly"; return 1; }
}

# stop_server PID: SIGTERM, and waits until it exited.
stop_server() {
	kill -TERM "$1"
	for _ in $(seq 1 100); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	wait "$1" 2>/dev/null || true
}

@test "nats: a server restart mid-stream; source and sink reconnect and every line is written" {
	PORT=$(free_port)
	start_nats "$PORT" "$T/nats"
	restart_nats() {
		stop_server "$NATS_PID"
		sleep 1
		start_nats "$PORT" "$T/nats"
	}
	restart_mid_stream "nats://127.0.0.1:$PORT" restart_nats
}

@test "redis: a server restart mid-stream; source and sink reconnect and every line is written" {
	PORT=$(free_port)
	start_redis "$PORT" "$T/redis"
	restart_redis() {
		stop_server "$REDIS_PID"
		sleep 1
		start_redis "$PORT" "$T/redis"
	}
	restart_mid_stream "redis://127.0.0.1:$PORT" restart_redis
}
