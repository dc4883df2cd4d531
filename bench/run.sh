#!/usr/bin/env bash
# The performance benchmark (issue 7); results go into docs/performance.md.
#
# Builds the connector (release) and the bench (bench/, its own Cargo workspace and target dir),
# installs the peers' dependencies once (bench/.venv for Flask/gunicorn/confluent-kafka,
# bench/peers/express/node_modules for Express/kafkajs), then runs `riskos-bench run`: for each
# server under test a fresh tansu broker (memory storage) and a fresh server, the load, and the
# CPU/RSS of the server from /proc; finally the table and the issue's targets are spliced into
# docs/performance.md between its bench markers. Raw results and logs: bench/out/.
#
# Traffic goes to 127.0.0.1 only; every phase is bounded in time and request count, and the
# whole run by BENCH_TIMEOUT seconds (default 1800). It takes about 11 minutes.
# Extra arguments go to `riskos-bench run`, e.g.
#   bench/run.sh --servers connector,kafka-ceiling --max-secs 10 --set linger.ms=2
set -euo pipefail
cd "$(dirname "$0")/.."

tansu=$(scripts/install-tansu.sh)
echo "==> building the connector (release)"
cargo build --release --quiet --bin riskos-connector
echo "==> building the bench"
cargo build --release --quiet --manifest-path bench/Cargo.toml

requirements=bench/peers/flask/requirements.txt
marker="bench/.venv/.requirements-$(sha256sum "$requirements" | cut -c1-16)"
if [ ! -f "$marker" ]; then
  echo "==> installing the Flask peer's packages into bench/.venv"
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install --quiet --disable-pip-version-check -r "$requirements"
  touch "$marker"
fi
lock=bench/peers/express/package-lock.json
stamp=bench/peers/express/node_modules/.installed-$(sha256sum "$lock" | cut -c1-16)
if [ ! -f "$stamp" ]; then
  echo "==> installing the Express peer's packages into bench/peers/express/node_modules"
  (cd bench/peers/express && npm ci --no-audit --no-fund --silent)
  touch "$stamp"
fi

echo "==> running the benchmark (logs in bench/out/logs)"
timeout "${BENCH_TIMEOUT:-1800}" bench/target/release/riskos-bench run \
  --tansu "$tansu" --doc docs/performance.md --command "bench/run.sh${*:+ $*}" "$@"

# The same connector and Kafka ceiling with linger.ms=0: how far each goes when the producer
# does not wait to batch. Only in the full run (no extra arguments); BENCH_LINGER_SWEEP=0 skips it.
if [ $# -eq 0 ] && [ "${BENCH_LINGER_SWEEP:-1}" = 1 ]; then
  echo "==> connector and Kafka ceiling with linger.ms=0"
  timeout "${BENCH_TIMEOUT:-1800}" bench/target/release/riskos-bench run \
    --tansu "$tansu" --doc docs/performance.md --section linger-0 --servers connector,kafka-ceiling \
    --low-rate 0 --set linger.ms=0 --command "bench/run.sh (second part)"
fi
