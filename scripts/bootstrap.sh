#!/usr/bin/env bash
# Installs what `make run` and `make test` need, only when it is missing or out of date:
# a Python 3.11 virtual environment with requirements-dev.txt, the infra check tools
# (checkov) in their own venv from requirements-tools.txt, Azurite through `npm ci`, and
# Chromium for the browser tests (tests/browser) from the system's packages.
# Each step says what it does and how long it took.
set -euo pipefail
cd "$(dirname "$0")/.."

# Prints "bootstrap: <what>" now and "bootstrap: <what>: done in Ns" when the step ends.
step_started=0
begin() {
  step_name=$1
  step_started=$(date +%s)
  echo "bootstrap: $step_name"
}
done_step() {
  echo "bootstrap: $step_name: done in $(($(date +%s) - step_started))s"
}

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
  begin "installing Python dependencies into .venv (requirements-dev.txt)"
  [ -x .venv/bin/python ] || "$python" -m venv .venv
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
  echo "$wanted" > "$stamp"
  done_step
else
  echo "bootstrap: Python dependencies are up to date"
fi

# checkov's pins clash with the app's (it needs pycep-parser 0.5.1, among others): it gets its
# own venv inside .venv (so it is git-ignored and never deployed); tests/infra call it.
tools_stamp=.venv/tools/.requirements.sha256
tools_wanted=$(sha256sum requirements-tools.txt | cut -d' ' -f1)
if [ ! -x .venv/tools/bin/checkov ] || [ "$(cat "$tools_stamp" 2>/dev/null)" != "$tools_wanted" ]; then
  python=$(find_python)
  begin "installing infra check tools into .venv/tools (requirements-tools.txt)"
  [ -x .venv/tools/bin/python ] || "$python" -m venv .venv/tools
  .venv/tools/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-tools.txt
  echo "$tools_wanted" > "$tools_stamp"
  done_step
else
  echo "bootstrap: infra check tools are up to date"
fi

npm_stamp=node_modules/.package-lock.sha256
npm_wanted=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -x node_modules/.bin/azurite ] || [ "$(cat "$npm_stamp" 2>/dev/null)" != "$npm_wanted" ]; then
  begin "installing Azurite (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$npm_wanted" > "$npm_stamp"
  done_step
else
  echo "bootstrap: Azurite is up to date"
fi

# The browser tests drive the system's Chromium through Playwright (requirements-dev.txt);
# Playwright never downloads a browser of its own here. CI runs as root on a fresh machine,
# so there it is installed; anyone else is told what to install.
chromium=${CHROMIUM:-/usr/bin/chromium}
if [ -x "$chromium" ]; then
  echo "bootstrap: Chromium is installed ($chromium)"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  begin "installing Chromium for the browser tests (apt-get update && apt-get install chromium)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
  done_step
else
  echo "bootstrap: Chromium is missing: the browser tests (tests/browser) will fail until it" \
    "is installed. On Debian/Ubuntu: sudo apt-get install chromium (or set CHROMIUM to its path)" >&2
fi
