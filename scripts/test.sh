#!/usr/bin/env bash
# THE test command. On a fresh machine with only the Rust toolchain it installs what the tests
# need (the tansu broker, a Python venv for the interop decoder), then runs every test:
# formatting, clippy, unit tests, integration tests over a real broker, deployment tests.
set -euo pipefail
cd "$(dirname "$0")/.."

TANSU_VERSION=0.6.0
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
export PATH="$CARGO_BIN:$PATH"

step() { printf '\n==> %s\n' "$*"; }

step "broker: tansu $TANSU_VERSION"
if ! tansu --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
  # ~10 minutes once; later runs reuse the installed binary.
  cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql
fi
export TANSU_BIN="$CARGO_BIN/tansu"

step "python venv for the interop decoder (confluent-kafka)"
scripts/python-venv.sh tests/interop/requirements.txt
export INTEROP_PYTHON="$PWD/.venv/bin/python"

step "format and lints"
cargo fmt --all -- --check
cargo clippy --all-targets --locked -- -D warnings

step "unit and integration tests"
cargo test --all-targets --locked

if [ -x tests/deploy/run.sh ]; then
  step "deployment artifacts (Helm chart, compose, Dockerfile)"
  bash tests/deploy/run.sh
fi
