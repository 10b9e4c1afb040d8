"""The shipper against hostile records and hostile endpoints (issue 13, items 1, 4, 5 and 13).

* Records the shipper cannot encode are written straight into a real outbox with SQL (the way a
  corrupt file, an older bug or another writer leaves them) and shipped through the real rotel
  collector: they become dead letters with a reason, and every other record is delivered.
* The hostile endpoints (slowloris, a huge body, refused connections, bad TLS) are small
  fault-injecting servers on 127.0.0.1 written here: a *test double*, used because no real
  collector can be made to trickle one byte every few seconds or stream gigabytes on demand.
"""

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from auditel import runtime
from auditel.config.otlp import exporter_from_env, tuning_from_env
from auditel.delivery.shipper import Shipper
from auditel.store.outbox import STATE_DEAD, STATE_PENDING, Outbox
from auditel.store.shipping_queue import ShippingQueue
from otlp_harness import CaptureServer, RotelCollector
from shipping_support import (  # noqa: F401 - fixtures
    FAST_SHIP_ENV,
    capture,
    child_env,
    collector,
    emit_many,
    isolated,
    outbox_ids,
)

BAD_TIMES = ['"1.5e+18"', '"True"', "true", '"-5"', "-5", '"12abc"']


def make_backlog(tmp_path: Path, n: int = 60) -> tuple[Path, list[str]]:
    path = tmp_path / "o.db"
    runtime.configure(outbox=path)
    emit_many(n)
    runtime.shutdown()
    return path, outbox_ids(path)


def corrupt_times(path: Path, ids: list[str], bad: list[str]) -> list[str]:
    """Store ``time_unix_nano`` as each of ``bad`` (JSON text) in the records ``ids[3], ids[6], …``:
    what a float/bool timestamp or a hostile writer leaves in the outbox."""
    conn = sqlite3.connect(str(path))
    spoiled = []
    try:
        for k, value in enumerate(bad):
            record_id = ids[3 + 3 * k]
            conn.execute(
                "UPDATE records SET data=json_set(data, '$.time_unix_nano', json(?)) WHERE record_id=?",
                (value, record_id),
            )
            spoiled.append(record_id)
        conn.commit()
    finally:
        conn.close()
    return spoiled


def run_sync(outbox: Path, endpoint: str, *args: str, timeout: float = 90, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from auditel.cli import main; sys.exit(main())", "sync", "--quiet", *args],
        env=child_env(outbox, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def make_shipper(path: Path, endpoint: str, **env: str) -> Shipper:
    config = exporter_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, **env})
    assert config is not None
    return Shipper(Outbox(path), config, tuning_from_env({**FAST_SHIP_ENV, "AUDITEL_SHIP_BATCH_RECORDS": "20", **env}))


# --- item 1: one record that cannot be encoded never blocks the rest -------------------------------------------
@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_unencodable_records_become_dead_letters_and_the_rest_is_delivered(
    tmp_path: Path, capture: CaptureServer, collector: RotelCollector, protocol: str
) -> None:
    path, ids = make_backlog(tmp_path)
    spoiled = corrupt_times(path, ids, BAD_TIMES)
    endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
    done = run_sync(path, endpoint, "--timeout", "20", OTEL_EXPORTER_OTLP_PROTOCOL=protocol, AUDITEL_SHIP_BATCH_RECORDS="16")
    assert outbox_ids(path, STATE_PENDING) == [], done.stderr
    assert sorted(outbox_ids(path, STATE_DEAD)) == sorted(spoiled)
    healthy = set(ids) - set(spoiled)
    assert capture.wait_for(len(healthy), 20)
    assert set(capture.record_ids()) == healthy
    letters = ShippingQueue(Outbox(path)).dead_letters()
    assert {d.record_id for d in letters} == set(spoiled)
    assert all("cannot encode" in (d.status or "") and d.reason for d in letters)
    assert "cannot be encoded" in done.stderr
    assert done.returncode == 1  # dead letters remain: the command says so


def test_an_unencodable_record_does_not_stall_the_worker(tmp_path: Path, capture: CaptureServer, collector: RotelCollector, monkeypatch: pytest.MonkeyPatch) -> None:
    import auditel

    path, ids = make_backlog(tmp_path, 20)
    spoiled = corrupt_times(path, ids, ['"1.5e+18"'])
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.http_endpoint)
    runtime.configure(outbox=path)
    later = emit_many(10, "later")
    assert auditel.flush(20)
    assert capture.wait_for(len(ids) - 1 + len(later), 20)
    assert set(capture.record_ids()) >= (set(ids) - set(spoiled)) | set(later)
    status = auditel.status()
    assert status["dead_lettered_total"] == 1
    assert status["pending"] == 0
