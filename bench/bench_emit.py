"""Emit cost, like with like: auditel vs the stock OTel logs pipeline, in one run on this machine.

Two honest pairs (issue 16), every configuration in the same run, each in a fresh process:

1. **Caller only vs caller only.** The time (and the caller thread's CPU) one ``emit`` takes on the
   app's thread: auditel's durable ``auditel.emit`` (the record is committed to SQLite before it
   returns; shipping is off) against the stock ``Logger.emit`` of a ``LoggerProvider`` with a
   ``BatchLogRecordProcessor`` (whose export runs later, on its own thread).
2. **Emit + delivery vs emit + export.** The whole process's CPU (``time.process_time``: every
   thread) per record *delivered to the collector*, from the first emit until the collector has
   acknowledged every record: auditel (emit, then its worker ships the outbox over OTLP/HTTP)
   against the stock pipeline (emit, then ``BatchLogRecordProcessor`` + the official OTLP/HTTP
   exporter, ``force_flush``). Same records, same local rotel collector (blackhole exporter).
   auditel's own integrity records (stream start, checkpoints) are shipped too and their cost is
   counted; the division is by the app's records only.

CPU time is the main figure: the machine may be shared, and CPU time is far less sensitive to
other load than wall time (still given, for reference). Also: auditel in ``fsync`` mode, caller
only. Usage: ``python bench/bench_emit.py [--events N] [--repeat R]``.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

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
WARM = 200


def child_stock(n: int, endpoint: str, deliver: bool) -> dict[str, Any]:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExportResult

    exporter = OTLPLogExporter(endpoint=endpoint + "/v1/logs")
    delivered = [0]
    export = exporter.export

    def counting_export(batch: Any) -> Any:
        result = export(batch)
        if result == LogRecordExportResult.SUCCESS:
            delivered[0] += len(batch)
        return result

    exporter.export = counting_export  # type: ignore[method-assign]
    provider = LoggerProvider(shutdown_on_exit=False)
    # a queue that holds every event: the default (2048) drops records ("Queue full") and would make
    # the stock pipeline look cheaper than moving every record costs
    provider.add_log_record_processor(BatchLogRecordProcessor(exporter, max_queue_size=n + WARM + 1000))
    logger = provider.get_logger("bench")
    for _ in range(WARM):
        logger.emit(event_name="auditel.tool_call", attributes=ATTRS, body="warm")
    provider.force_flush()
    before = delivered[0]
    gc.collect()
    wall0, cpu0, thread0 = time.perf_counter(), time.process_time(), time.thread_time()
    for _ in range(n):
        logger.emit(event_name="auditel.tool_call", attributes=ATTRS, body="payload")
    wall1, thread1 = time.perf_counter(), time.thread_time()
    if deliver:
        provider.force_flush(600_000)
    wall2, cpu2 = time.perf_counter(), time.process_time()
    provider.shutdown()
    return {
        "caller_us": (wall1 - wall0) / n * 1e6,
        "caller_cpu_us": (thread1 - thread0) / n * 1e6,
        "total_cpu_us": (cpu2 - cpu0) / n * 1e6,
        "total_wall_us": (wall2 - wall0) / n * 1e6,
        "delivered": delivered[0] - before,
    }


def child_auditel(n: int, endpoint: str | None, durability: str) -> dict[str, Any]:
    import auditel
    from auditel import runtime

    tmp = tempfile.mkdtemp(prefix="auditel-bench-")
    try:
        if endpoint is not None:
            os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
        rt = auditel.configure(outbox=os.path.join(tmp, "o.db"), durability=durability, max_outbox_mb=0)
        assert rt is not None
        for _ in range(WARM):
            auditel.emit("auditel.tool_call", attributes=ATTRS, body="warm")
        if endpoint is not None:
            assert auditel.flush(60)
        shipper = rt.shipper
        before = shipper.shipped_total if shipper is not None else 0
        gc.collect()
        wall0, cpu0, thread0 = time.perf_counter(), time.process_time(), time.thread_time()
        for _ in range(n):
            auditel.emit("auditel.tool_call", attributes=ATTRS, body="payload")
        wall1, thread1 = time.perf_counter(), time.thread_time()
        if endpoint is not None:
            assert auditel.flush(600), auditel.status()
        wall2, cpu2 = time.perf_counter(), time.process_time()
        status = auditel.status()
        assert not status["errors"], status["errors"]
        shipped = (shipper.shipped_total - before) if shipper is not None else 0
        return {
            "caller_us": (wall1 - wall0) / n * 1e6,
            "caller_cpu_us": (thread1 - thread0) / n * 1e6,
            "total_cpu_us": (cpu2 - cpu0) / n * 1e6,
            "total_wall_us": (wall2 - wall0) / n * 1e6,
            "delivered": shipped,
            "pending": status["pending"],
        }
    finally:
        runtime._reset_for_tests()
        shutil.rmtree(tmp, ignore_errors=True)


def run_child(*args: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_"))}
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


CASES = [  # (key, label, child arguments)
    ("stock_caller", "stock Logger.emit + BLRP (export not awaited)", ("stock", "nodeliver")),
    ("auditel_caller", "auditel.emit, durable, process mode, no shipping", ("auditel", "none", "process")),
    ("auditel_fsync", "auditel.emit, durable, fsync mode, no shipping", ("auditel", "none", "fsync")),
    ("stock_e2e", "stock: emit + BLRP + OTLP/HTTP export, flushed", ("stock", "deliver")),
    ("auditel_e2e", "auditel: emit + worker ships over OTLP/HTTP, flushed", ("auditel", "ship", "process")),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, *rest = args.child
        n, endpoint = int(rest[-2]), rest[-1]
        if kind == "stock":
            print(json.dumps(child_stock(n, endpoint, rest[0] == "deliver")))
        else:
            print(json.dumps(child_auditel(n, endpoint if rest[0] == "ship" else None, rest[1])))
        return
    results: dict[str, list[dict[str, Any]]] = {key: [] for key, _l, _a in CASES}
    with RotelCollector("http://127.0.0.1:1", exporter="blackhole") as collector:
        for _ in range(args.repeat):  # interleaved: every configuration in every round
            for key, _label, child_args in CASES:
                n = max(2000, args.events // 5) if key == "auditel_fsync" else args.events
                results[key].append(run_child(*child_args, str(n), collector.http_endpoint))

    def med(key: str, field: str) -> float:
        return statistics.median(r[field] for r in results[key])

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"\nemit cost, {args.events} events x {args.repeat} rounds (medians), Python {sys.version.split()[0]},"
        f" {os.cpu_count()} cores, load average {load:.1f} at the end\n"
    )
    print("Pair 1 — caller only vs caller only (the app's thread)\n")
    print("| pipeline | µs/emit (wall) | caller CPU µs/emit | vs stock (CPU) |")
    print("|---|---|---|---|")
    for key in ("stock_caller", "auditel_caller", "auditel_fsync"):
        label = next(label for k, label, _a in CASES if k == key)
        ratio = med(key, "caller_cpu_us") / med("stock_caller", "caller_cpu_us")
        print(f"| {label} | {med(key, 'caller_us'):.1f} | {med(key, 'caller_cpu_us'):.1f} | {ratio:.2f}x |")
    print("\nPair 2 — emit + delivery vs emit + export (whole process, per record delivered to the collector)\n")
    print("| pipeline | total CPU µs/record | vs stock (CPU) | wall µs/record | caller CPU µs/emit | delivered |")
    print("|---|---|---|---|---|---|")
    for key in ("stock_e2e", "auditel_e2e"):
        label = next(label for k, label, _a in CASES if k == key)
        ratio = med(key, "total_cpu_us") / med("stock_e2e", "total_cpu_us")
        delivered = min(r["delivered"] for r in results[key])
        print(
            f"| {label} | {med(key, 'total_cpu_us'):.1f} | {ratio:.2f}x | {med(key, 'total_wall_us'):.1f} |"
            f" {med(key, 'caller_cpu_us'):.1f} | {delivered:,} |"
        )
    pairs = zip(results["auditel_e2e"], results["stock_e2e"], strict=True)
    per_round = [a["total_cpu_us"] / s["total_cpu_us"] for a, s in pairs]
    print(
        f"\nauditel / stock, total CPU per delivered record, per round: {', '.join(f'{r:.2f}' for r in per_round)}"
        " (goal <= 0.8)"
    )


if __name__ == "__main__":
    main()
