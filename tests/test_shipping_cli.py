"""``auditel sync`` exit codes and progress, no-endpoint behaviour, and shipping after fork (real rotel collector)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import auditel
from auditel import runtime
from otlp_harness import CaptureServer, RotelCollector, free_port
from shipping_support import capture, child_env, collector, emit_many, isolated, outbox_ids, pending_after_settling, run_python  # noqa: F401

CLI = "import sys; from auditel.cli import main; sys.exit(main())"


def _sync(outbox: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", CLI, "sync", *args], env=child_env(outbox, **env), capture_output=True, text=True, timeout=60
    )


def test_without_an_endpoint_nothing_ships_and_records_stay_pending(tmp_path: Path) -> None:
    rt = runtime.configure(outbox=tmp_path / "o.db")
    assert rt is not None and rt.shipper is None
    ids = emit_many(5)
    assert auditel.flush(1)
    status = auditel.status()
    stored = len(outbox_ids(tmp_path / "o.db"))  # the records plus auditel's own stream start (and checkpoints)
    assert stored > len(ids)
    assert status["pending"] == stored and status["exporter"] is None and status["shipper_running"] is False
    runtime.shutdown()
    result = _sync(tmp_path / "o.db")
    assert result.returncode == 2 and "OTEL_EXPORTER_OTLP_ENDPOINT" in result.stderr


def test_sync_exit_codes_and_progress(tmp_path: Path, capture: CaptureServer) -> None:
    outbox = tmp_path / "o.db"
    runtime.configure(outbox=outbox)
    ids = emit_many(700)
    runtime.shutdown()
    total = len(outbox_ids(outbox))  # 700 + stream start, end marker and checkpoints

    down = _sync(outbox, "--timeout", "1", OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{free_port()}")
    assert down.returncode == 1
    assert f"{total} records still pending" in down.stderr and "ConnectionRefusedError" in down.stderr

    with RotelCollector(capture.endpoint) as col:
        ok = _sync(outbox, "--timeout", "30", "--json", OTEL_EXPORTER_OTLP_ENDPOINT=col.http_endpoint)
        assert ok.returncode == 0, ok.stderr
        report = json.loads(ok.stdout)
        assert report["shipped"] == total and report["pending"] == 0 and report["dead_letters"] == 0
        assert f"{total}/{total} records" in ok.stderr  # the progress bar's final line
        assert capture.wait_for(total, 20)
    assert set(ids) <= set(capture.record_ids())
    assert pending_after_settling(outbox) == []


def test_bad_exporter_configuration_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from auditel.config.settings import ConfigError

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "udp")
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_PROTOCOL='udp'"):
        runtime.configure(outbox=tmp_path / "o.db")


_FORK = """
import os, sys, auditel
from auditel import runtime
rt = runtime.configure()
for i in range(50):
    auditel.emit("auditel.custom", attributes={"who": "parent"})
owner = rt.shipper.owner
pid = os.fork()
if pid == 0:
    for i in range(50):
        auditel.emit("auditel.custom", attributes={"who": "child"})
    ok = rt.flush(20)
    fresh = rt.worker.running and rt.shipper.owner != owner
    os._exit(0 if ok and fresh else 3)
_, code = os.waitpid(pid, 0)
print(os.waitstatus_to_exitcode(code), rt.flush(20))
"""


def test_a_forked_child_ships_its_own_records(tmp_path: Path, capture: CaptureServer, collector: RotelCollector) -> None:
    outbox = tmp_path / "o.db"
    result = run_python(_FORK, child_env(outbox, OTEL_EXPORTER_OTLP_ENDPOINT=collector.http_endpoint))
    assert result.stdout.split() == ["0", "True"], result.stderr
    stored = outbox_ids(outbox)
    assert capture.wait_for(len(stored) - 2, 20)  # the two stream-end records ship at exit, maybe later
    received = capture.records
    assert {r.attributes.get("who") for r in received} >= {"parent", "child"}
    assert len({r.attributes["audit.sequence.stream_id"] for r in received}) == 2
