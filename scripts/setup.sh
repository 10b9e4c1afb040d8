#!/usr/bin/env bash
# Create .venv (once) and install auditel into it in editable mode, with the extras given
# as the first argument (e.g. "test"). Re-installs only when pyproject.toml changed.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-}"
PY="${PYTHON:-python3}"
"$PY" - <<'PYCHECK'
import sys
if sys.version_info < (3, 10):
    sys.exit(f"auditel needs Python >= 3.10, this is {sys.version.split()[0]} (set PYTHON=python3.11)")
PYCHECK
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=".venv/.auditel-installed${extras:+-$extras}"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras:+[$extras]}"
  echo "$want" > "$stamp"
fi
# Agent frameworks whose pins conflict with the test extra get their own virtualenvs (.venv-frameworks/).
if [[ ",${extras}," == *",test,"* ]]; then
  bash scripts/setup-frameworks.sh
fi
# The viewer's browser tests (tests/ui) drive Debian's chromium headless through Playwright (never
# `playwright install`): install it once when it is missing; quiet, and a no-op when present.
if [[ ",${extras}," == *",test,"* ]] && [ ! -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null 2>&1; then
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    echo "setup.sh: installing chromium for the viewer's browser tests (apt-get)" >&2
    $SUDO apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  else
    echo "setup.sh: chromium is missing and apt-get is not available: install chromium for tests/ui" >&2
  fi
fi
