#!/usr/bin/env bats
# nats-sink run as a user would, against the machine's NATS server
# (127.0.0.1:4222, JetStream on) and private nats-server processes. The
# machine has no nats CLI: natsc, a small client written with nats.go alone
# (common/client/nats/natstest/natsc), is built in setup_file and reads what
# the sink wrote; helpers are in common/client/nats/natstest/nats.bash.
# Needs $CULVERT_BIN/{nats-sink,file-source,file-sink}, go, jq, openssl.

bats_require_minimum_version 1.5.0

load ../../../scripts/test/common
load ../../../common/client/nats/natstest/nats

setup_file() {
	nats_setup_file
}

setup() {
	culvert_setup
	nats_setup
	NK="$CULVERT_BIN/nats-sink"
}

teardown() {
	nats_teardown
}

@test "metadata names the connector and its options; the URL is write-only" {
	run --separate-stderr "$NK" metadata
	[ "$status" -eq 0 ]
	echo "$output" | jq -e '.name == "nats-sink" and .direction == "sink"'
	echo "$output" | jq -e '.schema.properties | has("url") and has("subject") and has("subject_from_key") and has("jetstream") and has("max_pending") and has("ack_timeout")'
	echo "$output" | jq -e '.schema.properties.url.writeOnly == true and .schema.properties.url.default == "nats://127.0.0.1:4222"'
}

@test "version and --help" {
	assert_version "$NK" nats-sink
	assert_help "$NK" Examples: --url --subject --subject-from-key --jetstream --max-pending --ack-timeout --group --from
}

@test "bad flags exit 2 and name the option" {
	check() { assert_bad_option "$1" "$NK" --topic t --bus "$BUS" "${@:2}"; }
	check --subject
	check --subject --subject 'orders.>'
	check --subject-from-key --subject a --subject-from-key
	check --max-pending --subject a --max-pending 0
	check --url --subject a --url 'nats://me:s3cret@h?tls=perhaps'
	[[ "$stderr" != *s3cret* ]]
}

@test "JetStream: 10,000 records in order, committed only after the acks" {
	stream "S$ID" "$ID.>"
	seq 1 10000 | sed 's/.*/{"n":&}/' | publish orders
	run --separate-stderr "$NK" --topic orders --bus "$BUS" --subject "$ID.orders" --jetstream --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	diff <(seq 1 10000) <("$NATSC" stream-get --min 10000 "S$ID" | jq .n)
	"$NATSC" stream-get --full "S$ID" | head -1 | jq -e --arg s "$ID.orders" '.subject == $s'
	# Everything was committed: a second run writes nothing more.
	run --separate-stderr "$NK" --topic orders --bus "$BUS" --subject "$ID.orders" --jetstream --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	[ "$("$NATSC" stream-get "S$ID" | wc -l)" -eq 10000 ]
}

@test "core NATS publish; with --subject-from-key, a record without a key goes to the dead-letter topic" {
	"$NATSC" sub -n 3 "$ID.>" >"$T/got" 2>"$T/sub.err" &
	sub=$!
	PIDS+=($sub)
	for _ in $(seq 1 100); do grep -q ready "$T/sub.err" && break; sleep 0.1; done
	printf '{"a":1}\n' | publish nokey
	run --separate-stderr "$NK" --topic nokey --bus "$BUS" --subject-from-key --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	[ "$(topic nokey.dlq)" = '{"a":1}' ]
	topic nokey.dlq --output full | jq -e '.headers | map({(.key): .value}) | add | .["culvert.error"] | test("no key")'
	printf 'one\ntwo\nthree\n' | publish plain
	run --separate-stderr "$NK" --topic plain --bus "$BUS" --subject "$ID.x" --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	wait $sub
	[ "$(paste -sd, "$T/got")" = one,two,three ]
}

@test "a record no stream takes goes to the dead-letter topic; the others are written" {
	stream "S$ID" "$ID.ok"
	printf '{"n":1}\n' | publish a
	run --separate-stderr "$NK" --topic a --bus "$BUS" --subject "$ID.nostream" --jetstream --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	topic a.dlq --output full | jq -e '(.headers | map({(.key): .value}) | add) as $h
		| $h["culvert.stage"] == "sink" and ($h["culvert.error"] | test("no JetStream stream listens"))'
	run --separate-stderr "$NK" --topic a --bus "$BUS" --group g2 --subject "$ID.ok" --jetstream --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	[ "$("$NATSC" stream-get "S$ID")" = '{"n":1}' ]
}

@test "a restart of the NATS server mid-stream: the sink recovers by itself, nothing lost" {
	port=$(free_port)
	start_server "$port" "$T/store"
	U="nats://127.0.0.1:$port"
	"$NATSC" --url "$U" stream-add "S$ID" "$ID"
	seq 1 3000 | sed 's/.*/{"n":&}/' | publish r
	"$NK" --topic r --bus "$BUS" --url "$U" --subject "$ID" --jetstream --from beginning >/dev/null 2>"$T/snk.err" &
	pid=$!
	PIDS+=($pid)
	"$NATSC" --url "$U" stream-get --min 3000 "S$ID" >/dev/null
	stop_server
	seq 3001 6000 | sed 's/.*/{"n":&}/' | publish r
	sleep 1
	start_server "$port" "$T/store"
	seq 6001 10000 | sed 's/.*/{"n":&}/' | publish r
	"$NATSC" --url "$U" stream-get --min 10000 "S$ID" >/dev/null
	stop_cleanly $pid "$T/snk.err"
	grep -q "reconnected to nats" "$T/snk.err"
	# Every record, in order of first appearance (at-least-once: a batch
	# retried after the outage may be written twice).
	diff <(seq 1 10000) <("$NATSC" --url "$U" stream-get "S$ID" | jq .n | awk '!seen[$0]++')
	[ -z "$(topic r.dlq)" ]
	stop_server
}

@test "TLS: a private nats-server with generated certificates" {
	certs "$T"
	port=$(free_port)
	start_server "$port" "$T/store" --tls --tlscert "$T/cert.pem" --tlskey "$T/key.pem"
	U="tls://127.0.0.1:$port"
	"$NATSC" --url "$U" --ca "$T/ca.pem" stream-add "S$ID" "$ID"
	seq 1 100 | sed 's/.*/{"n":&}/' | publish tls
	run --separate-stderr "$NK" --topic tls --bus "$BUS" --url "$U?tls_ca=$T/ca.pem" --subject "$ID" --jetstream --from beginning --stop-at-end
	[ "$status" -eq 0 ]
	diff <(seq 1 100) <("$NATSC" --url "$U" --ca "$T/ca.pem" stream-get "S$ID" | jq .n)
	run --separate-stderr "$NK" --topic tls --bus "$BUS" --group g2 --url "$U" --subject "$ID" --jetstream --from beginning --stop-at-end
	[ "$status" -eq 1 ]
	[[ "$stderr" == *certificate* ]]
	stop_server
}
