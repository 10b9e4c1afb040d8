#!/usr/bin/env bash
# Set up auditel (base install) and run the demo agent under audit. The demo writes to its own
# outbox (~/.local/share/auditel/demo/outbox.db, or --outbox), never to AUDITEL_OUTBOX, and ships
# nothing unless --ship is given. Extra args go to `auditel demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/auditel demo "$@"
