"""auditel: a durable, tamper-evident audit trail for AI agents, built on OpenTelemetry.

Quick start::

    import auditel
    auditel.configure()                      # or AUDITEL_ENABLED=true in the environment
    auditel.tool_call("search", phase="intent", arguments={"q": "..."})
    with auditel.audited("deploy"):
        ...

Every record is an OTel log record (``event_name`` set), a span event on the active span,
and a row committed to the local SQLite outbox before the call returns.
"""

from __future__ import annotations

from auditel._version import __version__
from auditel.api.helpers import (
    emit,
    file_access,
    flush,
    heartbeat,
    model_call,
    network_access,
    policy_decision,
    session_end,
    session_start,
    set_identity,
    status,
    subscribe,
    tool_call,
    tool_discovery,
    unsubscribe,
)
from auditel.api.audited import AuditScope, ToolDenied, audited, tool
from auditel.api.read import query, read_all
from auditel.config.settings import ConfigError, Settings
from auditel.pipeline.processor import AuditProcessor
from auditel.runtime import configure, shutdown
from auditel.pipeline.sinks import FanoutSink, InMemorySink, JsonlSink


def instrument(*names: str, **kwargs: object) -> list[str]:
    """Switch on auditel's auto-instrumentations (all available ones, or those named).

    ``kwargs`` go to each ``BaseInstrumentor.instrument`` (e.g. ``tracer_provider=``)."""
    from auditel.instrumentation import instrument as _instrument

    return _instrument(*names, **kwargs)


def uninstrument(*names: str) -> list[str]:
    """Remove auditel's auto-instrumentations (all, or those named)."""
    from auditel.instrumentation import uninstrument as _uninstrument

    return _uninstrument(*names)


__all__ = [
    "__version__",
    "AuditProcessor",
    "AuditScope",
    "ConfigError",
    "FanoutSink",
    "InMemorySink",
    "JsonlSink",
    "Settings",
    "ToolDenied",
    "audited",
    "configure",
    "emit",
    "file_access",
    "flush",
    "heartbeat",
    "instrument",
    "model_call",
    "network_access",
    "policy_decision",
    "query",
    "read_all",
    "session_end",
    "session_start",
    "set_identity",
    "shutdown",
    "status",
    "subscribe",
    "tool",
    "tool_call",
    "tool_discovery",
    "uninstrument",
    "unsubscribe",
]
