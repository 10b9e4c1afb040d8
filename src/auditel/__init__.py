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
from auditel.api.audited import AuditScope, ToolDenied, audited, tool
from auditel.api.guard import guarded
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
from auditel.api.read import query, read_all
from auditel.config.settings import ConfigError, Settings
from auditel.pipeline.processor import AuditProcessor
from auditel.pipeline.sinks import FanoutSink, InMemorySink, JsonlSink
from auditel.runtime import configure
from auditel.runtime import shutdown as _shutdown

# ``configure`` is the one entry point that raises, by design: ``ConfigError`` naming what is wrong
# (a program that asked for auditing must not run unaudited unknowingly). Every other callable
# here passes through the API boundary (auditel.api.guard) and never raises.


@guarded("shutdown")
def shutdown(timeout: float = 5.0) -> None:
    """Write the stream-end marker, flush (bounded by ``timeout`` seconds) and stop auditel."""
    from auditel.record.events import seconds

    _shutdown(seconds(timeout, 5.0))


@guarded("instrument", list)
def instrument(*names: str, **kwargs: object) -> list[str]:
    """Switch on auditel's auto-instrumentations (all available ones, or those named).

    ``kwargs`` go to each ``BaseInstrumentor.instrument`` (e.g. ``tracer_provider=``)."""
    from auditel.instrumentation import instrument as _instrument

    return _instrument(*(n if type(n) is str else str(n) for n in names), **kwargs)


@guarded("uninstrument", list)
def uninstrument(*names: str) -> list[str]:
    """Remove auditel's auto-instrumentations (all, or those named)."""
    from auditel.instrumentation import uninstrument as _uninstrument

    return _uninstrument(*(n if type(n) is str else str(n) for n in names))


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
