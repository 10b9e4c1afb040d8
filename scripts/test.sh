#!/usr/bin/env bash
# Set up auditel with its test extras (real frameworks, the rotel collector) and run the tests.
# Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
exec .venv/bin/python -m pytest "$@"
