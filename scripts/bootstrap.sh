#!/usr/bin/env bash
# Installs whatever is missing (system packages as root, then the Python
# environment in .venv) and is a no-op when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

system_ready() {
  [ -f /usr/share/postgresql/15/extension/timescaledb.control ] &&
  [ -f /usr/share/postgresql/15/extension/postgis.control ] &&
  { command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; } &&
  { command -v chromium >/dev/null 2>&1; } &&
  { command -v promtool >/dev/null 2>&1; } && { command -v docker-compose >/dev/null 2>&1; }
}

if ! system_ready || ! python3 -c 'import ensurepip' 2>/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    bash scripts/install-system.sh
  elif command -v sudo >/dev/null 2>&1; then
    sudo bash scripts/install-system.sh
  else
    echo "PostgreSQL 15 with PostGIS and TimescaleDB, or Mosquitto, is missing: run scripts/install-system.sh as root" >&2
    exit 1
  fi
fi

python3 - <<'PY' || { echo "the twin needs Python 3.11 or newer" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

[ -x .venv/bin/python ] || python3 -m venv .venv
# Reinstall only when the dependencies changed.
stamp=.venv/.twin-deps
want=$(sha256sum pyproject.toml | cut -c1-64)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "installing the Python environment in .venv (log: .venv/pip.log)" >&2
  if ! { .venv/bin/python -m pip install --upgrade pip &&
         .venv/bin/python -m pip install -e ".[dev]"; } > .venv/pip.log 2>&1; then
    tail -n 30 .venv/pip.log >&2
    echo "installing the Python packages failed; the whole log is in .venv/pip.log" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi
