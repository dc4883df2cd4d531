#!/usr/bin/env bash
# One-command quickstart, no Docker, no registry: builds the connector, starts a local
# Kafka-protocol broker (tansu, in memory), starts the connector with Avro single-object
# encoding, posts every vendor sample with curl, and prints each topic's decoded records.
# The connector keeps running until Ctrl-C, which stops everything this script started.
# QUICKSTART_EXIT_AFTER=1 exits after printing (CI does this).
set -euo pipefail
cd "$(dirname "$0")/.."

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() { # wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds
  local what=$1 limit=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "quickstart: $what did not come up; logs in $work" >&2; exit 1; fi
    sleep 0.2
  done
}

tansu=$(scripts/install-tansu.sh)
echo "==> building the connector"
cargo build --quiet --bin riskos-connector
connector=target/debug/riskos-connector

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

broker_port=$(free_port)
http_port=$(free_port)
echo "==> starting the broker on 127.0.0.1:$broker_port"
(cd "$work" && exec "$tansu" broker \
  --listener-url "tcp://127.0.0.1:$broker_port" \
  --advertised-listener-url "tcp://127.0.0.1:$broker_port" \
  --storage-engine memory://tansu/) >"$work/broker.log" 2>&1 &
pids+=($!)
wait_for "the broker" 30 bash -c "</dev/tcp/127.0.0.1/$broker_port"

export RISKOS_KAFKA__BOOTSTRAP_SERVERS="127.0.0.1:$broker_port"
export RISKOS_HTTP__LISTEN="127.0.0.1:$http_port"
export RISKOS_SCHEMAS__ENCODING=single-object
export RISKOS_TOPICS__PARTITIONS=1
export RISKOS_TOPICS__REPLICATION_FACTOR=1
export RISKOS_AUTH__MODE=none  # local demo on loopback; see README "Authentication and ingress security"
export RISKOS_LOG__FORMAT=text
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

echo "==> decoded records, one JSON line each (riskos-connector tail)"
"$connector" tail --from-beginning --exit-at-end

if [ "${QUICKSTART_EXIT_AFTER:-0}" = 1 ]; then
  exit 0
fi
echo "==> the connector is still running: post more with"
echo "    curl -H 'content-type: application/json' --data-binary @tests/fixtures/riskos.case_closure.match.json http://127.0.0.1:$http_port/webhooks/riskos"
echo "    and watch with: RISKOS_KAFKA__BOOTSTRAP_SERVERS=127.0.0.1:$broker_port RISKOS_SCHEMAS__ENCODING=single-object $connector tail"
echo "    Ctrl-C stops the connector and the broker."
wait
