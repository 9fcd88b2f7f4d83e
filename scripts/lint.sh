#!/usr/bin/env bash
# The habits CI keeps: ruff, mypy, and the direction of imports (import-linter).
# Installs what is missing first, like scripts/test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
echo "--- ruff check"
.venv/bin/ruff check .
echo "--- mypy"
.venv/bin/mypy
echo "--- import contracts"
.venv/bin/lint-imports --no-cache
