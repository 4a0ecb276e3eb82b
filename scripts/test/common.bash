# Loaded by every connector's bats tests: `load ../../../scripts/test/common`
# then `culvert_setup` in setup(). Sets SRC and SNK (the file connectors'
# binaries, which end-to-end tests use to feed and read topics), BUS (a fresh
# embedded bus) and T (the test's temporary directory), and clears every
# CULVERT_* variable but CULVERT_BIN so that options come from flags only.

culvert_setup() {
	: "${CULVERT_BIN:?set CULVERT_BIN to the directory of the built connectors}"
	SRC="$CULVERT_BIN/file-source"
	SNK="$CULVERT_BIN/file-sink"
	[ -x "$SRC" ] && [ -x "$SNK" ]
	for v in $(compgen -e | grep '^CULVERT_' || true); do
		[ "$v" = CULVERT_BIN ] || unset "$v"
	done
	BUS="$BATS_TEST_TMPDIR/bus"
	T="$BATS_TEST_TMPDIR"
}

# assert_version BIN NAME: `BIN version` names NAME and the version metadata prints.
assert_version() {
	local out want
	out=$("$1" version)
	want=$("$1" metadata | jq -r .version)
	[[ "$out" =~ ^$2\ ([^ ]+)\ \(go ]] || { echo "version printed: $out"; return 1; }
	[ "${BASH_REMATCH[1]}" = "$want" ] || { echo "version $BASH_REMATCH, metadata $want"; return 1; }
}

# assert_help BIN WORD...: `BIN --help` exits 0 and mentions every WORD.
assert_help() {
	local bin=$1 out
	shift
	out=$("$bin" --help) || { echo "--help failed"; return 1; }
	for want in "$@"; do
		[[ "$out" == *"$want"* ]] || { echo "--help lacks $want"; return 1; }
	done
}

# stop_cleanly PID ERRFILE [SECONDS]: sends SIGTERM to PID, a background
# child of the test, and fails unless it exits with status 0 within SECONDS
# (default 30). Prints ERRFILE, the process's standard error, with a
# goroutine dump when the process did not stop.
stop_cleanly() {
	local pid=$1 err=$2 secs=${3:-30} rc=0
	kill -TERM "$pid"
	for _ in $(seq 1 $((secs * 10))); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		# SIGQUIT makes a Go program print every goroutine's stack to
		# stderr: where it was stuck.
		kill -QUIT "$pid"
		sleep 2
		kill -9 "$pid" 2>/dev/null
		cat "$err"
		echo "still running ${secs}s after SIGTERM (goroutine dump above, from SIGQUIT)"
		return 1
	fi
	wait "$pid" || rc=$?
	cat "$err"
	[ "$rc" -eq 0 ] || { echo "exit status $rc after SIGTERM"; return 1; }
}

# read_topic TOPIC [OPTION...]: prints the records of TOPIC on $BUS, one
# value a line, read from the beginning by a group of its own (file-sink
# --path -, with the OPTIONs such as --output full).
read_topic() {
	local topic=$1
	shift
	timeout 30 "$SNK" --topic "$topic" --bus "$BUS" --path - --from beginning --stop-at-end --group "bats-$RANDOM$RANDOM" "$@" 2>/dev/null
}

# publish TOPIC [VALUE...]: appends one record a VALUE to TOPIC on $BUS, or,
# with no VALUE, one record a line of standard input (file-source --path -).
publish() {
	local topic=$1
	shift
	if [ $# -gt 0 ]; then printf '%s\n' "$@"; else cat; fi |
		timeout 30 "$SRC" --topic "$topic" --bus "$BUS" --path - 2>/dev/null
}

# wait_topic TOPIC N [PID [ERRFILE]]: waits (up to 60s) until TOPIC on $BUS
# has at least N records and prints them. Fails at once, printing ERRFILE,
# when the process PID (the one filling the topic) has exited.
wait_topic() { _wait_records cat "$@"; }

# wait_distinct TOPIC N [PID [ERRFILE]]: like wait_topic, for N distinct
# values (blank lines are not counted); prints the distinct values, sorted.
wait_distinct() { _wait_records _distinct "$@"; }

_distinct() { grep -v '^$' | sort -u; }

_wait_records() {
	local filter=$1 topic=$2 n=$3 pid=${4:-} err=${5:-/dev/null} out= got=0
	for _ in $(seq 1 300); do
		out=$(read_topic "$topic" | $filter)
		got=$(printf '%s' "$out" | grep -c '' || true)
		if [ "$got" -ge "$n" ]; then
			printf '%s\n' "$out"
			return 0
		fi
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			cat "$err"
			echo "process $pid exited with $got of $n records on $topic"
			return 1
		fi
		sleep 0.2
	done
	echo "topic $topic has $got of $n records after 60s"
	return 1
}

# free_port: prints a TCP port of 127.0.0.1 that nothing listens on.
free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT [PID [ERRFILE]]: waits (up to 10s) until something listens
# on 127.0.0.1:PORT. Fails at once, printing ERRFILE, when PID has exited.
wait_port() {
	local port=$1 pid=${2:-} err=${3:-/dev/null}
	for _ in $(seq 1 100); do
		(echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			cat "$err"
			return 1
		fi
		sleep 0.1
	done
	echo "nothing listens on $port"
	return 1
}

# wait_file FILE [PID]: waits (up to 10s) until FILE is not empty, such as
# the file a background program prints its address to. Fails at once when
# PID has exited.
wait_file() {
	local file=$1 pid=${2:-}
	for _ in $(seq 1 200); do
		[ -s "$file" ] && return 0
		if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then
			[ -s "$file" ] && return 0
			echo "process $pid exited before writing $file"
			return 1
		fi
		sleep 0.05
	done
	echo "nothing in $file after 10s"
	return 1
}

# build_helper DIR PACKAGE OUTPUT: builds the Go PACKAGE of the module in DIR
# (such as a test server) into OUTPUT, a file or a directory ending in /.
# For setup_file.
build_helper() {
	(cd "$1" && CGO_ENABLED=0 go build -o "$3" "$2")
}

# kfake_setup_file [CONNECTOR_DIR...]: for setup_file of the Kafka
# connectors. Starts scripts/kfake (franz-go's in-process Kafka cluster, in a
# process of its own; built into $CULVERT_BIN when missing) and exports its
# address as KAFKA. Builds each connector of CONNECTOR_DIR (such as
# sinks/kafka-sink) that is missing from $CULVERT_BIN.
kfake_setup_file() {
	local root d
	root="$(cd "$BATS_TEST_DIRNAME/../../.." && pwd)"
	[ -x "$CULVERT_BIN/kfake" ] || build_helper "$root" ./scripts/kfake "$CULVERT_BIN/"
	for d in "$@"; do
		[ -x "$CULVERT_BIN/$(basename "$d")" ] || build_helper "$root/$d" . "$CULVERT_BIN/"
	done
	"$CULVERT_BIN/kfake" >"$BATS_FILE_TMPDIR/kfake.out" 2>"$BATS_FILE_TMPDIR/kfake.err" 3>&- &
	echo $! >"$BATS_FILE_TMPDIR/kfake.pid"
	wait_file "$BATS_FILE_TMPDIR/kfake.out" $! || { cat "$BATS_FILE_TMPDIR/kfake.err" >&2; return 1; }
	KAFKA="$(head -1 "$BATS_FILE_TMPDIR/kfake.out")"
	export KAFKA
}

# kfake_teardown_file: stops what kfake_setup_file started.
kfake_teardown_file() {
	kill -TERM "$(cat "$BATS_FILE_TMPDIR/kfake.pid")" 2>/dev/null || true
}

# The shared RabbitMQ server of the RabbitMQ connectors' tests.
RABBITMQ_URL=amqp://guest:guest@127.0.0.1:5672

# rabbitmq_queue QUEUE: declares the durable QUEUE, waiting (up to 30s) for
# the shared RabbitMQ, which other tests restart now and then.
rabbitmq_queue() {
	for _ in $(seq 1 60); do
		amqp-declare-queue -u "$RABBITMQ_URL" -d -q "$1" >/dev/null 2>&1 && return 0
		sleep 0.5
	done
	amqp-declare-queue -u "$RABBITMQ_URL" -d -q "$1"
}

# rabbitmq_ready QUEUE: prints how many messages are ready in QUEUE.
rabbitmq_ready() {
	rabbitmqctl -q list_queues name messages | awk -v q="$1" '$1 == q { print $2 }'
}

# assert_bad_option OPTION COMMAND [ARG...]: runs COMMAND (with bats' run)
# and fails unless it exits 2, names OPTION on standard error, prints
# nothing on standard output and never shows s3cret (the secret the tests
# pass). $status, $output and $stderr are left for further checks.
assert_bad_option() {
	local want=$1
	shift
	run --separate-stderr "$@"
	[ "$status" -eq 2 ] || { echo "$*: exit $status"; return 1; }
	[[ "$stderr" == *"$want"* ]] || { echo "$*: stderr does not name $want: $stderr"; return 1; }
	[ -z "$output" ] || { echo "$*: wrote to stdout: $output"; return 1; }
	[[ "$stderr" != *s3cret* ]] || { echo "$*: shows the secret: $stderr"; return 1; }
}
