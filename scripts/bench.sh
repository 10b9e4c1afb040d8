#!/usr/bin/env bash
# Set up auditel with the bench extras (stock OTLP exporters, competing instrumentations) and run
# every benchmark under bench/, each printing its table. Extra args are ignored; see each script's --help.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh bench
for script in bench_emit.py bench_drain.py bench_integrity.py bench_redaction.py bench_model_calls.py \
    bench_model_call_parts.py bench_tool_calls.py bench_providers.py bench_span_bridge.py bench_startup.py bench_wal.py \
    bench_block.py bench_viewer.py; do
  echo "=== bench/$script"
  .venv/bin/python "bench/$script"
done
