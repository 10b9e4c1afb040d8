"""The span processor on a real SDK TracerProvider: conventions, dedup rules, allow-list, counters.

Spans here are started with the real OTel SDK tracer and carry the attributes each convention
documents (GenAI current and older spellings, MCP, OpenInference, OpenLLMetry, guardrails); the
framework tests (test_pydantic_ai.py, test_openinference_frameworks.py, test_dedup.py) show the
same with spans made by the real frameworks.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode

import auditel
from auditel.spans import attach as bridge_attach
from auditel.spans.conventions import classify
from genai_support import outbox_bytes
from spans.support import bridged, records

ARGS = {"city": "ARGS-MARKER-Paris", "unit": "celsius"}


@pytest.fixture
def tracer(outbox_path: Path) -> Iterator[trace.Tracer]:
    auditel.configure(outbox=str(outbox_path))
    provider = TracerProvider()
    assert bridge_attach.attach_to(provider)
    yield provider.get_tracer("some.framework", "1.2.3")


def phases(recs: list[dict[str, Any]]) -> list[str]:
    return [r["attributes"].get("audit.phase") for r in recs]


def test_genai_tool_intent_is_committed_before_on_start_returns(tracer: trace.Tracer, outbox_path: Path) -> None:
    attrs = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "get_weather",
        "gen_ai.tool.call.id": "call_1",
        "gen_ai.tool.call.arguments": json.dumps(ARGS),
    }
    with tracer.start_as_current_span("execute_tool get_weather", attributes=attrs) as span:
        # durable before the tool body runs: the framework's call has not returned yet
        assert phases(bridged(outbox_path, "tool_call")) == ["intent"]
        span.set_attribute("gen_ai.tool.call.result", "RESULT-MARKER")
    recs = bridged(outbox_path, "tool_call")
    assert phases(recs) == ["intent", "outcome"]
    rt = auditel.runtime.current()
    assert recs[0]["attributes"]["audit.arguments.digest"] == rt.digest(ARGS)[0]
    assert recs[1]["attributes"]["audit.result.digest"] == rt.digest("RESULT-MARKER")[0]
    assert recs[1]["attributes"]["gen_ai.tool.call.id"] == "call_1"
    assert recs[0]["attributes"]["audit.source"] == "some.framework"
    assert recs[0]["attributes"]["audit.source.version"] == "1.2.3"
    assert b"ARGS-MARKER" not in outbox_bytes(outbox_path) and b"RESULT-MARKER" not in outbox_bytes(outbox_path)


def test_older_genai_spellings_and_identity(tracer: trace.Tracer, outbox_path: Path) -> None:
    attrs = {
        "gen_ai.operation.name": "chat",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "m1",
        "gen_ai.usage.prompt_tokens": 7,
        "gen_ai.usage.completion_tokens": 3,
        "gen_ai.prompt": "PROMPT-MARKER",
        "gen_ai.agent.name": "a",
        "gen_ai.conversation.id": "conv-1",
        "session.id": "s-1",
    }
    with tracer.start_as_current_span("chat m1", attributes=attrs, kind=SpanKind.CLIENT):
        pass
    (rec,) = bridged(outbox_path, "model_call")
    a = rec["attributes"]
    assert (a["gen_ai.provider.name"], a["gen_ai.usage.input_tokens"], a["gen_ai.usage.output_tokens"]) == (
        "openai",
        7,
        3,
    )
    assert (a["gen_ai.agent.name"], a["gen_ai.conversation.id"]) == ("a", "conv-1")
    assert "audit.input.digest" in a and b"PROMPT-MARKER" not in outbox_bytes(outbox_path)


def test_mcp_tools_call_inside_execute_tool_is_one_action(tracer: trace.Tracer, outbox_path: Path) -> None:
    outer = {
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "get_time",
        "gen_ai.tool.call.arguments": "{}",
    }
    inner = {
        "mcp.method.name": "tools/call",
        "gen_ai.tool.name": "get_time",
        "jsonrpc.request.id": "7",
        "mcp.session.id": "sess-9",
    }
    with tracer.start_as_current_span("execute_tool get_time", attributes=outer):
        with tracer.start_as_current_span("tools/call get_time", attributes=inner, kind=SpanKind.CLIENT) as span:
            span.set_attribute("gen_ai.tool.call.result", "12:00")
    recs = bridged(outbox_path, "tool_call")
    assert phases(recs) == ["intent", "outcome"]
    assert recs[1]["attributes"]["mcp.session.id"] == "sess-9"  # the inner span's facts enrich the outcome
    assert "audit.result.digest" in recs[1]["attributes"]
    assert auditel.status()["span_bridge"]["deduplicated"] == 1


def test_mcp_server_side_span(tracer: trace.Tracer, outbox_path: Path) -> None:
    with tracer.start_as_current_span(
        "tools/call add", kind=SpanKind.SERVER, attributes={"mcp.method.name": "tools/call", "gen_ai.tool.name": "add"}
    ):
        pass
    with tracer.start_as_current_span("tools/list", attributes={"mcp.method.name": "tools/list"}):
        pass
    recs = bridged(outbox_path, "tool_call")
    assert phases(recs) == ["intent", "outcome"] and recs[0]["attributes"]["audit.mcp.side"] == "server"


def test_auditel_own_tool_span_outside_wins(outbox_path: Path) -> None:
    """@auditel.tool around a framework's tool span for the same tool: auditel's records only."""
    from genai_support import telemetry

    telemetry()  # a global SDK provider: auditel's own spans and the framework's share it
    auditel.configure(outbox=str(outbox_path))
    framework = trace.get_tracer("some.framework")

    @auditel.tool
    def get_weather(city: str, unit: str) -> str:
        with framework.start_as_current_span(
            "execute_tool get_weather",
            attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "get_weather"},
        ):
            return "ok"

    assert get_weather("Paris", "celsius") == "ok"
    recs = records(outbox_path, "tool_call")
    assert phases(recs) == ["intent", "outcome"] and bridged(outbox_path) == []
    assert auditel.status()["span_bridge"]["deduplicated"] == 1


def test_openinference_and_openllmetry_kinds(tracer: trace.Tracer, outbox_path: Path) -> None:
    with tracer.start_as_current_span("Agent.run", attributes={"openinference.span.kind": "AGENT"}):
        with tracer.start_as_current_span("step", attributes={"openinference.span.kind": "CHAIN"}):
            with tracer.start_as_current_span(
                "get_weather",
                attributes={
                    "openinference.span.kind": "TOOL",
                    "tool.name": "get_weather",
                    "input.value": json.dumps(ARGS),
                },
            ):
                pass
    with tracer.start_as_current_span(
        "wf.workflow", attributes={"traceloop.span.kind": "workflow", "traceloop.entity.name": "wf"}
    ):
        with tracer.start_as_current_span(
            "lookup.tool",
            attributes={
                "traceloop.span.kind": "tool",
                "traceloop.entity.name": "lookup",
                "traceloop.entity.input": json.dumps(ARGS),
            },
        ):
            pass
        with tracer.start_as_current_span(
            "openai.chat",
            attributes={
                "llm.request.type": "chat",
                "gen_ai.system": "openai",
                "gen_ai.request.model": "gpt-x",
                "gen_ai.prompt.0.content": "PROMPT-MARKER",
            },
        ):
            pass
    rt = auditel.runtime.current()
    tools = bridged(outbox_path, "tool_call")
    assert [t["attributes"]["gen_ai.tool.name"] for t in tools] == ["get_weather"] * 2 + ["lookup"] * 2
    assert {t["attributes"]["audit.arguments.digest"] for t in tools} == {rt.digest(ARGS)[0]}
    agents = bridged(outbox_path, "agent_run")
    assert [(a["attributes"]["gen_ai.agent.name"], a["attributes"]["audit.phase"]) for a in agents] == [
        ("Agent.run", "intent"),
        ("Agent.run", "outcome"),
        ("wf", "intent"),
        ("wf", "outcome"),
    ]
    assert agents[2]["attributes"]["gen_ai.operation.name"] == "invoke_workflow"
    (model,) = bridged(outbox_path, "model_call")
    assert model["attributes"]["gen_ai.request.model"] == "gpt-x" and "audit.input.digest" in model["attributes"]
    assert b"PROMPT-MARKER" not in outbox_bytes(outbox_path)


def test_guardrails_keep_verdict_and_action_apart(tracer: trace.Tracer, outbox_path: Path) -> None:
    with tracer.start_as_current_span(
        "apply_guardrail pii",
        attributes={
            "gen_ai.operation.name": "apply_guardrail",
            "gen_ai.guardrail.name": "pii",
            "gen_ai.guardrail.verdict": "deny",
            "gen_ai.guardrail.action": "redacted",
        },
    ):
        pass
    with tracer.start_as_current_span("no_secrets", attributes={"openinference.span.kind": "GUARDRAIL"}):
        pass
    recs = bridged(outbox_path, "policy_decision")
    assert [
        (r["attributes"]["audit.policy.verdict"], r["attributes"].get("audit.policy.action_taken")) for r in recs
    ] == [("deny", "redacted"), ("unknown", None)]  # OpenInference does not say whether it triggered: never guessed
    assert recs[0]["attributes"]["audit.policy.id"] == "pii"


def test_failure_status_and_exception_type(tracer: trace.Tracer, outbox_path: Path) -> None:
    with pytest.raises(ValueError):
        with tracer.start_as_current_span(
            "execute_tool t", attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "t"}
        ):
            raise ValueError("boom")
    out = bridged(outbox_path, "tool_call")[-1]["attributes"]
    assert (out["audit.outcome"], out["error.type"]) == ("failure", "ValueError")


def test_non_genai_spans_pass_and_counters(tracer: trace.Tracer, outbox_path: Path) -> None:
    # deltas: a span another test left open (an abandoned stream) may still be tracked
    before = auditel.status()["span_bridge"]
    for _ in range(50):
        with tracer.start_as_current_span("GET /x", attributes={"http.request.method": "GET"}):
            pass
    st = auditel.status()["span_bridge"]
    assert st["seen"] - before["seen"] >= 50
    assert st["mapped"] == before["mapped"] and st["open"] == before["open"]
    assert records(outbox_path) == []


def test_hostile_attribute_values_never_raise(tracer: trace.Tracer, outbox_path: Path) -> None:
    with tracer.start_as_current_span(
        "x",
        attributes={
            "gen_ai.operation.name": "chat",
            "gen_ai.usage.input_tokens": "lots",
            "gen_ai.response.finish_reasons": "stop",
            "gen_ai.input.messages": "{bad json",
        },
    ):
        pass
    with tracer.start_as_current_span(
        "y", attributes={"openinference.span.kind": "TOOL", "input.value": "[1, 2"}
    ) as span:
        span.set_status(Status(StatusCode.ERROR))
    assert len(bridged(outbox_path)) == 3
    assert auditel.status()["span_bridge"]["errors"] == 0


def test_scope_allow_list(outbox_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITEL_SPAN_BRIDGE_SCOPES", "wanted.*")
    auditel.configure(outbox=str(outbox_path))
    provider = TracerProvider()
    bridge_attach.attach_to(provider)
    attrs = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m"}
    with provider.get_tracer("wanted.lib").start_as_current_span("chat m", attributes=attrs):
        pass
    with provider.get_tracer("other.lib").start_as_current_span("chat m", attributes=attrs):
        pass
    assert [r["attributes"]["audit.source"] for r in bridged(outbox_path)] == ["wanted.lib"]
    assert auditel.status()["span_bridge"]["skipped"] == 1


def test_bad_bridge_setting_is_refused_by_name(outbox_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITEL_SPAN_BRIDGE", "maybe")
    with pytest.raises(auditel.ConfigError, match="AUDITEL_SPAN_BRIDGE='maybe'.*true, false"):
        auditel.configure(outbox=str(outbox_path))


def test_classify_is_pure_and_total() -> None:
    assert classify(None) is None and classify({}) is None
    assert classify({"http.request.method": "GET"}) is None
    assert classify({"gen_ai.operation.name": "embeddings", "gen_ai.request.model": "e"}).operation == "embeddings"
    assert classify({"openinference.span.kind": "RETRIEVER"}) is None
    assert classify({"traceloop.span.kind": "task"}) is None


APP_SETS_PROVIDER_LATER = r"""
import json, sys
import auditel
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
rt = auditel.configure(outbox=sys.argv[1])
provider = TracerProvider()          # the app sets its provider after auditel started
trace.set_tracer_provider(provider)
with trace.get_tracer("late.framework").start_as_current_span(
        "execute_tool t", attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "t"}):
    pass
print(json.dumps(auditel.status()["span_bridge"]))
print(type(trace.get_tracer_provider()).__name__)
"""


def test_provider_set_after_configure_gets_the_bridge(outbox_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", APP_SETS_PROVIDER_LATER, str(outbox_path)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    status_line, provider_name = proc.stdout.strip().splitlines()[-2:]
    assert json.loads(status_line)["mapped"] == 1
    assert provider_name == "TracerProvider"  # the app's own provider, not replaced
    assert phases(bridged(outbox_path, "tool_call")) == ["intent", "outcome"]


def test_adopting_provider_hands_over_to_the_apps_provider() -> None:
    """Zero-code's global provider: tracers handed out early start spans on the app's provider once set."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
        InMemorySpanExporter,
    )

    adopter = bridge_attach.AdoptingTracerProvider()
    early = adopter.get_tracer("early.lib")
    with early.start_as_current_span("before any provider") as span:
        assert not span.is_recording()
    own, own_spans = TracerProvider(), InMemorySpanExporter()
    own.add_span_processor(SimpleSpanProcessor(own_spans))
    adopter.expect_own()
    assert adopter.offer(own)  # the configurator's provider (OTEL_TRACES_EXPORTER)
    with early.start_as_current_span("zero-code"):
        pass
    app, app_spans = TracerProvider(), InMemorySpanExporter()
    app.add_span_processor(SimpleSpanProcessor(app_spans))
    assert adopter.offer(app) and adopter.app_provider_set  # the app's own provider takes over
    with early.start_as_current_span("app"):
        pass
    assert not adopter.offer(TracerProvider())  # a second app provider is refused, as the API refuses it
    assert [s.name for s in own_spans.get_finished_spans()] == ["zero-code"]
    assert [s.name for s in app_spans.get_finished_spans()] == ["app"]
    assert adopter.resource is app.resource  # attribute access goes to the current provider
