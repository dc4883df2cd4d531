#!/usr/bin/env bash
# Installs the tansu Kafka-protocol broker (with its SQLite and memory storage engines) once;
# later runs reuse it. Prints the binary's path.
set -euo pipefail
TANSU_VERSION=0.6.0
CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
if ! "$CARGO_BIN/tansu" --version 2>/dev/null | grep -q "$TANSU_VERSION"; then
  echo "building tansu $TANSU_VERSION (about ten minutes, once)" >&2
  cargo install tansu --version "$TANSU_VERSION" --locked --features dynostore,libsql >&2
fi
echo "$CARGO_BIN/tansu"
