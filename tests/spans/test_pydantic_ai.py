"""Pydantic AI with its built-in OTel instrumentation (GenAI conventions) -> auditel records.

Real pydantic-ai-slim[openai] against the local stand-in OpenAI server; the span bridge maps its
spans. No auditel instrumentation of the OpenAI SDK here (that combination is in test_dedup.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pydantic_ai")

from pydantic_ai import Agent

import auditel
from fake_llm_server import REPLY_TEXT, TOOL_ARGUMENTS
from genai_support import outbox_bytes, telemetry
from spans.support import bridged, pydantic_ai_agent

TOOL_RESULT = "RESULT-MARKER-sunny-21C"


@pytest.fixture(autouse=True)
def instrumented() -> Any:
    """Pydantic AI's documented switch for its built-in OTel instrumentation."""
    Agent.instrument_all(True)
    yield
    Agent.instrument_all(False)


def make_agent(server: Any, fail: bool = False) -> Agent:
    agent = pydantic_ai_agent(server.openai_base_url, "weather_agent", system_prompt="PROMPT-MARKER-system")

    @agent.tool_plain
    def get_weather(city: str, unit: str) -> str:
        if fail:
            raise RuntimeError("tool broke")
        return TOOL_RESULT

    return agent


def test_agent_run_tool_and_model_calls_are_recorded(outbox_path: Path, llm_server: Any) -> None:
    spans, _ = telemetry()
    rt = auditel.configure(outbox=str(outbox_path))
    assert rt is not None
    spans.clear()
    result = make_agent(llm_server).run_sync("USER-MARKER what is the weather in Paris?")
    assert result.output == REPLY_TEXT

    models = bridged(outbox_path, "model_call")
    tools = bridged(outbox_path, "tool_call")
    agents = bridged(outbox_path, "agent_run")
    assert len(models) == 2  # asks for the tool, then answers
    assert all(r["attributes"]["gen_ai.request.model"].startswith("agent-tools-once") for r in models)
    # Pydantic AI's chat spans, unless an OpenAI instrumentation left behind by another test (OpenLLMetry
    # cannot fully uninstrument) made an inner span for the same call: the innermost one records
    assert {r["attributes"]["audit.source"] for r in models} <= {
        "pydantic-ai",
        "opentelemetry.instrumentation.openai.v1",
    }
    assert models[0]["attributes"]["gen_ai.usage.input_tokens"] > 0
    assert "audit.input.digest" in models[0]["attributes"]

    assert [r["attributes"]["audit.phase"] for r in tools] == ["intent", "outcome"]
    intent, outcome = tools
    assert intent["attributes"]["gen_ai.tool.name"] == "get_weather"
    assert intent["attributes"]["audit.correlation.id"] == outcome["attributes"]["audit.correlation.id"]
    assert outcome["attributes"]["audit.outcome"] == "success"
    # the arguments digest is of the canonical form auditel's own tool_call records use
    assert intent["attributes"]["audit.arguments.digest"] == rt.digest(TOOL_ARGUMENTS)[0]
    assert outcome["attributes"]["audit.result.digest"] == rt.digest(TOOL_RESULT)[0]

    assert [r["attributes"]["audit.phase"] for r in agents] == ["intent", "outcome"]
    assert agents[0]["attributes"]["gen_ai.agent.name"] == "weather_agent"

    # every record carries the trace and span id of the span it came from
    by_span = {format(s.context.span_id, "016x"): s for s in spans.get_finished_spans()}
    for rec in models + tools + agents:
        span = by_span[rec["span_id"]]
        assert format(span.context.trace_id, "032x") == rec["trace_id"]
    assert by_span[intent["span_id"]].name == "execute_tool get_weather"

    # private by default: Pydantic AI put the content on its spans, auditel keeps none of it
    stored = outbox_bytes(outbox_path)
    for marker in (b"USER-MARKER", b"PROMPT-MARKER", b"ARGS-MARKER", b"RESULT-MARKER", b"COMPLETION-MARKER"):
        assert marker not in stored
    status = auditel.status()["span_bridge"]
    assert status["mapped"] >= 4 and status["errors"] == 0


def test_content_capture_opt_in_keeps_content(
    outbox_path: Path, llm_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    telemetry()
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_AND_EVENT")
    auditel.configure(outbox=str(outbox_path))
    make_agent(llm_server).run_sync("USER-MARKER what is the weather in Paris?")
    stored = outbox_bytes(outbox_path)
    assert b"ARGS-MARKER" in stored and b"RESULT-MARKER" in stored


def test_tool_failure_recorded_and_exception_unchanged(outbox_path: Path, llm_server: Any) -> None:
    telemetry()
    auditel.configure(outbox=str(outbox_path))
    agent = make_agent(llm_server, fail=True)
    with pytest.raises(RuntimeError, match="tool broke"):
        agent.run_sync("weather?")
    outcomes = [r for r in bridged(outbox_path, "tool_call") if r["attributes"]["audit.phase"] == "outcome"]
    assert outcomes and outcomes[-1]["attributes"]["audit.outcome"] == "failure"
    agent_out = [r for r in bridged(outbox_path, "agent_run") if r["attributes"]["audit.phase"] == "outcome"]
    assert agent_out[-1]["attributes"]["audit.outcome"] == "failure"


def test_bridge_off(outbox_path: Path, llm_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    telemetry()
    monkeypatch.setenv("AUDITEL_SPAN_BRIDGE", "false")
    auditel.configure(outbox=str(outbox_path))
    result = make_agent(llm_server).run_sync("weather?")
    assert result.output == REPLY_TEXT
    assert bridged(outbox_path) == []
    assert auditel.status()["span_bridge"] is None
