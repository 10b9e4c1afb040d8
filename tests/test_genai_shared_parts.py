"""The parts an instrumentation with wrappers of its own builds on (``genai.begin``, ``genai.SpanScope``,
``genai.finish_from``) and ``ToolRun.running()``: the host's exception comes back unchanged, the context
is restored, and the call or tool is recorded once, with the outcome the shared code promises.

Real auditel (configured on a fresh SQLite outbox), real OTel context; the "SDK calls" are plain Python
functions, because what is tested is the wrapper machinery, not a provider's wire shape (the provider
tests drive the same code through the real SDKs)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace

import auditel
from auditel.api.runs import ToolRun
from auditel.instrumentation import genai
from conftest import read_records
from genai_support import model_records


def _describe(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> genai.Request:
    return genai.Request(provider="test", operation="chat", model=kwargs.get("model"), attributes={})


def _from_response(facts: genai.ResponseFacts, response: Any) -> None:
    facts.response_id = response["id"]


def _tool_records(outbox: Path) -> list[dict[str, Any]]:
    return [r for r in read_records(outbox) if r["event_name"] == "auditel.tool_call"]


def _attrs(record: dict[str, Any]) -> dict[str, Any]:
    return record.get("attributes") or record


def test_begin_is_none_when_auditel_is_off_and_counts_a_request_it_cannot_describe(outbox_path: Path) -> None:
    assert genai.begin(_describe, None, (), {"model": "m"}) is None  # not configured: the call runs unrecorded
    auditel.configure(outbox=str(outbox_path))

    def broken(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> genai.Request:
        raise KeyError("unknown shape")

    assert genai.begin(broken, None, (), {}, "test_describe") is None
    assert auditel.status()["errors"].get("test_describe") == 1
    inv = genai.begin(_describe, None, (), {"model": "m"})
    assert isinstance(inv, genai.Invocation)
    inv.finish()
    assert [r["gen_ai.request.model"] for r in map(_attrs, model_records(outbox_path))] == ["m"]


def test_span_scope_restores_the_context_and_records_the_failure_once(outbox_path: Path) -> None:
    auditel.configure(outbox=str(outbox_path))
    before = otel_context.get_current()
    inv = genai.begin(_describe, None, (), {"model": "m"})
    assert inv is not None
    error = ValueError("the SDK failed")
    seen: list[Any] = []
    with pytest.raises(ValueError) as raised:
        with genai.SpanScope(inv):
            seen.append(trace.get_current_span())
            raise error
    assert raised.value is error  # the host's exception, unchanged
    assert seen == [inv.span]
    assert otel_context.get_current() == before
    inv.finish()  # already finished by the scope: ignored
    records = model_records(outbox_path)
    assert len(records) == 1
    assert _attrs(records[0])["audit.outcome"] == "failure"


def test_span_scope_outer_makes_the_sdk_underneath_stand_aside(outbox_path: Path) -> None:
    auditel.configure(outbox=str(outbox_path))
    inv = genai.begin(_describe, None, (), {"model": "m"})
    assert inv is not None

    async def call() -> bool:
        with genai.SpanScope(inv, outer=True):
            await asyncio.sleep(0)
            return genai.suppressed()

    assert asyncio.run(call()) is True  # an inner layer (openai under litellm) records nothing
    assert genai.suppressed() is False
    assert genai.begin(_describe, None, (), {"model": "inner"}) is not None


def test_finish_from_records_a_response_it_cannot_read_without_details(outbox_path: Path) -> None:
    auditel.configure(outbox=str(outbox_path))
    good = genai.begin(_describe, None, (), {"model": "m"})
    bad = genai.begin(_describe, None, (), {"model": "m"})
    assert good is not None and bad is not None
    genai.finish_from(good, _from_response, {"id": "resp-1"})
    genai.finish_from(bad, _from_response, {"no": "id"}, "test_response")
    assert auditel.status()["errors"].get("test_response") == 1
    first, second = (_attrs(r) for r in model_records(outbox_path))
    assert (first["audit.outcome"], first.get("gen_ai.response.id")) == ("success", "resp-1")
    assert (second["audit.outcome"], second.get("gen_ai.response.id")) == ("success", None)


def test_tool_run_running_records_the_failure_and_reraises(outbox_path: Path) -> None:
    auditel.configure(outbox=str(outbox_path))
    run = ToolRun("lookup", arguments={"q": 1}, tool_type="function").start()
    error = RuntimeError("tool broke")
    with pytest.raises(RuntimeError) as raised:
        with run.running():
            raise error
    assert raised.value is error
    ok = ToolRun("lookup", arguments={"q": 2}, tool_type="function").start()
    with ok.running():
        result = 42
    ok.finish(result=result)
    outcomes = [_attrs(r).get("audit.outcome") for r in _tool_records(outbox_path) if _attrs(r).get("audit.outcome")]
    assert outcomes == ["failure", "success"]
