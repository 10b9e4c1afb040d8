"""The pipelined shipper: several batches in flight, the next one prepared meanwhile.

Defaults (1 batch in flight over HTTP, 4 over gRPC), delivery through the real rotel collector,
what happens to the other batches of the pipeline when one fails, kill -9 with several batches
on the network, and a forked child that ships with its own sender threads. The fault cases use
the harness ``CaptureServer`` directly (a test double: a collector cannot answer 503 or stall on
demand).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import auditel
from auditel import runtime
from auditel.config.settings import ConfigError
from auditel.config.otlp import exporter_from_env, tuning_from_env
from auditel.delivery.encode import encode_protobuf
from auditel.delivery.transport import HttpTransport
from auditel.store.outbox import STATE_PENDING, STATE_SHIPPED, Outbox
from auditel.delivery.shipper import Shipper
from otlp_harness import CaptureServer, Fault, RotelCollector, free_port
from shipping_support import (  # noqa: F401 - fixtures
    FAST_SHIP_ENV,
    capture,
    child_env,
    collector,
    emit_many,
    isolated,
    outbox_ids,
    pending_after_settling,
    point_at,
    run_sync,
)

BATCH = 100


def make_backlog(tmp_path: Path, n: int) -> tuple[Path, list[str]]:
    path = tmp_path / "o.db"
    runtime.configure(outbox=path)  # no endpoint: the records stay pending
    emit_many(n, "pipe")
    runtime.shutdown()
    return path, outbox_ids(path)


def make_shipper(path: Path, endpoint: str, protocol: str = "http/protobuf", **env: str) -> Shipper:
    config = exporter_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": protocol})
    assert config is not None
    tuning = tuning_from_env({**FAST_SHIP_ENV, "AUDITEL_SHIP_BATCH_RECORDS": str(BATCH), **env})
    return Shipper(Outbox(path), config, tuning)


def attempts_by_record(path: Path) -> dict[str, int]:
    conn = sqlite3.connect(str(path))
    try:
        return dict(conn.execute("SELECT record_id, attempts FROM records").fetchall())
    finally:
        conn.close()


def live_leases(path: Path) -> int:
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute("SELECT count(*) FROM ship_leases").fetchone()[0]
    finally:
        conn.close()


def test_batches_in_flight_default_per_protocol_and_the_variable_overrides_it() -> None:
    http = exporter_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    grpc = exporter_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert http is not None and grpc is not None
    defaults = tuning_from_env({})
    assert defaults.inflight is None
    assert defaults.inflight_for("http/protobuf") == 1
    assert defaults.inflight_for("http/json") == 1
    assert defaults.inflight_for("grpc") == 4
    three = tuning_from_env({"AUDITEL_SHIP_INFLIGHT": "3"})
    assert three.inflight_for("http/protobuf") == three.inflight_for("grpc") == 3
    for bad in ("0", "17", "many"):
        with pytest.raises(ConfigError) as info:
            tuning_from_env({"AUDITEL_SHIP_INFLIGHT": bad})
        assert "AUDITEL_SHIP_INFLIGHT" in str(info.value) and repr(bad) in str(info.value) and "1..16" in str(info.value)


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_default_pipeline_delivers_a_backlog_once_through_the_collector(
    tmp_path: Path, capture: CaptureServer, collector: RotelCollector, protocol: str
) -> None:
    path, stored = make_backlog(tmp_path, 2500)
    endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
    shipper = make_shipper(path, endpoint, protocol)
    assert shipper.inflight == (4 if protocol == "grpc" else 1)
    settled: list[int] = []
    shipper.drain(60, lambda: settled.append(shipper.shipped_total))
    shipper.close()
    assert capture.wait_for(len(stored), 20)
    counts = capture.id_counts()
    assert set(counts) == set(stored)
    assert all(c == 1 for c in counts.values()), "a record was sent twice"
    assert shipper.shipped_total == len(stored)
    assert pending_after_settling(path) == []
    assert live_leases(path) == 0
    # progress once per settled batch; the count leads it (a batch counts when its mark commits)
    assert settled == sorted(settled) and len(settled) >= len(stored) // BATCH and settled[-1] == len(stored)
    assert shipper.paused_for_app == 0  # nobody else wrote to the outbox: no pause


def test_the_drain_pauses_between_batches_while_the_app_commits_records(
    tmp_path: Path, capture: CaptureServer, collector: RotelCollector
) -> None:
    path, backlog = make_backlog(tmp_path, 3000)
    shipper = make_shipper(path, collector.http_endpoint)
    runtime.configure(outbox=path)  # the app: committing records into the same outbox, no shipper of its own
    app_ids: list[str] = []
    stop = threading.Event()

    def app() -> None:
        while not stop.is_set() and len(app_ids) < 2000:
            app_ids.extend(emit_many(20, "app"))

    thread = threading.Thread(target=app)
    thread.start()
    try:
        shipper.drain(60)
    finally:
        stop.set()
        thread.join(30)
    assert shipper.paused_for_app > 0
    assert shipper.status()["ship_pauses_for_app"] == shipper.paused_for_app
    runtime.shutdown()
    shipper.drain(30)  # what the app committed after the drain's last claim
    shipper.close()
    stored = outbox_ids(path)
    assert capture.wait_for(len(stored), 20)
    counts = capture.id_counts()
    assert set(backlog) | set(app_ids) <= set(counts)
    assert all(c == 1 for c in counts.values())
    assert pending_after_settling(path) == []


def test_one_failed_batch_stops_the_pipeline_others_in_flight_are_settled_and_the_prepared_one_is_released(
    tmp_path: Path, capture: CaptureServer
) -> None:
    path, stored = make_backlog(tmp_path, 1000)
    shipper = make_shipper(path, capture.endpoint, AUDITEL_SHIP_INFLIGHT="4")
    capture.fault_fn = lambda n: Fault(status=503, headers={"Retry-After": "2"}, accept=False) if n == 1 else None
    before = time.monotonic()
    assert shipper.pump(30) == "failed"
    # the batches sent with the refused one were accepted and marked; nothing else was sent
    received = capture.id_counts()
    assert shipper.shipped_total == len(received) and len(received) % BATCH == 0 and len(received) >= 3 * BATCH
    assert all(c == 1 for c in received.values())
    assert set(outbox_ids(path, STATE_SHIPPED)) == set(received)
    # one refusal: one step of backoff, not one per batch; a success settled after it kept the Retry-After
    assert shipper.failures == 1 and shipper.retried == 1
    assert shipper.state == "backoff"
    assert shipper.next_attempt - before >= 1.9
    # the refused batch counted an attempt; the batch prepared meanwhile was given back untouched
    attempts = attempts_by_record(path)
    assert sum(1 for a in attempts.values() if a == 1) == BATCH
    assert sum(attempts.values()) == BATCH
    assert live_leases(path) == 0
    assert capture.requests == len(received) // BATCH + 1
    shipper.next_attempt = 0.0  # skip the wait: the rest must go through
    shipper.drain(30)
    counts = capture.id_counts()
    assert set(counts) == set(stored) and all(c == 1 for c in counts.values())


def test_an_outage_with_several_batches_in_flight_is_one_step_of_backoff(tmp_path: Path) -> None:
    path, stored = make_backlog(tmp_path, 600)
    shipper = make_shipper(path, f"http://127.0.0.1:{free_port()}", AUDITEL_SHIP_INFLIGHT="4")  # nobody listens
    assert shipper.pump(30) == "failed"
    assert shipper.retried == 4 and shipper.failures == 1
    assert shipper.possibly_delivered == 0  # refused: nothing can have been delivered (issue 13 item 13)
    assert shipper.backoff_s <= float(FAST_SHIP_ENV["AUDITEL_SHIP_BACKOFF_MIN_S"])  # the first step only
    assert shipper.last_error_kind == "transport"
    assert len(outbox_ids(path, STATE_PENDING)) == len(stored)
    assert sum(attempts_by_record(path).values()) == 4 * BATCH
    assert live_leases(path) == 0


_EMIT_AND_SHIP = """
import time, auditel
for i in range(3000):
    auditel.emit("auditel.custom", attributes={"test.index": i})
print("emitted", flush=True)
time.sleep(600)
"""


def test_kill_9_with_several_batches_in_flight_resends_at_most_those_batches(
    tmp_path: Path, capture: CaptureServer, collector: RotelCollector
) -> None:
    inflight = 3
    outbox = tmp_path / "o.db"
    capture.fault_fn = lambda n: Fault(delay_s=0.5)  # a slow backend: batches stay in flight
    env = child_env(
        outbox,
        OTEL_EXPORTER_OTLP_ENDPOINT=capture.endpoint,
        AUDITEL_SHIP_LEASE_S="2",
        AUDITEL_SHIP_INFLIGHT=str(inflight),
        AUDITEL_SHIP_BATCH_RECORDS=str(BATCH),
    )
    proc = subprocess.Popen([sys.executable, "-c", _EMIT_AND_SHIP], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "emitted"
        deadline = time.monotonic() + 20
        while capture.requests < inflight + 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert capture.requests >= inflight + 1
        time.sleep(0.1)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    time.sleep(0.7)  # the requests in flight at the kill complete on the server side
    capture.fault_fn = None
    stored = outbox_ids(outbox)
    assert outbox_ids(outbox, STATE_PENDING)
    result = run_sync(outbox, collector.http_endpoint)
    assert result.returncode == 0, result.stderr
    assert capture.wait_for(len(stored), 20)
    counts = capture.id_counts()
    assert set(counts) == set(stored)
    duplicated = sum(c - 1 for c in counts.values())
    assert duplicated <= inflight * BATCH  # only the batches on the network at the kill
    assert set(outbox_ids(outbox, STATE_SHIPPED)) == set(stored)


def test_forked_child_ships_with_its_own_senders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capture: CaptureServer, collector: RotelCollector
) -> None:
    point_at(monkeypatch, collector.http_endpoint, AUDITEL_SHIP_INFLIGHT="2", AUDITEL_SHIP_BATCH_RECORDS=str(BATCH))
    path = tmp_path / "o.db"
    rt = runtime.configure(outbox=path)
    assert rt is not None and rt.shipper is not None
    parent_ids = emit_many(300, "parent")
    assert auditel.flush(30)  # the parent's sender threads and connections exist now
    parent_senders, parent_owner = rt.shipper._senders, rt.shipper.owner
    assert parent_senders is not None
    rt.worker.stop()  # the parent ships nothing while the child lives: the child must ship its records itself
    report = tmp_path / "child.json"
    pid = os.fork()
    if pid == 0:  # child: a new worker, shipper state, sender threads and connections
        code = 1
        try:
            shipper = runtime.current().shipper
            emit_many(250, "child")
            seen = {
                "delivered": auditel.flush(30),
                "own_owner": shipper.owner != parent_owner,
                "own_senders": shipper._senders is not None and shipper._senders is not parent_senders,
                "shipped_total": shipper.shipped_total,
                "pid": os.getpid(),
            }
            report.write_text(json.dumps(seen))
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    seen = json.loads(report.read_text())
    assert seen == {"delivered": True, "own_owner": True, "own_senders": True, "shipped_total": seen["shipped_total"], "pid": pid}
    assert seen["shipped_total"] >= 250  # the child shipped its records itself (the parent's worker is stopped)
    rt.worker.start()
    after = emit_many(100, "parent-after")
    assert auditel.flush(30)
    stored = outbox_ids(path)
    assert capture.wait_for(len(stored), 20)
    counts = capture.id_counts()
    assert set(parent_ids + after) <= set(counts)
    assert sum(1 for r in capture.records if r.attributes.get("test.prefix") == "child") == 250
    assert pending_after_settling(path) == []


def test_http_transport_keeps_one_connection_per_sending_thread(
    tmp_path: Path, capture: CaptureServer, collector: RotelCollector
) -> None:
    path, stored = make_backlog(tmp_path, 400)
    config = exporter_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": collector.http_endpoint})
    assert config is not None
    conn = sqlite3.connect(str(path))
    rows = conn.execute("SELECT rid, stream_id, data FROM records ORDER BY rid").fetchall()
    resources = {sid: {"service.name": "t"} for sid in {row[1] for row in rows}}
    conn.close()
    payloads = [encode_protobuf(rows[i : i + 50], resources) for i in range(0, len(rows), 50)]
    transport = HttpTransport(config)
    outcomes: list[str] = []
    lock = threading.Lock()

    def send(part: list[bytes]) -> None:
        for payload in part:
            kind = transport.send(payload).kind
            with lock:
                outcomes.append(kind)

    threads = [threading.Thread(target=send, args=(payloads[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert outcomes == ["success"] * len(payloads)
    assert len(transport._conns) == 4  # one kept-alive connection per thread, reused for each of its sends
    transport.close()
    assert transport._conns == set()
    assert transport.send(payloads[0]).kind == "success"  # a fresh connection after close
    transport.close()
    assert capture.wait_for(len(stored), 20)
    assert set(capture.record_ids()) == set(stored)
