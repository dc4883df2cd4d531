#!/usr/bin/env bash
# THE test command. On a fresh machine with the project's toolchains (Rust, Java 17 + Maven,
# Python 3, Node.js 18+) it fetches what the tests need (Apache Kafka's jars through Maven, a
# Python venv for the interop decoder, the AsyncAPI parser through npm), then runs every test:
# formatting, clippy, unit tests, the HTTP surface without a broker, integration tests on
# Apache Kafka (compaction, Java and Python decoders, fault tests on a 3-node cluster), the
# quickstart, the pure path's instruction budget (valgrind), fuzzing, deployment tests.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "broker: Apache Kafka's jars from Maven Central (once, about a minute)"
scripts/kafka.sh fetch

step "python venv for the interop decoder (confluent-kafka)"
scripts/python-venv.sh tests/interop/requirements.txt
export INTEROP_PYTHON="$PWD/.venv/bin/python"

step "AsyncAPI parser for the AsyncAPI document test (npm, pinned by tests/asyncapi/package-lock.json)"
npm ci --prefix tests/asyncapi --no-audit --no-fund

step "promtool (Debian package prometheus) for the alert rules, once"
command -v promtool >/dev/null || {
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends prometheus >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends prometheus >/dev/null; }
}

step "format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

step "unit tests, the HTTP surface (no broker), integration tests on Apache Kafka"
cargo test --all-targets --locked -- --skip faults:: --skip compaction:: --skip interop::

step "compaction and interop on Apache Kafka (counts printed)"
cargo test --test kafka --test clusters --locked -- --nocapture compaction:: interop::

step "fault tests (counts printed: sent, 2xx, found in Kafka, lost, duplicates)"
cargo test --test clusters --locked faults:: -- --nocapture --test-threads 2

step "quickstart (one command, asserted on its output)"
QUICKSTART_EXIT_AFTER=1 timeout 600 scripts/quickstart.sh > target/quickstart.out 2>&1 \
  || { cat target/quickstart.out; exit 1; }
python3 tests/quickstart/check_output.py target/quickstart.out

step "instruction budget of the pure path (callgrind; a fixture over its budget by more than 3 % fails)"
cargo build --release --locked --quiet --manifest-path bench/Cargo.toml
# The bench's own tests (its report's targets and verdicts), on the same release build.
cargo test --release --locked --quiet --manifest-path bench/Cargo.toml
bench/target/release/riskos-bench instructions --budget bench/instruction-budget.json

step "fuzzing (each target briefly, from the checked-in corpus)"
scripts/fuzz.sh --ci

step "alert rules: promtool check and unit tests (each alert fires and stays silent)"
promtool check rules deploy/prometheus/riskos-connector.rules.yaml
promtool test rules deploy/prometheus/riskos-connector.rules.test.yaml

step "deployment artifacts (Helm chart, compose, Dockerfile)"
bash tests/deploy/run.sh
