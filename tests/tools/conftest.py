"""Fixtures for the tool/agent instrumentation tests: a configured auditel on a real SQLite
outbox in tmp_path, and an in-memory span exporter on the global TracerProvider."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any, Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import auditel
from auditel import runtime

SPANS = InMemorySpanExporter()
_provider = trace.get_tracer_provider()
if not isinstance(_provider, TracerProvider):  # the global provider can be set once per process
    _provider = TracerProvider()
    trace.set_tracer_provider(_provider)
_provider.add_span_processor(SimpleSpanProcessor(SPANS))


def read_outbox(path: Path) -> list[dict[str, Any]]:
    """Every committed record of an outbox file, in sequence order (read straight from SQLite)."""
    con = sqlite3.connect(str(path))
    try:
        rows = con.execute("SELECT data FROM records ORDER BY rid").fetchall()
    finally:
        con.close()
    return [json.loads(r[0]) for r in rows]


class Audit:
    """The configured auditel of one test."""

    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox

    def records(self, event_name: str | None = None) -> list[dict[str, Any]]:
        out = read_outbox(self.outbox)
        return [r for r in out if event_name is None or r["event_name"] == event_name]

    def tool_calls(self, tool: str | None = None) -> list[dict[str, Any]]:
        # auditel's own instrumentation's records: the span bridge's (from the MCP SDK's native spans
        # when auditel's MCP instrumentation is off) name their source and are tested in tests/spans/
        return [r for r in self.records("auditel.tool_call")
                if (tool is None or r["attributes"].get("gen_ai.tool.name") == tool)
                and "audit.source" not in r["attributes"]]


@pytest.fixture
def audit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Audit]:
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    runtime._reset_for_tests()
    outbox = tmp_path / "outbox.db"
    auditel.configure(outbox=outbox, service_name="tools-test")
    SPANS.clear()
    yield Audit(outbox)
    runtime._reset_for_tests()
    SPANS.clear()


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return SPANS
