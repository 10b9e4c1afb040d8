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

from typing import TYPE_CHECKING

from auditel._version import __version__

# The public names are loaded on first use (PEP 562): ``import auditel`` stays cheap, so
# ``auditel run``, the zero-code bootstrap and the CLI import only what they use (issue 12
# item 5: start-up). ``from auditel import tool_call`` and ``auditel.tool_call`` work as before.
#
# ``configure`` is the one entry point that raises, by design: ``ConfigError`` naming what is wrong
# (a program that asked for auditing must not run unaudited unknowingly). Every other callable
# here passes through the API boundary (auditel.api.guard) and never raises.
_PUBLIC: dict[str, str] = {
    "AuditScope": "auditel.api.audited",
    "ToolDenied": "auditel.api.audited",
    "audited": "auditel.api.audited",
    "tool": "auditel.api.audited",
    "guarded": "auditel.api.guard",
    "shutdown": "auditel.api.lifecycle",
    "instrument": "auditel.api.lifecycle",
    "uninstrument": "auditel.api.lifecycle",
    "query": "auditel.api.read",
    "read_all": "auditel.api.read",
    "ConfigError": "auditel.config.settings",
    "Settings": "auditel.config.settings",
    "AuditProcessor": "auditel.pipeline.processor",
    "FanoutSink": "auditel.pipeline.sinks",
    "InMemorySink": "auditel.pipeline.sinks",
    "JsonlSink": "auditel.pipeline.sinks",
    "configure": "auditel.runtime",
    **dict.fromkeys(
        (
            "emit",
            "file_access",
            "flush",
            "heartbeat",
            "model_call",
            "network_access",
            "policy_decision",
            "session_end",
            "session_start",
            "set_identity",
            "status",
            "subscribe",
            "tool_call",
            "tool_discovery",
            "unsubscribe",
        ),
        "auditel.api.helpers",
    ),
}

if TYPE_CHECKING:
    from auditel.api.audited import AuditScope, ToolDenied, audited, tool
    from auditel.api.guard import guarded as guarded  # not in __all__, kept reachable
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
    from auditel.api.lifecycle import instrument, shutdown, uninstrument
    from auditel.api.read import query, read_all
    from auditel.config.settings import ConfigError, Settings
    from auditel.pipeline.processor import AuditProcessor
    from auditel.pipeline.sinks import FanoutSink, InMemorySink, JsonlSink
    from auditel.runtime import configure


def __getattr__(name: str) -> object:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'auditel' has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_PUBLIC})


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
