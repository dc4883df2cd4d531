#!/usr/bin/env bash
# THE test command. On a fresh machine with the project's toolchains (Rust, Java 17 + Maven,
# Python 3, Node.js 18+) it fetches what the tests need (Apache Kafka's jars through Maven, a
# Python venv for the interop decoder, the AsyncAPI parser through npm), then runs every test:
# formatting, clippy, unit tests, the HTTP surface without a broker, integration tests on
# Apache Kafka (compaction, Java and Python decoders, fault tests on a 3-node cluster), the
# quickstart, the pure path's instruction budget (valgrind), fuzzing, deployment tests.
#
# At the end (and on failure, for what ran so far) it prints where the time went: per step, the
# wall time, the CPU time of the processes it waited for (user + system, as `time` counts it),
# and the Kafka nodes it started with the CPU they used (detached JVMs, which `time` does not
# see); docs/testing.md#where-the-time-goes has the figures.
set -euo pipefail
cd "$(dirname "$0")/.."

# Fresh builds never reuse incremental state: not writing it saves CPU and disk.
export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}
# Short-lived test brokers: C1 only and the serial collector start a node on about 60 % of the
# CPU of C2 + G1 (scripts/kafka.sh's default, which the benchmark's brokers keep).
export KAFKA_JVM_BASE_OPTS=${KAFKA_JVM_BASE_OPTS:--XX:+UseSerialGC -XX:TieredStopAtLevel=1}

# --- accounting: wall and CPU per step ---------------------------------------------------------
mkdir -p target
export KAFKA_ACCOUNT_LOG="$PWD/target/test-kafka-jvms.log"
: >"$KAFKA_ACCOUNT_LOG"
TIMES_FILE=$(mktemp)
STEP_NAMES=() STEP_WALL=() STEP_CPU=() STEP_JVMS=()
step_name="" step_t0="" step_cpu0="" step_line0=0 run_t0=$EPOCHREALTIME
# CPU_NOW: user+system seconds of all waited-for children so far (`times`, 2nd line). Called
# as is, never in $(…): a subshell's `times` would count nothing.
children_cpu() {
  times >"$TIMES_FILE"
  CPU_NOW=$(awk 'NR == 2 { s = 0; for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] }
    printf "%.1f", s }' "$TIMES_FILE")
}
# "B brokers (C s CPU), T tools" for the account lines after line $1
jvm_summary() {
  awk -v from="$1" 'NR > from && $1 == "stop" { n++; t += $4 } NR > from && $1 == "launch" { l++ }
    NR > from && $1 == "tool" { k++ }
    END { if (l + k) printf "%d nodes (%.0f s CPU), %d tools", l, t / 100, k }' "$KAFKA_ACCOUNT_LOG"
}
step_end() {
  [[ -n $step_name ]] || return 0
  STEP_NAMES+=("$step_name")
  STEP_WALL+=("$(awk -v a="$step_t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')")
  children_cpu
  STEP_CPU+=("$(awk -v a="$step_cpu0" -v b="$CPU_NOW" 'BEGIN { printf "%.0f", b - a }')")
  STEP_JVMS+=("$(jvm_summary "$step_line0")")
  step_name=""
}
summary() {
  local rc=$1 i wall=0 cpu=0
  step_end
  printf '\n==> where the time went%s\n' "$( ((rc == 0)) || echo " (failed in the last step, exit $rc)")"
  printf '%-40s %8s %8s  %s\n' step "wall s" "CPU s" "Kafka JVMs (nodes: CPU they used)"
  for i in "${!STEP_NAMES[@]}"; do
    printf '%-40s %8s %8s  %s\n' "${STEP_NAMES[$i]:0:40}" "${STEP_WALL[$i]}" "${STEP_CPU[$i]}" "${STEP_JVMS[$i]}"
    cpu=$((cpu + STEP_CPU[i]))
  done
  wall=$(awk -v a="$run_t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }')
  printf '%-40s %8s %8s  %s\n' total "$wall" "$cpu" "$(jvm_summary 0)"
  rm -f "$TIMES_FILE"
}
trap 'summary $?' EXIT

# step SHORT-NAME DESCRIPTION: closes the step before, prints DESCRIPTION, starts the clock
step() {
  step_end
  step_name=$1
  shift
  printf '\n==> %s\n' "$*"
  step_t0=$EPOCHREALTIME
  children_cpu
  step_cpu0=$CPU_NOW
  step_line0=$(wc -l <"$KAFKA_ACCOUNT_LOG")
}

step kafka-jars "broker: Apache Kafka's jars from Maven Central (once, about a minute)"
scripts/kafka.sh fetch

step python-venv "python venv for the interop decoder (confluent-kafka)"
scripts/python-venv.sh tests/interop/requirements.txt
export INTEROP_PYTHON="$PWD/.venv/bin/python"

step npm "AsyncAPI parser for the AsyncAPI document test (npm, pinned by tests/asyncapi/package-lock.json)"
npm ci --prefix tests/asyncapi --no-audit --no-fund

step promtool-install "promtool (Debian package prometheus) for the alert rules, once"
command -v promtool >/dev/null || {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends prometheus >/dev/null; }
}

step fmt "format"
cargo fmt --all -- --check

# The lints run inside the test build: clippy-driver compiles the workspace's crates (every
# target, as `cargo clippy --all-targets -- -D warnings` checks them) and goes on to build them,
# so the dependencies are compiled once instead of once for `cargo clippy`'s check build and
# again for the tests. A lint fails the build as it fails `cargo clippy`. Exported: the later
# cargo commands see the same wrapper and reuse this build.
step "clippy+cargo test" "lints, unit tests, the HTTP surface (no broker), integration tests on Apache Kafka"
RUSTC_WORKSPACE_WRAPPER=$(rustup which clippy-driver 2>/dev/null || command -v clippy-driver)
export RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS="-D__CLIPPY_HACKERY__warnings__CLIPPY_HACKERY__"
cargo test --all-targets --locked -- --skip faults:: --skip compaction:: --skip interop::
# The connector as these tests built it, for the quickstart and the deployment tests (a plain
# `cargo build --bin` leaves out the dev-dependencies' features and so builds tokio and all
# above it again; the scripts build it themselves when run on their own).
export RISKOS_CONNECTOR_BIN="$PWD/target/debug/riskos-connector"

step compaction+interop "compaction and interop on Apache Kafka (counts printed)"
cargo test --test kafka --test clusters --locked -- --nocapture compaction:: interop::

step faults "fault tests (counts printed: sent, 2xx, found in Kafka, lost, duplicates)"
cargo test --test clusters --locked faults:: -- --nocapture --test-threads 2

step quickstart "quickstart (one command, asserted on its output)"
QUICKSTART_EXIT_AFTER=1 timeout 600 scripts/quickstart.sh > target/quickstart.out 2>&1 \
  || { cat target/quickstart.out; exit 1; }
python3 tests/quickstart/check_output.py target/quickstart.out

# The bench and the fuzz targets are workspaces of their own, built their own way.
unset RUSTC_WORKSPACE_WRAPPER CLIPPY_ARGS

step instruction-budget "instruction budget of the pure path (callgrind; a fixture over its budget by more than 3 % fails)"
# Profile `budget` (bench/Cargo.toml): the pure path as in `release`, the crates it never runs
# unoptimised; without feature `kafka` (librdkafka, the AWS SDK), which only `run` needs.
cargo build --profile budget --no-default-features --locked --quiet --manifest-path bench/Cargo.toml
# The bench's own tests (its report's targets and verdicts), on the same build.
cargo test --profile budget --no-default-features --locked --quiet --manifest-path bench/Cargo.toml
bench/target/budget/riskos-bench instructions --budget bench/instruction-budget.json

step fuzz "fuzzing (each target briefly, from the checked-in corpus)"
scripts/fuzz.sh --ci

step alert-rules "alert rules: promtool check and unit tests (each alert fires and stays silent)"
promtool check rules deploy/prometheus/riskos-connector.rules.yaml
promtool test rules deploy/prometheus/riskos-connector.rules.test.yaml

step deploy "deployment artifacts (Helm chart, compose, Dockerfile)"
bash tests/deploy/run.sh
