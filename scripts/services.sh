#!/usr/bin/env bash
# Installs (with apt) and starts the servers that integration tests of the
# network connectors and distributed bus backends use, when they are not
# already running: RabbitMQ, Mosquitto, NATS with JetStream, PostgreSQL,
# MariaDB and Redis. Safe to run again: running servers are left alone.
#
#   scripts/services.sh            # all of them
#   scripts/services.sh nats redis # some of them
set -euo pipefail
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
updated=""

listening() { # host port
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}
install() {
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ -z "$updated" ]; then $sudo apt-get update -qq; updated=1; fi
    echo "services: installing ${missing[*]}"
    $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}
wait_for() { # name port
    for _ in $(seq 1 60); do listening 127.0.0.1 "$2" && return 0; sleep 1; done
    echo "services: $1 did not start listening on port $2" >&2
    return 1
}

start_rabbitmq() {
    listening 127.0.0.1 5672 && return 0
    install rabbitmq-server
    $sudo rabbitmq-server -detached || true
    wait_for rabbitmq 5672
}
start_mosquitto() {
    listening 127.0.0.1 1883 && return 0
    install mosquitto mosquitto-clients
    $sudo mosquitto -d -c /etc/mosquitto/mosquitto.conf
    wait_for mosquitto 1883
}
start_nats() {
    listening 127.0.0.1 4222 && return 0
    install nats-server
    $sudo mkdir -p /var/lib/nats-server
    $sudo start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
        -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log
    wait_for nats 4222
}
# The SQL connectors' tests connect as postgres@127.0.0.1 without a password
# (CULVERT_TEST_POSTGRES_URL) and start private servers with initdb/pg_ctl:
# a cluster this script installs gets trust for local TCP connections.
start_postgres() {
    listening 127.0.0.1 5432 && return 0
    local fresh=""
    dpkg -s postgresql >/dev/null 2>&1 || fresh=1
    install postgresql
    local v; v="$(ls /etc/postgresql | sort -n | tail -1)"
    if [ -n "$fresh" ]; then
        $sudo sed -i -E 's/^(host +all +all +127\.0\.0\.1\/32 +)[a-z0-9-]+/\1trust/' "/etc/postgresql/$v/main/pg_hba.conf"
    fi
    $sudo pg_ctlcluster --skip-systemctl-redirect "$v" main start
    wait_for postgresql 5432
}
# ... and as root@127.0.0.1 without a password (CULVERT_TEST_MYSQL_URL), to
# the database test.
start_mariadb() {
    listening 127.0.0.1 3306 && return 0
    local fresh=""
    dpkg -s mariadb-server >/dev/null 2>&1 || fresh=1
    install mariadb-server mariadb-client
    $sudo mkdir -p /run/mysqld && $sudo chown mysql:mysql /run/mysqld 2>/dev/null || true
    $sudo start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
    wait_for mariadb 3306
    if [ -n "$fresh" ]; then
        $sudo mariadb -e "CREATE USER IF NOT EXISTS 'root'@'127.0.0.1' IDENTIFIED BY '';
            GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
            CREATE DATABASE IF NOT EXISTS test;"
    fi
}
start_redis() {
    listening 127.0.0.1 6379 && return 0
    install redis-server
    $sudo mkdir -p /var/lib/redis /var/log/redis
    $sudo redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
    wait_for redis 6379
}

services=("$@")
[ ${#services[@]} -eq 0 ] && services=(rabbitmq mosquitto nats postgres mariadb redis)
for s in "${services[@]}"; do
    "start_$s"
    echo "services: $s is up"
done
