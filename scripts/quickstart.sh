#!/usr/bin/env bash
# One-command quickstart, no Docker, no registry: builds the connector, starts a local Apache
# Kafka broker (scripts/kafka.sh: one KRaft node run with java from the official jars, which
# Maven fetches once into a cache), starts the connector with Avro single-object encoding,
# posts every vendor sample with curl, and prints each topic's decoded records.
# The connector keeps running until Ctrl-C, which stops everything this script started.
# QUICKSTART_EXIT_AFTER=1 exits after printing (CI does this).
# Each run starts from an empty broker in its own folder under target/quickstart/, removed on
# exit unless the run failed (its logs are kept there then). CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds
  local what=$1 limit=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "quickstart: $what did not come up within ${limit}s" >&2; exit 1; fi
    sleep 0.2
  done
}
for tool in cargo java mvn python3 curl; do
  command -v "$tool" >/dev/null || { echo "quickstart: $tool not found (needed: cargo, java 17+, mvn, python3, curl)" >&2; exit 1; }
done

mkdir -p target/quickstart
work=$(mktemp -d "$PWD/target/quickstart/run.XXXXXX")
kafka_dir=$work/kafka
pids=()
cleanup() {
  local rc=$?
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [ -f "$kafka_dir/cluster.env" ]; then # a broker was (maybe) started: stop exactly that one
    echo "==> stopping the broker" >&2
    KAFKA_STOP_TIMEOUT=10 scripts/kafka.sh stop --dir "$kafka_dir" >&2 || rc=1
  fi
  local logs
  logs=$(find "$work" -name '*.log' 2>/dev/null | sort)
  if [ "$rc" = 0 ] || [ "$rc" = 130 ] || [ -z "$logs" ]; then
    rm -rf "$work"
  else
    printf 'quickstart: failed; its logs are kept:\n%s\n' "$logs" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# RISKOS_CONNECTOR_BIN: a connector binary built already (scripts/test.sh hands it the one its
# tests built); otherwise this builds one.
if [[ -n ${RISKOS_CONNECTOR_BIN:-} ]]; then
  connector=$RISKOS_CONNECTOR_BIN
else
  echo "==> building the connector"
  cargo build --quiet --bin riskos-connector
  connector=${CARGO_TARGET_DIR:-target}/debug/riskos-connector
fi

broker_port=$(free_port)
controller_port=$(free_port)
while [ "$controller_port" = "$broker_port" ]; do controller_port=$(free_port); done
http_port=$(free_port)
echo "==> starting Apache Kafka (scripts/kafka.sh, one KRaft node) on 127.0.0.1:$broker_port"
started=$(scripts/kafka.sh start --dir "$kafka_dir" --port "$broker_port" --controller-port "$controller_port")
echo "$started" | sed '$d'
bootstrap=$(echo "$started" | tail -n 1)

export RISKOS_KAFKA__BOOTSTRAP_SERVERS="$bootstrap"
export RISKOS_HTTP__LISTEN="127.0.0.1:$http_port"
export RISKOS_SCHEMAS__ENCODING=single-object
export RISKOS_TOPICS__PARTITIONS=1
export RISKOS_TOPICS__REPLICATION_FACTOR=1
export RISKOS_ENDPOINTS__RISKOS__AUTH__MODE=none  # local demo on loopback; see docs/authentication.md
export RISKOS_LOG__FORMAT=text
# Protection keys for this run (personal fields hashed or encrypted, `raw` encrypted); a real
# deployment keeps them in a secret store: the same keys on every replica, kept for as long
# as the records they protect.
mkdir -p "$work/keys" && chmod 700 "$work/keys"
"$connector" keys generate --kid quickstart-h >"$work/keys/hash"
"$connector" keys generate --kid quickstart-e >"$work/keys/encryption"
export RISKOS_PROTECTION__HASH_KEYS_FILE="$work/keys/hash"
export RISKOS_PROTECTION__ENCRYPTION_KEYS_FILE="$work/keys/encryption"
echo "==> starting the connector on http://127.0.0.1:$http_port/webhooks/riskos"
"$connector" serve >"$work/connector.log" 2>&1 &
pids+=($!)
wait_for "the connector" 60 curl -fsS "http://127.0.0.1:$http_port/readyz"

echo "==> posting every sample payload"
for fixture in tests/fixtures/*.json; do
  status=$(curl -sS -o "$work/reply" -w '%{http_code}' \
    -H 'content-type: application/json' --data-binary "@$fixture" \
    "http://127.0.0.1:$http_port/webhooks/riskos")
  printf '%s %s %s\n' "$status" "$(basename "$fixture")" "$(cat "$work/reply")"
done

echo "==> decoded records, one JSON line each, encrypted values opened with the keys (riskos-connector tail --reveal)"
"$connector" tail --from-beginning --exit-at-end --reveal

if [ "${QUICKSTART_EXIT_AFTER:-0}" = 1 ]; then
  exit 0
fi
echo "==> the connector is still running: post more with"
echo "    curl -H 'content-type: application/json' --data-binary @tests/fixtures/riskos.case_closure.match.json http://127.0.0.1:$http_port/webhooks/riskos"
echo "    and watch with: RISKOS_KAFKA__BOOTSTRAP_SERVERS=$bootstrap RISKOS_SCHEMAS__ENCODING=single-object $connector tail"
echo "    broker tools: scripts/kafka.sh topics --bootstrap-server $bootstrap --list"
echo "    Ctrl-C stops the connector and the broker."
wait "${pids[@]}"
