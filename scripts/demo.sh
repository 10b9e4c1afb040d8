#!/usr/bin/env bash
# Set up auditel (base install) and run the demo agent under audit, on the embedded SQLite
# outbox (AUDITEL_OUTBOX, default ~/.local/share/auditel/outbox.db). Extra args go to `auditel demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/auditel demo "$@"
