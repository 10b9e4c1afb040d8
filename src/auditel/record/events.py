"""Builders for every record kind: the one place that decides which attributes a record carries.

The public helpers (``auditel.api.helpers``), the decorators (``auditel.api.audited``), the run
machinery (``auditel.api.runs``) and the instrumentations all build their records here, so the
same fact gets the same attributes whoever records it. Each builder returns
``(event_name, attributes, severity)``; the caller emits it (``Runtime.emit``).

Builders accept whatever the caller passed: an ``outcome`` or ``verdict`` that is not a string, an
``error`` whose ``__str__`` raises, ``attributes`` that are not a mapping or whose ``items()``
raises. Such values are turned into text (``text``) or left out (counted as ``bad_attributes``),
so a hostile value costs a field, never the record.
"""

from __future__ import annotations

import reprlib
import time
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from auditel.record import schema as S
from auditel.record.canonical import canonical
from auditel.record.content import tool_arguments_form
from auditel.record.safe_value import safe_value

# "not given" (distinct from None, which is a value a tool may return)
UNSET: Any = type("Unset", (), {"__repr__": lambda self: "UNSET"})()

MAX_NAMES = 1000
_TEXT_MAX = 4096


class RecordingRuntime(Protocol):
    """What a builder needs of the runtime: keyed digests, the content policy, counters."""

    settings: Any
    counters: Any

    def digest(self, value: Any) -> tuple[str, int]: ...


def text(value: Any, limit: int = _TEXT_MAX) -> str:
    """``str(value)``, or ``<unprintable TYPE>`` when that raises or does not return a str.

    Containers get a bounded ``reprlib`` form (a few levels, a few items), so a deep, cyclic or
    shared (DAG) structure cannot make this slow; huge integers become hexadecimal.
    """
    if type(value) is str:
        return value[:limit]
    try:
        if isinstance(value, int) and not isinstance(value, bool):
            out = safe_value(int(value), max_value_bytes=limit)
            return out if isinstance(out, str) else str(out)
        if isinstance(value, (list, tuple, dict, set, frozenset, bytes, bytearray)):
            out = _short_repr.repr(value)
        else:
            out = str(value)
        if type(out) is not str:
            out = str.__str__(out) if isinstance(out, str) else f"<unprintable {type(value).__name__}>"
    except Exception:  # noqa: BLE001 - a hostile __str__, a recursion...
        try:
            out = f"<unprintable {type(value).__name__}>"
        except Exception:  # noqa: BLE001
            out = "<unprintable>"
    return out[:limit]


_short_repr = reprlib.Repr()
_short_repr.maxlevel = 3
_short_repr.maxstring = 200
_short_repr.maxother = 200


def opt_text(value: Any) -> str | None:
    return None if value is None else text(value)


def names(values: Any) -> list[str]:
    """A list of names from any iterable (a hostile one gives what could be read)."""
    out: list[str] = []
    try:
        if isinstance(values, (str, bytes)):
            return [text(values)]
        for item in values:
            out.append(text(item))
            if len(out) >= MAX_NAMES:
                break
    except Exception:  # noqa: BLE001 - an iterator that raises part-way: keep what was read
        pass
    return out


def merge_attributes(base: dict[str, Any], extra: Any, counters: Any = None) -> dict[str, Any]:
    """``base`` plus the caller's ``extra`` attributes (base wins), without ``None`` values.

    ``extra`` that is not a mapping, or whose iteration raises, is left out (counted).
    """
    if extra is not None:
        try:
            if not isinstance(extra, Mapping):
                raise TypeError("attributes must be a mapping")
            for k, v in list(extra.items()):
                try:
                    base.setdefault(k, v)
                except Exception:  # noqa: BLE001 - an unhashable or hostile key
                    _count(counters, "bad_attributes")
        except Exception:  # noqa: BLE001
            _count(counters, "bad_attributes")
    return {k: v for k, v in base.items() if v is not None}


def _count(counters: Any, reason: str) -> None:
    if counters is not None:
        try:
            counters.merge("sanitized", {reason: 1})
        except Exception:  # noqa: BLE001
            pass


def error_attributes(rt: RecordingRuntime, attrs: dict[str, Any], error: Any) -> None:
    """``error.type`` (and the message when content capture is on) of an exception or a string."""
    if error is None:
        return
    if isinstance(error, BaseException):
        attrs[S.A_ERROR_TYPE] = text(type(error).__qualname__)
        message = text(error, 2000)
    else:
        attrs[S.A_ERROR_TYPE] = text(error, 256)
        message = ""
    # An exception message can carry user content: keep it only when content capture is on.
    if message and rt.settings.content_in_records:
        attrs[S.A_ERROR_MESSAGE] = message


def error_type(error: Any) -> str | None:
    if error is None:
        return None
    return text(type(error).__qualname__) if isinstance(error, BaseException) else text(error, 256)


def json_text(value: Any) -> str:
    """Canonical JSON text of any value (in its safe form)."""
    return canonical(safe_value(value))


def content_attributes(
    rt: RecordingRuntime, attrs: dict[str, Any], value: Any, *, digest_key: str, size_key: str, content_key: str | None
) -> None:
    """Keyed digest and size of a value; the value itself only when content capture is on."""
    digest, size = rt.digest(value)
    attrs[digest_key] = digest
    attrs[size_key] = size
    if content_key and rt.settings.content_in_records:
        attrs[content_key] = value if isinstance(value, (str, int, float, bool)) else json_text(value)


def _outcome(outcome: Any, error: Any) -> str:
    if outcome is None:
        return "failure" if error is not None else "success"
    return text(outcome, 64)


Built = tuple[str, dict[str, Any], str]


# --- one builder per record kind -----------------------------------------------------------
def tool_call(
    rt: RecordingRuntime,
    tool_name: Any,
    *,
    phase: Any = "outcome",
    call_id: Any = None,
    arguments: Any = UNSET,
    result: Any = UNSET,
    outcome: Any = None,
    error: Any = None,
    duration_ms: Any = None,
    tool_type: Any = None,
    correlation_id: Any = None,
    attributes: Any = None,
    severity: Any = None,
) -> Built:
    phase = text(phase, 64)
    name = text(tool_name, 256)
    attrs: dict[str, Any] = {
        S.A_ACTION: "tool.call",
        S.A_PHASE: phase,
        S.GEN_AI_OPERATION: "execute_tool",
        S.GEN_AI_TOOL_NAME: name,
        S.GEN_AI_TOOL_CALL_ID: opt_text(call_id),
        S.GEN_AI_TOOL_TYPE: opt_text(tool_type),
        S.A_TARGET_TYPE: "tool",
        S.A_TARGET_ID: name,
        S.A_CORRELATION_ID: opt_text(correlation_id),
    }
    out: str | None = None
    if phase == "outcome":
        out = _outcome(outcome, error)
        attrs[S.A_OUTCOME] = out
        attrs[S.A_DURATION_MS] = duration_ms
    elif outcome is not None:
        out = text(outcome, 64)
        attrs[S.A_OUTCOME] = out
    if arguments is not UNSET:
        content_attributes(
            rt,
            attrs,
            tool_arguments_form(arguments),
            digest_key=S.A_ARGS_DIGEST,
            size_key=S.A_ARGS_SIZE,
            content_key=S.GEN_AI_TOOL_ARGS,
        )
    if result is not UNSET:
        content_attributes(
            rt, attrs, result, digest_key=S.A_RESULT_DIGEST, size_key=S.A_RESULT_SIZE, content_key=S.GEN_AI_TOOL_RESULT
        )
    error_attributes(rt, attrs, error)
    if severity is None:
        severity = "error" if out == "failure" else ("warn" if out == "denied" else "info")
    return S.EV_TOOL_CALL, merge_attributes(attrs, attributes, rt.counters), severity


def tool_discovery(
    rt: RecordingRuntime,
    server: Any,
    tools: Any,
    *,
    outcome: Any = "success",
    error: Any = None,
    attributes: Any = None,
) -> Built:
    listed = names(tools)
    out = text(outcome, 64)
    attrs: dict[str, Any] = {
        S.A_ACTION: "tool.discovery",
        S.A_OUTCOME: out,
        S.A_TARGET_TYPE: "tool_server",
        S.A_TARGET_ID: opt_text(server),
        "audit.tools.names": listed,
        "audit.tools.count": len(listed),
    }
    error_attributes(rt, attrs, error)
    return (
        S.EV_TOOL_DISCOVERY,
        merge_attributes(attrs, attributes, rt.counters),
        "info" if out == "success" else "error",
    )


def model_call(
    rt: RecordingRuntime,
    model: Any,
    *,
    provider: Any = None,
    operation: Any = "chat",
    outcome: Any = None,
    error: Any = None,
    duration_ms: Any = None,
    response_model: Any = None,
    response_id: Any = None,
    finish_reasons: Any = None,
    input_tokens: Any = None,
    output_tokens: Any = None,
    tool_calls: Any = None,
    input_messages: Any = UNSET,
    output_messages: Any = UNSET,
    attributes: Any = None,
    severity: Any = None,
) -> Built:
    out = _outcome(outcome, error)
    model_text = opt_text(model)
    attrs: dict[str, Any] = {
        S.A_ACTION: "model.call",
        S.A_OUTCOME: out,
        S.GEN_AI_OPERATION: text(operation, 64),
        S.GEN_AI_PROVIDER: opt_text(provider),
        S.GEN_AI_REQUEST_MODEL: model_text,
        S.GEN_AI_RESPONSE_MODEL: opt_text(response_model),
        S.GEN_AI_RESPONSE_ID: opt_text(response_id),
        S.GEN_AI_FINISH_REASONS: names(finish_reasons) if finish_reasons is not None else None,
        S.GEN_AI_INPUT_TOKENS: input_tokens,
        S.GEN_AI_OUTPUT_TOKENS: output_tokens,
        S.A_DURATION_MS: duration_ms,
        S.A_TARGET_TYPE: "model",
        S.A_TARGET_ID: model_text,
    }
    if not attrs[S.GEN_AI_FINISH_REASONS]:
        attrs[S.GEN_AI_FINISH_REASONS] = None
    if input_messages is not UNSET:
        content_attributes(
            rt,
            attrs,
            input_messages,
            digest_key="audit.input.digest",
            size_key="audit.input.size",
            content_key="gen_ai.input.messages",
        )
    if output_messages is not UNSET:
        content_attributes(
            rt,
            attrs,
            output_messages,
            digest_key="audit.output.digest",
            size_key="audit.output.size",
            content_key="gen_ai.output.messages",
        )
    if tool_calls:
        _tool_call_requests(rt, attrs, tool_calls)
    error_attributes(rt, attrs, error)
    if severity is None:
        severity = "error" if out == "failure" else "info"
    return S.EV_MODEL_CALL, merge_attributes(attrs, attributes, rt.counters), severity


def _tool_call_requests(rt: RecordingRuntime, attrs: dict[str, Any], tool_calls: Iterable[Any]) -> None:
    """The tools a model asked for: names, ids, keyed digests and sizes of their arguments."""
    names_, ids, digests, sizes, contents = [], [], [], [], []
    for call in list(tool_calls)[:MAX_NAMES]:
        get = call.get if isinstance(call, Mapping) else (lambda key, default=None: default)
        arguments = tool_arguments_form(get("arguments", ""))
        names_.append(text(get("name", "")))
        ids.append(text(get("id", "")))
        digest, size = rt.digest(arguments)
        digests.append(digest)
        sizes.append(size)
        if rt.settings.content_in_records:
            contents.append(json_text(tool_arguments_form(get("arguments"))))
    attrs["audit.tool_calls.names"] = names_
    attrs["audit.tool_calls.ids"] = ids
    attrs["audit.tool_calls.arguments.digests"] = digests
    attrs["audit.tool_calls.arguments.sizes"] = sizes
    if rt.settings.content_in_records:
        attrs["audit.tool_calls.arguments"] = contents


_ACTION_TAKEN = {
    "allow": "allowed",
    "deny": "blocked",
    "modify": "modified",
    "warn": "allowed",
    "escalate": "escalated",
}


def policy_decision(
    rt: RecordingRuntime,
    verdict: Any,
    *,
    policy_id: Any = None,
    rule_id: Any = None,
    reason: Any = None,
    action: Any = None,
    action_taken: Any = None,
    target: Any = None,
    tool_name: Any = None,
    call_id: Any = None,
    correlation_id: Any = None,
    attributes: Any = None,
    severity: Any = None,
) -> Built:
    v = text(verdict, 64).lower()
    if v not in S.VERDICTS:
        rt.counters.merge("sanitized", {"unknown_verdict": 1})
    taken = _ACTION_TAKEN.get(v) if action_taken is None else text(action_taken, 64)
    tool = opt_text(tool_name)
    attrs: dict[str, Any] = {
        S.A_ACTION: "policy.decision",
        S.A_POLICY_VERDICT: v,
        S.A_POLICY_ACTION_TAKEN: taken,
        S.A_POLICY_ID: opt_text(policy_id),
        S.A_POLICY_RULE_ID: opt_text(rule_id),
        S.A_REASON: opt_text(reason),
        "audit.policy.subject_action": opt_text(action),
        S.A_TARGET_ID: opt_text(target) or tool,
        S.GEN_AI_TOOL_NAME: tool,
        S.GEN_AI_TOOL_CALL_ID: opt_text(call_id),
        S.A_CORRELATION_ID: opt_text(correlation_id),
        S.A_OUTCOME: "denied" if v == "deny" else "success",
    }
    if severity is None:
        severity = "warn" if v in ("deny", "escalate", "warn") else "info"
    return S.EV_POLICY_DECISION, merge_attributes(attrs, attributes, rt.counters), severity


def file_access(
    rt: RecordingRuntime,
    path: Any,
    *,
    operation: Any = "read",
    outcome: Any = "success",
    size_bytes: Any = None,
    error: Any = None,
    attributes: Any = None,
    severity: Any = None,
) -> Built:
    p = text(path)
    out = text(outcome, 64)
    attrs: dict[str, Any] = {
        S.A_ACTION: f"file.{text(operation, 64)}",
        S.A_OUTCOME: out,
        S.A_TARGET_TYPE: "file",
        S.A_TARGET_ID: p,
        "file.path": p,
        "file.size": size_bytes,
    }
    error_attributes(rt, attrs, error)
    return (
        S.EV_FILE_ACCESS,
        merge_attributes(attrs, attributes, rt.counters),
        severity or ("info" if out == "success" else "warn"),
    )


def network_access(
    rt: RecordingRuntime,
    url: Any,
    *,
    method: Any = None,
    status_code: Any = None,
    outcome: Any = "success",
    error: Any = None,
    attributes: Any = None,
    severity: Any = None,
) -> Built:
    from urllib.parse import urlsplit

    u = text(url, 8192)
    try:
        host = urlsplit(u).hostname
    except ValueError:
        host = None
    out = text(outcome, 64)
    attrs: dict[str, Any] = {
        S.A_ACTION: "network.request",
        S.A_OUTCOME: out,
        S.A_TARGET_TYPE: "url",
        S.A_TARGET_ID: u,
        "url.full": u,
        "server.address": host,
        "http.request.method": opt_text(method),
        "http.response.status_code": status_code,
    }
    error_attributes(rt, attrs, error)
    return (
        S.EV_NETWORK_ACCESS,
        merge_attributes(attrs, attributes, rt.counters),
        severity or ("info" if out == "success" else "warn"),
    )


def session_start(rt: RecordingRuntime, *, attributes: Any = None) -> Built:
    return S.EV_SESSION_START, merge_attributes({S.A_ACTION: "session.start"}, attributes, rt.counters), "info"


def session_end(rt: RecordingRuntime, *, outcome: Any = "success", reason: Any = None, attributes: Any = None) -> Built:
    attrs = {S.A_ACTION: "session.end", S.A_OUTCOME: text(outcome, 64), S.A_REASON: opt_text(reason)}
    return S.EV_SESSION_END, merge_attributes(attrs, attributes, rt.counters), "info"


def heartbeat(rt: RecordingRuntime, *, attributes: Any = None) -> Built:
    return S.EV_HEARTBEAT, merge_attributes({S.A_ACTION: "heartbeat"}, attributes, rt.counters), "debug"


def action(
    rt: RecordingRuntime,
    name: Any,
    *,
    outcome: Any,
    started: float,
    arguments: Any = UNSET,
    result: Any = UNSET,
    error: Any = None,
    attributes: Any = None,
) -> Built:
    """The record of an ``auditel.audited`` action (``started``: its ``time.perf_counter()``)."""
    out = text(outcome, 64)
    attrs: dict[str, Any] = {
        S.A_ACTION: text(name, 256),
        S.A_OUTCOME: out,
        S.A_DURATION_MS: round((time.perf_counter() - started) * 1000.0, 3),
    }
    if arguments is not UNSET:
        content_attributes(rt, attrs, arguments, digest_key=S.A_ARGS_DIGEST, size_key=S.A_ARGS_SIZE, content_key=None)
    if result is not UNSET:
        content_attributes(rt, attrs, result, digest_key=S.A_RESULT_DIGEST, size_key=S.A_RESULT_SIZE, content_key=None)
    error_attributes(rt, attrs, error)
    return S.EV_ACTION, merge_attributes(attrs, attributes, rt.counters), "error" if out == "failure" else "info"


def agent_run(
    rt: RecordingRuntime,
    agent_name: Any,
    *,
    framework: str,
    phase: str,
    outcome: Any,
    correlation_id: str,
    started: float,
    error: Any = None,
    reason: Any = None,
    attributes: Any = None,
) -> Built:
    """One end of an agent invocation (``phase`` intent or outcome)."""
    name = opt_text(agent_name)
    out = None if outcome is None else text(outcome, 64)
    attrs: dict[str, Any] = {
        S.A_ACTION: "agent.run",
        S.A_PHASE: phase,
        S.A_OUTCOME: out,
        S.GEN_AI_OPERATION: "invoke_agent",
        S.GEN_AI_AGENT_NAME: name,
        S.A_TARGET_TYPE: "agent",
        S.A_TARGET_ID: name,
        S.A_CORRELATION_ID: correlation_id,
        S.A_REASON: opt_text(reason),
        "audit.framework": framework,
    }
    if phase == "outcome":
        attrs[S.A_DURATION_MS] = round((time.perf_counter() - started) * 1000.0, 3)
    error_attributes(rt, attrs, error)
    return S.EV_AGENT_RUN, merge_attributes(attrs, attributes, rt.counters), "error" if out == "failure" else "info"


def handoff(
    rt: RecordingRuntime,
    from_agent: Any,
    to_agent: Any,
    *,
    framework: str,
    error: Any = None,
    attributes: Any = None,
) -> Built:
    """One agent handed the conversation to another."""
    src, dst = opt_text(from_agent), opt_text(to_agent)
    attrs: dict[str, Any] = {
        S.A_ACTION: "agent.handoff",
        S.A_OUTCOME: "failure" if error is not None else "success",
        "audit.handoff.from_agent": src,
        "audit.handoff.to_agent": dst,
        S.GEN_AI_AGENT_NAME: src,
        S.A_TARGET_TYPE: "agent",
        S.A_TARGET_ID: dst,
        "audit.framework": framework,
    }
    error_attributes(rt, attrs, error)
    return S.EV_HANDOFF, merge_attributes(attrs, attributes, rt.counters), "info" if error is None else "error"


# --- values the runtime keeps ----------------------------------------------------------------
REFUSED: Any = type("Refused", (), {"__repr__": lambda self: "REFUSED"})()
_IDENTITY_MAX = 1024


def identity_value(value: Any) -> Any:
    """An identity (agent id, name, principal, session id) as stored: ``str`` or ``None``.

    A ``str`` (lone surrogates replaced, cut to 1,024 characters), a ``UUID`` or ``int`` as its
    string; ``None`` clears; anything else is ``REFUSED`` (an object's ``str`` is no identity).
    """
    import uuid

    if value is None:
        return None
    if isinstance(value, bool):
        return REFUSED
    if isinstance(value, str):
        s = str.__str__(value)[:_IDENTITY_MAX]
        return s.encode("utf-8", "replace").decode("utf-8") if not s.isascii() else s
    if isinstance(value, int):
        try:
            return str(int(value))[:_IDENTITY_MAX]
        except ValueError:  # beyond Python's int-to-str digit limit
            return REFUSED
    if isinstance(value, uuid.UUID):
        return str(value)
    return REFUSED


def attribute_dict(attributes: Any, counters: Any = None) -> dict[str, Any]:
    """A private copy of caller-given attributes ({} when they cannot be read; counted)."""
    return merge_attributes({}, attributes, counters) if attributes is not None else {}


def seconds(value: Any, default: float) -> float:
    """A timeout in seconds from a caller's value (``default`` when it is not a finite number >= 0)."""
    import math

    try:
        f = float(value)
    except Exception:  # noqa: BLE001
        return default
    return f if math.isfinite(f) and f >= 0 else default
