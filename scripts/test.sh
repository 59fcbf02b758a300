#!/usr/bin/env bash
# The whole suite: lint, types, then every test layer (servers are started by the tests).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== ruff"
.venv/bin/ruff check .
echo "== mypy (shared/, function_app.py, sandbox/, devhost/, scripts/)"
.venv/bin/mypy shared function_app.py sandbox devhost scripts
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
