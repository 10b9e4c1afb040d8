"""The span event pointing at a record does not repeat what the span already holds (issue 16).

The SDK checks and copies every event attribute, so a key the active span already carries with the
same value (auditel's own model-call span names its model; its tool span the tool, the call id and
the correlation id) is left out of the event; a key the span lacks, or holds with another value, is
kept. Real OpenAI SDK against the local stand-in server, real SQLite outbox, the SDK's in-memory
span exporter.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
from opentelemetry import trace

import auditel
from auditel.record import schema as S
from fake_llm_server import FakeLLMServer
from genai_support import model_records, telemetry


@pytest.fixture
def spans(outbox_path: Path) -> Iterator[Any]:
    exporter, _ = telemetry()
    exporter.clear()
    auditel.configure(outbox=str(outbox_path))
    yield exporter
    auditel.uninstrument()
    exporter.clear()


def test_own_model_span_event_points_at_record_without_repeating_the_model(spans: Any, outbox_path: Path) -> None:
    auditel.instrument("openai")
    with FakeLLMServer() as server:
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    (record,) = model_records(outbox_path)
    (span,) = [s for s in spans.get_finished_spans() if s.instrumentation_scope.name == "auditel"]
    (event,) = span.events
    assert event.name == S.EV_MODEL_CALL
    assert span.attributes[S.GEN_AI_REQUEST_MODEL] == "gpt-4o"
    assert S.GEN_AI_REQUEST_MODEL not in event.attributes  # the span holds it
    attrs = record["attributes"]
    for key in (S.A_RECORD_ID, S.A_STREAM_ID, S.A_SEQ, S.A_ACTION, S.A_OUTCOME):
        assert event.attributes[key] == attrs[key], key
    assert attrs[S.GEN_AI_REQUEST_MODEL] == "gpt-4o"  # the record itself is unchanged


def test_own_tool_span_events_keep_what_the_span_lacks(spans: Any) -> None:
    @auditel.tool
    def lookup(city: str) -> str:
        return "sunny"

    assert lookup("Paris") == "sunny"
    (span,) = [s for s in spans.get_finished_spans() if s.instrumentation_scope.name == "auditel"]
    intent, outcome = span.events
    for event in (intent, outcome):
        for key in (S.GEN_AI_TOOL_NAME, S.GEN_AI_TOOL_CALL_ID, S.A_CORRELATION_ID):
            assert span.attributes[key] and key not in event.attributes, key
        assert event.attributes[S.A_RECORD_ID] and event.attributes[S.A_ACTION] == "tool.call"
    assert intent.attributes[S.A_PHASE] == "intent" and outcome.attributes[S.A_PHASE] == "outcome"
    assert outcome.attributes[S.A_OUTCOME] == "success"


def test_a_value_the_span_holds_differently_is_kept(spans: Any) -> None:
    tracer = trace.get_tracer("app")
    with tracer.start_as_current_span("step", attributes={S.GEN_AI_TOOL_NAME: "other"}) as span:
        auditel.tool_call("search", phase="intent", call_id="c1")
    (event,) = span.events
    assert event.attributes[S.GEN_AI_TOOL_NAME] == "search"
    assert event.attributes[S.GEN_AI_TOOL_CALL_ID] == "c1"


def test_span_limits_still_cut_the_event(spans: Any) -> None:
    """With an attribute length limit the event goes through the SDK's own checks, which cut it."""
    from opentelemetry.sdk.trace import SpanLimits, TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider(span_limits=SpanLimits(max_attribute_length=4))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("app").start_as_current_span("step") as span:
        rid = auditel.tool_call("search-the-web", phase="intent", call_id="call-12345")
    (event,) = span.events
    assert rid and len(rid) > 4
    assert event.attributes[S.A_RECORD_ID] == rid[:4]
    assert event.attributes[S.GEN_AI_TOOL_NAME] == "sear"


def test_event_attributes_are_read_only(spans: Any) -> None:
    with trace.get_tracer("app").start_as_current_span("step") as span:
        auditel.tool_call("search", phase="intent")
    (event,) = span.events
    with pytest.raises(TypeError):
        event.attributes[S.A_ACTION] = "changed"  # type: ignore[index]
