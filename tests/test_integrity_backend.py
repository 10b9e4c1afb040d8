"""Checkpoints leave the host: auditel ships its ``auditel.checkpoint`` records over OTLP through a real
collector (rotel) to a backend (the harness's CaptureServer), and the copy fetched back from that backend
is what reveals a truncated or rolled-back outbox to ``auditel verify --checkpoints``.

The backend dump is written the way a log store hands records back: one JSON object per line with the
record's ``event_name`` and ``body`` (all received records, not only checkpoints: the loader must skip
the others), and, separately, in the OTLP/JSON encoding the Collector's file exporter writes.
"""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path
from typing import Any, Iterator

import pytest
from google.protobuf.json_format import MessageToDict, MessageToJson
from opentelemetry import trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber

import auditel
from auditel import runtime as rt_mod
from auditel.cli import main as cli_main
from auditel.integrity.verify import load_archive
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
        emit_varied(rt)  # every value type, a body, trace context and another scope (for --from-archive)
        assert auditel.flush(30.0)
        stored = len(records(outbox))
        assert capture.wait_for(stored, timeout=30.0), f"{len(set(capture.record_ids()))} of {stored} arrived"
        rt_mod._reset_for_tests()
        yield {"outbox": outbox, "pub": pub, "capture": capture, "root": tmp_path}
    rt_mod._reset_for_tests()


def emit_varied(rt: Any) -> None:
    """Records that use every kind of stored value, so that rebuilding records from OTLP/JSON is tested on them."""
    values = {
        "f": 41.7, "tiny": 1e-7, "huge": 1e21, "integral_float": 5.0, "big": 2**60, "neg": -5, "zero": 0,
        "no": False, "empty": "", "list": [1, "a", 2.5, True], "uni": "na\u00efve \U0001f99c \u2028 \u00e9",
        "raw": b"\x00\x01\xff", "map": {"k": {"n": 1, "e": [], "m": {}}},
    }
    span = TracerProvider().get_tracer("t").start_span("tool")
    with trace.use_span(span, end_on_exit=True):
        auditel.emit("auditel.action", attributes=values, body={"nested": [{"x": 1}], "s": "t", "z": None})
        auditel.emit("auditel.action", attributes={"i": 1}, body="a string body", severity="WARN")
    app_provider = LoggerProvider()
    app_provider.add_log_record_processor(rt.processor)
    app_provider.get_logger("app-scope", "2.1").emit(event_name="auditel.file_access", attributes={"file.path": "/tmp/x"})


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


# --- the backend's own copy of the records: auditel verify --from-archive ------------------------------
def archive_lines(capture: CaptureServer, spelling: str) -> list[str]:
    """The received export requests as OTLP/JSON lines, one request per line.

    ``protobuf``: google.protobuf's json_format (base64 trace and span ids, severity as an enum name).
    ``collector``: the spelling of the Collector's file exporter, which cannot run here (no Go
    collector on these machines): the same JSON with hex ids and severity as a number.
    """
    lines = []
    for raw in capture.raw_requests:
        request = ExportLogsServiceRequest()
        request.ParseFromString(raw)
        obj = MessageToDict(request)
        if spelling == "collector":
            for rl in obj["resourceLogs"]:
                for sl in rl["scopeLogs"]:
                    for lr in sl["logRecords"]:
                        for key in ("traceId", "spanId"):
                            if key in lr:
                                lr[key] = base64.b64decode(lr[key]).hex()
                        if "severityNumber" in lr:
                            lr["severityNumber"] = SeverityNumber.Value(lr["severityNumber"])
        lines.append(json.dumps(obj))
    return lines


def write_archive(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


def verify_report(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    code = cli_main(["verify", "--json", *args])
    return code, json.loads(capsys.readouterr().out)


def all_problems(report: dict[str, Any]) -> list[str]:
    return [f["message"] for f in report["problems"]] + [f["message"] for s in report["streams"] for f in s["problems"]]


@pytest.mark.parametrize("spelling", ["collector", "protobuf"])
def test_the_backends_archive_verifies_on_its_own_with_every_record_rebuilt(
    shipped: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path, spelling: str
) -> None:
    archive = write_archive(tmp_path / "audit.jsonl", archive_lines(shipped["capture"], spelling))
    text = archive.read_text()
    assert '"bytesValue"' in text and '"doubleValue"' in text and '"traceId"' in text and "app-scope" in text
    code, report = verify_report(capsys, "--from-archive", str(archive), "--public-key", str(shipped["pub"]))
    assert (code, all_problems(report)) == (0, [])
    (stream,) = report["streams"]
    assert stream["anchored_through"] >= 32  # the backend's records reach the signed heads 21 and 32
    # every record rebuilt from the archive is byte for byte the stored record; the outbox may have up
    # to two more (the end marker and final checkpoint, written at shutdown while the capture closes)
    local = {seq: data for _rid, _sid, seq, data, _hash in records(shipped["outbox"])}
    rebuilt = {r.seq_col: r.data for r in load_archive([archive]).records}
    assert stream["records"] == len(rebuilt) == stream["last_seq"] and len(local) - 2 <= len(rebuilt) <= len(local)
    assert rebuilt == {seq: local[seq] for seq in rebuilt}


def test_a_redelivered_and_reordered_archive_still_verifies(
    shipped: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    lines = archive_lines(shipped["capture"], "collector")
    lines = lines + lines[:2]  # at-least-once: two requests delivered twice
    random.Random(7).shuffle(lines)
    rotated = [write_archive(tmp_path / f"audit-{k}.jsonl", lines[k::2]) for k in range(2)]  # two rotated files
    args = [a for path in rotated for a in ("--from-archive", str(path))]
    code, report = verify_report(capsys, *args, "--public-key", str(shipped["pub"]))
    assert (code, all_problems(report)) == (0, [])
    notes = [n["message"] for n in report["streams"][0]["notes"]]
    assert any("identical copies of records delivered more than once" in n for n in notes), notes


def _edit_record(lines: list[str], seq: int, edit: Any) -> list[str]:
    out = []
    for line in lines:
        obj = json.loads(line)
        for rl in obj["resourceLogs"]:
            for sl in rl["scopeLogs"]:
                kept = []
                for lr in sl["logRecords"]:
                    attrs = {kv["key"]: kv.get("value") for kv in lr["attributes"]}
                    if attrs["audit.sequence.number"] == {"intValue": str(seq)}:
                        lr = edit(lr)
                    if lr is not None:
                        kept.append(lr)
                sl["logRecords"] = kept
        out.append(json.dumps(obj))
    return out


def _set_attr(key: str, value: dict[str, Any]) -> Any:
    def edit(lr: dict[str, Any]) -> dict[str, Any]:
        lr["attributes"] = [kv for kv in lr["attributes"] if kv["key"] != key] + [{"key": key, "value": value}]
        return lr

    return edit


@pytest.mark.parametrize(
    ("seq", "edit", "expected"),
    [
        (10, _set_attr("gen_ai.tool.name", {"stringValue": "rm"}), "record 10: hash mismatch"),
        (25, lambda lr: None, "gap after seq 24"),
        (32, _set_attr("i", {"intValue": "99"}), "checkpoint 32: head hash mismatch"),
    ],
    ids=["edited", "dropped", "edited_head"],
)
def test_an_archive_changed_after_it_left_the_host_is_caught(
    shipped: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path, seq: int, edit: Any, expected: str
) -> None:
    lines = _edit_record(archive_lines(shipped["capture"], "collector"), seq, edit)
    archive = write_archive(tmp_path / "audit.jsonl", lines)
    code, report = verify_report(capsys, "--from-archive", str(archive), "--public-key", str(shipped["pub"]))
    assert code == 1
    assert any(p.startswith(expected) for p in all_problems(report)), all_problems(report)


def test_other_logs_and_malformed_lines_in_an_archive_are_reported_never_a_crash(
    shipped: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    other_app = {"resourceLogs": [{"resource": {}, "scopeLogs": [{"scope": {"name": "nginx"}, "logRecords": [
        {"timeUnixNano": "1", "body": {"stringValue": "GET /"}, "attributes": []}]}]}]}
    hostile = [
        json.dumps(other_app),
        "not json",
        json.dumps({"resourceLogs": "x"}),
        json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"attributes": [{"key": "audit.sequence.number",
                    "value": {"intValue": "x"}}]}]}]}]}),
        json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [{"traceId": "zz", "attributes": []}]}]}]}),
    ]
    archive = write_archive(tmp_path / "audit.jsonl", archive_lines(shipped["capture"], "collector") + hostile)
    code, report = verify_report(capsys, "--from-archive", str(archive), "--public-key", str(shipped["pub"]))
    assert code == 1
    problems = all_problems(report)
    assert len(problems) == 3, problems
    assert any("not JSON" in p for p in problems) and any("not an OTLP/JSON logs request" in p for p in problems)
    assert sum("not readable as an auditel record" in p for p in problems) == 1  # an audit record: it has a seq
    notes = [n["message"] for n in report["notes"]]
    # the other app's log and the malformed record without chain attributes are not audit records
    assert any(n.startswith("2 log record(s) without auditel chain attributes skipped") for n in notes), notes
    assert report["streams"][0]["problems"] == []  # the audit stream itself still verifies
