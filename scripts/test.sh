#!/usr/bin/env bash
# The whole test suite, with the real services it needs.
#
# Installs what is missing from Debian's packages (Mosquitto, PostgreSQL, Chromium,
# chromium-driver and a CJK font,
# VictoriaMetrics as the InfluxDB v2 write API), starts private instances of them on
# loopback, on free non-default ports, with their data in a temporary directory,
# exports their addresses as FLEET_TEST_* variables, checks what the server and the
# device link (cargo tree), runs the format check, clippy and every test of the
# workspace, stops what it started and exits with the tests' status.
#
#   scripts/test.sh                 # everything
#   scripts/test.sh -p protocol     # extra arguments go to `cargo test`
#   KEEP_SERVICES=1 scripts/test.sh # leave the data directory for inspection
#
# Needs root (or sudo) only to install missing packages.
set -euo pipefail

cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"
    elif command -v sudo >/dev/null; then sudo "$@"
    else die "installing packages needs root: run as root or install: $*"
    fi
}

# ---------------------------------------------------------------- packages
pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

missing=()
{ command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; } \
    && command -v mosquitto_passwd >/dev/null || missing+=(mosquitto)
[ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/initdb" ] || missing+=(postgresql)
command -v psql >/dev/null || missing+=(postgresql-client)
command -v victoria-metrics >/dev/null || missing+=(victoria-metrics)
command -v curl >/dev/null || missing+=(curl)
command -v openssl >/dev/null || missing+=(openssl)
# The desk's pages are tested in a real headless Chromium, driven over WebDriver.
command -v chromium >/dev/null || missing+=(chromium)
command -v chromedriver >/dev/null || missing+=(chromium-driver)
# The recycling desk's resale labels (99新, 9成新) need a CJK font to render.
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || missing+=(fonts-wqy-microhei)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    as_root apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
PGBIN=$(pg_bin)

# ---------------------------------------------------------------- workspace
WORK=$(mktemp -d /tmp/fleet-services.XXXXXX)
chmod 0755 "$WORK"
PIDS=()
PG_STARTED=0
STATUS=1

run_as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cleanup() {
    set +e
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null; done
    if [ "$PG_STARTED" -eq 1 ]; then
        run_as_pg "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m fast -w stop >/dev/null 2>&1
    fi
    if [ "$STATUS" -ne 0 ] || [ "${KEEP_SERVICES:-0}" != 0 ]; then
        say "service data and logs kept in $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# A free port at or above $1 (checked by connecting: nothing must answer). It runs in
# $(...), so it cannot remember what it handed out: callers space their bases apart.
free_port() {
    local p=$1
    while port_busy "$p"; do p=$((p + 1)); done
    echo "$p"
}

wait_port() { # name port logfile
    for _ in $(seq 1 100); do port_busy "$2" && return 0; sleep 0.1; done
    tail -n 30 "$3" >&2 || true
    die "$1 did not start listening on 127.0.0.1:$2 (log above)"
}

secret() { od -An -N12 -tx1 /dev/urandom | tr -d ' \n'; }

# ---------------------------------------------------------------- Mosquitto
MQTT_PORT=$(free_port 18830)
MQTT_AUTH_PORT=$(free_port 18840)
MQTT_TLS_PORT=$(free_port 18850)
MQTT_PASSWORD=$(secret)
mkdir -p "$WORK/mosquitto"
mosquitto_passwd -b -c "$WORK/mosquitto/passwd" ingest "$MQTT_PASSWORD" 2>/dev/null
for d in dev-0001 dev-0002 dev-0003 dev-0004; do
    mosquitto_passwd -b "$WORK/mosquitto/passwd" "$d" "$MQTT_PASSWORD" 2>/dev/null
done
# Devices (username = device id) may publish only under their own id and read only
# their own commands; ingest reads every device channel and writes commands.
cat > "$WORK/mosquitto/acl" <<ACL
user ingest
topic read fleet/#
topic write fleet/+/+/cmd

pattern write fleet/+/%u/heartbeat
pattern write fleet/+/%u/event
pattern write fleet/+/%u/state
pattern write fleet/+/%u/ack
pattern read fleet/+/%u/cmd
ACL
chmod 0644 "$WORK/mosquitto/passwd" "$WORK/mosquitto/acl"
# A throw-away CA and a server certificate for localhost, for the TLS listener.
(
    cd "$WORK/mosquitto"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=fleet-test-ca" \
        -keyout ca.key -out ca.pem 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout server.key -out server.csr 2>/dev/null
    printf '%s\n' "subjectAltName=DNS:localhost,IP:127.0.0.1" "basicConstraints=CA:FALSE" \
        "extendedKeyUsage=serverAuth" > server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
        -extfile server.ext -out server.pem 2>/dev/null
    chmod 0644 ca.pem server.pem server.key
) || die "could not make the test certificates with openssl"
cat > "$WORK/mosquitto/mosquitto.conf" <<CONF
user $(id -un)
persistence false
log_dest stderr
log_type error
log_type warning
log_type notice
per_listener_settings true
max_queued_messages 100000
# Below cloud-ingest's mqtt.max_packet_bytes (256 KiB by default), as docs/ingest.md asks.
message_size_limit 131072

# Anonymous, MQTT 3.1.1 and 5.
listener $MQTT_PORT 127.0.0.1
allow_anonymous true

# Password and ACL enforced.
listener $MQTT_AUTH_PORT 127.0.0.1
allow_anonymous false
password_file $WORK/mosquitto/passwd
acl_file $WORK/mosquitto/acl

# TLS with the throw-away CA, anonymous.
listener $MQTT_TLS_PORT 127.0.0.1
allow_anonymous true
cafile $WORK/mosquitto/ca.pem
certfile $WORK/mosquitto/server.pem
keyfile $WORK/mosquitto/server.key
CONF
say "starting Mosquitto on 127.0.0.1:$MQTT_PORT (anonymous), :$MQTT_AUTH_PORT (password + ACL) and :$MQTT_TLS_PORT (TLS)"
"$MOSQUITTO" -c "$WORK/mosquitto/mosquitto.conf" 2>"$WORK/mosquitto/log" &
PIDS+=($!)
wait_port Mosquitto "$MQTT_PORT" "$WORK/mosquitto/log"
wait_port Mosquitto "$MQTT_AUTH_PORT" "$WORK/mosquitto/log"
wait_port Mosquitto "$MQTT_TLS_PORT" "$WORK/mosquitto/log"

# ---------------------------------------------------------------- PostgreSQL
PG_PORT=$(free_port 15432)
PG_PASSWORD=$(secret)
mkdir -p "$WORK/pg"
printf '%s\n' "$PG_PASSWORD" > "$WORK/pg/pwfile"
[ "$(id -u)" -eq 0 ] && chown -R postgres "$WORK/pg"
say "starting PostgreSQL ($PGBIN) on 127.0.0.1:$PG_PORT"
run_as_pg "$PGBIN/initdb" -D "$WORK/pg/data" -U fleet --pwfile="$WORK/pg/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C >"$WORK/pg/initdb.log" 2>&1 \
    || { tail -n 30 "$WORK/pg/initdb.log" >&2; die "initdb failed (log above)"; }
# fsync off: a throw-away test cluster; the code under test does its own durability.
run_as_pg "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w -t 60 \
    -o "-p $PG_PORT -c listen_addresses=127.0.0.1 -k $WORK/pg -c fsync=off -c max_connections=200" \
    start >/dev/null || { tail -n 30 "$WORK/pg/log" >&2; die "PostgreSQL did not start (log above)"; }
PG_STARTED=1
PGPASSWORD=$PG_PASSWORD psql -q -h 127.0.0.1 -p "$PG_PORT" -U fleet -d postgres \
    -c "CREATE DATABASE fleet" >/dev/null

# ---------------------------------------------------------------- VictoriaMetrics
VM_PORT=$(free_port 18428)
mkdir -p "$WORK/vm"
say "starting VictoriaMetrics (InfluxDB v2 write API) on 127.0.0.1:$VM_PORT"
# A long retention: tests write points with simulated, possibly old, timestamps.
victoria-metrics -storageDataPath="$WORK/vm/data" -httpListenAddr="127.0.0.1:$VM_PORT" \
    -retentionPeriod=100y -loggerLevel=WARN 2>"$WORK/vm/log" &
PIDS+=($!)
wait_port VictoriaMetrics "$VM_PORT" "$WORK/vm/log"
for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$VM_PORT/health" >/dev/null 2>&1 && break
    sleep 0.1
done
curl -fsS "http://127.0.0.1:$VM_PORT/health" >/dev/null || die "VictoriaMetrics is not healthy"

# ---------------------------------------------------------------- tests
export FLEET_TEST_MQTT_URL="mqtt://127.0.0.1:$MQTT_PORT"
export FLEET_TEST_MQTT_AUTH_URL="mqtt://127.0.0.1:$MQTT_AUTH_PORT"
export FLEET_TEST_MQTT_PASSWORD="$MQTT_PASSWORD"
export FLEET_TEST_MQTT_TLS_URL="mqtts://localhost:$MQTT_TLS_PORT"
export FLEET_TEST_MQTT_CA="$WORK/mosquitto/ca.pem"
export FLEET_TEST_PG_URL="postgres://fleet:$PG_PASSWORD@127.0.0.1:$PG_PORT/fleet"
export FLEET_TEST_INFLUX_URL="http://127.0.0.1:$VM_PORT"
export FLEET_TEST_INFLUX_ORG=fleet
export FLEET_TEST_INFLUX_BUCKET=telemetry
export FLEET_TEST_INFLUX_TOKEN=test-token
export FLEET_TEST_SERVICES_DIR="$WORK"
export FLEET_TEST_CHROMIUM="$(command -v chromium)"
export FLEET_TEST_CHROMEDRIVER="$(command -v chromedriver)"

set +e
(
    set -e
    say "layering (cargo tree): what the server and the device link"
    # crate_links PACKAGE CRATE [FLAGS...]: whether PACKAGE's normal build links CRATE.
    crate_links() {
        local pkg=$1 dep=$2; shift 2
        cargo tree -q -p "$pkg" -e normal "$@" --prefix none --format '{p}' | grep -q "^$dep v"
    }
    for dep in edge-agent firmware-sim rumqttd linfa ndarray; do
        if crate_links cloud-ingest "$dep" --no-default-features; then
            cargo tree -p cloud-ingest -e normal --no-default-features -i "$dep" >&2
            die "the cloud-ingest server (--no-default-features) links $dep"
        fi
    done
    for dep in linfa ndarray csv rumqttd; do
        if crate_links edge-agent "$dep"; then
            cargo tree -p edge-agent -e normal -i "$dep" >&2
            die "the edge agent links $dep"
        fi
    done
    if cargo tree -q -p cloud-ingest -e normal --no-default-features -i csv --prefix none 2>/dev/null \
        | grep -q '^models v'; then
        die "cloud-ingest links models with more than its score feature (csv)"
    fi
    say "cargo check: the server build (cloud-ingest --no-default-features)"
    cargo check --quiet -p cloud-ingest --no-default-features --all-targets
    say "cargo fmt --check"
    cargo fmt --all -- --check
    say "cargo clippy (warnings are errors)"
    cargo clippy --workspace --all-targets --all-features --quiet -- -D warnings
    say "cargo test $*"
    if [ $# -gt 0 ]; then
        cargo test --all-features --no-fail-fast "$@"   # the caller chose what to test
    else
        cargo test --workspace --all-features --no-fail-fast
    fi
)
STATUS=$?
set -e
if [ "$STATUS" -eq 0 ]; then say "all checks passed"; else say "FAILED (status $STATUS)"; fi
exit "$STATUS"
