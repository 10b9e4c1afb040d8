"""Emit cost: auditel's durable emit vs the stock OTel logs pipeline, in one run on this machine.

Stock pipeline: LoggerProvider + BatchLogRecordProcessor (queue large enough to drop nothing) + the official OTLP/HTTP log exporter,
sending to a local rotel collector (blackhole exporter). Its cost per event is measured two ways:
the caller-visible emit loop alone, and end to end (emit loop + force_flush until the collector
has everything), since that is the work the pipeline does per event. auditel's cost is the
caller-visible emit, which already includes committing the record to SQLite (nothing is left to
do for durability), in `process` (WAL + synchronous=NORMAL) and `fsync` (synchronous=FULL) modes.

Usage: python bench/bench_emit.py [--events N] [--repeat R]
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from otlp_harness import RotelCollector  # noqa: E402

ATTRS = {
    "audit.action": "tool.call",
    "gen_ai.tool.name": "search_documents",
    "gen_ai.tool.call.id": "call_8f2a61",
    "audit.phase": "intent",
    "audit.arguments.size": 128,
    "audit.target.type": "tool",
    "user.request": "find the quarterly report for the finance team",
}


def bench_stock(n: int, endpoint: str) -> tuple[float, float]:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor

    provider = LoggerProvider(shutdown_on_exit=False)
    # a queue that holds every event: the default (2048) drops records ("Queue full") and would make
    # the stock pipeline look cheaper than moving every record costs
    processor = BatchLogRecordProcessor(OTLPLogExporter(endpoint=endpoint + "/v1/logs"), max_queue_size=n + 1000)
    provider.add_log_record_processor(processor)
    logger = provider.get_logger("bench")
    for _ in range(200):  # warm up
        logger.emit(event_name="auditel.tool_call", attributes=ATTRS, body="warm")
    provider.force_flush()
    gc.collect()
    t0 = time.perf_counter()
    for i in range(n):
        logger.emit(event_name="auditel.tool_call", attributes=ATTRS, body="payload")
    t1 = time.perf_counter()
    provider.force_flush()
    t2 = time.perf_counter()
    provider.shutdown()
    return (t1 - t0) / n * 1e6, (t2 - t0) / n * 1e6


def bench_auditel(n: int, durability: str) -> float:
    import auditel
    from auditel import runtime

    tmp = tempfile.mkdtemp(prefix="auditel-bench-")
    try:
        auditel.configure(outbox=os.path.join(tmp, "o.db"), durability=durability, max_outbox_mb=0)
        for _ in range(200):
            auditel.emit("auditel.tool_call", attributes=ATTRS, body="warm")
        gc.collect()
        t0 = time.perf_counter()
        for i in range(n):
            auditel.emit("auditel.tool_call", attributes=ATTRS, body="payload")
        t1 = time.perf_counter()
        errors = auditel.status()["errors"]
        assert not errors, errors
        return (t1 - t0) / n * 1e6
    finally:
        runtime._reset_for_tests()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    for key in list(os.environ):
        if key.startswith(("AUDITEL_", "OTEL_")):
            del os.environ[key]
    results: dict[str, list[float]] = {k: [] for k in ("stock_emit", "stock_e2e", "process", "fsync")}
    with RotelCollector("http://127.0.0.1:1", exporter="blackhole") as collector:
        for _ in range(args.repeat):
            emit_us, e2e_us = bench_stock(args.events, collector.http_endpoint)
            results["stock_emit"].append(emit_us)
            results["stock_e2e"].append(e2e_us)
            results["process"].append(bench_auditel(args.events, "process"))
            results["fsync"].append(bench_auditel(max(2000, args.events // 5), "fsync"))
    med = {k: statistics.median(v) for k, v in results.items()}
    print(f"\nemit cost, {args.events} events x {args.repeat} runs (median), Python {sys.version.split()[0]}, {os.cpu_count()} cores\n")
    print(f"{'pipeline':<58} {'us/event':>10} {'vs stock e2e':>13}")
    rows = [
        ("stock OTel: BatchLogRecordProcessor + OTLP/HTTP, emit only", "stock_emit"),
        ("stock OTel: same, end to end (emit + export to collector)", "stock_e2e"),
        ("auditel durable emit, process mode (WAL, sync=NORMAL)", "process"),
        ("auditel durable emit, fsync mode (WAL, sync=FULL)", "fsync"),
    ]
    for label, key in rows:
        print(f"{label:<58} {med[key]:>10.1f} {med[key] / med['stock_e2e']:>12.2f}x")
    print(
        f"\nauditel process-mode emit / stock end-to-end = {med['process'] / med['stock_e2e']:.2f} (goal <= 1.0); "
        f"/ stock emit-only = {med['process'] / med['stock_emit']:.2f}"
    )


if __name__ == "__main__":
    main()
