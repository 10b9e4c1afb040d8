"""The instrumentation plumbing (issue 11): one registry table that pyproject's entry points
match, ``instrument(tracer_provider=...)`` honoured as the OTel instrumentation convention
requires, the GenAI details-event switch owned by the settings, and the one ``Patcher`` used by
the model-call instrumentors (revocable under another vendor's wrapper)."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import tomllib
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import auditel
from auditel import instrumentation as registry
from auditel.instrumentation import genai
from auditel.instrumentation.openai import OpenAIInstrumentor
from auditel.instrumentation.patching import Patcher
from fake_llm_server import REPLY_TEXT, FakeLLMServer
from genai_support import model_records, telemetry

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


def test_entry_points_match_the_registry_table() -> None:
    entry_points = tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"]["opentelemetry_instrumentor"]
    assert entry_points == {i.name: i.target for i in registry.INSTRUMENTATIONS}
    assert registry.REGISTRY == entry_points
    assert set(registry.REQUIRES) == set(entry_points)
    audited = {i.framework for i in registry.INSTRUMENTATIONS}
    assert not audited & {import_name for import_name, _, _ in registry.NOT_AUDITED}


def test_every_registered_instrumentor_loads_and_names_its_framework() -> None:
    for row in registry.INSTRUMENTATIONS:
        inst = registry.get_instrumentor(row.name)
        deps = " ".join(inst.instrumentation_dependencies())
        assert row.distribution in deps, (row.name, deps)


def test_genai_keeps_the_names_provider_instrumentations_use() -> None:
    for name in (
        "Request",
        "Invocation",
        "start",
        "wrapper",
        "call_sync",
        "call_async",
        "StreamState",
        "SyncStreamProxy",
        "AsyncStreamProxy",
        "Patches",
        "Patcher",
        "content_policy",
        "field_of",
        "given",
        "listed",
        "parts_of_content",
        "tool_call_part",
        "text_part",
        "usage_total",
        "GenAIInstrumentor",
        "ResponseFacts",
    ):
        assert hasattr(genai, name), name
    assert genai.Patches is Patcher


def test_tracer_provider_given_to_instrument_receives_the_spans(tmp_path: Path, server: FakeLLMServer) -> None:
    """BaseInstrumentor convention: ``instrument(tracer_provider=p)`` sends the instrumentation's spans to p."""
    global_spans, _ = telemetry()
    global_spans.clear()
    own = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(own))
    auditel.configure(outbox=str(tmp_path / "outbox.db"))
    inst = OpenAIInstrumentor()
    inst.instrument(tracer_provider=provider)
    try:
        client = openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test")
        assert (
            client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices[0].message.content == REPLY_TEXT
        )
    finally:
        inst.uninstrument()
    ours = [s for s in own.get_finished_spans() if s.name == "chat gpt-4o"]
    assert len(ours) == 1
    assert not [s for s in global_spans.get_finished_spans() if s.name == "chat gpt-4o"]
    record = model_records(tmp_path / "outbox.db")[0]
    assert record["span_id"] == format(ours[0].context.span_id, "016x")  # the record sits in that span
    # auditel.instrument passes it on
    auditel.instrument("openai", tracer_provider=provider)
    try:
        openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test").chat.completions.create(
            model="gpt-4o", messages=MESSAGES
        )
    finally:
        auditel.uninstrument()
    assert len([s for s in own.get_finished_spans() if s.name == "chat gpt-4o"]) == 2
    # after uninstrument the global provider is used again
    auditel.instrument("openai")
    try:
        openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test").chat.completions.create(
            model="gpt-4o", messages=MESSAGES
        )
    finally:
        auditel.uninstrument()
    assert [s.name for s in global_spans.get_finished_spans()].count("chat gpt-4o") == 1
    assert len([s for s in own.get_finished_spans() if s.name == "chat gpt-4o"]) == 2


def test_emit_event_switch_comes_from_the_settings(tmp_path: Path) -> None:
    """configure(emit_events=False) is obeyed (genai used to read the variable itself and ignore it)."""
    auditel.configure(outbox=str(tmp_path / "a.db"), capture_content="EVENT_ONLY", emit_events=False)
    assert genai.content_policy().emit_event is False
    auditel.shutdown()
    from auditel import runtime

    runtime._reset_for_tests()
    auditel.configure(outbox=str(tmp_path / "b.db"), capture_content="EVENT_ONLY")
    assert genai.content_policy().emit_event is True  # the documented default: per content mode
    auditel.shutdown()
    runtime._reset_for_tests()
    auditel.configure(outbox=str(tmp_path / "c.db"))
    assert genai.content_policy().emit_event is False  # NO_CONTENT: no details event


def _thing_module(tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A small module, imported (and removed from ``sys.modules`` after the test)."""
    import importlib

    (tmp_path / f"{name}.py").write_text("class Thing:\n    def act(self, x):\n        return x * 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(sys.modules, name, types.ModuleType(name))  # so that it is removed when the test ends
    del sys.modules[name]
    return importlib.import_module(name)


def test_unpatch_under_another_wrapper_drops_only_our_layer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import wrapt

    mod = _thing_module(tmp_path, "auditel_layered", monkeypatch)
    calls: list[str] = []

    def ours(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        calls.append("ours")
        return wrapped(*args, **kwargs)

    def theirs(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        calls.append("theirs")
        return wrapped(*args, **kwargs)

    patcher = Patcher("test")
    patcher.patch(mod.__name__, "Thing.act", ours)
    wrapt.wrap_function_wrapper(mod.Thing, "act", theirs)  # another vendor, on top of ours
    assert mod.Thing().act(2) == 4 and calls == ["theirs", "ours"]
    patcher.unpatch_all()
    calls.clear()
    assert mod.Thing().act(2) == 4 and calls == ["theirs"]  # their layer stays, ours is gone


def test_optional_target_missing_is_not_an_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = _thing_module(tmp_path, "auditel_optional", monkeypatch)
    auditel.configure(outbox=str(tmp_path / "o.db"))
    patcher = Patcher("test")
    patcher.patch(mod.__name__, "Thing.gone_in_this_version", lambda w, i, a, k: w(*a, **k), optional=True)
    patcher.patch(mod.__name__, "Thing.missing", lambda w, i, a, k: w(*a, **k))
    assert auditel.status()["errors"] == {"test_patch": 1}
