"""Span shapes of frameworks that start GenAI spans bare and describe them afterwards.

Strands Agents (``strands.telemetry.tracer``, 1.62) starts ``execute_tool X`` /
``invoke_agent X`` / ``chat`` with no attributes and sets them right after the start; by default
Strands puts content in span *events* of the older GenAI conventions (``gen_ai.user.message``,
``gen_ai.tool.message``, ``gen_ai.choice``) or, with ``OTEL_SEMCONV_STABILITY_OPT_IN=
gen_ai_latest_experimental``, in the ``gen_ai.client.inference.operation.details`` event. These tests
reproduce exactly those call sequences on a real SDK TracerProvider; test_strands_native.py runs the
real framework.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import StatusCode

import auditel
from auditel.spans import attach as bridge_attach
from genai_support import outbox_bytes
from spans.support import bridged

ARGS = {"city": "ARGS-MARKER-Paris", "unit": "celsius"}
RESULT = [{"text": "RESULT-MARKER-sunny"}]


@pytest.fixture
def tracer(outbox_path: Path) -> Iterator[trace.Tracer]:
    auditel.configure(outbox=str(outbox_path))
    provider = TracerProvider()
    assert bridge_attach.attach_to(provider)
    yield provider.get_tracer("strands.telemetry.tracer")


def phases(recs: list[dict[str, Any]]) -> list[str]:
    return [r["attributes"].get("audit.phase") for r in recs]


def _strands_tool_span(tracer: trace.Tracer, outbox: Path, seen_inside: list[list[str]]) -> None:
    """What Strands' Tracer.start_tool_call_span / end_tool_call_span do (older conventions)."""
    span = tracer.start_span("execute_tool get_weather")  # bare: no attributes at start
    span.set_attributes(
        {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.system": "strands-agents",
            "gen_ai.tool.name": "get_weather",
            "gen_ai.tool.call.id": "call_1",
        }
    )
    span.add_event("gen_ai.tool.message", {"role": "tool", "content": json.dumps(ARGS), "id": "call_1"})
    with trace.use_span(span, end_on_exit=False):
        seen_inside.append(phases(bridged(outbox, "tool_call")))  # the tool body runs here
    span.add_event("gen_ai.choice", {"message": json.dumps(RESULT), "id": "call_1"})
    span.set_attribute("gen_ai.tool.status", "success")
    span.set_status(StatusCode.OK)
    span.end()


def test_tool_span_described_after_start_gets_intent_and_outcome(tracer: trace.Tracer, outbox_path: Path) -> None:
    inside: list[list[str]] = []
    _strands_tool_span(tracer, outbox_path, inside)
    # the intent is durable before the tool body runs, named from the span name (GenAI convention)
    assert inside == [["intent"]]
    intent, outcome = bridged(outbox_path, "tool_call")
    assert intent["attributes"]["gen_ai.tool.name"] == "get_weather"
    assert outcome["attributes"]["gen_ai.tool.name"] == "get_weather"
    assert intent["attributes"]["audit.correlation.id"] == outcome["attributes"]["audit.correlation.id"]
    assert intent["span_id"] == outcome["span_id"]
    # the call id and arguments only exist after the start: they are on the outcome
    rt = auditel.runtime.current()
    assert outcome["attributes"]["gen_ai.tool.call.id"] == "call_1"
    assert outcome["attributes"]["audit.arguments.digest"] == rt.digest(ARGS)[0]
    assert outcome["attributes"]["audit.result.digest"] == rt.digest(RESULT)[0]
    assert outcome["attributes"]["audit.outcome"] == "success"
    assert outcome["attributes"]["audit.source"] == "strands.telemetry.tracer"
    stored = outbox_bytes(outbox_path)
    assert b"ARGS-MARKER" not in stored and b"RESULT-MARKER" not in stored


def test_agent_span_described_after_start(tracer: trace.Tracer, outbox_path: Path) -> None:
    span = tracer.start_span("invoke_agent weather_agent")
    span.set_attributes({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "weather_agent"})
    span.add_event("gen_ai.user.message", {"content": json.dumps([{"text": "USER-MARKER"}])})
    assert phases(bridged(outbox_path, "agent_run")) == ["intent"]
    span.add_event("gen_ai.choice", {"message": "COMPLETION-MARKER", "finish_reason": "end_turn"})
    span.set_status(StatusCode.ERROR, "boom")
    span.end()
    intent, outcome = bridged(outbox_path, "agent_run")
    assert intent["attributes"]["gen_ai.agent.name"] == outcome["attributes"]["gen_ai.agent.name"] == "weather_agent"
    assert outcome["attributes"]["audit.outcome"] == "failure"
    stored = outbox_bytes(outbox_path)
    assert b"USER-MARKER" not in stored and b"COMPLETION-MARKER" not in stored


def _strands_chat_span(tracer: trace.Tracer) -> None:
    span = tracer.start_span("chat")
    span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": "m-1"})
    span.add_event("gen_ai.system.message", {"content": json.dumps([{"text": "PROMPT-MARKER"}])})
    span.add_event("gen_ai.user.message", {"content": json.dumps([{"text": "USER-MARKER"}])})
    span.add_event(
        "gen_ai.choice", {"finish_reason": "end_turn", "message": json.dumps([{"text": "COMPLETION-MARKER"}])}
    )
    span.set_attributes({"gen_ai.usage.input_tokens": 21, "gen_ai.usage.output_tokens": 9})
    span.end()


def test_chat_span_content_events_become_digests(tracer: trace.Tracer, outbox_path: Path) -> None:
    _strands_chat_span(tracer)
    (rec,) = bridged(outbox_path, "model_call")
    attrs = rec["attributes"]
    assert attrs["gen_ai.request.model"] == "m-1"
    assert attrs["gen_ai.usage.input_tokens"] == 21
    assert attrs["audit.input.digest"].startswith("hmac-sha256:")
    assert attrs["audit.output.digest"].startswith("hmac-sha256:")
    assert attrs["gen_ai.response.finish_reasons"] == ["end_turn"]
    stored = outbox_bytes(outbox_path)
    for marker in (b"PROMPT-MARKER", b"USER-MARKER", b"COMPLETION-MARKER"):
        assert marker not in stored


def test_chat_span_content_events_kept_when_capture_opts_in(outbox_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    auditel.configure(outbox=str(outbox_path))
    provider = TracerProvider()
    assert bridge_attach.attach_to(provider)
    _strands_chat_span(provider.get_tracer("strands.telemetry.tracer"))
    stored = outbox_bytes(outbox_path)
    assert b"USER-MARKER" in stored and b"COMPLETION-MARKER" in stored


def test_latest_conventions_details_event(tracer: trace.Tracer, outbox_path: Path) -> None:
    """OTEL_SEMCONV_STABILITY_OPT_IN=gen_ai_latest_experimental: messages in the details event."""
    messages = [{"role": "user", "parts": [{"type": "text", "content": "USER-MARKER"}]}]
    span = tracer.start_span("chat")
    span.set_attributes({"gen_ai.operation.name": "chat", "gen_ai.request.model": "m-2"})
    span.add_event("gen_ai.client.inference.operation.details", {"gen_ai.input.messages": json.dumps(messages)})
    span.end()
    (rec,) = bridged(outbox_path, "model_call")
    assert rec["attributes"]["audit.input.digest"] == auditel.runtime.current().digest(messages)[0]
    assert b"USER-MARKER" not in outbox_bytes(outbox_path)


def test_finish_reasons_from_current_conventions_output_messages(tracer: trace.Tracer, outbox_path: Path) -> None:
    """The current conventions put finish_reason on each output message; Strands (latest conventions,
    attributes only) sets no gen_ai.response.finish_reasons."""
    output = [
        {"role": "assistant", "parts": [{"type": "text", "content": "COMPLETION-MARKER"}], "finish_reason": "stop"}
    ]
    span = tracer.start_span("chat")
    span.set_attributes(
        {"gen_ai.operation.name": "chat", "gen_ai.request.model": "m-3", "gen_ai.output.messages": json.dumps(output)}
    )
    span.end()
    (rec,) = bridged(outbox_path, "model_call")
    assert rec["attributes"]["gen_ai.response.finish_reasons"] == ["stop"]
    assert b"COMPLETION-MARKER" not in outbox_bytes(outbox_path)


def test_span_named_only_is_still_closed(tracer: trace.Tracer, outbox_path: Path) -> None:
    """An intent written from the span name alone always gets its outcome, even if no attribute follows."""
    with tracer.start_as_current_span("execute_tool lookup"):
        pass
    assert phases(bridged(outbox_path, "tool_call")) == ["intent", "outcome"]
    assert {r["attributes"]["gen_ai.tool.name"] for r in bridged(outbox_path, "tool_call")} == {"lookup"}


def test_names_that_are_no_genai_action_pass(tracer: trace.Tracer, outbox_path: Path) -> None:
    for name in ("execute_toolbox", "execute_tool ", "invoke_agents x", "GET /execute_tool x", "chat"):
        with tracer.start_as_current_span(name):
            pass
    assert bridged(outbox_path) == []
    from auditel.spans.conventions import named_start

    assert named_start("execute_tool  ") is None and named_start(None) is None


def test_event_content_is_pure_and_bounded() -> None:
    from auditel.spans.conventions import MISSING, add_event_content, classify

    class Ev:
        def __init__(self, name: Any, attributes: Any) -> None:
            self.name, self.attributes = name, attributes

    facts = classify({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "t"})
    assert facts is not None
    add_event_content(facts, [Ev(None, None), Ev(3, {"content": 1}), Ev("gen_ai.tool.message", {"content": "{bad"})])
    assert facts.arguments == "{bad"  # text that is not JSON is digested as text
    facts = classify({"gen_ai.operation.name": "chat"})
    assert facts is not None
    add_event_content(facts, [Ev("gen_ai.user.message", {"content": "x"})] * 10_000)
    assert facts.input_messages is not MISSING and len(facts.input_messages) == 256
