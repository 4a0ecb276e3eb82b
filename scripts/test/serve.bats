#!/usr/bin/env bats
# culvert serve driven as Kafka Connect's REST API documentation drives a
# worker: plain curl (create, status, pause, resume, restart, delete,
# validate, plugins, topics), each answer checked with jq against the shape
# Kafka Connect documents. Records flow from a file-source instance through
# a topic to a file-sink instance that writes a file. Also: the refusal to
# listen beyond loopback without --auth-token (exit 2), a bearer token, and
# the desired state kept across a restart of serve.
# Needs $CULVERT_BIN/culvert, file-source and file-sink (built when
# missing), curl, jq.

bats_require_minimum_version 1.5.0

load common

setup_file() {
	ROOT="$(cd "$BATS_TEST_DIRNAME/../.." && pwd)"
	export ROOT
	: "${CULVERT_BIN:=$ROOT/bin}"
	export CULVERT_BIN
	[ -x "$CULVERT_BIN/culvert" ] || (cd "$ROOT/catalog" && CGO_ENABLED=0 go build -o "$CULVERT_BIN/" ./cmd/culvert) >&2
	for m in sources/file-source sinks/file-sink; do
		[ -x "$CULVERT_BIN/$(basename $m)" ] || make -s -C "$ROOT/$m" build >&2
	done
}

setup() {
	culvert_setup
	C="$CULVERT_BIN/culvert"
	SERVE_PID=
	H=
}

teardown() {
	if [ -n "$SERVE_PID" ]; then
		kill -TERM "$SERVE_PID" 2>/dev/null || true
		wait "$SERVE_PID" 2>/dev/null || true
	fi
}

# start_serve [OPTION...]: starts culvert serve on a free port of 127.0.0.1
# with state in $T/state and the embedded bus $BUS; sets URL.
start_serve() {
	local port
	port=$(free_port)
	"$C" serve --listen "127.0.0.1:$port" --state "$T/state" --bus "$BUS" "$@" 2>>"$T/serve.err" &
	SERVE_PID=$!
	wait_port "$port" "$SERVE_PID" "$T/serve.err"
	URL="http://127.0.0.1:$port"
}

# wait_state NAME STATE: waits (up to 30s) until NAME's status is STATE.
wait_state() {
	local st=
	for _ in $(seq 1 150); do
		st=$(curl -s ${H:+-H "$H"} "$URL/connectors/$1/status" | jq -r .connector.state)
		[ "$st" = "$2" ] && return 0
		sleep 0.2
	done
	curl -s "$URL/connectors/$1/status"
	echo "$1 is $st, not $2, after 30s"
	return 1
}

# wait_lines FILE N: waits (up to 30s) until FILE has N lines.
wait_lines() {
	for _ in $(seq 1 150); do
		[ -f "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ] && return 0
		sleep 0.2
	done
	echo "$1 has $(wc -l <"$1" 2>/dev/null) lines, not $2, after 30s"
	return 1
}

@test "Kafka Connect's REST calls: create, status, pause, resume, restart, topics, delete; records flow" {
	printf '{"order_id":"o-1"}\n{"order_id":"o-2"}\n' >"$T/orders.jsonl"
	start_serve

	run curl -s "$URL/"
	[ "$(jq -r 'has("version") and has("commit") and has("kafka_cluster_id")' <<<"$output")" = true ]

	run curl -s "$URL/connector-plugins"
	jq -e 'map(select(.class == "file-source" and .type == "source" and (.version | length > 0))) | length == 1' <<<"$output"
	jq -e 'map(select(.class == "file-sink" and .type == "sink")) | length == 1' <<<"$output"

	# As Kafka Connect's quickstart creates a connector.
	run curl -s -w '\n%{http_code}' -X POST -H "Content-Type: application/json" --data @- "$URL/connectors" <<EOF2
{"name": "orders-in", "config": {"connector.class": "file-source", "tasks.max": "1", "path": "$T/orders.jsonl", "topic": "orders", "follow": "true", "poll.interval": "50ms"}}
EOF2
	[ "${lines[1]}" = 201 ]
	jq -e '.name == "orders-in" and .type == "source" and .config["connector.class"] == "file-source" and .config.topic == "orders" and .tasks == [{"connector": "orders-in", "task": 0}]' <<<"${lines[0]}"

	run curl -s -w '\n%{http_code}' -X POST -H "Content-Type: application/json" \
		--data "{\"name\": \"orders-out\", \"config\": {\"connector.class\": \"file-sink\", \"topics\": \"orders\", \"path\": \"$T/out.jsonl\", \"from\": \"beginning\"}}" "$URL/connectors"
	[ "${lines[1]}" = 201 ]

	# 409 on a name clash, 400 naming the option, 404 for an unknown name.
	run curl -s -w '\n%{http_code}' -X POST -H "Content-Type: application/json" \
		--data '{"name": "orders-in", "config": {"connector.class": "file-source", "path": "x", "topic": "t"}}' "$URL/connectors"
	[ "${lines[1]}" = 409 ]
	jq -e '.error_code == 409 and (.message | test("orders-in"))' <<<"${lines[0]}"
	run curl -s -w '\n%{http_code}' -X POST -H "Content-Type: application/json" \
		--data '{"name": "bad", "config": {"connector.class": "file-source", "path": "x", "topic": "t", "follow": "maybe"}}' "$URL/connectors"
	[ "${lines[1]}" = 400 ]
	jq -e '.error_code == 400 and (.message | test("follow: must be true or false"))' <<<"${lines[0]}"
	run curl -s -w '\n%{http_code}' "$URL/connectors/nope/status"
	[ "${lines[1]}" = 404 ]
	jq -e '.error_code == 404 and .message == "Connector nope not found"' <<<"${lines[0]}"

	wait_state orders-in RUNNING
	wait_state orders-out RUNNING
	run curl -s "$URL/connectors/orders-in/status"
	jq -e '.name == "orders-in" and .type == "source" and .connector.state == "RUNNING" and (.connector.worker_id | length > 0) and (.tasks | length == 1) and .tasks[0].id == 0 and .tasks[0].state == "RUNNING" and (.tasks[0].worker_id | length > 0)' <<<"$output"

	wait_lines "$T/out.jsonl" 2
	[ "$(sort -u "$T/out.jsonl")" = "$(sort "$T/orders.jsonl")" ]

	run curl -s "$URL/connectors"
	[ "$(jq -c 'sort' <<<"$output")" = '["orders-in","orders-out"]' ]
	run curl -s "$URL/connectors?expand=status&expand=info"
	jq -e '.["orders-in"].status.connector.state == "RUNNING" and .["orders-out"].info.type == "sink"' <<<"$output"
	run curl -s "$URL/connectors/orders-in/config"
	jq -e '.["connector.class"] == "file-source" and .topic == "orders"' <<<"$output"
	run curl -s "$URL/connectors/orders-out/topics"
	[ "$(jq -c . <<<"$output")" = '{"orders-out":{"topics":["orders"]}}' ]

	# Pause: no record read while paused; resume reads it.
	run curl -s -w '%{http_code}' -X PUT "$URL/connectors/orders-in/pause"
	[ "$output" = 202 ]
	wait_state orders-in PAUSED
	run curl -s -w '%{http_code}' -X PUT "$URL/connectors/orders-in/resume"
	[ "$output" = 202 ]
	wait_state orders-in RUNNING
	echo '{"order_id":"o-3"}' >>"$T/orders.jsonl"
	wait_lines "$T/out.jsonl" 3
	grep -q o-3 "$T/out.jsonl"

	# Restart: a new process, running again.
	pid=$(curl -s "$URL/connectors/orders-out/status" | jq .tasks[0].pid)
	run curl -s -w '%{http_code}' -X POST "$URL/connectors/orders-out/restart"
	[ "$output" = 204 ]
	for _ in $(seq 1 150); do
		new=$(curl -s "$URL/connectors/orders-out/status" | jq .tasks[0].pid)
		[ "$new" != null ] && [ "$new" != "$pid" ] && break
		sleep 0.2
	done
	[ "$new" != "$pid" ]
	wait_state orders-out RUNNING
	run curl -s -w '\n%{http_code}' -X POST "$URL/connectors/orders-out/restart?includeTasks=true&onlyFailed=false"
	[ "${lines[1]}" = 202 ]
	jq -e '.name == "orders-out" and (.tasks | length == 1)' <<<"${lines[0]}"

	# Delete: gone from the list, its process stopped.
	pid=$(curl -s "$URL/connectors/orders-in/status" | jq .tasks[0].pid)
	run curl -s -w '%{http_code}' -X DELETE "$URL/connectors/orders-in"
	[ "$output" = 204 ]
	! kill -0 "$pid" 2>/dev/null
	run curl -s "$URL/connectors"
	[ "$(jq -c . <<<"$output")" = '["orders-out"]' ]
	run curl -s -w '\n%{http_code}' -X DELETE "$URL/connectors/orders-in"
	[ "${lines[1]}" = 404 ]
}

@test "validate answers per option in Kafka Connect's shape" {
	start_serve
	run curl -s -X PUT -H "Content-Type: application/json" \
		--data '{"connector.class": "file-sink", "topics": "orders", "path": "/tmp/x", "batch.linger": "soon", "fsync": "maybe"}' \
		"$URL/connector-plugins/file-sink/config/validate"
	jq -e '.name == "file-sink" and .error_count == 2 and (.groups | index("Common")) != null' <<<"$output"
	jq -e '.configs | all(has("definition") and has("value"))' <<<"$output"
	jq -e '.configs[] | select(.value.name == "fsync") | .value.errors[0] | test("true or false")' <<<"$output"
	jq -e '.configs[] | select(.value.name == "batch_linger") | (.value.errors | length) == 1' <<<"$output"
	jq -e '.configs[] | select(.definition.name == "path") | .definition.required == true and .definition.type == "STRING" and .value.value == "/tmp/x" and .value.errors == []' <<<"$output"
	jq -e '.configs[] | select(.definition.name == "from") | .value.recommended_values == ["beginning", "end"]' <<<"$output"
	jq -e '.configs[] | select(.definition.name == "bus_password") | .definition.type == "PASSWORD"' <<<"$output"

	run curl -s -X PUT -H "Content-Type: application/json" \
		--data '{"connector.class": "file-sink", "topics": "orders", "path": "/tmp/x"}' \
		"$URL/connector-plugins/file-sink/config/validate"
	jq -e '.error_count == 0' <<<"$output"
}

@test "serve keeps the desired state across its restart; secrets never shown; a token guards the API" {
	printf 'TOPIC=orders-s3cret\n' >"$T/secrets"
	printf '{"n":1}\n' >"$T/in.jsonl"
	start_serve --secrets "$T/secrets" --auth-token tok
	run curl -s -w '\n%{http_code}' "$URL/connectors"
	[ "${lines[1]}" = 401 ]
	jq -e '.error_code == 401' <<<"${lines[0]}"
	H="Authorization: Bearer tok"
	run curl -s -w '\n%{http_code}' -H "$H" -X PUT -H "Content-Type: application/json" \
		--data "{\"connector.class\": \"file-source\", \"path\": \"$T/in.jsonl\", \"topic\": \"\${{ secrets.TOPIC }}\", \"follow\": \"true\"}" \
		"$URL/connectors/in/config"
	[ "${lines[1]}" = 201 ]
	run curl -s -H "$H" "$URL/connectors/in/config"
	[[ "$output" != *s3cret* ]]
	jq -e '.topic == "${{ secrets.TOPIC }}"' <<<"$output"
	# The nested config file shape is taken too.
	run curl -s -w '\n%{http_code}' -H "$H" -X POST -H "Content-Type: application/json" \
		--data "{\"name\": \"out\", \"config\": {\"meta\": {\"type\": \"file-sink\", \"topic\": \"\${{ secrets.TOPIC }}\", \"from\": \"beginning\"}, \"file\": {\"path\": \"$T/out.jsonl\"}}}" \
		"$URL/connectors"
	[ "${lines[1]}" = 201 ]
	run curl -s -w '%{http_code}' -H "$H" -X PUT "$URL/connectors/out/pause"
	[ "$output" = 202 ]
	wait_state out PAUSED
	wait_state in RUNNING

	kill -TERM "$SERVE_PID"
	wait "$SERVE_PID"
	SERVE_PID=
	# The topic is the secret's value: records went there.
	[ "$(read_topic orders-s3cret)" = '{"n":1}' ]

	start_serve --secrets "$T/secrets" --auth-token tok
	for _ in $(seq 1 150); do
		st=$(curl -s -H "$H" "$URL/connectors?expand=status" | jq -c '[.in.status.connector.state, .out.status.connector.state]')
		[ "$st" = '["RUNNING","PAUSED"]' ] && break
		sleep 0.2
	done
	[ "$st" = '["RUNNING","PAUSED"]' ]
}

@test "serve refuses to listen beyond loopback without --auth-token (exit 2)" {
	run --separate-stderr "$C" serve --listen 0.0.0.0:0 --state "$T/state"
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"--auth-token"* ]]
	run --separate-stderr "$C" serve --secrets "$T/none" --state "$T/state"
	[ "$status" -eq 2 ]
	[[ "$stderr" == *"--secrets"* ]]
}
