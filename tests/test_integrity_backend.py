"""Checkpoints leave the host: auditel ships its ``auditel.checkpoint`` records over OTLP through a real
collector (rotel) to a backend (the harness's CaptureServer), and the copy fetched back from that backend
is what reveals a truncated or rolled-back outbox to ``auditel verify --checkpoints``.

The backend dump is written the way a log store hands records back: one JSON object per line with the
record's ``event_name`` and ``body`` (all received records, not only checkpoints: the loader must skip
the others), and, separately, in the OTLP/JSON encoding the Collector's file exporter writes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest
from google.protobuf.json_format import MessageToJson
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

import auditel
from auditel import runtime as rt_mod
from auditel.cli import main as cli_main
from integrity_helpers import QUIET_ENV, clone, emit_actions, records, sql, write_key
from otlp_harness import CaptureServer, ReceivedRecord, RotelCollector
from redaction_support import clean_env


@pytest.fixture
def shipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """An outbox whose records (and checkpoints 21 and 32) went through rotel to the capture server."""
    clean_env(monkeypatch)
    key, pub, _ = write_key(tmp_path)
    for name, value in {**QUIET_ENV, "AUDITEL_SIGNING_KEY_FILE": str(key)}.items():
        monkeypatch.setenv(name, value)
    rt_mod._reset_for_tests()
    outbox = tmp_path / "data" / "outbox.db"
    with CaptureServer() as capture, RotelCollector(export_to=capture.endpoint) as rotel:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rotel.http_endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        rt = auditel.configure(outbox=str(outbox))
        assert rt is not None and rt.shipper is not None
        emit_actions(20)
        rt.checkpointer.checkpoint()  # record 22, covers 21
        emit_actions(10, 20)
        rt.checkpointer.checkpoint()  # record 33, covers 32
        emit_actions(5, 30)
        assert auditel.flush(30.0)
        stored = len(records(outbox))
        assert capture.wait_for(stored, timeout=30.0), f"{len(set(capture.record_ids()))} of {stored} arrived"
        rt_mod._reset_for_tests()
        yield {"outbox": outbox, "pub": pub, "capture": capture, "root": tmp_path}
    rt_mod._reset_for_tests()


def backend_dump(received: list[ReceivedRecord], path: Path) -> Path:
    path.write_text("".join(json.dumps({"event_name": r.event_name, "body": r.body}) + "\n" for r in received))
    return path


def verify(capsys: pytest.CaptureFixture[str], outbox: Path, *extra: str) -> tuple[int, list[str]]:
    code = cli_main(["verify", str(outbox), "--json", *extra])
    report = json.loads(capsys.readouterr().out)
    messages = [f["message"] for f in report["problems"]]
    for stream in report["streams"]:
        messages += [f["message"] for f in stream["problems"]]
    return code, messages


def test_checkpoints_leave_the_host_and_the_backend_copy_verifies(shipped: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    received = shipped["capture"].records
    sizes = sorted(r.body["checkpoint"]["tree_size"] for r in received if r.event_name == "auditel.checkpoint")
    assert sizes[:2] == [21, 32], sizes
    dump = backend_dump(received, shipped["root"] / "backend.jsonl")
    code, problems = verify(capsys, shipped["outbox"], "--checkpoints", str(dump), "--public-key", str(shipped["pub"]))
    assert (code, problems) == (0, [])  # the signatures survived the trip through the collector


def test_backend_checkpoints_reveal_a_tail_cut_with_its_local_checkpoints(
    shipped: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    victim = clone(shipped["outbox"], tmp_path / "victim.db")
    sql(victim, "DELETE FROM records WHERE seq > 25", "DELETE FROM checkpoints WHERE tree_size > 25")
    code, problems = verify(capsys, victim, "--public-key", str(shipped["pub"]))
    assert (code, problems) == (0, [])  # locally consistent: only the copy that left the host can tell
    dump = backend_dump(shipped["capture"].records, tmp_path / "backend.jsonl")
    code, problems = verify(capsys, victim, "--public-key", str(shipped["pub"]), "--checkpoints", str(dump))
    assert code == 1
    assert [m.split(",")[0] for m in problems] == ["rolled back: the stream ends at seq 25"], problems


def test_otlp_json_archive_lines_are_accepted_as_checkpoints(
    shipped: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """The gateway's file exporter writes one ExportLogsServiceRequest per line in OTLP/JSON."""
    archive = tmp_path / "audit.jsonl"
    lines = []
    for raw in shipped["capture"].raw_requests:
        request = ExportLogsServiceRequest()
        request.ParseFromString(raw)
        lines.append(MessageToJson(request, indent=None))
    archive.write_text("\n".join(lines) + "\n")
    assert '"intValue": "21"' in archive.read_text()  # OTLP/JSON writes 64-bit integers as strings
    victim = clone(shipped["outbox"], tmp_path / "victim.db")
    code, problems = verify(capsys, victim, "--public-key", str(shipped["pub"]), "--checkpoints", str(archive))
    assert (code, problems) == (0, [])
    sql(victim, "DELETE FROM records WHERE seq > 25", "DELETE FROM checkpoints WHERE tree_size > 25")
    code, problems = verify(capsys, victim, "--public-key", str(shipped["pub"]), "--checkpoints", str(archive))
    assert code == 1
    assert [m.split(",")[0] for m in problems] == ["rolled back: the stream ends at seq 25"], problems
