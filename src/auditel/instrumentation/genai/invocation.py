"""One model call: ``Invocation`` starts its GenAI CLIENT span and ``finish()`` ends it exactly once
(span attributes, the ``auditel.model_call`` record written while the span is current, and the
optional details event); ``content_policy()`` says what content goes where."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, cast

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from auditel import runtime as _rt
from auditel.api.helpers import model_call
from auditel.instrumentation import base as _base
from auditel.instrumentation.genai.shapes import (
    CACHE_CREATION,
    CACHE_READ,
    ERROR_TYPE,
    EVENT_DETAILS,
    FINISH,
    IN_TOKENS,
    INPUT_MESSAGES,
    OPERATION,
    OUT_TOKENS,
    OUTPUT_MESSAGES,
    PROVIDER,
    REASONING,
    REQ_MODEL,
    RESP_ID,
    RESP_MODEL,
    SYSTEM_INSTRUCTIONS,
    TOOL_DEFINITIONS,
    TTFC,
    Request,
    ResponseFacts,
)


# --- content settings ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ContentPolicy:
    on_spans: bool
    in_records: bool
    emit_event: bool


_policy_cache: tuple[object, ContentPolicy] | None = None


def content_policy() -> ContentPolicy:
    """The content mode in force, and whether the details event is emitted.

    Both come from the settings (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` and
    ``OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT``, read at ``configure()``); worked out once per
    configured runtime.
    """
    global _policy_cache
    st = _base.settings()
    cached = _policy_cache
    if cached is not None and cached[0] is st:
        return cached[1]
    policy = ContentPolicy(st.content_on_spans, st.content_in_records, st.emit_details_event)
    if _rt.current() is not None:  # settings from the environment (no runtime) are rebuilt each call
        _policy_cache = (st, policy)
    return policy


# --- the invocation --------------------------------------------------------------------------------
class Invocation:
    """One model call: its span, timings and, once known, its response facts."""

    __slots__ = ("request", "span", "start_ns", "start_mono", "first_chunk_mono", "facts", "_done", "_lock", "policy")

    def __init__(self, request: Request, policy: ContentPolicy) -> None:
        self.request = request
        self.policy = policy
        self.facts = ResponseFacts()
        self.first_chunk_mono: float | None = None
        self._done = False
        self._lock = threading.Lock()
        attrs = {OPERATION: request.operation, PROVIDER: request.provider}
        if request.model:
            attrs[REQ_MODEL] = request.model
        attrs.update(request.attributes)
        name = f"{request.operation} {request.model}" if request.model else request.operation
        self.start_ns = time.time_ns()
        self.start_mono = time.monotonic()
        self.span = _base.tracer().start_span(name, kind=SpanKind.CLIENT, attributes=attrs, start_time=self.start_ns)

    def chunk_seen(self) -> None:
        if self.first_chunk_mono is None:
            self.first_chunk_mono = time.monotonic()

    def finish(self, *, error: BaseException | None = None, outcome: str | None = None, end: str | None = None) -> None:
        """End the span and write the audit record, exactly once; never raises."""
        with self._lock:
            if self._done:
                return
            self._done = True
        try:
            self._finish(error, outcome, end)
        except Exception as exc:  # noqa: BLE001
            _base.count_error("genai_finish", exc)
            try:
                self.span.end()
            except Exception:  # noqa: BLE001
                pass

    def _finish(self, error: BaseException | None, outcome: str | None, end: str | None) -> None:
        duration_ms = (time.monotonic() - self.start_mono) * 1000.0
        facts = self.facts
        if facts.build is not None:
            try:
                facts.build(facts)
            except Exception as exc:  # noqa: BLE001
                _base.count_error("genai_stream_build", exc)
        req = self.request
        if outcome is None:
            outcome = "failure" if error is not None else "success"
        span = self.span
        response = _response_attributes(facts)
        if span.is_recording():
            attrs: dict[str, Any] = dict(response)
            if self.first_chunk_mono is not None:
                attrs[TTFC] = self.first_chunk_mono - self.start_mono
            if end is not None:
                attrs["auditel.stream.end"] = end
            attrs.update(facts.attributes)
            if self.policy.on_spans:
                attrs.update(_content_attributes(req, facts, as_json=True))
            if error is not None:
                attrs[ERROR_TYPE] = type(error).__qualname__
                span.set_status(Status(StatusCode.ERROR, type(error).__qualname__))
            span.set_attributes(attrs)
        # the record is written while the span is current (its trace and span ids, the span event);
        # a call settled inside ``call_sync``/``call_async`` finishes with it current already
        token = None if trace.get_current_span() is span else otel_context.attach(trace.set_span_in_context(span))
        try:
            self._record(outcome, error, duration_ms, response, end)
            if self.policy.emit_event:
                self._emit_details_event(response, error)
        finally:
            if token is not None:
                otel_context.detach(token)
            span.end()

    def _record(
        self, outcome: str, error: BaseException | None, duration_ms: float, response: dict[str, Any], end: str | None
    ) -> None:
        if _rt.current() is None:
            return
        facts = self.facts
        req = self.request
        # the token counts model_call() has no parameter of its own for
        extra: dict[str, Any] = {k: v for k, v in response.items() if k in (CACHE_READ, CACHE_CREATION, REASONING)}
        extra.update({k: v for k, v in req.attributes.items() if k.startswith(("gen_ai.request.", "server."))})
        extra.update(facts.attributes)
        extra["audit.model_call.streaming"] = req.streaming
        if end is not None:
            extra["audit.stream.end"] = end
        if self.first_chunk_mono is not None:
            extra[TTFC] = self.first_chunk_mono - self.start_mono
        kwargs: dict[str, Any] = {}
        if req.input_messages is not None:
            kwargs["input_messages"] = req.input_messages
        if outcome == "success" or facts.output_messages:
            kwargs["output_messages"] = facts.output_messages
        model_call(
            req.model,
            provider=req.provider,
            operation=req.operation,
            outcome=outcome,
            error=error,
            duration_ms=round(duration_ms, 3),
            response_model=facts.response_model,
            response_id=facts.response_id,
            finish_reasons=facts.finish_reasons or None,
            input_tokens=facts.input_tokens,
            output_tokens=facts.output_tokens,
            tool_calls=cast("list[Mapping[str, Any]]", facts.tool_calls) or None,
            attributes=extra,
            **kwargs,
        )

    def _emit_details_event(self, response: dict[str, Any], error: BaseException | None) -> None:
        from opentelemetry._logs import get_logger

        from auditel._version import __version__

        facts = self.facts
        req = self.request
        attrs: dict[str, Any] = {OPERATION: req.operation, PROVIDER: req.provider}
        if req.model:
            attrs[REQ_MODEL] = req.model
        attrs.update(req.attributes)
        attrs.update(response)
        if error is not None:
            attrs[ERROR_TYPE] = type(error).__qualname__
        if self.policy.in_records:
            attrs.update(_content_attributes(req, facts, as_json=False))
        get_logger(_base.TRACER_NAME, __version__).emit(event_name=EVENT_DETAILS, attributes=attrs)


def _response_attributes(facts: ResponseFacts) -> dict[str, Any]:
    """What came back, as span / event attributes: token usage, response id and model, finish reasons."""
    out: dict[str, Any] = {}
    for key, value in (
        (IN_TOKENS, facts.input_tokens),
        (OUT_TOKENS, facts.output_tokens),
        (CACHE_READ, facts.cache_read_tokens),
        (CACHE_CREATION, facts.cache_creation_tokens),
        (REASONING, facts.reasoning_tokens),
    ):
        if value is not None:
            out[key] = value
    if facts.response_id:
        out[RESP_ID] = facts.response_id
    if facts.response_model:
        out[RESP_MODEL] = facts.response_model
    if facts.finish_reasons:
        out[FINISH] = facts.finish_reasons
    return out


def _content_attributes(req: Request, facts: ResponseFacts, *, as_json: bool) -> dict[str, Any]:
    """Opt-in message content; JSON text on spans, structured on events (per the conventions)."""
    from auditel.record.safe_value import safe_value

    out: dict[str, Any] = {}
    pairs = (
        (INPUT_MESSAGES, req.input_messages),
        (SYSTEM_INSTRUCTIONS, req.system_instructions),
        (TOOL_DEFINITIONS, req.tool_definitions),
        (OUTPUT_MESSAGES, facts.output_messages or None),
    )
    for key, value in pairs:
        if value is None:
            continue
        safe = safe_value(value)
        out[key] = json.dumps(safe, ensure_ascii=False, separators=(",", ":")) if as_json else safe
    return out


def start(request: Request) -> Invocation | None:
    """Start an invocation, or ``None`` when auditel is disabled or starting failed (counted)."""
    try:
        if _rt.current() is None:
            return None
        return Invocation(request, content_policy())
    except Exception as exc:  # noqa: BLE001
        _base.count_error("genai_start", exc)
        return None
