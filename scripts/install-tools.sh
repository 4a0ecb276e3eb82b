#!/usr/bin/env bash
# Installs what the tests and benchmarks need when it is missing, from
# Debian's packages: bats (bats-core), jq, gcc (for the race detector), curl,
# wrk (HTTP load), amqp-tools (amqp-publish, amqp-consume),
# mosquitto-clients (mosquitto_pub, mosquitto_sub), miller (mlr, the
# independent CSV tool of scripts/test/formats.bats and bench csv),
# protobuf-compiler (protoc, the independent Protobuf tool of
# scripts/test/protobuf.bats), chromium (the headless browser of the web
# console's tests, catalog/serve/ui), and the database clients that check
# the SQL and Redis connectors: psql (postgresql-client), mysql
# (mariadb-client) and redis-cli (redis-tools).
set -euo pipefail
missing=()
command -v bats >/dev/null || missing+=(bats)
command -v jq >/dev/null || missing+=(jq)
command -v gcc >/dev/null || missing+=(gcc) # the race detector needs cgo
command -v curl >/dev/null || missing+=(curl)
command -v wrk >/dev/null || missing+=(wrk)
command -v amqp-publish >/dev/null || missing+=(amqp-tools)
command -v mosquitto_pub >/dev/null || missing+=(mosquitto-clients)
command -v mlr >/dev/null || missing+=(miller)
command -v protoc >/dev/null || missing+=(protobuf-compiler) # protoc --decode/--encode: scripts/test/protobuf.bats
/usr/bin/python3 -c "import avro" 2>/dev/null || missing+=(python3-avro) # the independent Avro library of scripts/test/avro.bats
/usr/bin/python3 -c "import google.protobuf" 2>/dev/null || missing+=(python3-protobuf) # length-delimited Protobuf files: scripts/test/protobuf.bats
command -v psql >/dev/null || missing+=(postgresql-client)
command -v mysql >/dev/null || missing+=(mariadb-client)
command -v redis-cli >/dev/null || missing+=(redis-tools)
# (GitHub's Ubuntu runners have Google Chrome, which the tests take too.)
command -v chromium >/dev/null || command -v google-chrome >/dev/null || missing+=(chromium)
[ ${#missing[@]} -eq 0 ] && exit 0
echo "installing ${missing[*]} with apt-get"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq "${missing[@]}" >/dev/null
