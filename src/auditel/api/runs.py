"""Shared machinery of the tool and agent instrumentations (MCP, LangChain, OpenAI Agents, ``@auditel.tool``).

* ``ToolRun``: one tool execution: an ``execute_tool {tool}`` span (or an enriched span the
  framework already made), an *intent* record before the tool runs and an *outcome* record
  after it, linked by ``audit.correlation.id``.
* ``AgentRun``: one agent or graph invocation: an ``invoke_agent {agent}`` span and
  ``auditel.agent_run`` intent/outcome records.
* ``record_handoff``: an ``auditel.handoff`` record.
* ``wrap_generator`` / ``wrap_async_generator``: forward ``send``/``throw``/``close`` faithfully
  while making a span current only while the wrapped generator runs (never while the consumer does).

Everything auditel-side is guarded: failures are counted in ``status()``, never raised.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Generator, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from auditel import runtime as _rt
from auditel.api import helpers as api
from auditel.instrumentation.base import count_error, settings, tracer
from auditel.record import events as E
from auditel.record import schema as S
from auditel.record.events import UNSET
from auditel.record.ids import new_record_id


def recording_enabled() -> bool:
    """True when auditel is configured (records would be stored)."""
    return _rt.current() is not None


def _content_on_spans() -> bool:
    try:
        return bool(settings().content_on_spans)
    except Exception:  # noqa: BLE001
        return False


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    try:
        return E.json_text(value)
    except Exception:  # noqa: BLE001
        return E.text(value)


class span_active:  # noqa: N801 - used like the context-manager function it replaces
    """Make ``span`` current for the body (no-op for ``None``); a detach failure is counted, not raised.

    A plain class rather than a ``@contextmanager`` generator: a tool call enters it four times
    (intent, body, outcome), and a generator frame per entry is a measurable share of that call.
    """

    __slots__ = ("_span", "_token")

    def __init__(self, span: Any) -> None:
        self._span = span
        self._token: Any = None

    def __enter__(self) -> None:
        if self._span is not None:
            self._token = otel_context.attach(trace.set_span_in_context(self._span))

    def __exit__(self, *exc_info: object) -> None:
        token, self._token = self._token, None
        if token is not None:
            try:
                otel_context.detach(token)
            except Exception as exc:  # noqa: BLE001
                count_error("context", exc)


class ToolRun:
    """One tool execution being recorded. Use ``start()``, ``active()`` around the body, ``finish()``."""

    __slots__ = (
        "tool_name",
        "call_id",
        "arguments",
        "tool_type",
        "attributes",
        "span",
        "owns_span",
        "correlation_id",
        "intent_record_id",
        "outcome_record_id",
        "error_hint",
        "denied_by",
        "continues",
        "_t0",
        "_finished",
    )

    def __init__(
        self,
        tool_name: str,
        *,
        call_id: str | None = None,
        arguments: Any = UNSET,
        tool_type: str | None = "function",
        attributes: Mapping[str, Any] | None = None,
        correlation_id: str | None = None,
    ) -> None:
        self.tool_name = E.text(tool_name, 256) if tool_name else "unknown"
        self.call_id = call_id
        self.arguments = arguments
        self.tool_type = tool_type
        self.attributes: dict[str, Any] = E.attribute_dict(attributes)
        self.span: Span | None = None
        self.owns_span = False
        self.correlation_id = correlation_id or new_record_id()
        self.intent_record_id: str | None = None
        self.outcome_record_id: str | None = None
        self.error_hint: str | None = None  # a framework may report the real error type here
        self.denied_by: str | None = None  # a guardrail/policy that stopped the tool before it ran
        # True when a framework's span for this same call already committed the intent (the span
        # bridge, dedup rule 4): this run writes the outcome of that action, not a pair of its own
        self.continues = False
        self._t0 = 0.0
        self._finished = False

    @property
    def started(self) -> bool:
        return self._t0 != 0.0

    # --- span -----------------------------------------------------------------------------
    def start_span(
        self,
        name: str | None = None,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        extra: Mapping[str, Any] | None = None,
        parent: otel_context.Context | None = None,
    ) -> None:
        """Start our own span (``execute_tool {tool}`` by default); not made current."""
        try:
            attrs: dict[str, Any] = {
                S.GEN_AI_OPERATION: "execute_tool",
                S.GEN_AI_TOOL_NAME: self.tool_name,
            }
            if self.call_id:
                attrs[S.GEN_AI_TOOL_CALL_ID] = self.call_id
            if self.tool_type:
                attrs[S.GEN_AI_TOOL_TYPE] = self.tool_type
            if extra:
                attrs.update({k: v for k, v in extra.items() if v is not None})
            # known now: set with the start attributes rather than by one more set_attribute in start()
            attrs[S.A_CORRELATION_ID] = self.correlation_id
            self.span = tracer().start_span(
                name or f"execute_tool {self.tool_name}", context=parent, kind=kind, attributes=attrs
            )
            self.owns_span = True
            self._span_content(S.GEN_AI_TOOL_ARGS, self.arguments)
        except Exception as exc:  # noqa: BLE001
            count_error("tool_span", exc)

    def adopt_span(self, span: Span, extra: Mapping[str, Any] | None = None) -> None:
        """Use a span the framework (e.g. the MCP SDK) already made: enrich it, do not end it."""
        self.span = span
        self.owns_span = False
        try:
            if span.is_recording():
                attrs: dict[str, Any] = {S.GEN_AI_OPERATION: "execute_tool", S.GEN_AI_TOOL_NAME: self.tool_name}
                if extra:
                    attrs.update({k: v for k, v in extra.items() if v is not None})
                attrs[S.A_CORRELATION_ID] = self.correlation_id
                span.set_attributes(attrs)
                self._span_content(S.GEN_AI_TOOL_ARGS, self.arguments)
        except Exception as exc:  # noqa: BLE001
            count_error("tool_span", exc)

    def _span_content(self, key: str, value: Any) -> None:
        if value is UNSET or self.span is None or not _content_on_spans():
            return
        try:
            self.span.set_attribute(key, _as_text(value))
        except Exception as exc:  # noqa: BLE001
            count_error("tool_span", exc)

    def active(self) -> span_active:
        """Make the span current for the body (no-op without a span)."""
        return span_active(self.span)

    @contextmanager
    def running(self) -> Iterator[None]:
        """Run the tool's body with the span current; an exception ends the run as failed, then
        propagates unchanged (a body that returns is finished by the caller, with its result)."""
        try:
            with span_active(self.span):
                yield
        except BaseException as exc:
            self.finish(error=exc)
            raise

    # --- records --------------------------------------------------------------------------
    def start(self) -> ToolRun:
        """Write the intent record (durable before the tool runs), unless a framework's span for this
        same call already did: then continue that action (its correlation id, call id and intent)."""
        self._t0 = time.perf_counter()
        # (a span of our own has its correlation id from start_span; a continued action resets it)
        if self.span is not None and self.owns_span and self._continue_framework_action():
            return self
        try:
            with self.active():
                self.intent_record_id = api.tool_call(
                    self.tool_name,
                    phase="intent",
                    call_id=self.call_id,
                    arguments=self.arguments,
                    tool_type=self.tool_type,
                    correlation_id=self.correlation_id,
                    attributes=self.attributes,
                )
        except Exception as exc:  # noqa: BLE001
            count_error("tool_call", exc)
        return self

    def _continue_framework_action(self) -> bool:
        claimed = _bridge_claim(self.span)
        if claimed is None:
            return False
        correlation_id, call_id, intent_id = claimed
        synthetic = self.call_id is None or self.call_id == self.correlation_id  # no model-given id
        if correlation_id:
            self.correlation_id = correlation_id
        if synthetic:
            self.call_id = call_id or self.correlation_id
        self.intent_record_id = intent_id
        self.continues = True
        span = self.span
        try:
            if span is not None:
                span.set_attribute(S.A_CORRELATION_ID, self.correlation_id)
        except Exception as exc:  # noqa: BLE001
            count_error("tool_span", exc)
        return True

    def finish(
        self,
        *,
        result: Any = UNSET,
        error: BaseException | str | None = None,
        outcome: str | None = None,
        reason: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        """Write the outcome record and end our span (once; later calls are ignored)."""
        if self._finished:
            return
        self._finished = True
        duration_ms = round((time.perf_counter() - self._t0) * 1000.0, 3)
        if outcome is None:
            outcome = "failure" if error is not None else "success"
        try:
            attrs = E.merge_attributes(E.attribute_dict(attributes), self.attributes)
            if reason:
                attrs[S.A_REASON] = E.text(reason)
            with self.active():
                self.outcome_record_id = api.tool_call(
                    self.tool_name,
                    phase="outcome",
                    call_id=self.call_id,
                    # continuing a framework's intent: the arguments as the function received them
                    arguments=self.arguments if self.continues else UNSET,
                    result=result,
                    outcome=outcome,
                    error=error,
                    duration_ms=duration_ms,
                    tool_type=self.tool_type,
                    correlation_id=self.correlation_id,
                    attributes=attrs,
                )
        except Exception as exc:  # noqa: BLE001
            count_error("tool_call", exc)
        self._end_span(result, error, outcome)

    def _end_span(self, result: Any, error: BaseException | str | None, outcome: str) -> None:
        span = self.span
        if span is None:
            return
        try:
            if span.is_recording():
                self._span_content(S.GEN_AI_TOOL_RESULT, result)
                if outcome != "success":
                    span.set_attribute(S.A_OUTCOME, outcome)
                etype = E.error_type(error) or ({"failure": "tool_error", "denied": "denied"}.get(outcome))
                if etype:
                    span.set_attribute(S.A_ERROR_TYPE, etype)
                    span.set_status(Status(StatusCode.ERROR))
            if self.owns_span:
                span.end()
        except Exception as exc:  # noqa: BLE001
            count_error("tool_span", exc)


_claim: Callable[[Any], tuple[str | None, str | None, str | None] | None] | None = None


def _bridge_claim(span: Any) -> tuple[str | None, str | None, str | None] | None:
    """The span bridge's claim (imported on first use: the bridge imports the API)."""
    global _claim
    try:
        if _claim is None:
            from auditel.spans.attach import claim

            _claim = claim
        return _claim(span)
    except Exception as exc:  # noqa: BLE001
        count_error("tool_span", exc)
        return None


class AgentRun:
    """One agent (or graph) invocation: ``invoke_agent {agent}`` span plus ``auditel.agent_run`` records."""

    __slots__ = ("agent_name", "framework", "attributes", "span", "correlation_id", "_t0", "_finished")

    def __init__(self, agent_name: str | None, *, framework: str, attributes: Mapping[str, Any] | None = None) -> None:
        self.agent_name = agent_name
        self.framework = framework
        self.attributes: dict[str, Any] = E.attribute_dict(attributes)
        self.span: Span | None = None
        self.correlation_id = new_record_id()
        self._t0 = 0.0
        self._finished = False

    def start(self) -> AgentRun:
        self._t0 = time.perf_counter()
        try:
            name = f"invoke_agent {self.agent_name}" if self.agent_name else "invoke_agent"
            attrs = {
                S.GEN_AI_OPERATION: "invoke_agent",
                S.GEN_AI_AGENT_NAME: self.agent_name,
                "audit.framework": self.framework,
                S.A_CORRELATION_ID: self.correlation_id,
            }
            self.span = tracer().start_span(
                name, kind=SpanKind.INTERNAL, attributes={k: v for k, v in attrs.items() if v is not None}
            )
        except Exception as exc:  # noqa: BLE001
            count_error("agent_span", exc)
        with self.active():
            self._emit("intent", None, None, None)
        return self

    def active(self) -> span_active:
        return span_active(self.span)

    def finish(
        self,
        *,
        error: BaseException | None = None,
        outcome: str | None = None,
        reason: str | None = None,
        attributes: Mapping[str, Any] | None = None,
    ) -> None:
        if self._finished:
            return
        self._finished = True
        if outcome is None:
            outcome = "failure" if error is not None else "success"
        if attributes:
            self.attributes = E.merge_attributes(E.attribute_dict(attributes), self.attributes)
        with self.active():
            self._emit("outcome", outcome, error, reason)
        span = self.span
        if span is not None:
            try:
                if error is not None:
                    span.set_attribute(S.A_ERROR_TYPE, type(error).__qualname__)
                    span.set_status(Status(StatusCode.ERROR))
                span.end()
            except Exception as exc:  # noqa: BLE001
                count_error("agent_span", exc)

    def _emit(self, phase: str, outcome: str | None, error: BaseException | None, reason: str | None) -> None:
        rt = _rt.current()
        if rt is None:
            return
        try:
            name, attrs, severity = E.agent_run(
                rt,
                self.agent_name,
                framework=self.framework,
                phase=phase,
                outcome=outcome,
                correlation_id=self.correlation_id,
                started=self._t0,
                error=error,
                reason=reason,
                attributes=self.attributes,
            )
            rt.emit(name, attrs, None, severity)
        except Exception as exc:  # noqa: BLE001
            count_error("agent_run", exc)


def record_handoff(
    from_agent: str | None,
    to_agent: str | None,
    *,
    framework: str,
    attributes: Mapping[str, Any] | None = None,
    error: BaseException | None = None,
) -> str | None:
    """One agent handed the conversation to another."""
    rt = _rt.current()
    if rt is None:
        return None
    try:
        name, attrs, severity = E.handoff(
            rt, from_agent, to_agent, framework=framework, error=error, attributes=attributes
        )
        return rt.emit(name, attrs, None, severity)
    except Exception as exc:  # noqa: BLE001
        count_error("handoff", exc)
        return None


# --- generators --------------------------------------------------------------------------------
StepScope = Callable[[], Any]  # returns a context manager active while the wrapped generator runs


def wrap_generator(
    gen: Generator[Any, Any, Any], step_scope: StepScope, on_end: Callable[[BaseException | None, bool, int], None]
) -> Generator[Any, Any, Any]:
    """Yield from ``gen`` faithfully (send/throw/close/return value); ``on_end(error, complete, items)`` once."""
    items = 0
    try:
        with step_scope():
            item = next(gen)
        while True:
            items += 1
            try:
                sent = yield item
            except GeneratorExit:
                with step_scope():
                    gen.close()
                on_end(None, False, items)
                raise
            except BaseException as thrown:  # noqa: BLE001 - forwarded into the wrapped generator
                with step_scope():
                    item = gen.throw(thrown)
            else:
                with step_scope():
                    item = gen.send(sent) if sent is not None else next(gen)
    except StopIteration as stop:
        on_end(None, True, items)
        return stop.value
    except GeneratorExit:
        raise
    except BaseException as exc:
        on_end(exc, False, items)
        raise


async def wrap_async_generator(
    agen: AsyncGenerator[Any, Any], step_scope: StepScope, on_end: Callable[[BaseException | None, bool, int], None]
) -> AsyncGenerator[Any, Any]:
    """Async counterpart of ``wrap_generator`` (asend/athrow/aclose forwarded)."""
    items = 0
    try:
        with step_scope():
            item = await agen.__anext__()
        while True:
            items += 1
            try:
                sent = yield item
            except GeneratorExit:
                with step_scope():
                    await agen.aclose()
                on_end(None, False, items)
                raise
            except BaseException as thrown:  # noqa: BLE001
                with step_scope():
                    item = await agen.athrow(thrown)
            else:
                with step_scope():
                    item = await (agen.asend(sent) if sent is not None else agen.__anext__())
    except StopAsyncIteration:
        on_end(None, True, items)
    except GeneratorExit:
        raise
    except BaseException as exc:
        on_end(exc, False, items)
        raise
