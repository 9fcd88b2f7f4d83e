#!/usr/bin/env bash
# One command from a fresh Debian 12 machine to a running twin with the sample community.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/twin demo "$@"
