"""Delivery through a real OTLP collector (rotel) to the capture server behind it.

HTTP (protobuf and JSON) and gRPC; a collector outage; kill -9 of a shipping process; two
processes shipping one outbox. Records are identified by ``audit.record.id``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

import auditel
from auditel import runtime
from auditel.store.outbox import STATE_PENDING, STATE_SHIPPED
from otlp_harness import CaptureServer, Fault, RotelCollector, free_port
from shipping_support import (  # noqa: F401 - fixtures
    capture,
    child_env,
    collector,
    emit_many,
    isolated,
    outbox_ids,
    pending_after_settling,
    point_at,
    run_python,
    run_sync,
)

BATCH = 512


@pytest.mark.parametrize("protocol", ["http/protobuf", "http/json", "grpc"])
def test_every_record_arrives_once_through_the_collector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capture: CaptureServer, collector: RotelCollector, protocol: str
) -> None:
    endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
    point_at(monkeypatch, endpoint, protocol)
    rt = runtime.configure(outbox=tmp_path / "o.db", service_name="ship-test")
    assert rt is not None and rt.shipper is not None
    ids = emit_many(1200)
    assert auditel.flush(30)
    stored = outbox_ids(tmp_path / "o.db")  # + auditel's stream-start and checkpoint records
    assert len(stored) > len(ids)
    assert capture.wait_for(len(stored), 20)
    counts = capture.id_counts()
    assert all(counts[i] == 1 for i in ids)
    received = {r.record_id: r for r in capture.records}
    sample = received[ids[7]]
    assert sample.event_name == "auditel.custom"
    assert sample.attributes["test.index"] == 7
    assert sample.resource["service.name"] == "ship-test"
    assert sample.scope == "auditel"
    status = auditel.status()
    assert status["pending"] == 0
    # every record stored above was shipped; the worker may have committed (and shipped) a checkpoint since
    assert len(stored) <= status["shipped_total"] <= len(outbox_ids(tmp_path / "o.db"))
    assert status["exporter"]["protocol"] == protocol
    assert status["shipper_state"] in ("idle", "shipping")


def test_outage_then_collector_starts_everything_arrives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capture: CaptureServer
) -> None:
    port = free_port()
    point_at(monkeypatch, f"http://127.0.0.1:{port}")
    rt = runtime.configure(outbox=tmp_path / "o.db")
    assert rt is not None
    ids = emit_many(5000, "outage")
    deadline = time.monotonic() + 10
    while rt.shipper.retried == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    status = auditel.status()
    assert status["retried"] >= 1
    assert status["pending"] >= 5000 - BATCH  # nothing can be acknowledged while the collector is down
    assert status["last_error"] and "Connection" in status["last_error"]
    with RotelCollector(capture.endpoint, http_port=port):
        assert auditel.flush(60)
        assert capture.wait_for(len(ids), 30)
    counts = capture.id_counts()
    assert all(counts[i] >= 1 for i in ids)
    duplicated = sum(c - 1 for c in counts.values() if c > 1)
    assert duplicated <= BATCH
    assert pending_after_settling(tmp_path / "o.db") == []


_EMIT_AND_SHIP = """
import sys, time, auditel
n = int(sys.argv[1]) if len(sys.argv) > 1 else {n}
for i in range(n):
    auditel.emit("auditel.custom", attributes={{"test.index": i}})
print("emitted", flush=True)
time.sleep(600)
"""


def test_kill_9_mid_batch_then_new_process_delivers_everything(
    tmp_path: Path, capture: CaptureServer, collector: RotelCollector
) -> None:
    # The first process ships straight to the capture server, which answers slowly (a test double
    # for a slow backend) so that the process is reliably killed while a batch is in flight.
    outbox = tmp_path / "o.db"
    capture.fault_fn = lambda n: Fault(delay_s=0.5)
    env = child_env(outbox, OTEL_EXPORTER_OTLP_ENDPOINT=capture.endpoint, AUDITEL_SHIP_LEASE_S="2")
    proc = subprocess.Popen(
        [sys.executable, "-c", _EMIT_AND_SHIP.format(n=3000)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "emitted"
        deadline = time.monotonic() + 20
        while capture.requests < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert capture.requests >= 2
        time.sleep(0.1)  # the second request is now waiting in the slow server
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    time.sleep(0.6)  # let the in-flight request complete on the server side
    capture.fault_fn = None
    stored = outbox_ids(outbox)
    assert len(stored) >= 3001  # 3000 + stream start (+ checkpoints the worker wrote before the kill)
    assert outbox_ids(outbox, STATE_PENDING)  # the kill left work behind
    before = Counter(capture.record_ids())

    # A new process on the same outbox, through the real collector, with the CLI.
    result = run_sync(outbox, collector.http_endpoint)
    assert result.returncode == 0, result.stderr
    assert capture.wait_for(len(stored), 20)
    counts = capture.id_counts()
    assert all(counts[i] >= 1 for i in stored)
    duplicated = sum(c - 1 for c in counts.values() if c > 1)
    assert duplicated <= BATCH  # only the batch that was in flight at the kill
    assert sum(before.values()) > 0
    assert set(outbox_ids(outbox, STATE_SHIPPED)) == set(stored)


_SHIP_ONLY = """
import auditel, json
from auditel import runtime
rt = runtime.configure()
ok = rt.flush(60)
print(json.dumps({"ok": ok, "shipped": rt.shipper.shipped_total}))
"""


def test_two_processes_share_one_outbox_and_never_send_a_record_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capture: CaptureServer, collector: RotelCollector
) -> None:
    outbox = tmp_path / "o.db"
    rt = runtime.configure(outbox=outbox)  # no endpoint: a backlog builds up
    assert rt is not None and rt.shipper is None
    ids = emit_many(6000, "backlog")
    runtime.shutdown()
    backlog = outbox_ids(outbox, STATE_PENDING)
    assert len(backlog) > 6002  # + stream start, end marker and checkpoints
    env = child_env(outbox, OTEL_EXPORTER_OTLP_ENDPOINT=collector.http_endpoint, AUDITEL_SHIP_BATCH_RECORDS="100")
    procs = [
        subprocess.Popen([sys.executable, "-c", _SHIP_ONLY], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    import json

    reports = [json.loads(p.communicate(timeout=90)[0].strip().splitlines()[-1]) for p in procs]
    assert all(r["ok"] for r in reports)
    assert capture.wait_for(len(backlog), 20)
    counts = capture.id_counts()
    assert all(counts[i] == 1 for i in backlog), "a record was sent twice"
    assert sum(r["shipped"] for r in reports) >= len(backlog)
    assert set(ids) <= set(counts)


def test_grpc_with_several_batches_in_flight_delivers_each_record_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capture: CaptureServer, collector: RotelCollector
) -> None:
    monkeypatch.setenv("AUDITEL_SHIP_INFLIGHT", "4")
    monkeypatch.setenv("AUDITEL_SHIP_BATCH_RECORDS", "100")
    point_at(monkeypatch, collector.grpc_endpoint, "grpc")
    rt = runtime.configure(outbox=tmp_path / "o.db")
    assert rt is not None and rt.shipper is not None and rt.shipper.tuning.inflight == 4
    ids = emit_many(1500, "inflight")
    assert auditel.flush(60)
    stored = outbox_ids(tmp_path / "o.db")
    assert capture.wait_for(len(stored), 20)
    counts = capture.id_counts()
    assert all(counts[i] == 1 for i in stored)
    assert set(ids) <= set(counts)
    assert pending_after_settling(tmp_path / "o.db") == []


def test_a_record_hidden_below_the_ship_floor_is_found_by_the_worker_and_delivered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capture: CaptureServer, collector: RotelCollector
) -> None:
    """An outbox whose floor sits above a pending record (as after restoring rows by hand): the
    shipper's floor audit, run by the worker when auditel starts, reports it and ships it."""
    import sqlite3

    path = tmp_path / "o.db"
    point_at(monkeypatch, collector.http_endpoint)
    runtime.configure(outbox=path)
    ids = emit_many(20, "hidden")
    assert auditel.flush(30)
    assert capture.wait_for(len(ids), 20)
    runtime.shutdown()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("UPDATE records SET state=0 WHERE record_id=?", (ids[5],))  # restored, say, from a backup
    conn.execute("DELETE FROM meta WHERE key='ship_floor_audited_ns'")  # the last audit was long ago
    conn.close()
    before = capture.id_counts()[ids[5]]

    runtime.configure(outbox=path)
    deadline = time.monotonic() + 20
    while capture.id_counts()[ids[5]] == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert capture.id_counts()[ids[5]] == before + 1
    assert auditel.status()["errors"].get("ship_floor_repaired") == 1
    assert ids[5] not in pending_after_settling(path)


def test_when_flush_returns_the_shipped_count_covers_every_record_marked_shipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capture: CaptureServer, collector: RotelCollector
) -> None:
    """A thread switch right after a batch's mark commits must not let ``flush`` return while
    ``shipped_total`` still lacks that batch (a report read after flush would undercount). The pause
    after the commit stands in for that switch: it widens a window of microseconds to 0.3 s."""
    point_at(monkeypatch, collector.http_endpoint)
    path = tmp_path / "o.db"
    rt = runtime.configure(outbox=path)
    assert rt is not None and rt.shipper is not None
    queue = rt.shipper.queue
    real_mark = queue.mark_shipped

    def mark_then_pause(*args: object, **kwargs: object) -> int:
        marked = real_mark(*args, **kwargs)  # type: ignore[arg-type]
        time.sleep(0.3)
        return marked

    monkeypatch.setattr(queue, "mark_shipped", mark_then_pause)
    emit_many(300, "count")
    assert auditel.flush(30)
    shipped_rows = len(outbox_ids(path, STATE_SHIPPED))
    assert shipped_rows > 300
    assert rt.shipper.shipped_total >= shipped_rows
