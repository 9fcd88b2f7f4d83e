#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to the whole test suite, run
# against real PostgreSQL/PostGIS/TimescaleDB and Mosquitto that the suite
# starts itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest "$@"
