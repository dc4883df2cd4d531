#!/usr/bin/env bash
# Creates or refreshes .venv from a requirements file; a no-op when it is already current.
set -euo pipefail
cd "$(dirname "$0")/.."
requirements="$1"
marker=".venv/.requirements-$(sha256sum "$requirements" | cut -c1-16)"
if [ ! -f "$marker" ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r "$requirements"
  touch "$marker"
fi
