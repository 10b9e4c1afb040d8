#!/usr/bin/env bash
# Second virtualenvs for agent frameworks whose pins conflict with the `test` extra (one per file in
# scripts/frameworks/NAME.txt): .venv-frameworks/NAME holds auditel (editable, from this checkout, no
# extras) and the framework. The span-bridge tests run their agent scripts with that interpreter
# (tests/spans/test_strands_native.py). Re-installs only when pyproject.toml or NAME.txt changed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
for req in scripts/frameworks/*.txt; do
  name="$(basename "$req" .txt)"
  venv=".venv-frameworks/$name"
  if [ ! -x "$venv/bin/python" ]; then
    "$PY" -m venv "$venv"
  fi
  stamp="$venv/.auditel-installed"
  want="$(cat pyproject.toml "$req" | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    # one resolution for both, so auditel's own requirements and the framework's pins agree
    "$venv/bin/python" -m pip install -q --disable-pip-version-check -e . -r "$req"
    echo "$want" > "$stamp"
  fi
done
