"""Dedup rule 4: auditel's own tool call inside a framework's tool span for the same tool is one action.

Before: ``@auditel.tool`` run inside a framework's ``execute_tool`` span (Pydantic AI, Strands...)
gave two intent/outcome pairs, the framework's (span bridge) and auditel's. Now the framework's
intent (committed first, before the tool ran) is continued by auditel's own call: one intent, one
outcome (auditel's, which sees the function's real result or exception), one correlation id.
Real OTel SDK provider (the global one: auditel's spans and the framework's share it, as in an app)
and the real Pydantic AI against the local stand-in model server.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace

import auditel
from fake_llm_server import REPLY_TEXT, TOOL_ARGUMENTS, TOOL_CALL_ID
from genai_support import outbox_bytes, telemetry
from spans.support import bridged, pydantic_ai_agent, records

ARGS = {"city": "ARGS-MARKER-Paris", "unit": "celsius"}


def phases(recs: list[dict[str, Any]]) -> list[str]:
    return [r["attributes"].get("audit.phase") for r in recs]


@pytest.fixture
def framework(outbox_path: Path) -> trace.Tracer:
    telemetry()  # a global SDK provider
    auditel.configure(outbox=str(outbox_path))
    return trace.get_tracer("some.framework", "1.0")


def _framework_tool_span(framework: trace.Tracer, name: str, body: Any, call_id: str | None = "call_1") -> Any:
    attrs = {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": name}
    if call_id:
        attrs["gen_ai.tool.call.id"] = call_id
    with framework.start_as_current_span(f"execute_tool {name}", attributes=attrs) as span:
        out = body()
        span.set_attribute("gen_ai.tool.call.result", "RESULT-MARKER")
        return out


def test_own_tool_inside_framework_tool_span_is_one_intent_and_one_outcome(
    framework: trace.Tracer, outbox_path: Path
) -> None:
    @auditel.tool
    def get_weather(city: str, unit: str) -> str:
        return "RESULT-MARKER-sunny"

    out = _framework_tool_span(framework, "get_weather", lambda: get_weather(**ARGS))
    assert out == "RESULT-MARKER-sunny"
    recs = records(outbox_path, "tool_call")
    assert phases(recs) == ["intent", "outcome"]
    intent, outcome = recs
    # the intent is the framework's (committed before the tool ran), the outcome auditel's own
    assert intent["attributes"]["audit.source"] == "some.framework"
    assert "audit.source" not in outcome["attributes"]
    assert intent["attributes"]["audit.correlation.id"] == outcome["attributes"]["audit.correlation.id"]
    assert outcome["attributes"]["gen_ai.tool.call.id"] == "call_1"  # the model's call id, not a made-up one
    rt = auditel.runtime.current()
    assert outcome["attributes"]["audit.arguments.digest"] == rt.digest(ARGS)[0]
    assert outcome["attributes"]["audit.result.digest"] == rt.digest("RESULT-MARKER-sunny")[0]
    assert outcome["attributes"]["audit.outcome"] == "success"
    assert auditel.status()["span_bridge"]["deduplicated"] >= 1
    assert b"ARGS-MARKER" not in outbox_bytes(outbox_path)


def test_scope_sees_the_framework_intent(framework: trace.Tracer, outbox_path: Path) -> None:
    seen: dict[str, Any] = {}

    def body() -> None:
        with auditel.tool("get_weather") as scope:
            seen["intent"] = scope.intent_record_id
            seen["correlation"] = scope.correlation_id

    _framework_tool_span(framework, "get_weather", body, call_id=None)
    intent, outcome = records(outbox_path, "tool_call")
    assert seen["intent"] == intent["attributes"]["audit.record.id"]
    assert seen["correlation"] == intent["attributes"]["audit.correlation.id"]
    assert outcome["attributes"]["audit.correlation.id"] == seen["correlation"]
    # no model-given call id anywhere: the one id that names the call is the correlation id
    assert outcome["attributes"]["gen_ai.tool.call.id"] == seen["correlation"]


def test_failure_and_exception_unchanged(framework: trace.Tracer, outbox_path: Path) -> None:
    @auditel.tool
    def get_weather(city: str, unit: str) -> str:
        raise ValueError("broke")

    with pytest.raises(ValueError, match="broke"):
        _framework_tool_span(framework, "get_weather", lambda: get_weather(**ARGS))
    recs = records(outbox_path, "tool_call")
    assert phases(recs) == ["intent", "outcome"]
    assert recs[1]["attributes"]["audit.outcome"] == "failure"
    assert recs[1]["attributes"]["error.type"] == "ValueError"


def test_policy_denial_inside_framework_span(framework: trace.Tracer, outbox_path: Path) -> None:
    @auditel.tool(policy=lambda name, args: ("deny", "not today"))
    def get_weather(city: str, unit: str) -> str:
        return "never"

    with pytest.raises(auditel.ToolDenied):
        _framework_tool_span(framework, "get_weather", lambda: get_weather(**ARGS))
    recs = records(outbox_path, "tool_call")
    assert phases(recs) == ["intent", "outcome"]
    assert recs[1]["attributes"]["audit.outcome"] == "denied"
    (decision,) = records(outbox_path, "policy_decision")
    corr = recs[0]["attributes"]["audit.correlation.id"]
    assert decision["attributes"]["audit.correlation.id"] == corr == recs[1]["attributes"]["audit.correlation.id"]


def test_different_tool_inside_is_its_own_action(framework: trace.Tracer, outbox_path: Path) -> None:
    @auditel.tool
    def lookup_city(city: str) -> str:
        return "FR"

    _framework_tool_span(framework, "get_weather", lambda: lookup_city("Paris"))
    recs = records(outbox_path, "tool_call")
    assert phases(recs) == ["intent", "intent", "outcome", "outcome"]
    assert len({r["attributes"]["audit.correlation.id"] for r in recs}) == 2


def test_two_own_calls_inside_one_framework_span(framework: trace.Tracer, outbox_path: Path) -> None:
    """Only the first own call continues the framework's action; a second one is its own pair."""

    @auditel.tool
    def get_weather(city: str, unit: str) -> str:
        return "x"

    _framework_tool_span(framework, "get_weather", lambda: (get_weather(**ARGS), get_weather(**ARGS)))
    recs = records(outbox_path, "tool_call")
    assert sorted(phases(recs)) == ["intent", "intent", "outcome", "outcome"]
    by_corr: dict[str, list[str]] = {}
    for r in recs:
        by_corr.setdefault(r["attributes"]["audit.correlation.id"], []).append(r["attributes"]["audit.phase"])
    assert sorted(by_corr.values()) == [["intent", "outcome"], ["intent", "outcome"]]


def test_bridge_off_keeps_auditel_pair(outbox_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    telemetry()
    monkeypatch.setenv("AUDITEL_SPAN_BRIDGE", "false")
    auditel.configure(outbox=str(outbox_path))

    @auditel.tool
    def get_weather(city: str, unit: str) -> str:
        return "x"

    _framework_tool_span(trace.get_tracer("some.framework"), "get_weather", lambda: get_weather(**ARGS))
    recs = records(outbox_path, "tool_call")
    assert phases(recs) == ["intent", "outcome"] and bridged(outbox_path) == []


def test_pydantic_ai_tool_decorated_with_auditel_tool(outbox_path: Path, llm_server: Any) -> None:
    """The real framework: a Pydantic AI tool function that is also an ``@auditel.tool``."""
    pytest.importorskip("pydantic_ai")
    from pydantic_ai import Agent

    telemetry()
    auditel.configure(outbox=str(outbox_path))
    Agent.instrument_all(True)
    try:
        agent = pydantic_ai_agent(llm_server.openai_base_url, "weather_agent")

        @agent.tool_plain
        @auditel.tool
        def get_weather(city: str, unit: str) -> str:
            return "RESULT-MARKER-sunny"

        assert agent.run_sync("weather?").output == REPLY_TEXT
    finally:
        Agent.instrument_all(False)
    recs = records(outbox_path, "tool_call")
    assert phases(recs) == ["intent", "outcome"]
    intent, outcome = recs
    assert intent["attributes"]["audit.source"] == "pydantic-ai"
    assert "audit.source" not in outcome["attributes"]
    assert intent["attributes"]["audit.correlation.id"] == outcome["attributes"]["audit.correlation.id"]
    assert outcome["attributes"]["gen_ai.tool.call.id"] == TOOL_CALL_ID
    rt = auditel.runtime.current()
    assert intent["attributes"]["audit.arguments.digest"] == rt.digest(TOOL_ARGUMENTS)[0]
    assert outcome["attributes"]["audit.arguments.digest"] == rt.digest(TOOL_ARGUMENTS)[0]
    assert json.dumps(outcome).count("RESULT-MARKER") == 0
