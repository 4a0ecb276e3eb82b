# Loaded by the NATS connectors' bats tests after scripts/test/common:
# `load ../../../common/client/nats/natstest/nats`. The machine has no nats
# CLI: natsc (./natsc), a small client written with nats.go alone, plays the
# other side; nats_setup_file builds it. Private servers are
# /usr/sbin/nats-server processes on free ports.

# nats_setup_file: builds natsc into $BATS_FILE_TMPDIR and fails unless the
# machine's NATS server (127.0.0.1:4222, JetStream on) answers.
nats_setup_file() {
	local root ping
	root="$(cd "$BATS_TEST_DIRNAME/../../.." && pwd)"
	(cd "$root/common" && go build -o "$BATS_FILE_TMPDIR/natsc" ./client/nats/natstest/natsc)
	ping="BATSPING$RANDOM$RANDOM"
	"$BATS_FILE_TMPDIR/natsc" --url nats://127.0.0.1:4222 stream-add "$ping" "$ping" >/dev/null ||
		{ echo "NATS with JetStream is not running on 127.0.0.1:4222: run scripts/services.sh" >&2; return 1; }
	"$BATS_FILE_TMPDIR/natsc" --url nats://127.0.0.1:4222 stream-rm "$ping"
}

# nats_setup: sets NATSC, a unique ID for names, and the lists that
# nats_teardown cleans up.
nats_setup() {
	NATSC="$BATS_FILE_TMPDIR/natsc"
	ID="b$RANDOM$RANDOM"
	STREAMS=()
	PIDS=()
}

# nats_teardown: kills what the test started and removes its streams.
nats_teardown() {
	local p s
	for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	for s in "${STREAMS[@]}"; do "$NATSC" stream-rm "$s" 2>/dev/null || true; done
}

# stream NAME SUBJECT...: a stream on the shared server, removed after the test.
stream() {
	"$NATSC" stream-add "$@"
	STREAMS+=("$1")
}

# start_server PORT STOREDIR [nats-server options]: starts a private server
# (again) and waits until it answers; sets SPID.
start_server() {
	local port=$1 dir=$2
	shift 2
	/usr/sbin/nats-server -a 127.0.0.1 -p "$port" -js -sd "$dir" "$@" 2>>"$dir.log" &
	SPID=$!
	PIDS+=($SPID)
	for _ in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "nats-server on port $port did not start"
	cat "$dir.log"
	return 1
}

# stop_server: stops the private server with SIGTERM.
stop_server() {
	kill -TERM "$SPID"
	wait "$SPID" || true
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on, below Linux's
# ephemeral range (32768-60999): a port there can be the local end of some
# client's connection, which no listener sees but which makes a server's
# bind fail ("address already in use", seen in CI).
free_port() {
	local p
	while :; do
		p=$((20000 + RANDOM % 12000))
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
}

# certs DIR: a CA (ca.pem) and a certificate for 127.0.0.1 (cert.pem,
# key.pem) signed by it, made with openssl.
certs() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bats-ca \
		-keyout "$1/ca-key.pem" -out "$1/ca.pem" 2>/dev/null
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
		-keyout "$1/key.pem" -out "$1/req.pem" 2>/dev/null
	printf 'subjectAltName=IP:127.0.0.1\n' >"$1/ext"
	openssl x509 -req -in "$1/req.pem" -CA "$1/ca.pem" -CAkey "$1/ca-key.pem" -CAcreateserial -days 1 \
		-extfile "$1/ext" -out "$1/cert.pem" 2>/dev/null
}

# topic TOPIC [file-sink options]: every value of TOPIC on $BUS, one per line.
topic() {
	local t=$1
	shift
	timeout 30 "$SNK" --topic "$t" --bus "$BUS" --path - --from beginning --stop-at-end --group "bats-$RANDOM$RANDOM" "$@" 2>/dev/null
}

# wait_topic TOPIC N: waits up to 30s until TOPIC has at least N records.
wait_topic() {
	local n=0
	for _ in $(seq 1 300); do
		n=$(topic "$1" | wc -l)
		[ "$n" -ge "$2" ] && return 0
		sleep 0.1
	done
	echo "$1 has $n records, want $2"
	return 1
}

# wait_ready PORT: waits until a connector's /readyz on PORT answers 200.
wait_ready() {
	for _ in $(seq 1 100); do
		curl -sf "http://127.0.0.1:$1/readyz" >/dev/null && return 0
		sleep 0.1
	done
	echo "not ready"
	return 1
}
