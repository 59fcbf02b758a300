#!/usr/bin/env bash
# Installs what `make run` and `make test` need, only when it is missing or out of date:
# a Python 3.11 virtual environment with requirements-dev.txt, the infra check tools
# (checkov) in their own venv from requirements-tools.txt, and Azurite through `npm ci`.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
  for candidate in "${PYTHON:-}" python3.11 python3; do
    [ -n "$candidate" ] || continue
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  echo "bootstrap: Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
  return 1
}

stamp=.venv/.requirements.sha256
wanted=$(cat requirements.txt requirements-dev.txt | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
  python=$(find_python)
  echo "bootstrap: installing Python dependencies into .venv"
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  echo "$wanted" > "$stamp"
fi

# checkov's pins clash with the app's (it needs pycep-parser 0.5.1, among others): it gets its
# own venv inside .venv (so it is git-ignored and never deployed); tests/infra call it.
tools_stamp=.venv/tools/.requirements.sha256
tools_wanted=$(sha256sum requirements-tools.txt | cut -d' ' -f1)
if [ ! -x .venv/tools/bin/checkov ] || [ "$(cat "$tools_stamp" 2>/dev/null)" != "$tools_wanted" ]; then
  python=$(find_python)
  echo "bootstrap: installing infra check tools into .venv/tools"
  [ -x .venv/tools/bin/python ] || "$python" -m venv .venv/tools
  .venv/tools/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-tools.txt
  echo "$tools_wanted" > "$tools_stamp"
fi

npm_stamp=node_modules/.package-lock.sha256
npm_wanted=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -x node_modules/.bin/azurite ] || [ "$(cat "$npm_stamp" 2>/dev/null)" != "$npm_wanted" ]; then
  echo "bootstrap: installing Azurite (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$npm_wanted" > "$npm_stamp"
fi
