"""The audit pipeline end to end against real SQLite files: emit -> processor -> outbox -> span event -> sinks."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import io
import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import auditel
from auditel.record import schema as S
from auditel.record.canonical import canonical
from auditel.record.content import KeyedDigester, content_bytes
from conftest import read_records, user_records


def test_emit_commits_before_returning(rt: Any, outbox_path: Path) -> None:
    rid = auditel.emit("auditel.action", attributes={"audit.action": "deploy", "n": 3}, body={"k": "v"})
    assert rid is not None
    # a separate connection sees the row immediately: it was committed inside emit()
    recs = user_records(outbox_path)
    assert [r["attributes"]["audit.record.id"] for r in recs] == [rid]
    rec = recs[0]
    assert rec["event_name"] == "auditel.action"
    assert rec["attributes"]["n"] == 3 and rec["body"] == {"k": "v"}
    assert rec["attributes"][S.A_SCHEMA_VERSION] == S.SCHEMA_VERSION
    assert rec["severity_number"] == 9 and rec["severity_text"] == "INFO"


def test_records_form_a_contiguous_hash_chain(rt: Any, outbox_path: Path) -> None:
    for i in range(20):
        auditel.emit("auditel.action", attributes={"i": i})
    auditel.shutdown()
    recs = read_records(outbox_path)
    assert recs[0]["event_name"] == S.EV_STREAM_START
    # the stream closes with its end marker, then the final checkpoint that covers it
    assert [r["event_name"] for r in recs[-2:]] == [S.EV_STREAM_END, S.EV_CHECKPOINT]
    prev = None
    for n, rec in enumerate(recs, start=1):
        attrs = rec["attributes"]
        assert attrs[S.A_SEQ] == n
        assert attrs.get(S.A_PREV_HASH) == prev
        data = canonical({k: v for k, v in rec.items() if not k.startswith("_")})
        assert hashlib.sha256(data.encode()).hexdigest() == rec["_hash"]
        prev = rec["_hash"]
    assert recs[-2]["attributes"][S.A_SEQ_END] is True
    assert len({r["attributes"][S.A_RECORD_ID] for r in recs}) == len(recs)


def test_outbox_file_and_directory_permissions(rt: Any, outbox_path: Path) -> None:
    auditel.emit("auditel.action")
    assert stat.S_IMODE(outbox_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(outbox_path.parent.stat().st_mode) == 0o700
    wal = Path(str(outbox_path) + "-wal")
    if wal.exists():
        assert stat.S_IMODE(wal.stat().st_mode) & 0o077 == 0


def test_span_event_on_active_span(rt: Any, outbox_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("agent step") as span:
        rid = auditel.tool_call("search", phase="intent", call_id="c1", arguments={"q": "x"})
        ctx = span.get_span_context()
    (finished,) = exporter.get_finished_spans()
    (event,) = finished.events
    assert event.name == S.EV_TOOL_CALL
    assert event.attributes[S.A_RECORD_ID] == rid
    assert event.attributes[S.GEN_AI_TOOL_NAME] == "search"
    (rec,) = user_records(outbox_path)
    assert rec["trace_id"] == format(ctx.trace_id, "032x")
    assert rec["span_id"] == format(ctx.span_id, "016x")


def test_no_span_event_without_recording_span(rt: Any, outbox_path: Path) -> None:
    rid = auditel.emit("auditel.action")
    (rec,) = user_records(outbox_path)
    assert rec["attributes"][S.A_RECORD_ID] == rid and "trace_id" not in rec


def test_disabled_is_a_cheap_no_op(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AUDITEL_ENABLED", "false")
    monkeypatch.setenv("AUDITEL_OUTBOX", str(tmp_path / "never.db"))
    assert auditel.configure() is None
    assert auditel.emit("auditel.action") is None
    assert auditel.tool_call("t", phase="intent") is None
    with auditel.audited("x"):
        pass

    @auditel.tool
    def add(a: int, b: int) -> int:
        return a + b

    assert add(2, 3) == 5
    assert not (tmp_path / "never.db").exists()
    assert auditel.status()["enabled"] is False


def test_not_configured_and_not_enabled_records_nothing(tmp_path: Path) -> None:
    assert auditel.emit("auditel.action") is None
    assert not (tmp_path / "xdg" / "auditel" / "outbox.db").exists()


def test_enabled_from_environment_alone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "env.db"
    monkeypatch.setenv("AUDITEL_ENABLED", "true")
    monkeypatch.setenv("AUDITEL_OUTBOX", str(path))
    assert auditel.emit("auditel.heartbeat") is not None
    assert [r["event_name"] for r in user_records(path)] == ["auditel.heartbeat"]


def test_events_allow_list_filters_kinds(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    auditel.configure(outbox=str(path), events=["tool_call"])
    assert auditel.tool_call("t", phase="intent") is not None
    assert auditel.model_call("m") is None
    assert auditel.heartbeat() is None
    assert [r["event_name"] for r in user_records(path)] == [S.EV_TOOL_CALL]
    assert auditel.status()["filtered"] == 2
    auditel.shutdown()
    # integrity records are never filtered away
    names = [r["event_name"] for r in read_records(path)]
    assert names[0] == S.EV_STREAM_START and names[-2:] == [S.EV_STREAM_END, S.EV_CHECKPOINT]


@pytest.mark.parametrize(
    "severity,number",
    [("debug", 5), ("info", 9), ("warn", 13), ("error", 17), ("WARNING", 13)],
)
def test_severity_levels_map_to_otel_numbers(rt: Any, outbox_path: Path, severity: str, number: int) -> None:
    auditel.emit("auditel.action", severity=severity)
    (rec,) = user_records(outbox_path)
    assert rec["severity_number"] == number


def test_bad_severity_is_counted_and_recorded_as_info(rt: Any, outbox_path: Path) -> None:
    assert auditel.emit("auditel.action", severity="loud") is not None
    (rec,) = user_records(outbox_path)
    assert rec["severity_number"] == 9
    assert auditel.status()["sanitized"]["bad_severity"] == 1


def test_bad_event_name_is_rejected_with_reason(rt: Any) -> None:
    assert auditel.emit("") is None
    assert auditel.emit(None) is None  # type: ignore[arg-type]
    assert auditel.status()["rejected"]["bad_event_name"] == 2


def test_identity_and_session_stamped_on_every_record(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    rt = auditel.configure(outbox=str(path), agent_id="agent-42", principal="user:bob", session_id="sess-1", environment="prod")
    auditel.emit("auditel.action")
    auditel.set_identity(principal="user:carol")
    auditel.emit("auditel.action")
    a, b = user_records(path)
    for rec in (a, b):
        assert rec["attributes"][S.A_ACTOR_ID] == "agent-42"
        assert rec["attributes"][S.A_SESSION_ID] == "sess-1"
        assert rec["attributes"][S.A_ENVIRONMENT] == "prod"
    assert a["attributes"][S.A_PRINCIPAL_ID] == "user:bob"
    assert b["attributes"][S.A_PRINCIPAL_ID] == "user:carol"
    assert rt.session_id == "sess-1"


def test_session_id_generated_per_process_when_not_given(rt: Any, outbox_path: Path) -> None:
    auditel.emit("auditel.action")
    (rec,) = user_records(outbox_path)
    assert rec["attributes"][S.A_SESSION_ID] == rt.session_id and len(rt.session_id) == 32


def test_typed_helpers_shape(rt: Any, outbox_path: Path) -> None:
    auditel.tool_call("search", phase="intent", call_id="c1", arguments={"q": "secret plans"})
    auditel.tool_call("search", phase="outcome", call_id="c1", result=["a", "b"], duration_ms=3.5)
    auditel.model_call("gpt-x", provider="openai", input_tokens=10, output_tokens=5, tool_calls=[{"name": "search", "id": "c1", "arguments": {"q": 1}}])
    auditel.policy_decision("deny", policy_id="egress", rule_id="r1", reason="outside", tool_name="send_email")
    auditel.file_access("/etc/hosts", operation="read", size_bytes=10)
    auditel.network_access("https://api.example.com/x", method="GET", status_code=200)
    auditel.session_start()
    auditel.session_end(outcome="success")
    auditel.heartbeat()
    recs = user_records(outbox_path)
    names = [r["event_name"] for r in recs]
    assert names == [
        S.EV_TOOL_CALL, S.EV_TOOL_CALL, S.EV_MODEL_CALL, S.EV_POLICY_DECISION, S.EV_FILE_ACCESS,
        S.EV_NETWORK_ACCESS, S.EV_SESSION_START, S.EV_SESSION_END, S.EV_HEARTBEAT,
    ]
    intent, outcome, model, policy, file_rec, net = (r["attributes"] for r in recs[:6])
    assert intent[S.A_PHASE] == "intent" and S.A_OUTCOME not in intent
    assert intent[S.A_ARGS_DIGEST].startswith("hmac-sha256:") and intent[S.A_ARGS_SIZE] > 0
    assert S.GEN_AI_TOOL_ARGS not in intent  # content off by default
    assert outcome[S.A_OUTCOME] == "success" and outcome[S.A_DURATION_MS] == 3.5
    assert model[S.GEN_AI_PROVIDER] == "openai" and model[S.GEN_AI_INPUT_TOKENS] == 10
    assert model["audit.tool_calls.names"] == ["search"]
    assert policy[S.A_POLICY_VERDICT] == "deny" and policy[S.A_POLICY_ACTION_TAKEN] == "blocked"
    assert policy[S.A_OUTCOME] == "denied" and policy[S.A_POLICY_RULE_ID] == "r1"
    assert file_rec["file.path"] == "/etc/hosts" and file_rec[S.A_ACTION] == "file.read"
    assert net["server.address"] == "api.example.com"
    assert b"secret plans" not in outbox_path.read_bytes()


def test_content_recorded_only_when_opted_in(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "EVENT_ONLY")
    path = tmp_path / "o.db"
    auditel.configure(outbox=str(path))
    auditel.tool_call("search", phase="intent", arguments={"q": "visible plans"})
    (rec,) = user_records(path)
    assert "visible plans" in rec["attributes"][S.GEN_AI_TOOL_ARGS]


def test_keyed_digest_is_not_a_plain_hash(rt: Any, outbox_path: Path) -> None:
    auditel.tool_call("t", phase="intent", arguments="yes")
    (rec,) = user_records(outbox_path)
    digest = rec["attributes"][S.A_ARGS_DIGEST].split(":", 1)[1]
    assert digest != hashlib.sha256(b"yes").hexdigest()
    # same value, same deployment key -> same digest (auditors can match equal values)
    auditel.tool_call("t", phase="intent", arguments="yes")
    assert user_records(outbox_path)[1]["attributes"][S.A_ARGS_DIGEST] == rec["attributes"][S.A_ARGS_DIGEST]


@pytest.mark.parametrize("key_len", [16, 32, 64, 65, 200])
def test_keyed_digests_are_hmac_sha256_of_the_content_bytes(key_len: int) -> None:
    """The prepared-pad digester gives exactly HMAC-SHA256(key, content_bytes(value)), for short,
    block-sized and over-long keys: anyone with the key can recompute a digest with hmac alone."""
    key = bytes((i * 7 + 1) % 256 for i in range(key_len))
    digester = KeyedDigester(key)
    for value in ("yes", "", b"\x00raw", {"b": [1, "two"], "a": None}, [{"role": "user", "content": "hi \u00e9"}]):
        data = content_bytes(value)
        assert digester(value) == ("hmac-sha256:" + hmac.digest(key, data, "sha256").hex(), len(data))


def test_the_records_digest_is_recomputable_with_the_deployment_key(rt: Any, outbox_path: Path) -> None:
    auditel.tool_call("t", phase="intent", arguments={"q": "weather in Paris"})
    (rec,) = user_records(outbox_path)
    expected = hmac.digest(rt.digest_key, content_bytes({"q": "weather in Paris"}), "sha256").hex()
    assert rec["attributes"][S.A_ARGS_DIGEST] == "hmac-sha256:" + expected


def test_subscribers_get_records_and_failures_are_isolated(rt: Any) -> None:
    got: list[dict[str, Any]] = []

    def broken(record: dict[str, Any]) -> None:
        raise RuntimeError("subscriber bug")

    auditel.subscribe(broken)
    auditel.subscribe(got.append)
    rid = auditel.emit("auditel.action")
    assert rid is not None
    assert [r["attributes"][S.A_RECORD_ID] for r in got] == [rid]
    assert auditel.status()["errors"]["subscriber"] == 1
    auditel.unsubscribe(got.append)
    auditel.emit("auditel.action")
    assert len(got) == 1


def test_sinks_in_memory_jsonl_and_fanout(outbox_path: Path, tmp_path: Path) -> None:
    mem = auditel.InMemorySink()
    jsonl_path = tmp_path / "trail.jsonl"
    jsonl = auditel.JsonlSink(jsonl_path)
    buf = io.StringIO()
    failing = auditel.FanoutSink([lambda r: 1 / 0, auditel.JsonlSink(buf)])
    auditel.configure(outbox=str(outbox_path), sinks=[mem, jsonl, failing])
    auditel.tool_call("t", phase="intent")
    auditel.model_call("m")
    auditel.flush()
    # sinks see every committed record, the stream-start record first
    assert [r["event_name"] for r in mem.records()] == [S.EV_STREAM_START, S.EV_TOOL_CALL, S.EV_MODEL_CALL]
    assert [r["event_name"] for r in mem.records(kind="model_call")] == [S.EV_MODEL_CALL]
    snap = mem.snapshot()
    mem.clear()
    assert len(mem) == 0 and len(snap) == 3
    lines = jsonl_path.read_text().splitlines()
    assert [json.loads(line)["event_name"] for line in lines] == [S.EV_STREAM_START, S.EV_TOOL_CALL, S.EV_MODEL_CALL]
    assert stat.S_IMODE(jsonl_path.stat().st_mode) == 0o600
    assert len(buf.getvalue().splitlines()) == 3 and failing.failures == 3
    # append mode: a second run keeps earlier lines
    auditel.JsonlSink(jsonl_path).emit({"event_name": "x"})
    assert len(jsonl_path.read_text().splitlines()) == 4


def test_jsonl_sink_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AUDITEL_JSONL", str(tmp_path / "env.jsonl"))
    auditel.configure(outbox=str(tmp_path / "o.db"))
    auditel.heartbeat()
    auditel.shutdown()
    names = [json.loads(line)["event_name"] for line in (tmp_path / "env.jsonl").read_text().splitlines()]
    assert S.EV_HEARTBEAT in names


def test_audited_sync_async_generator(rt: Any, outbox_path: Path) -> None:
    @auditel.audited
    def plain(x: int) -> int:
        return x * 2

    @auditel.audited("named.async")
    async def coro(x: int) -> int:
        return x + 1

    @auditel.audited("gen")
    def gen(n: int) -> Any:
        yield from range(n)

    @auditel.audited("boom")
    def boom() -> None:
        raise KeyError("nope")

    assert plain(4) == 8
    assert asyncio.run(coro(1)) == 2
    assert list(gen(3)) == [0, 1, 2]
    with pytest.raises(KeyError):
        boom()
    with pytest.raises(ValueError):
        with auditel.audited("ctx") as scope:
            scope.set_attribute("step", 1)
            raise ValueError("x")
    recs = [r["attributes"] for r in user_records(outbox_path)]
    actions = [(a[S.A_ACTION], a[S.A_OUTCOME]) for a in recs]
    assert actions == [
        ("test_audited_sync_async_generator.<locals>.plain", "success"),
        ("named.async", "success"),
        ("gen", "success"),
        ("boom", "failure"),
        ("ctx", "failure"),
    ]
    assert recs[2]["audit.result.items"] == 3
    assert recs[3][S.A_ERROR_TYPE] == "KeyError"
    assert recs[4]["step"] == 1 and recs[4][S.A_ERROR_TYPE] == "ValueError"
    assert all(a[S.A_DURATION_MS] >= 0 for a in recs)


def test_tool_decorator_intent_outcome_and_policy_denial(rt: Any, outbox_path: Path) -> None:
    ran: list[str] = []

    def policy(name: str, args: Any) -> Any:
        return ("deny", "not today") if args.get("to") == "eve" else "allow"

    @auditel.tool("send", policy=policy)
    def send(to: str) -> str:
        ran.append(to)
        return "ok"

    assert send("bob") == "ok"
    with pytest.raises(auditel.ToolDenied):
        send("eve")
    assert ran == ["bob"]
    recs = [r["attributes"] for r in user_records(outbox_path)]
    kinds = [(a.get(S.A_PHASE), a.get(S.A_POLICY_VERDICT), a.get(S.A_OUTCOME)) for a in recs]
    assert kinds == [
        ("intent", None, None), (None, "allow", "success"), ("outcome", None, "success"),
        ("intent", None, None), (None, "deny", "denied"), ("outcome", None, "denied"),
    ]
    # intent and outcome of one call share a correlation id and call id
    assert recs[3][S.A_CORRELATION_ID] == recs[5][S.A_CORRELATION_ID]
    assert recs[3][S.GEN_AI_TOOL_CALL_ID] == recs[5][S.GEN_AI_TOOL_CALL_ID]
    assert recs[4][S.A_REASON] == "not today"


def test_processor_attached_to_app_provider(outbox_path: Path) -> None:
    """The AuditProcessor is a plain OTel LogRecordProcessor: an app can add it to its own provider."""
    rt = auditel.configure(outbox=str(outbox_path))
    app_provider = LoggerProvider()
    app_provider.add_log_record_processor(rt.processor)
    logger = app_provider.get_logger("app")
    logger.emit(event_name="auditel.file_access", attributes={"file.path": "/tmp/x", "note": "sent Bearer 7f3k9QzP2mXa8LwR4tY6uV1n"})
    logger.emit(event_name="app.unrelated", attributes={"x": 1})  # not an audit event: ignored
    (rec,) = user_records(outbox_path)
    assert rec["event_name"] == "auditel.file_access"
    assert rec["scope"] == {"name": "app", "version": ""}
    assert rec["attributes"]["note"] == "sent Bearer [REDACTED:bearer_token]"


def test_status_keys(rt: Any) -> None:
    auditel.emit("auditel.action")
    st = auditel.status()
    for key in (
        "enabled", "outbox", "records_total", "pending", "shipped", "dead_lettered", "outbox_bytes",
        "oldest_pending_age_s", "session_id", "environment", "shipper_running", "errors",
    ):
        assert key in st
    assert st["records_total"] >= 2 and st["pending"] == st["records_total"] and st["outbox_bytes"] > 0


def test_configure_is_idempotent(outbox_path: Path) -> None:
    a = auditel.configure(outbox=str(outbox_path))
    b = auditel.configure(outbox=str(outbox_path))
    assert a is b


def test_otel_sdk_disabled_does_not_silently_switch_auditing_off(monkeypatch: pytest.MonkeyPatch, outbox_path: Path) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    auditel.configure(outbox=str(outbox_path))
    assert auditel.emit("auditel.action") is not None
    assert len(user_records(outbox_path)) == 1


def test_reopen_after_restart_appends_new_stream(outbox_path: Path) -> None:
    auditel.configure(outbox=str(outbox_path))
    auditel.emit("auditel.action")
    first_stream = auditel.status()["stream_id"]
    auditel.shutdown()
    auditel.configure(outbox=str(outbox_path))
    auditel.emit("auditel.action")
    streams = {r["attributes"][S.A_STREAM_ID] for r in user_records(outbox_path)}
    assert len(streams) == 2 and first_stream in streams
