#!/usr/bin/env bash
# Tests of the deployment artifacts: Dockerfile, docker-compose.yml and the Helm chart.
#
#   bash tests/deploy/run.sh [pytest args...]
#
# Idempotent and non-interactive. Creates (or reuses) the virtualenv .venv-deploy/ at the repo
# root, installs tests/deploy/requirements.txt into it when that file changed, installs the
# Debian package docker-compose when missing (needs root; `apt-get update` only if the install
# fails without it), then runs pytest on tests/deploy and exits with pytest's status.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$REPO/.venv-deploy"
REQUIREMENTS="$REPO/tests/deploy/requirements.txt"
PYTHON="${PYTHON:-python3}"
started=$(date +%s)

log() { echo "run.sh: $*" >&2; }

# 1. Python >= 3.11 (tomllib) and the virtualenv.
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    log "$PYTHON is older than 3.11 (tomllib is needed); set PYTHON=/path/to/python3.11+"
    exit 2
fi
if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
    log "creating $VENV"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
fi

# 2. Pinned requirements, reinstalled only when requirements.txt changes.
stamp="$VENV/.requirements.sha256"
wanted="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$wanted" ]; then
    log "installing $(basename "$REQUIREMENTS") into $VENV"
    "$VENV/bin/python" -m pip install --disable-pip-version-check --no-input -q -r "$REQUIREMENTS"
    echo "$wanted" > "$stamp"
fi

# 3. The connector binary: the chart's config.toml is checked by `riskos-connector config check --offline`.
#    scripts/test.sh hands over the one its tests built (RISKOS_CONNECTOR_BIN); the tests run
#    the one named there (conftest.connector_binary).
if [[ -z ${RISKOS_CONNECTOR_BIN:-} ]]; then
    (cd "$REPO" && cargo build --quiet --bin riskos-connector)
    export RISKOS_CONNECTOR_BIN="${CARGO_TARGET_DIR:-$REPO/target}/debug/riskos-connector"
fi

# 4. docker-compose (validates docker-compose.yml; no Docker engine needed).
if ! command -v docker-compose >/dev/null 2>&1; then
    export DEBIAN_FRONTEND=noninteractive
    apt_install() { apt-get install -y -q --no-install-recommends docker-compose >/dev/null; }
    log "installing docker-compose with apt-get"
    if ! apt_install 2>/dev/null; then
        log "apt-get update (package lists missing or stale)"
        apt-get update -q >/dev/null
        apt_install
    fi
fi

# 4. The tests.
cd "$REPO"
status=0
PYTHONDONTWRITEBYTECODE=1 "$VENV/bin/python" -m pytest -p no:cacheprovider tests/deploy "$@" || status=$?
log "finished in $(( $(date +%s) - started ))s (pytest exit status $status)"
exit "$status"
