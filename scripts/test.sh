#!/usr/bin/env bash
# THE test command. On a fresh machine with only the Rust toolchain it installs what the tests
# need (the tansu broker, a Python venv for the interop decoder), then runs every test:
# formatting, clippy, unit tests, integration tests over a real broker, deployment tests.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "broker: tansu (built once, about ten minutes)"
TANSU_BIN=$(scripts/install-tansu.sh)
export TANSU_BIN

step "python venv for the interop decoder (confluent-kafka)"
scripts/python-venv.sh tests/interop/requirements.txt
export INTEROP_PYTHON="$PWD/.venv/bin/python"

step "format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

step "unit and integration tests"
cargo test --all-targets --locked -- --skip faults::

step "fault tests (counts printed: sent, 2xx, found in Kafka, lost)"
cargo test --test api --locked faults:: -- --nocapture --test-threads 2

step "quickstart (one command, asserted on its output)"
QUICKSTART_EXIT_AFTER=1 timeout 600 scripts/quickstart.sh > target/quickstart.out 2>&1 \
  || { cat target/quickstart.out; exit 1; }
python3 tests/quickstart/check_output.py target/quickstart.out

step "fuzzing (each target briefly, from the checked-in corpus)"
scripts/fuzz.sh --ci

step "deployment artifacts (Helm chart, compose, Dockerfile)"
bash tests/deploy/run.sh
