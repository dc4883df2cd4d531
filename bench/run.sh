#!/usr/bin/env bash
# The performance benchmark (issues 7 and 18); results go into docs/performance.md.
#
# Builds the connector (release) and the bench (bench/, its own Cargo workspace and target dir),
# installs the peers' dependencies once (bench/.venv for Flask/gunicorn/confluent-kafka,
# bench/peers/express/node_modules for Express/kafkajs) and fetches Apache Kafka's jars once
# (scripts/kafka.sh fetch, with Maven), then runs `riskos-bench run`:
# - first the pure path's instructions per webhook for each fixture (`riskos-bench instructions`:
#   `prepare` under valgrind's callgrind, about 5 s; without valgrind the table says "valgrind
#   not found" and the run goes on; `--skip-instructions` skips it);
# - for each server under test a fresh one-node Apache Kafka (scripts/kafka.sh start, in a temp
#   folder removed afterwards) and a fresh server, the load, and the CPU/RSS of the server from
#   /proc;
# - for the connector also a burst (512 in flight for 10 s after a 3 s warm-up) on one more
#   fresh broker, once with its defaults and once with its admission limits raised out of the
#   way, a fresh process each (about 45 s; `--burst-concurrency 0` skips it);
# finally the table, the instructions and issue 18's targets are spliced into
# docs/performance.md between its bench markers. Raw results and logs (each broker's server.log
# is appended to its bench/out/logs/*-broker.log): bench/out/.
#
# Traffic goes to 127.0.0.1 only; every phase is bounded in time and request count, and each
# part by BENCH_TIMEOUT seconds (default 1800). A full run takes about 27 minutes: the first part
# (load phases, 13 Apache Kafka brokers started and stopped, about 10 s each, the burst's phases,
# the instructions) about 14, then linger.ms=0, 512 in flight, the 64/512 pairs, the logging A/B,
# the plaintext/TLS A/B (about 2 minutes) and issue 26's targets (with issue 27's TLS rows).
# Extra arguments go to `riskos-bench run`, e.g.
#   bench/run.sh --servers connector,kafka-ceiling --max-secs 10 --set linger.ms=2
#   bench/run.sh --servers connector --max-secs 3 --rate-secs 3 --half-trials 1 --low-rate 0 --burst-secs 3
# The instructions alone: bench/target/release/riskos-bench instructions
# Then (full run only) the linger.ms=0 sweep, 512 in flight, the logging A/B, the plaintext/TLS
# A/B and issue 26's targets table (`riskos-bench targets`), each spliced into
# docs/performance.md (the A/B parts through the targets table; their raw results in bench/out).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "==> fetching Apache Kafka (once; scripts/kafka.sh)"
scripts/kafka.sh fetch >/dev/null
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
  --doc docs/performance.md --command "bench/run.sh${*:+ $*}" "$@"

# The same connector and Kafka ceiling with linger.ms=0: how far each goes when the producer
# does not wait to batch. Only in the full run (no extra arguments); BENCH_LINGER_SWEEP=0 skips it.
if [ $# -eq 0 ] && [ "${BENCH_LINGER_SWEEP:-1}" = 1 ]; then
  echo "==> connector and Kafka ceiling with linger.ms=0"
  timeout "${BENCH_TIMEOUT:-1800}" bench/target/release/riskos-bench run \
    --doc docs/performance.md --section linger-0 --servers connector,kafka-ceiling \
    --low-rate 0 --set linger.ms=0 --burst-concurrency 0 --skip-instructions \
    --command "bench/run.sh (second part)"
fi

# The connector and both ceilings at 512 in flight (issue 26: the cost per webhook must not
# rise with concurrency, and stays within 1.5 × the ceilings' sum there too). Only in the full
# run; BENCH_IN_FLIGHT_512=0 skips it.
if [ $# -eq 0 ] && [ "${BENCH_IN_FLIGHT_512:-1}" = 1 ]; then
  echo "==> connector and both ceilings at 512 in flight"
  timeout "${BENCH_TIMEOUT:-1800}" bench/target/release/riskos-bench run \
    --doc docs/performance.md --section in-flight-512 \
    --servers connector,http-ceiling,kafka-ceiling --concurrency 512 --max-only \
    --burst-concurrency 0 --skip-instructions --command "bench/run.sh (third part)"
fi

# The connector alone with one setting and with another, a fresh broker and connector each, in
# rounds A B then B A, so whatever drifts over the minutes (the host, caches) falls on both
# alike: `ab_ba PREFIX FLAG VALUE_PREFIX A B` runs `riskos-bench run ... FLAG VALUE_PREFIX<A>`
# into section PREFIX-A-1, then B, then B and A again as round 2. Results in bench/out only.
ab_ba() {
  local prefix=$1 flag=$2 value_prefix=$3 a=$4 b=$5 round variant order
  for round in 1 2; do
    order="$a $b"; [ "$round" = 2 ] && order="$b $a"
    for variant in $order; do
      echo "==> connector, $prefix $variant (round $round)"
      timeout "${BENCH_TIMEOUT:-1800}" bench/target/release/riskos-bench run \
        --section "$prefix-$variant-$round" --servers connector --max-only \
        --burst-concurrency 0 --skip-instructions "$flag" "$value_prefix$variant" \
        --command "bench/run.sh ($prefix)" >/dev/null
    done
  done
}

# At 64 and at 512 in flight back to back: the 64-vs-512 target compares these rounds (the
# first and third parts run minutes apart, and one 15 s phase moves by ±10-20 % over that).
# Only in the full run; BENCH_PAIRS=0 skips it.
if [ $# -eq 0 ] && [ "${BENCH_PAIRS:-1}" = 1 ]; then
  ab_ba pair --concurrency "" 64 512
fi

# What logging at `info` (the request span and the one JSON line a webhook) costs, at 64 in
# flight with `info` and with `warn`: the cross-check of `riskos-bench logging`. Only in the
# full run; BENCH_LOGGING=0 skips it.
if [ $# -eq 0 ] && [ "${BENCH_LOGGING:-1}" = 1 ]; then
  ab_ba logging --connector-env RISKOS_LOG__LEVEL= info warn
fi

# The connector at 64 in flight producing to its broker in plaintext and over TLS (issue 27: the
# targets hold with TLS on): `--kafka-security tls` gives the broker an SSL listener with a
# certificate from a CA made for the run and points the connector at it (kafka.tls). Sections
# tls-plaintext-N and tls-tls-N; the targets table below compares them. About 2 minutes. Only in
# the full run; BENCH_TLS=0 skips it.
if [ $# -eq 0 ] && [ "${BENCH_TLS:-1}" = 1 ]; then
  ab_ba tls --kafka-security "" plaintext tls
fi

# Issue 26's targets from the parts above (a part that did not run shows as "not run").
if [ $# -eq 0 ]; then
  echo "==> issue 26's targets"
  bench/target/release/riskos-bench targets --doc docs/performance.md
fi
