#!/usr/bin/env bash
# Lint and type-check src/ (rules in pyproject.toml): ruff (lint + format check) and mypy.
# Needs the test set-up (scripts/setup.sh test installs both).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m ruff check src
.venv/bin/python -m ruff format --check src
.venv/bin/python -m mypy
