"""The public recording API: ``emit`` and the typed helpers.

Every function returns the committed record's ``audit.record.id``, or ``None`` when auditel
is disabled or the record could not be stored (the reason is counted in ``status()``).
None of them raises into the caller.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from auditel import runtime as _rt
from auditel.record import schema as S
from auditel.record.content import tool_arguments_form
from auditel.config.settings import Settings

_UNSET: Any = object()


def emit(
    event_name: str,
    *,
    attributes: Mapping[str, Any] | None = None,
    body: Any = None,
    severity: str | int | None = None,
    timestamp: int | None = None,
) -> str | None:
    """Record one audit event (an OTel log record with ``event_name`` set)."""
    rt = _rt.current()
    if rt is None:
        return None
    return rt.emit(event_name, attributes, body, severity, timestamp)  # copied (safely) by rt.emit


def _merge(base: dict[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    if extra:
        for k, v in extra.items():
            base.setdefault(k, v)
    return {k: v for k, v in base.items() if v is not None}


def _error_attrs(rt: Any, attrs: dict[str, Any], error: BaseException | str | None) -> None:
    if error is None:
        return
    if isinstance(error, BaseException):
        attrs[S.A_ERROR_TYPE] = type(error).__qualname__
        message = str(error)
    else:
        attrs[S.A_ERROR_TYPE] = str(error)
        message = ""
    # An exception message can carry user content: keep it only when content capture is on.
    if message and rt.settings.content_in_records:
        attrs[S.A_ERROR_MESSAGE] = message[:2000]


def content_attributes(
    rt: Any, attrs: dict[str, Any], value: Any, *, digest_key: str, size_key: str, content_key: str | None
) -> None:
    """Keyed digest and size of a value; the value itself only when content capture is on."""
    digest, size = rt.digest(value)
    attrs[digest_key] = digest
    attrs[size_key] = size
    if content_key and rt.settings.content_in_records:
        attrs[content_key] = value if isinstance(value, (str, int, float, bool)) else _as_json_text(value)


def _as_json_text(value: Any) -> str:
    from auditel.record.canonical import canonical
    from auditel.record.safe_value import safe_value

    return canonical(safe_value(value))


def tool_call(
    tool_name: str,
    *,
    phase: str = "outcome",
    call_id: str | None = None,
    arguments: Any = _UNSET,
    result: Any = _UNSET,
    outcome: str | None = None,
    error: BaseException | str | None = None,
    duration_ms: float | None = None,
    tool_type: str | None = None,
    correlation_id: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    severity: str | None = None,
) -> str | None:
    """A tool call: ``phase="intent"`` before it runs, ``phase="outcome"`` after (or when denied)."""
    rt = _rt.current()
    if rt is None:
        return None
    try:
        attrs: dict[str, Any] = {
            S.A_ACTION: "tool.call",
            S.A_PHASE: phase,
            S.GEN_AI_OPERATION: "execute_tool",
            S.GEN_AI_TOOL_NAME: tool_name,
            S.GEN_AI_TOOL_CALL_ID: call_id,
            S.GEN_AI_TOOL_TYPE: tool_type,
            S.A_TARGET_TYPE: "tool",
            S.A_TARGET_ID: tool_name,
            S.A_CORRELATION_ID: correlation_id,
        }
        if phase == "outcome":
            if outcome is None:
                outcome = "failure" if error is not None else "success"
            attrs[S.A_OUTCOME] = outcome
            attrs[S.A_DURATION_MS] = duration_ms
        elif outcome is not None:
            attrs[S.A_OUTCOME] = outcome
        if arguments is not _UNSET:
            content_attributes(
                rt, attrs, tool_arguments_form(arguments), digest_key=S.A_ARGS_DIGEST, size_key=S.A_ARGS_SIZE, content_key=S.GEN_AI_TOOL_ARGS
            )
        if result is not _UNSET:
            content_attributes(
                rt, attrs, result, digest_key=S.A_RESULT_DIGEST, size_key=S.A_RESULT_SIZE, content_key=S.GEN_AI_TOOL_RESULT
            )
        _error_attrs(rt, attrs, error)
        if severity is None:
            severity = "error" if outcome == "failure" else ("warn" if outcome == "denied" else "info")
        return rt.emit(S.EV_TOOL_CALL, _merge(attrs, attributes), None, severity)
    except Exception as exc:  # noqa: BLE001
        rt.counters.error("tool_call", exc)
        return None


def tool_discovery(
    server: str | None,
    tools: list[str],
    *,
    outcome: str = "success",
    error: BaseException | str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> str | None:
    """A client listed the tools a server offers."""
    rt = _rt.current()
    if rt is None:
        return None
    attrs: dict[str, Any] = {
        S.A_ACTION: "tool.discovery",
        S.A_OUTCOME: outcome,
        S.A_TARGET_TYPE: "tool_server",
        S.A_TARGET_ID: server,
        "audit.tools.names": list(tools),
        "audit.tools.count": len(tools),
    }
    _error_attrs(rt, attrs, error)
    return rt.emit(S.EV_TOOL_DISCOVERY, _merge(attrs, attributes), None, "info" if outcome == "success" else "error")


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
    input_messages: Any = _UNSET,
    output_messages: Any = _UNSET,
    attributes: Mapping[str, Any] | None = None,
    severity: str | None = None,
) -> str | None:
    """A call to a model. Prompts and completions are kept as keyed digests unless content capture is on.

    ``tool_calls`` lists the tools the model asked for: ``{"name", "id", "arguments"}`` each;
    arguments are digested like any content.
    """
    rt = _rt.current()
    if rt is None:
        return None
    try:
        if outcome is None:
            outcome = "failure" if error is not None else "success"
        attrs: dict[str, Any] = {
            S.A_ACTION: "model.call",
            S.A_OUTCOME: outcome,
            S.GEN_AI_OPERATION: operation,
            S.GEN_AI_PROVIDER: provider,
            S.GEN_AI_REQUEST_MODEL: model,
            S.GEN_AI_RESPONSE_MODEL: response_model,
            S.GEN_AI_RESPONSE_ID: response_id,
            S.GEN_AI_FINISH_REASONS: list(finish_reasons) if finish_reasons else None,
            S.GEN_AI_INPUT_TOKENS: input_tokens,
            S.GEN_AI_OUTPUT_TOKENS: output_tokens,
            S.A_DURATION_MS: duration_ms,
            S.A_TARGET_TYPE: "model",
            S.A_TARGET_ID: model,
        }
        if input_messages is not _UNSET:
            content_attributes(
                rt, attrs, input_messages, digest_key="audit.input.digest", size_key="audit.input.size",
                content_key="gen_ai.input.messages",
            )
        if output_messages is not _UNSET:
            content_attributes(
                rt, attrs, output_messages, digest_key="audit.output.digest", size_key="audit.output.size",
                content_key="gen_ai.output.messages",
            )
        if tool_calls:
            names, ids, digests, sizes = [], [], [], []
            for call in tool_calls:
                names.append(str(call.get("name", "")))
                ids.append(str(call.get("id", "")))
                digest, size = rt.digest(tool_arguments_form(call.get("arguments", "")))
                digests.append(digest)
                sizes.append(size)
            attrs["audit.tool_calls.names"] = names
            attrs["audit.tool_calls.ids"] = ids
            attrs["audit.tool_calls.arguments.digests"] = digests
            attrs["audit.tool_calls.arguments.sizes"] = sizes
            if rt.settings.content_in_records:
                attrs["audit.tool_calls.arguments"] = [
                    _as_json_text(tool_arguments_form(c.get("arguments"))) for c in tool_calls
                ]
        _error_attrs(rt, attrs, error)
        if severity is None:
            severity = "error" if outcome == "failure" else "info"
        return rt.emit(S.EV_MODEL_CALL, _merge(attrs, attributes), None, severity)
    except Exception as exc:  # noqa: BLE001
        rt.counters.error("model_call", exc)
        return None


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
    rt = _rt.current()
    if rt is None:
        return None
    v = str(verdict).lower()
    if v not in S.VERDICTS:
        rt.counters.merge("sanitized", {"unknown_verdict": 1})
    if action_taken is None:
        action_taken = {"allow": "allowed", "deny": "blocked", "modify": "modified", "warn": "allowed", "escalate": "escalated"}.get(v)
    attrs: dict[str, Any] = {
        S.A_ACTION: "policy.decision",
        S.A_POLICY_VERDICT: v,
        S.A_POLICY_ACTION_TAKEN: action_taken,
        S.A_POLICY_ID: policy_id,
        S.A_POLICY_RULE_ID: rule_id,
        S.A_REASON: reason,
        "audit.policy.subject_action": action,
        S.A_TARGET_ID: target or tool_name,
        S.GEN_AI_TOOL_NAME: tool_name,
        S.GEN_AI_TOOL_CALL_ID: call_id,
        S.A_CORRELATION_ID: correlation_id,
        S.A_OUTCOME: "denied" if v == "deny" else "success",
    }
    if severity is None:
        severity = "warn" if v in ("deny", "escalate", "warn") else "info"
    return rt.emit(S.EV_POLICY_DECISION, _merge(attrs, attributes), None, severity)


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
    rt = _rt.current()
    if rt is None:
        return None
    attrs: dict[str, Any] = {
        S.A_ACTION: f"file.{operation}",
        S.A_OUTCOME: outcome,
        S.A_TARGET_TYPE: "file",
        S.A_TARGET_ID: str(path),
        "file.path": str(path),
        "file.size": size_bytes,
    }
    _error_attrs(rt, attrs, error)
    return rt.emit(S.EV_FILE_ACCESS, _merge(attrs, attributes), None, severity or ("info" if outcome == "success" else "warn"))


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
    rt = _rt.current()
    if rt is None:
        return None
    from urllib.parse import urlsplit

    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    attrs: dict[str, Any] = {
        S.A_ACTION: "network.request",
        S.A_OUTCOME: outcome,
        S.A_TARGET_TYPE: "url",
        S.A_TARGET_ID: url,
        "url.full": url,
        "server.address": host,
        "http.request.method": method,
        "http.response.status_code": status_code,
    }
    _error_attrs(rt, attrs, error)
    return rt.emit(S.EV_NETWORK_ACCESS, _merge(attrs, attributes), None, severity or ("info" if outcome == "success" else "warn"))


def session_start(*, attributes: Mapping[str, Any] | None = None) -> str | None:
    rt = _rt.current()
    if rt is None:
        return None
    return rt.emit(S.EV_SESSION_START, _merge({S.A_ACTION: "session.start"}, attributes), None, "info")


def session_end(
    *, outcome: str = "success", reason: str | None = None, attributes: Mapping[str, Any] | None = None
) -> str | None:
    rt = _rt.current()
    if rt is None:
        return None
    attrs = {S.A_ACTION: "session.end", S.A_OUTCOME: outcome, S.A_REASON: reason}
    return rt.emit(S.EV_SESSION_END, _merge(attrs, attributes), None, "info")


def heartbeat(*, attributes: Mapping[str, Any] | None = None) -> str | None:
    """A liveness record ("the agent was alive and recording at this time")."""
    rt = _rt.current()
    if rt is None:
        return None
    return rt.emit(S.EV_HEARTBEAT, _merge({S.A_ACTION: "heartbeat"}, attributes), None, "debug")


# --- runtime control -------------------------------------------------------------------------
def set_identity(
    *, agent_id: str | None = _UNSET, agent_name: str | None = _UNSET, principal: str | None = _UNSET,
    session_id: str | None = _UNSET,
) -> None:
    """Stamp agent identity and on-behalf-of principal on every later record (None clears)."""
    rt = _rt.current()
    if rt is None:
        return
    updates: dict[str, Any] = {}
    if agent_id is not _UNSET:
        updates[S.A_ACTOR_ID] = agent_id
        updates[S.GEN_AI_AGENT_ID] = agent_id
        updates[S.A_ACTOR_TYPE] = "agent" if agent_id else None
    if agent_name is not _UNSET:
        updates[S.GEN_AI_AGENT_NAME] = agent_name
    if principal is not _UNSET:
        updates[S.A_PRINCIPAL_ID] = principal
    if session_id is not _UNSET:
        updates[S.A_SESSION_ID] = session_id
        if session_id:
            rt.session_id = session_id
    rt.processor.set_identity(**updates)


def status() -> dict[str, Any]:
    """Counters and outbox state (same keys as ``auditel status --json``)."""
    rt = _rt.current()
    if rt is not None:
        return rt.status()
    settings = _rt._disabled_settings
    if settings is None:
        try:
            settings = Settings.from_env()
        except Exception:  # noqa: BLE001
            settings = Settings()
    out = _rt.build_status(settings, None, None)
    out["enabled"] = False
    return out


def flush(timeout: float = 10.0) -> bool:
    rt = _rt.current()
    return True if rt is None else rt.flush(timeout)


def subscribe(callback: Callable[[dict[str, Any]], None]) -> None:
    """Call ``callback(record)`` for every committed record (live tail). Failures are isolated and counted."""
    rt = _rt.current()
    if rt is not None:
        rt.add_sink(callback)


def unsubscribe(callback: Callable[[dict[str, Any]], None]) -> None:
    rt = _rt.current()
    if rt is not None:
        rt.remove_sink(callback)
