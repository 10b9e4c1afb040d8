"""Drain rate of an outbox backlog vs the stock OTel log pipeline, to one local rotel collector.

    python bench/bench_drain.py                 # 100,000 records, HTTP and gRPC
    python bench/bench_drain.py --records 20000
    python bench/bench_drain.py --repeat 3      # three rounds; the table shows medians
    python bench/bench_drain.py --rss           # also: peak RSS while draining 1,000,000 records
    python bench/bench_drain.py --emit          # also: the app's emit cost while the shipper drains

* auditel: a backlog of N committed records (realistic tool-call records, built by emitting a
  template through auditel and cloning it with SQL, new ids and sequence numbers) drained by the
  ``Shipper`` with its default settings (claim → encode → send → mark, pipelined: 1 batch in
  flight over HTTP, 4 over gRPC) until every record is acknowledged by the collector; plus, for
  reference, gRPC with one batch in flight (``AUDITEL_SHIP_INFLIGHT=1``).
* the same drain through the command users run, ``auditel sync`` in its own process, its fixed
  start-up (measured by running it again on the drained outbox) subtracted;
* stock: ``LoggerProvider`` + ``BatchLogRecordProcessor`` (queue large enough to drop nothing,
  batch 512) + the official OTLP/HTTP or OTLP/gRPC log exporter, N ``logger.emit`` calls with the
  same attributes, then ``force_flush``: the time to move N records end to end.

The collector (``rotel-agent``) exports to its ``blackhole`` exporter, so both sides measure what
the collector acknowledges. Needs ``pip install -e '.[bench]'``.

``--emit``: the app's ``auditel.emit`` cost (µs per event, on the calling thread; mean, median and
99th percentile) with no shipping, and while the runtime's worker drains the backlog over HTTP and
gRPC, next to the stock pipeline's end-to-end cost per record measured above (no record dropped).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from otlp_harness import free_port, rotel_binary, wait_port  # noqa: E402

ATTRS = {
    "audit.action": "tool.call",
    "audit.phase": "outcome",
    "audit.outcome": "success",
    "gen_ai.operation.name": "execute_tool",
    "gen_ai.tool.name": "search_documents",
    "audit.target.type": "tool",
    "audit.target.id": "search_documents",
    "audit.arguments.digest": "hmac-sha256:9819dfe9bd41f68faa0bc7a0603c32ebffbcb27b3d193c6e1965721a02a7545c",
    "audit.arguments.size": 58,
    "audit.duration_ms": 12.5,
}


class BlackholeCollector:
    """rotel-agent on loopback with the blackhole exporter (acknowledges and discards)."""

    def __enter__(self) -> BlackholeCollector:
        self.http_port, self.grpc_port = free_port(), free_port()
        args = [
            str(rotel_binary()), "start",
            "--otlp-grpc-endpoint", f"127.0.0.1:{self.grpc_port}",
            "--otlp-http-endpoint", f"127.0.0.1:{self.http_port}",
            "--exporter", "blackhole",
        ]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ROTEL_", "OTEL_"))}
        self.proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.http_port)
        wait_port(self.grpc_port)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.proc.terminate()
        self.proc.wait(10)

    def endpoint(self, protocol: str) -> str:
        return f"http://127.0.0.1:{self.grpc_port if protocol == 'grpc' else self.http_port}"


def build_backlog(path: Path, n: int) -> None:
    """N pending records in a fresh outbox: one emitted through auditel, cloned with SQL."""
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    env_before = dict(os.environ)
    for key in [k for k in os.environ if k.startswith("OTEL_EXPORTER_OTLP")]:
        del os.environ[key]
    import auditel
    from auditel import runtime

    runtime.configure(outbox=path, service_name="bench")
    auditel.emit("auditel.tool_call", attributes=ATTRS)
    rt = runtime.current()
    stream_id = rt.processor.stream_id
    runtime.shutdown()
    os.environ.clear()
    os.environ.update(env_before)
    conn = sqlite3.connect(str(path), isolation_level=None)
    template = json.loads(conn.execute("SELECT data FROM records WHERE event_name='auditel.tool_call'").fetchone()[0])
    conn.execute("DELETE FROM records")
    now = time.time_ns()
    chunk = 20000
    for start in range(0, n, chunk):
        rows = []
        for i in range(start, min(n, start + chunk)):
            rec = dict(template)
            attrs = dict(rec["attributes"])
            rid = f"BENCH{i:021d}"
            attrs["audit.record.id"] = rid
            attrs["audit.sequence.number"] = i + 1
            # values that are unique per record in real trails: hashes, digests, durations
            attrs["audit.sequence.previous_hash"] = hashlib.sha256(rid.encode()).hexdigest()
            if "audit.arguments.digest" in attrs:
                attrs["audit.arguments.digest"] = "hmac-sha256:" + hashlib.sha256(b"a" + rid.encode()).hexdigest()
            if "audit.duration_ms" in attrs:
                attrs["audit.duration_ms"] = round(3 + (i % 997) * 0.013, 3)
            rec["attributes"] = attrs
            rec["time_unix_nano"] = rec["observed_time_unix_nano"] = str(now + i)
            data = json.dumps(rec, sort_keys=True, separators=(",", ":"))
            rows.append((rid, stream_id, i + 1, now + i, "auditel.tool_call", data, None))
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO records(record_id, stream_id, seq, time_ns, event_name, data, record_hash)"
            " VALUES (?,?,?,?,?,?,?)",
            rows,
        )
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def make_shipper(path: Path, endpoint: str, protocol: str, inflight: int | None = None) -> Any:
    """A shipper with the default settings (or ``inflight`` batches in flight)."""
    from auditel.config.otlp import exporter_from_env, tuning_from_env
    from auditel.delivery.shipper import Shipper
    from auditel.store.outbox import Outbox

    config = exporter_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol})
    assert config is not None
    tuning = tuning_from_env({} if inflight is None else {"AUDITEL_SHIP_INFLIGHT": str(inflight)})
    return Shipper(Outbox(path), config, tuning)


def drain_auditel(path: Path, endpoint: str, protocol: str, inflight: int | None = None) -> tuple[float, int, float]:
    """(seconds, records shipped, process CPU seconds) of an in-process ``Shipper.drain``."""
    shipper = make_shipper(path, endpoint, protocol, inflight)
    start, cpu = time.perf_counter(), time.process_time()
    shipper.drain(600)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    shipper.close()
    if shipper.queue.pending() or shipper.dead_lettered_total:
        raise SystemExit(f"auditel drain incomplete: {shipper.status()}")
    return elapsed, shipper.shipped_total, cpu


def drain_command(path: Path, endpoint: str, protocol: str) -> tuple[float, int, float]:
    """``auditel sync`` as users run it, in its own process: (seconds, records, CPU seconds).

    The command's fixed start-up (interpreter, imports, opening the outbox) is measured by running
    it again on the drained outbox (nothing pending) and subtracted, from the wall time and the CPU.
    """
    import resource

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AUDITEL_"))}
    env.update(AUDITEL_OUTBOX=str(path), OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_EXPORTER_OTLP_PROTOCOL=protocol)
    command = [sys.executable, "-m", "auditel.cli", "sync", "--quiet", "--json", "--timeout", "600"]

    def timed() -> tuple[float, float, dict[str, Any]]:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        out = subprocess.run(command, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        if out.returncode != 0:
            raise SystemExit(f"auditel sync failed ({out.returncode}): {out.stderr[-500:]}")
        return elapsed, cpu, json.loads(out.stdout)

    elapsed, cpu, result = timed()
    idle_elapsed, idle_cpu, _ = timed()
    return max(1e-6, elapsed - idle_elapsed), result["shipped"], max(0.0, cpu - idle_cpu)


def stock_pipeline(endpoint: str, protocol: str, n: int) -> tuple[float, int, float]:
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExportResult
    from opentelemetry.sdk.resources import Resource

    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as GrpcExporter

        exporter: Any = GrpcExporter(endpoint=endpoint, insecure=True)
    else:
        from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as HttpExporter

        exporter = HttpExporter(endpoint=endpoint + "/v1/logs")
    delivered = [0]
    original = exporter.export

    def counting_export(batch: Any) -> Any:
        result = original(batch)
        if result == LogRecordExportResult.SUCCESS:
            delivered[0] += len(batch)
        return result

    exporter.export = counting_export
    provider = LoggerProvider(resource=Resource.create({"service.name": "bench-stock"}), shutdown_on_exit=False)
    provider.add_log_record_processor(
        BatchLogRecordProcessor(exporter, max_queue_size=n + 1024, max_export_batch_size=512, schedule_delay_millis=200)
    )
    logger = provider.get_logger("stock")
    attrs = dict(ATTRS)
    start, cpu = time.perf_counter(), time.process_time()
    for i in range(n):
        attrs["audit.record.id"] = f"STOCK{i:021d}"
        logger.emit(event_name="auditel.tool_call", attributes=attrs, severity_text="INFO")
    provider.force_flush(600_000)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    provider.shutdown()
    return elapsed, delivered[0], cpu


def rss_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def rss_child(path: str, endpoint: str, protocol: str) -> None:
    """Runs in a fresh process: drain ``path`` with the default settings and report RSS before the
    drain, once a tenth of the backlog is shipped (libraries loaded, threads and buffers in use) and
    at its peak: the backlog stays on disk when the last two are close."""
    shipper = make_shipper(Path(path), endpoint, protocol)
    pending = shipper.queue.pending()
    baseline = rss_kb()
    peak = [baseline]
    tenth = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            peak[0] = max(peak[0], rss_kb())
            if not tenth[0] and shipper.shipped_total >= pending // 10:
                tenth[0] = peak[0]

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    shipper.drain(3600)
    elapsed = time.perf_counter() - start
    stop.set()
    sampler.join()
    peak[0] = max(peak[0], rss_kb())
    print(json.dumps({"records": pending, "shipped": shipper.shipped_total, "seconds": elapsed,
                      "baseline_kb": baseline, "tenth_kb": tenth[0], "peak_kb": peak[0],
                      "pending_after": shipper.queue.pending()}))


Row = tuple[str, str, float, int, float]  # (pipeline, protocol, seconds, records, CPU seconds)


def run_round(master: Path, workdir: Path, collector: BlackholeCollector, n: int) -> list[Row]:
    """One round: each auditel configuration on a fresh copy of the backlog (in process, then through
    the ``auditel sync`` command), then the stock pipeline."""
    rows: list[Row] = []
    for protocol, variants in (("http/protobuf", (None, "command")), ("grpc", (None, "command", 1))):
        for variant in variants:
            copy = workdir / f"drain-{protocol.replace('/', '-')}-{variant}.db"
            shutil.copy(master, copy)
            if variant == "command":
                elapsed, shipped, cpu = drain_command(copy, collector.endpoint(protocol), protocol)
                label = f"auditel sync command ({protocol})"
            else:
                inflight = variant if isinstance(variant, int) else None
                elapsed, shipped, cpu = drain_auditel(copy, collector.endpoint(protocol), protocol, inflight)
                label = "defaults" if inflight is None else f"AUDITEL_SHIP_INFLIGHT={inflight}"
                label = f"auditel drain in process ({protocol}, {label})"
            for suffix in ("", "-wal", "-shm"):
                Path(str(copy) + suffix).unlink(missing_ok=True)
            rows.append((label, protocol, elapsed, shipped, cpu))
        elapsed, moved, cpu = stock_pipeline(collector.endpoint(protocol), protocol, n)
        rows.append((f"stock BLRP + OTLP exporter ({protocol})", protocol, elapsed, moved, cpu))
    return rows


def print_table(rounds: list[list[Row]], n: int) -> None:
    """Median records/s per pipeline over the rounds; "vs stock" is the median of each round's ratio.
    CPU µs/record: the CPU of the process doing the work (the command's own process for ``sync``)."""
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"Drain of {n:,} records to a local rotel collector (blackhole exporter), {os.cpu_count()} CPUs,"
          f" {len(rounds)} round(s), medians; load average {load:.1f} at the end")
    print()
    print(f"| {'pipeline':<54} | {'records/s':>10} | {'vs stock':>8} | {'CPU µs/record':>13} |"
          f" {'per round (records/s)':<30} |")
    print(f"|{'-' * 56}|{'-' * 12}|{'-' * 10}|{'-' * 15}|{'-' * 32}|")
    for index, (name, protocol, _s, _n, _c) in enumerate(rounds[0]):
        rates, ratios, cpus = [], [], []
        for rows in rounds:
            stock = next(c / s for label, p, s, c, _cpu in rows if p == protocol and label.startswith("stock"))
            rate = rows[index][3] / rows[index][2]
            rates.append(rate)
            ratios.append(rate / stock)
            cpus.append(rows[index][4] / max(1, rows[index][3]) * 1e6)
        each = ", ".join(f"{r:,.0f}" for r in rates)
        print(f"| {name:<54} | {statistics.median(rates):>10,.0f} | {statistics.median(ratios):>7.1f}x |"
              f" {statistics.median(cpus):>13.1f} | {each:<30} |")


def measure_rss(workdir: Path, n: int) -> None:
    big = workdir / "big.db"
    t0 = time.perf_counter()
    build_backlog(big, n)
    size_mb = sum(os.path.getsize(str(big) + s) for s in ("", "-wal") if os.path.exists(str(big) + s)) / 1e6
    print(f"\nbuilt a backlog of {n:,} records ({size_mb:.0f} MB on disk) in {time.perf_counter() - t0:.1f} s",
          file=sys.stderr)
    print()
    print(f"Peak RSS draining {n:,} records with the default settings ({size_mb:.0f} MB outbox on disk)")
    print()
    print("| protocol | RSS before (MB) | at 10% shipped (MB) | peak (MB) | growth (MB) | of which after 10% (MB)"
          " | seconds | records/s | pending after |")
    print("|---|---|---|---|---|---|---|---|---|")
    with BlackholeCollector() as collector:
        for protocol in ("http/protobuf", "grpc"):
            copy = workdir / "big-copy.db"
            shutil.copy(big, copy)
            out = subprocess.run(
                [sys.executable, __file__, "--rss-child", str(copy), collector.endpoint(protocol), protocol],
                capture_output=True, text=True, check=True,
            )
            for suffix in ("", "-wal", "-shm"):
                Path(str(copy) + suffix).unlink(missing_ok=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            growth = (result["peak_kb"] - result["baseline_kb"]) / 1024
            late = (result["peak_kb"] - result["tenth_kb"]) / 1024
            print(f"| {protocol} | {result['baseline_kb'] / 1024:.1f} | {result['tenth_kb'] / 1024:.1f} |"
                  f" {result['peak_kb'] / 1024:.1f} | {growth:.1f} | {late:.1f} | {result['seconds']:.1f} |"
                  f" {result['shipped'] / result['seconds']:,.0f} | {result['pending_after']} |", flush=True)


def emit_cost(master: Path, workdir: Path, endpoint: str | None, protocol: str, n: int) -> tuple[list[float], int]:
    """Seconds per ``auditel.emit`` on this thread while the runtime's worker ships the backlog to
    ``endpoint`` (None: no shipping), and the records shipped during the emit loop."""
    from bench_emit import ATTRS as EMIT_ATTRS

    import auditel
    from auditel import runtime

    copy = workdir / "emit.db"
    shutil.copy(master, copy)
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith(("OTEL_", "AUDITEL_"))]:
            del os.environ[key]
        if endpoint is not None:
            os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
            os.environ["OTEL_EXPORTER_OTLP_PROTOCOL"] = protocol
        rt = runtime.configure(outbox=copy, service_name="bench-emit", max_outbox_mb=0)
        assert rt is not None
        for _ in range(200):
            auditel.emit("auditel.tool_call", attributes=EMIT_ATTRS, body="warm")
        shipper = rt.shipper
        deadline = time.monotonic() + 10
        while shipper is not None and shipper.shipped_total == 0 and time.monotonic() < deadline:
            time.sleep(0.005)  # the drain is under way
        before = shipper.shipped_total if shipper is not None else 0
        clock = time.perf_counter
        each = []
        for _ in range(n):
            t0 = clock()
            auditel.emit("auditel.tool_call", attributes=EMIT_ATTRS, body="payload")
            each.append(clock() - t0)
        return each, (shipper.shipped_total - before) if shipper is not None else 0
    finally:
        runtime.shutdown(0.5)
        os.environ.clear()
        os.environ.update(saved)
        for suffix in ("", "-wal", "-shm"):
            Path(str(copy) + suffix).unlink(missing_ok=True)


def measure_emit(master: Path, workdir: Path, collector: BlackholeCollector, n: int, target_us: float) -> None:
    cases = [("no shipping", None, "http/protobuf"),
             ("while draining over OTLP/HTTP", "http/protobuf", "http/protobuf"),
             ("while draining over OTLP/gRPC", "grpc", "grpc")]
    print()
    print(f"The app's emit cost while the shipper drains the backlog ({n:,} emits on the app's thread)")
    print()
    print("| auditel.emit | mean µs | vs stock e2e | median µs | p99 µs | max ms | shipped during the loop |")
    print("|---|---|---|---|---|---|---|")
    print(f"| stock BLRP + OTLP/HTTP, end to end per record (above) | {target_us:.1f} | 1.00x | | | | |")
    for label, which, protocol in cases:
        endpoint = collector.endpoint(which) if which is not None else None
        each, shipped = emit_cost(master, workdir, endpoint, protocol, n)
        ordered = sorted(each)
        mean = sum(each) / len(each) * 1e6
        print(f"| {label} | {mean:.1f} | {mean / target_us:.2f}x | {ordered[len(each) // 2] * 1e6:.1f} |"
              f" {ordered[len(each) * 99 // 100] * 1e6:.0f} | {ordered[-1] * 1e3:.1f} | {shipped:,} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=1, help="rounds to run; the table shows medians")
    parser.add_argument("--rss", action="store_true", help="also drain a 1,000,000-record backlog and report peak RSS")
    parser.add_argument("--rss-records", type=int, default=1_000_000)
    parser.add_argument("--emit", action="store_true", help="also: emit cost on the app's thread while draining")
    parser.add_argument("--emit-events", type=int, default=20_000)
    parser.add_argument("--rss-child", nargs=3, metavar=("OUTBOX", "ENDPOINT", "PROTOCOL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(*args.rss_child)
        return

    workdir = Path(tempfile.mkdtemp(prefix="auditel-bench-"))
    try:
        master = workdir / "backlog.db"
        t0 = time.perf_counter()
        build_backlog(master, args.records)
        print(f"built a backlog of {args.records:,} records in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        rounds = []
        with BlackholeCollector() as collector:
            for _ in range(max(1, args.repeat)):
                rounds.append(run_round(master, workdir, collector, args.records))
            print()
            print_table(rounds, args.records)
            if args.emit:
                stock_http = statistics.median(c / s for rows in rounds for label, p, s, c, _cpu in rows
                                               if label.startswith("stock") and p == "http/protobuf")
                measure_emit(master, workdir, collector, args.emit_events, 1e6 / stock_http)
        if args.rss:
            master.unlink()
            measure_rss(workdir, args.rss_records)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
