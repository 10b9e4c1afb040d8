"""The span bridge tracks auditel's own spans in constant time (issue 16).

auditel's own model-call, tool-call and agent spans are never mapped to records (auditel already
recorded them); the bridge only notes them for nesting. It used to classify them on start and on end,
reading every convention's keys and parsing their content, which cost an instrumented model call
~40 µs. These tests check that the bridge no longer reads them (``classify`` is not called for them)
and that what it notes still drives deduplication: an inner model-call span of another instrumentation
under auditel's own model call, or a tool span under auditel's own tool span, gives no second record.
Real OpenAI SDK against the local stand-in server, real SQLite outbox; ``classify`` is wrapped (not
replaced) to count its calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry import trace

import auditel
from auditel.spans import conventions as C
from spans.support import bridged, records

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture
def classified(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the spans the bridge classified (the real ``classify`` still runs)."""
    seen: list[str] = []
    real = C.classify

    def counting(attrs: Any, span_name: str = "", span_kind: str = "") -> Any:
        seen.append(span_name)
        return real(attrs, span_name, span_kind)

    monkeypatch.setattr(C, "classify", counting)
    return seen


def test_own_model_call_span_is_not_classified(audit: Path, llm_server: Any, classified: list[str]) -> None:
    auditel.instrument("openai")
    client = openai.OpenAI(base_url=llm_server.openai_base_url, api_key="sk-test", max_retries=0)
    open_before = auditel.status()["span_bridge"]["open"]  # the bridge is per process: earlier tests' spans
    client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    list(client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True))
    assert classified == []
    assert len(records(audit, "model_call")) == 2
    snap = auditel.status()["span_bridge"]
    assert snap["seen"] >= 2 and snap["errors"] == 0
    assert snap["open"] == open_before  # what was noted at start was forgotten at end


def test_own_tool_span_is_not_classified(audit: Path, classified: list[str]) -> None:
    @auditel.tool
    def lookup(city: str) -> str:
        return "sunny"

    assert lookup("Paris") == "sunny"
    assert classified == []
    assert [r["attributes"]["audit.phase"] for r in records(audit, "tool_call")] == ["intent", "outcome"]


def test_model_span_inside_own_model_call_is_still_deduplicated(
    audit: Path, llm_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the bridge notes of auditel's own model span still covers another instrumentation's
    model-call span nested in it (a GenAI ``chat`` span around the SDK method, inside auditel's)."""
    from openai.resources.chat.completions import Completions

    tracer = trace.get_tracer("other.instrumentation")
    original = Completions.create

    def create(self: Any, *args: Any, **kwargs: Any) -> Any:
        attrs = {"gen_ai.operation.name": "chat", "gen_ai.request.model": "gpt-4o"}
        with tracer.start_as_current_span("chat gpt-4o", attributes=attrs):
            return original(self, *args, **kwargs)

    monkeypatch.setattr(Completions, "create", create)  # auditel wraps this one: its span is the outer
    auditel.instrument("openai")
    client = openai.OpenAI(base_url=llm_server.openai_base_url, api_key="sk-test", max_retries=0)
    assert client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices
    assert len(records(audit, "model_call")) == 1
    assert bridged(audit, "model_call") == []
    assert auditel.status()["span_bridge"]["deduplicated"] >= 1


def test_tool_span_inside_own_tool_span_is_still_deduplicated(audit: Path) -> None:
    tracer = trace.get_tracer("other.instrumentation")

    @auditel.tool
    def lookup(city: str) -> str:
        with tracer.start_as_current_span(
            "execute_tool lookup", attributes={"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "lookup"}
        ):
            return "sunny"

    assert lookup("Paris") == "sunny"
    assert len(records(audit, "tool_call")) == 2  # auditel's intent and outcome, nothing bridged
    assert bridged(audit, "tool_call") == []
    assert auditel.status()["span_bridge"]["deduplicated"] >= 1
