"""Helpers and fixtures for the delivery tests (imported by the test_shipping_* modules)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from auditel import runtime
from auditel.store.outbox import STATE_PENDING
from otlp_harness import CaptureServer, RotelCollector

ROOT = Path(__file__).resolve().parent.parent

# Short backoffs so retries happen within a test's few seconds (documented in docs/delivery.md).
FAST_SHIP_ENV = {
    "AUDITEL_SHIP_BACKOFF_MIN_S": "0.05",
    "AUDITEL_SHIP_BACKOFF_MAX_S": "0.2",
    "AUDITEL_SHIP_SLOW_RETRY_S": "0.2",
    "AUDITEL_SHIP_RETRY_AFTER_MAX_S": "3",
    "AUDITEL_SHIP_LINGER_S": "0.01",
    "AUDITEL_SHIP_INTERVAL_S": "0.2",
}


def clean_env() -> dict[str, str]:
    """The current environment without any OTLP exporter or auditel variables."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "AUDITEL_"))}


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in list(os.environ):
        if key.startswith(("OTEL_", "AUDITEL_")):
            monkeypatch.delenv(key)
    for key, value in FAST_SHIP_ENV.items():
        monkeypatch.setenv(key, value)
    runtime._reset_for_tests()
    yield
    runtime._reset_for_tests()


@pytest.fixture
def capture() -> Iterator[CaptureServer]:
    server = CaptureServer().start()
    yield server
    server.stop()


@pytest.fixture
def collector(capture: CaptureServer) -> Iterator[RotelCollector]:
    col = RotelCollector(capture.endpoint).start()
    yield col
    runtime._reset_for_tests()  # shut down (and ship the stream end) while the collector is still up
    col.stop()


def point_at(monkeypatch: pytest.MonkeyPatch, endpoint: str, protocol: str = "http/protobuf", **extra: str) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    for key, value in extra.items():
        monkeypatch.setenv(key, value)


def emit_many(n: int, prefix: str = "r") -> list[str]:
    import auditel

    ids = []
    for i in range(n):
        rid = auditel.emit("auditel.custom", attributes={"test.index": i, "test.prefix": prefix})
        assert rid is not None
        ids.append(rid)
    return ids


def outbox_ids(path: Path, state: int | None = None) -> list[str]:
    conn = sqlite3.connect(str(path))
    try:
        sql = "SELECT record_id FROM records" + ("" if state is None else f" WHERE state={int(state)}")
        return [row[0] for row in conn.execute(sql)]
    finally:
        conn.close()


def pending_after_settling(path: Path, timeout: float = 20.0) -> list[str]:
    """Record ids still pending once the shipper has had ``timeout`` seconds to settle.

    ``flush()`` waits for the records committed before it was called; the worker may commit an
    integrity record of its own just after (a checkpoint every N records, a heartbeat), which ships
    moments later. A check for "nothing pending" therefore polls instead of looking once.
    """
    deadline = time.monotonic() + timeout
    while True:
        pending = outbox_ids(path, STATE_PENDING)
        if not pending or time.monotonic() >= deadline:
            return pending
        time.sleep(0.05)


def run_python(code: str, env: dict[str, str], timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=timeout, cwd=str(ROOT)
    )


def child_env(outbox: Path, **extra: str) -> dict[str, str]:
    env = clean_env()
    env.update(FAST_SHIP_ENV)
    env["AUDITEL_OUTBOX"] = str(outbox)
    env["AUDITEL_ENABLED"] = "true"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")])
    env.update(extra)
    return env


def run_sync(outbox: Path, endpoint: str) -> subprocess.CompletedProcess[str]:
    """``auditel sync`` in a new process on ``outbox`` (as after a crash of the process that shipped it)."""
    return subprocess.run(
        [sys.executable, "-c", "import sys; from auditel.cli import main; sys.exit(main())", "sync", "--timeout", "30", "--quiet"],
        env=child_env(outbox, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint),
        capture_output=True,
        text=True,
        timeout=60,
    )


__all__ = [
    "FAST_SHIP_ENV",
    "run_sync",
    "capture",
    "collector",
    "isolated",
    "point_at",
    "emit_many",
    "outbox_ids",
    "run_python",
    "child_env",
    "clean_env",
    "Any",
]
