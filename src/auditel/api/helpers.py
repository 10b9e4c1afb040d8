"""The public recording API: ``emit`` and the typed helpers.

Every function returns the committed record's ``audit.record.id``, or ``None`` when auditel
is disabled or the record could not be stored (the reason is counted in ``status()``).
None of them raises into the caller: each passes through the API boundary
(``auditel.api.guard.guarded``), and the records themselves are built by
``auditel.record.events``, which turns hostile values into text instead of failing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from auditel import runtime as _rt
from auditel.api.guard import boundary_counters, guarded
from auditel.config.settings import Settings
from auditel.record import events as E
from auditel.record import schema as S
from auditel.record.events import UNSET

__all__ = [
    "UNSET",
    "emit",
    "tool_call",
    "tool_discovery",
    "model_call",
    "policy_decision",
    "file_access",
    "network_access",
    "session_start",
    "session_end",
    "heartbeat",
    "set_identity",
    "status",
    "flush",
    "subscribe",
    "unsubscribe",
]


_Helper = TypeVar("_Helper", bound=Callable[..., "str | None"])


def _records(build: Callable[..., E.Built]) -> Callable[[_Helper], _Helper]:
    """A recording helper: the decorated function is its public signature and help, ``build`` (the
    ``auditel.record.events`` builder of the same name) makes its record.

    The builder takes exactly the public parameters, with the same defaults
    (tests/test_helper_signatures.py), so the arguments are handed to it as given: Python binds them
    once, against the same signature, and a call that does not fit fails as before (counted at the
    boundary). With auditel off, the call is bound against the public signature all the same.
    """

    def decorate(signature: _Helper) -> _Helper:
        @functools.wraps(signature)
        def helper(*args: Any, **kwargs: Any) -> str | None:
            rt = _rt.current()
            if rt is None:
                signature(*args, **kwargs)  # its body is empty: only the binding, so a bad call still fails
                return None
            name, attrs, severity = build(rt, *args, **kwargs)
            return rt.emit(name, attrs, None, severity)

        return cast(_Helper, guarded(signature.__name__)(helper))  # typed as the signature, for IDEs and checkers

    return decorate


@guarded("emit")
def emit(
    event_name: str,
    *,
    attributes: Mapping[str, Any] | None = None,
    body: Any = None,
    severity: str | int | None = None,
    timestamp: int | float | None = None,
) -> str | None:
    """Record one audit event (an OTel log record with ``event_name`` set).

    ``timestamp``: when it happened, in Unix nanoseconds; seconds, milliseconds and microseconds
    (int or float) are recognised by magnitude and converted. An unusable value (negative, a bool,
    NaN, beyond 2262) is refused: the record keeps its observation time and ``sanitized`` counts
    ``bad_timestamp``.
    """
    rt = _rt.current()
    if rt is None:
        return None
    return rt.emit(event_name, attributes, body, severity, timestamp)  # copied (safely) by rt.emit


@_records(E.tool_call)
def tool_call(
    tool_name: str,
    *,
    phase: str = "outcome",
    call_id: str | None = None,
    arguments: Any = UNSET,
    result: Any = UNSET,
    outcome: str | None = None,
    error: BaseException | str | None = None,
    duration_ms: float | None = None,
    tool_type: str | None = None,
    correlation_id: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    severity: str | None = None,
) -> str | None:
    """A tool call: ``phase="intent"`` before it runs, ``phase="outcome"`` after (or when denied)."""


@_records(E.tool_discovery)
def tool_discovery(
    server: str | None,
    tools: list[str],
    *,
    outcome: str = "success",
    error: BaseException | str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> str | None:
    """A client listed the tools a server offers."""


@_records(E.model_call)
def model_call(
    model: str | None,
    *,
    provider: str | None = None,
    operation: str = "chat",
    outcome: str | None = None,
    error: BaseException | str | None = None,
    duration_ms: float | None = None,
    response_model: str | None = None,
    response_id: str | None = None,
    finish_reasons: list[str] | None = None,
    input_tokens: int | None = None,
    output_tokens: int | None = None,
    tool_calls: list[Mapping[str, Any]] | None = None,
    input_messages: Any = UNSET,
    output_messages: Any = UNSET,
    attributes: Mapping[str, Any] | None = None,
    severity: str | None = None,
) -> str | None:
    """A call to a model. Prompts and completions are kept as keyed digests unless content capture is on.

    ``tool_calls`` lists the tools the model asked for: ``{"name", "id", "arguments"}`` each;
    arguments are digested like any content.
    """


@_records(E.policy_decision)
def policy_decision(
    verdict: str,
    *,
    policy_id: str | None = None,
    rule_id: str | None = None,
    reason: str | None = None,
    action: str | None = None,
    action_taken: str | None = None,
    target: str | None = None,
    tool_name: str | None = None,
    call_id: str | None = None,
    correlation_id: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    severity: str | None = None,
) -> str | None:
    """A policy or guardrail verdict (allow/deny/modify/warn/escalate), kept apart from the action taken."""


@_records(E.file_access)
def file_access(
    path: str,
    *,
    operation: str = "read",
    outcome: str = "success",
    size_bytes: int | None = None,
    error: BaseException | str | None = None,
    attributes: Mapping[str, Any] | None = None,
    severity: str | None = None,
) -> str | None:
    """A file read, write, delete... by the agent (the path, never the contents)."""


@_records(E.network_access)
def network_access(
    url: str,
    *,
    method: str | None = None,
    status_code: int | None = None,
    outcome: str = "success",
    error: BaseException | str | None = None,
    attributes: Mapping[str, Any] | None = None,
    severity: str | None = None,
) -> str | None:
    """A network request by the agent (credentials and signed query values are scrubbed from the URL)."""


@_records(E.session_start)
def session_start(*, attributes: Mapping[str, Any] | None = None) -> str | None:
    """A session began (``session.id``: ``AUDITEL_SESSION_ID``, ``set_identity(session_id=...)`` or a generated one)."""


@_records(E.session_end)
def session_end(
    *, outcome: str = "success", reason: str | None = None, attributes: Mapping[str, Any] | None = None
) -> str | None:
    """A session ended: its ``outcome``, and why in ``reason``."""


@_records(E.heartbeat)
def heartbeat(*, attributes: Mapping[str, Any] | None = None) -> str | None:
    """A liveness record ("the agent was alive and recording at this time")."""


# --- runtime control -------------------------------------------------------------------------
@guarded("set_identity")
def set_identity(
    *,
    agent_id: str | None = UNSET,
    agent_name: str | None = UNSET,
    principal: str | None = UNSET,
    session_id: str | None = UNSET,
) -> None:
    """Stamp agent identity and on-behalf-of principal on every later record (None clears).

    A ``str`` is kept, a ``UUID`` or ``int`` becomes its string; any other value is refused (the
    previous value stays, ``rejected`` counts ``identity_refused``), so no stored identity can make
    a later record, or the stream's end marker, unstorable.
    """
    rt = _rt.current()
    if rt is None:
        return
    fields = {"agent_id": agent_id, "agent_name": agent_name, "principal": principal, "session_id": session_id}
    values: dict[str, str | None] = {}
    for field, raw in fields.items():
        if raw is UNSET:
            continue
        value = E.identity_value(raw)
        if value is E.REFUSED:
            rt.counters.merge("rejected", {"identity_refused": 1})
            rt.counters.error(
                "set_identity",
                f"{field}: a {E.text(type(raw).__name__)} is not an identity"
                " (expected a str, UUID or int); the previous value is kept",
            )
            continue
        values[field] = value
    updates: dict[str, Any] = {}
    if "agent_id" in values:
        agent = values["agent_id"]
        updates[S.A_ACTOR_ID] = agent
        updates[S.GEN_AI_AGENT_ID] = agent
        updates[S.A_ACTOR_TYPE] = "agent" if agent else None
    if "agent_name" in values:
        updates[S.GEN_AI_AGENT_NAME] = values["agent_name"]
    if "principal" in values:
        updates[S.A_PRINCIPAL_ID] = values["principal"]
    if "session_id" in values:
        session = values["session_id"]
        updates[S.A_SESSION_ID] = session
        if session:
            rt.session_id = session
    rt.processor.set_identity(**updates)


def _status_fallback() -> dict[str, Any]:
    return {"enabled": False, "errors": boundary_counters.snapshot()["errors"]}


@guarded("status", _status_fallback)
def status() -> dict[str, Any]:
    """Counters and outbox state (same keys as ``auditel status --json``)."""
    rt = _rt.current()
    if rt is not None:
        out = rt.status()
    else:
        settings = _rt.disabled_settings()
        if settings is None:
            try:
                settings = Settings.from_env()
            except Exception:  # noqa: BLE001
                settings = Settings()
        out = _rt.build_status(settings, None, None)
        out["enabled"] = False
    # failures counted at the API boundary while no runtime could count them
    orphan = boundary_counters.snapshot()["errors"]
    if orphan:
        errors = dict(out.get("errors") or {})
        for key, n in orphan.items():
            errors[key] = errors.get(key, 0) + n
        out["errors"] = errors
    return out


@guarded("flush", False)
def flush(timeout: float = 10.0) -> bool:
    rt = _rt.current()
    return True if rt is None else rt.flush(E.seconds(timeout, 10.0))


@guarded("subscribe")
def subscribe(callback: Callable[[dict[str, Any]], None]) -> None:
    """Call ``callback(record)`` for every committed record (live tail). Failures are isolated and counted."""
    rt = _rt.current()
    if rt is not None:
        if not callable(callback):
            rt.counters.error("subscribe", "the callback is not callable; ignored")
            return
        rt.add_sink(callback)


@guarded("unsubscribe")
def unsubscribe(callback: Callable[[dict[str, Any]], None]) -> None:
    rt = _rt.current()
    if rt is not None:
        rt.remove_sink(callback)
