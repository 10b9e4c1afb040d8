"""Helpers shared by the model-call instrumentation tests (fixtures live in the test modules).

``telemetry()`` gives the process-wide test TracerProvider / LoggerProvider with in-memory
exporters: set as the globals if none was set, otherwise our processors are added to the ones set
(a global provider cannot be replaced, by design).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from opentelemetry import _logs, trace
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_state: dict[str, Any] = {}


def telemetry() -> tuple[InMemorySpanExporter, InMemoryLogRecordExporter]:
    if "spans" not in _state:
        spans = InMemorySpanExporter()
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            provider = TracerProvider()
            trace.set_tracer_provider(provider)
        provider.add_span_processor(SimpleSpanProcessor(spans))
        logs = InMemoryLogRecordExporter()
        lp = _logs.get_logger_provider()
        if not isinstance(lp, LoggerProvider):
            lp = LoggerProvider()
            _logs.set_logger_provider(lp)
        lp.add_log_record_processor(SimpleLogRecordProcessor(logs))
        _state["spans"], _state["logs"] = spans, logs
    return _state["spans"], _state["logs"]


def model_records(outbox: Path) -> list[dict[str, Any]]:
    """The ``auditel.model_call`` records committed to an outbox file, in order."""
    con = sqlite3.connect(f"file:{outbox}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT data FROM records WHERE event_name = 'auditel.model_call' ORDER BY rid").fetchall()
    finally:
        con.close()
    return [json.loads(row[0]) for row in rows]


def outbox_bytes(outbox: Path) -> bytes:
    """Every byte auditel wrote next to the outbox (database, WAL, shared memory)."""
    data = b""
    for path in sorted(outbox.parent.iterdir()):
        if path.name.startswith(outbox.name):
            data += path.read_bytes()
    return data


def model_spans(exporter: InMemorySpanExporter) -> list[Any]:
    return [s for s in exporter.get_finished_spans() if s.attributes.get("gen_ai.operation.name") and s.instrumentation_scope.name == "auditel"]
