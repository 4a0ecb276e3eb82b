# Loaded by the MQTT connectors' bats tests after scripts/test/common:
# private Mosquitto brokers (restartable, optionally with TLS and generated
# certificates) and unique MQTT topics. Never touches the shared broker's
# process.

# mqtt_topic: an MQTT topic unique to this test.
mqtt_topic() {
	echo "culvert-bats/$BATS_TEST_NUMBER-$$-$RANDOM$RANDOM"
}

# free_port: a TCP port nothing listens on.
free_port() {
	local p
	while :; do
		p=$(shuf -i 20000-32000 -n 1) # below the ephemeral range, where clients bind
		(echo >"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
	done
}

# wait_port PORT: waits up to 10s for something to listen on PORT.
wait_port() {
	for _ in $(seq 1 100); do
		(echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
		sleep 0.1
	done
	echo "nothing listens on $1"
	return 1
}

# certs DIR: a CA, a server certificate for 127.0.0.1 and a client
# certificate, made with openssl: DIR/ca.pem, server.{pem,key}, client.{pem,key}.
certs() {
	local d=$1
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=bats-ca \
		-keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
	for who in server client; do
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$who" \
			-keyout "$d/$who.key" -out "$d/$who.csr" 2>/dev/null
		printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$d/$who.ext"
		openssl x509 -req -in "$d/$who.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 1 \
			-extfile "$d/$who.ext" -out "$d/$who.pem" 2>/dev/null
	done
}

# broker_start [tls]: starts a private Mosquitto with persistence in
# $T/mosq; sets MQ_PORT (plain listener), MQ_URL and, with tls, MQ_TLS_PORT,
# MQ_TLS_URL and the certificates in $T/mosq. broker_restart stops it with
# SIGTERM (it saves its state) and starts it again; broker_stop stops it.
broker_start() {
	MQ_DIR="$T/mosq"
	mkdir -p "$MQ_DIR"
	MQ_PORT=$(free_port)
	MQ_URL="tcp://127.0.0.1:$MQ_PORT"
	{
		echo "persistence true"
		echo "persistence_location $MQ_DIR/"
		echo "autosave_interval 1"
		echo "allow_anonymous true"
		echo "max_queued_messages 0"
		echo "log_dest file $MQ_DIR/mosquitto.log"
		[ "$(id -u)" -eq 0 ] && echo "user root"
		echo "listener $MQ_PORT 127.0.0.1"
	} >"$MQ_DIR/mosquitto.conf"
	if [ "${1:-}" = tls ]; then
		certs "$MQ_DIR"
		MQ_TLS_PORT=$(free_port)
		MQ_TLS_URL="ssl://127.0.0.1:$MQ_TLS_PORT"
		{
			echo "listener $MQ_TLS_PORT 127.0.0.1"
			echo "cafile $MQ_DIR/ca.pem"
			echo "certfile $MQ_DIR/server.pem"
			echo "keyfile $MQ_DIR/server.key"
			echo "require_certificate true"
		} >>"$MQ_DIR/mosquitto.conf"
	fi
	broker_run
}

broker_run() {
	/usr/sbin/mosquitto -c "$MQ_DIR/mosquitto.conf" >"$MQ_DIR/stderr" 2>&1 &
	MQ_PID=$!
	if ! { wait_port "$MQ_PORT" && { [ -z "${MQ_TLS_PORT:-}" ] || wait_port "$MQ_TLS_PORT"; }; }; then
		cat "$MQ_DIR/stderr" "$MQ_DIR/mosquitto.log"
		return 1
	fi
}

broker_stop() {
	[ -n "${MQ_PID:-}" ] || return 0
	kill -TERM "$MQ_PID" 2>/dev/null || true
	wait "$MQ_PID" 2>/dev/null || true
	MQ_PID=
}

broker_restart() {
	broker_stop
	sleep "${1:-0.3}"
	broker_run
}
