"""Shared GenAI machinery for auditel's model-call instrumentations.

One ``Invocation`` per model call: it starts a GenAI-convention CLIENT span
(``{operation} {model}``) on the global TracerProvider, collects the response facts
(ids, finish reasons, token usage, the tool calls the model asked for), and ``finish()``
ends it exactly once: span attributes, the ``auditel.model_call`` audit record (written while
the span is current, so the record carries its trace and span ids and becomes a span event),
and the optional ``gen_ai.client.inference.operation.details`` event.

Streams are wrapped in ``SyncStreamProxy`` / ``AsyncStreamProxy`` (``wrapt.ObjectProxy``):
they behave like the SDK stream (iteration, context manager, ``.response``, ``close()``...) and
finish the invocation exactly once on exhaustion, error, ``close()``/``aclose()``, context-manager
exit, early ``break`` (via ``close``/exit) and abandonment (``weakref.finalize`` when the proxy is
garbage-collected: outcome ``unknown``).

Content follows ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (``Settings``):
messages go on spans only with ``SPAN_ONLY``/``SPAN_AND_EVENT``, into audit records and the
details event only with ``EVENT_ONLY``/``SPAN_AND_EVENT``; otherwise records keep keyed digests and
sizes. Nothing here raises into the host's call: every auditel-side failure is counted.
"""

from __future__ import annotations

import json
import os
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Collection, Iterable, Mapping

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, unwrap
from opentelemetry.trace import SpanKind, Status, StatusCode

from auditel import runtime as _rt
from auditel.api.helpers import model_call
from auditel.instrumentation import _base

EVENT_DETAILS = "gen_ai.client.inference.operation.details"
EMIT_EVENT_VAR = "OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT"

# semconv attribute names used here (the schema module has the core ones)
REQ_MODEL = "gen_ai.request.model"
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
RESP_ID = "gen_ai.response.id"
RESP_MODEL = "gen_ai.response.model"
FINISH = "gen_ai.response.finish_reasons"
IN_TOKENS = "gen_ai.usage.input_tokens"
OUT_TOKENS = "gen_ai.usage.output_tokens"
CACHE_READ = "gen_ai.usage.cache_read.input_tokens"
CACHE_CREATION = "gen_ai.usage.cache_creation.input_tokens"
REASONING = "gen_ai.usage.reasoning.output_tokens"
TTFC = "gen_ai.response.time_to_first_chunk"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
TOOL_DEFINITIONS = "gen_ai.tool.definitions"
ERROR_TYPE = "error.type"

NOT_GIVEN_NAMES = frozenset({"NotGiven", "Omit", "NoneType"})


def given(value: Any) -> bool:
    """False for None and the SDKs' ``NOT_GIVEN`` / ``omit`` sentinels."""
    return value is not None and type(value).__name__ not in NOT_GIVEN_NAMES


_IS_MAPPING: dict[type, bool] = {dict: True}


def _is_mapping(cls: type) -> bool:
    known = _IS_MAPPING.get(cls)
    if known is None:
        known = issubclass(cls, Mapping)
        if len(_IS_MAPPING) < 512:
            _IS_MAPPING[cls] = known
    return known


def field_of(obj: Any, name: str, default: Any = None) -> Any:
    """``obj.name`` or ``obj[name]``: SDK models and plain dicts alike.

    Called dozens of times per streamed response, so the Mapping check is remembered per type
    (an ABC ``isinstance`` is the slowest part otherwise)."""
    if obj is None:
        return default
    value = obj.get(name, default) if _is_mapping(type(obj)) else getattr(obj, name, default)
    return value if given(value) else default


def listed(value: Any) -> list[Any] | None:
    """A list of the value when it can be read without consuming anything (never an iterator)."""
    if isinstance(value, (list, tuple)):
        return list(value)
    return None


# --- content settings ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ContentPolicy:
    on_spans: bool
    in_records: bool
    emit_event: bool


_policy_cache: tuple[object, ContentPolicy] | None = None


def content_policy() -> ContentPolicy:
    """The content mode in force, and whether the details event is emitted.

    An explicit ``OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT`` wins; otherwise the event is emitted for
    ``EVENT_ONLY`` and ``SPAN_AND_EVENT`` (as the OTel GenAI utilities do). Worked out once per
    configured runtime (like every other setting, the variables are read at ``configure()``).
    """
    global _policy_cache
    st = _base.settings()
    cached = _policy_cache
    if cached is not None and cached[0] is st:
        return cached[1]
    raw = os.environ.get(EMIT_EVENT_VAR, "").strip().lower()
    if raw in ("true", "1", "yes", "on"):
        emit = True
    elif raw in ("false", "0", "no", "off"):
        emit = False
    else:
        emit = st.content_in_records
    policy = ContentPolicy(st.content_on_spans, st.content_in_records, emit)
    if _rt.current() is not None:  # settings from the environment (no runtime) are rebuilt each call
        _policy_cache = (st, policy)
    return policy


# --- response facts -------------------------------------------------------------------------------
@dataclass
class ResponseFacts:
    """What a response (or an accumulated stream) says about the call."""

    response_id: str | None = None
    response_model: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_creation_tokens: int | None = None
    reasoning_tokens: int | None = None
    output_messages: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # {"name", "id", "arguments"}
    complete: bool = False  # the provider said the response is finished
    scratch: dict[str, Any] = field(default_factory=dict)  # stream accumulators' working state
    build: Callable[["ResponseFacts"], None] | None = None  # turns scratch into the fields above


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# --- request description -------------------------------------------------------------------------
@dataclass
class Request:
    provider: str
    operation: str
    model: str | None
    attributes: dict[str, Any]
    input_messages: list[dict[str, Any]] | None = None  # semconv shape; None = not readable
    system_instructions: list[dict[str, Any]] | None = None
    tool_definitions: list[Any] | None = None
    streaming: bool = False


_server_cache: tuple[object, dict[str, Any]] | None = None


def server_attributes(client: Any) -> dict[str, Any]:
    """``server.address`` / ``server.port`` from an SDK client's ``base_url`` (read-only result:
    the last URL object seen is remembered, as most applications use one client)."""
    global _server_cache
    try:
        # the SDKs' ``base_url`` property imports a module on every read: take the field it returns
        url = getattr(client, "_base_url", None) or client.base_url
        cached = _server_cache
        if cached is not None and cached[0] is url:
            return cached[1]
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        attrs = {"server.address": host, "server.port": port}
        _server_cache = (url, attrs)
        return attrs
    except Exception:  # noqa: BLE001
        return {}


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
        usage = _usage_attributes(facts)
        if span.is_recording():
            attrs: dict[str, Any] = dict(usage)
            if facts.response_id:
                attrs[RESP_ID] = facts.response_id
            if facts.response_model:
                attrs[RESP_MODEL] = facts.response_model
            if facts.finish_reasons:
                attrs[FINISH] = facts.finish_reasons
            if self.first_chunk_mono is not None:
                attrs[TTFC] = self.first_chunk_mono - self.start_mono
            if end is not None:
                attrs["auditel.stream.end"] = end
            if self.policy.on_spans:
                attrs.update(_content_attributes(req, facts, as_json=True))
            if error is not None:
                attrs[ERROR_TYPE] = type(error).__qualname__
                span.set_status(Status(StatusCode.ERROR, type(error).__qualname__))
            span.set_attributes(attrs)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            self._record(outcome, error, duration_ms, usage, end)
            if self.policy.emit_event:
                self._emit_details_event(usage, error)
        finally:
            otel_context.detach(token)
            span.end()

    def _record(
        self, outcome: str, error: BaseException | None, duration_ms: float, usage: dict[str, Any], end: str | None
    ) -> None:
        if _rt.current() is None:
            return
        facts = self.facts
        req = self.request
        extra: dict[str, Any] = {k: v for k, v in usage.items() if k not in (IN_TOKENS, OUT_TOKENS)}
        extra.update({k: v for k, v in req.attributes.items() if k.startswith(("gen_ai.request.", "server."))})
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
            tool_calls=facts.tool_calls or None,
            attributes=extra,
            **kwargs,
        )

    def _emit_details_event(self, usage: dict[str, Any], error: BaseException | None) -> None:
        from opentelemetry._logs import get_logger

        from auditel._version import __version__

        facts = self.facts
        req = self.request
        attrs: dict[str, Any] = {OPERATION: req.operation, PROVIDER: req.provider}
        if req.model:
            attrs[REQ_MODEL] = req.model
        attrs.update(req.attributes)
        attrs.update(usage)
        if facts.response_id:
            attrs[RESP_ID] = facts.response_id
        if facts.response_model:
            attrs[RESP_MODEL] = facts.response_model
        if facts.finish_reasons:
            attrs[FINISH] = facts.finish_reasons
        if error is not None:
            attrs[ERROR_TYPE] = type(error).__qualname__
        if self.policy.in_records:
            attrs.update(_content_attributes(req, facts, as_json=False))
        get_logger(_base.TRACER_NAME, __version__).emit(event_name=EVENT_DETAILS, attributes=attrs)


def _usage_attributes(facts: ResponseFacts) -> dict[str, Any]:
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


# --- stream proxies --------------------------------------------------------------------------------
class StreamState:
    """What a stream proxy shares with its GC finalizer (never the proxy itself)."""

    __slots__ = ("invocation", "observe", "__weakref__")

    def __init__(self, invocation: Invocation, observe: Callable[[ResponseFacts, Any], None]) -> None:
        self.invocation = invocation
        self.observe = observe

    def on_item(self, item: Any) -> None:
        try:
            inv = self.invocation
            if inv.first_chunk_mono is None:
                inv.first_chunk_mono = time.monotonic()
            self.observe(inv.facts, item)
        except Exception as exc:  # noqa: BLE001
            _base.count_error("genai_stream_chunk", exc)

    def exhausted(self) -> None:
        self.invocation.facts.complete = True
        self.invocation.finish(end="exhausted")

    def failed(self, exc: BaseException) -> None:
        self.invocation.finish(error=exc, end="error")

    def closed(self) -> None:
        inv = self.invocation
        inv.finish(outcome="success" if inv.facts.complete else "unknown", end="closed")

    @staticmethod
    def abandoned(invocation: Invocation) -> None:
        """GC finalizer: the stream was dropped without being exhausted or closed."""
        invocation.finish(outcome="success" if invocation.facts.complete else "unknown", end="abandoned")


def _watch(proxy: Any, state: StreamState) -> None:
    # The finalizer holds the invocation, not the proxy, so it cannot keep the proxy alive.
    weakref.finalize(proxy, StreamState.abandoned, state.invocation)


class SyncStreamProxy(wrapt.ObjectProxy):  # type: ignore[misc]
    """An SDK stream that finishes its invocation exactly once, whatever way it ends."""

    def __init__(self, wrapped: Any, state: StreamState) -> None:
        super().__init__(wrapped)
        self._self_state = state
        _watch(self, state)

    def __iter__(self) -> "SyncStreamProxy":
        return self

    def __next__(self) -> Any:
        try:
            item = self.__wrapped__.__next__()
        except StopIteration:
            self._self_state.exhausted()
            raise
        except BaseException as exc:
            self._self_state.failed(exc)
            raise
        self._self_state.on_item(item)
        return item

    def __enter__(self) -> "SyncStreamProxy":
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            if exc is not None and not isinstance(exc, GeneratorExit):
                self._self_state.failed(exc)
            else:
                self._self_state.closed()

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_state.closed()

    def __reduce_ex__(self, protocol: int) -> Any:  # pragma: no cover - streams are not picklable anyway
        return self.__wrapped__.__reduce_ex__(protocol)


class AsyncStreamProxy(wrapt.ObjectProxy):  # type: ignore[misc]
    """The async twin of ``SyncStreamProxy``."""

    def __init__(self, wrapped: Any, state: StreamState) -> None:
        super().__init__(wrapped)
        self._self_state = state
        _watch(self, state)

    def __aiter__(self) -> "AsyncStreamProxy":
        return self

    async def __anext__(self) -> Any:
        try:
            item = await self.__wrapped__.__anext__()
        except StopAsyncIteration:
            self._self_state.exhausted()
            raise
        except BaseException as exc:
            self._self_state.failed(exc)
            raise
        self._self_state.on_item(item)
        return item

    async def __aenter__(self) -> "AsyncStreamProxy":
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            if exc is not None and not isinstance(exc, GeneratorExit):
                self._self_state.failed(exc)
            else:
                self._self_state.closed()

    async def close(self) -> Any:
        try:
            return await self.__wrapped__.close()
        finally:
            self._self_state.closed()

    async def aclose(self) -> Any:
        try:
            return await self.__wrapped__.aclose()
        finally:
            self._self_state.closed()


def stream_state_of(obj: Any) -> StreamState | None:
    """The state of one of our stream proxies (for SDK helpers that close the raw response directly)."""
    if isinstance(obj, (SyncStreamProxy, AsyncStreamProxy)):
        return obj._self_state
    return None


# --- calling ---------------------------------------------------------------------------------------
Describe = Callable[[Any, tuple[Any, ...], dict[str, Any]], Request]
FromResponse = Callable[[ResponseFacts, Any], None]
Observe = Callable[[ResponseFacts, Any], None]


def _describe(describe: Describe, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request | None:
    try:
        return describe(instance, args, kwargs)
    except Exception as exc:  # noqa: BLE001
        _base.count_error("genai_describe", exc)
        return None


def _settle(inv: Invocation, result: Any, from_response: FromResponse, observe: Observe, is_async: bool) -> Any:
    """Attach the result to the invocation: finish now, or wrap the stream / raw response."""
    try:
        kind = classify(result)
        if kind == "stream":
            state = StreamState(inv, observe)
            return AsyncStreamProxy(result, state) if is_async else SyncStreamProxy(result, state)
        if kind == "raw":
            if not _body_already_read(result):
                return RawResponseProxy(result, inv, from_response, observe, is_async)
            # the body is in memory and parse() caches: the caller gets the very object it would have
            from_response(inv.facts, result.parse())
            inv.facts.complete = True
            inv.finish()
            return result
        from_response(inv.facts, result)
        inv.facts.complete = True
    except Exception as exc:  # noqa: BLE001
        _base.count_error("genai_response", exc)
    inv.finish()
    return result


_KIND_OF_TYPE: dict[type, str] = {}


def classify(result: Any) -> str:
    """``stream``, ``raw`` (a ``with_raw_response`` / ``with_streaming_response`` object) or ``value``
    (remembered per result type)."""
    cls = type(result)
    kind = _KIND_OF_TYPE.get(cls)
    if kind is None:
        kind = "value"
        for base in cls.__mro__:
            name = base.__name__
            if name in ("Stream", "AsyncStream"):
                kind = "stream"
                break
            if name in ("LegacyAPIResponse", "BaseAPIResponse"):
                kind = "raw"
                break
        if len(_KIND_OF_TYPE) < 512:
            _KIND_OF_TYPE[cls] = kind
    return kind


def call_sync(
    wrapped: Callable[..., Any],
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    describe: Describe,
    from_response: FromResponse,
    observe: Observe,
) -> Any:
    if _rt.current() is None or _suppressed():
        return wrapped(*args, **kwargs)
    req = _describe(describe, instance, args, kwargs)
    inv = start(req) if req is not None else None
    if inv is None:
        return wrapped(*args, **kwargs)
    token = otel_context.attach(trace.set_span_in_context(inv.span))
    try:
        result = wrapped(*args, **kwargs)
    except BaseException as exc:
        otel_context.detach(token)
        inv.finish(error=exc)
        raise
    otel_context.detach(token)
    return _settle(inv, result, from_response, observe, False)


async def call_async(
    wrapped: Callable[..., Any],
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    describe: Describe,
    from_response: FromResponse,
    observe: Observe,
) -> Any:
    if _rt.current() is None or _suppressed():
        return await wrapped(*args, **kwargs)
    req = _describe(describe, instance, args, kwargs)
    inv = start(req) if req is not None else None
    if inv is None:
        return await wrapped(*args, **kwargs)
    token = otel_context.attach(trace.set_span_in_context(inv.span))
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        otel_context.detach(token)
        inv.finish(error=exc)
        raise
    otel_context.detach(token)
    return _settle(inv, result, from_response, observe, True)


def _suppressed() -> bool:
    return not is_instrumentation_enabled()


# --- raw responses ---------------------------------------------------------------------------------
class RawResponseProxy(wrapt.ObjectProxy):  # type: ignore[misc]
    """A ``with_raw_response`` / ``with_streaming_response`` result.

    Used when the body is not in memory yet (a stream, ``with_streaming_response``, or an async
    ``parse``): the HTTP call succeeded (the SDK raises otherwise); the facts are taken when the
    caller calls ``parse()``, whose stream is wrapped; if the caller never parses, the record is
    written (outcome success, no response details) when the object is dropped.
    """

    def __init__(self, wrapped: Any, inv: Invocation, from_response: FromResponse, observe: Observe, is_async: bool):
        super().__init__(wrapped)
        self._self_inv = inv
        self._self_from_response = from_response
        self._self_observe = observe
        self._self_async = is_async
        self._self_stream: Any = None
        weakref.finalize(self, inv.finish)

    def _self_take(self, parsed: Any) -> Any:
        """The caller's parsed value (a stream is wrapped once and the same proxy returned after)."""
        if classify(parsed) == "stream":
            if self._self_stream is None:
                state = StreamState(self._self_inv, self._self_observe)
                cls = AsyncStreamProxy if type(parsed).__name__ == "AsyncStream" else SyncStreamProxy
                self._self_stream = cls(parsed, state)
            return self._self_stream
        try:
            self._self_from_response(self._self_inv.facts, parsed)
            self._self_inv.facts.complete = True
        except Exception as exc:  # noqa: BLE001
            _base.count_error("genai_response", exc)
        self._self_inv.finish()
        return parsed

    def parse(self, *args: Any, **kwargs: Any) -> Any:
        parsed = self.__wrapped__.parse(*args, **kwargs)
        if hasattr(parsed, "__await__"):
            return self._self_await(parsed)
        if args or kwargs:  # parse(to=...) asks for another type: not the model response
            return parsed
        return self._self_take(parsed)

    async def _self_await(self, awaitable: Any) -> Any:
        return self._self_take(await awaitable)


def _body_already_read(raw: Any) -> bool:
    """A non-streaming raw response whose body is in memory, with a synchronous, caching ``parse``."""
    if getattr(raw, "_stream", True) or type(raw).__name__.startswith("Async"):
        return False
    if not hasattr(raw, "_parsed_by_type"):
        return False
    http = getattr(raw, "http_response", None)
    return http is not None and hasattr(http, "_content")


def wrapper(describe: Describe, from_response: FromResponse, observe: Observe, *, is_async: bool) -> Any:
    """A wrapt wrapper for one SDK method (sync or async), with an on/off switch for uninstrument."""
    active = {"on": True}

    if is_async:

        async def async_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            if not active["on"]:
                return await wrapped(*args, **kwargs)
            return await call_async(wrapped, instance, args, kwargs, describe, from_response, observe)

        async_wrapper.active = active  # type: ignore[attr-defined]
        return async_wrapper

    def sync_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        if not active["on"]:
            return wrapped(*args, **kwargs)
        return call_sync(wrapped, instance, args, kwargs, describe, from_response, observe)

    sync_wrapper.active = active  # type: ignore[attr-defined]
    return sync_wrapper


# --- message shapes (GenAI semconv JSON schema) -------------------------------------------------------
def text_part(text: Any) -> dict[str, Any]:
    return {"type": "text", "content": text}


def tool_call_part(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    return {"type": "tool_call", "id": call_id, "name": name, "arguments": arguments}


def parse_json_arguments(arguments: Any) -> Any:
    """Tool-call arguments as sent: JSON text is decoded when it parses, kept as text otherwise."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def parts_of_content(content: Any) -> list[dict[str, Any]]:
    """Message content (text, or a list of typed blocks) as semconv parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [text_part(content)]
    parts: list[dict[str, Any]] = []
    for block in content if isinstance(content, (list, tuple)) else [content]:
        kind = field_of(block, "type")
        if kind in ("text", "input_text", "output_text"):
            parts.append(text_part(field_of(block, "text")))
        elif kind == "tool_use":
            parts.append(tool_call_part(field_of(block, "id"), field_of(block, "name"), field_of(block, "input")))
        elif kind == "tool_result":
            parts.append({"type": "tool_call_response", "id": field_of(block, "tool_use_id"), "response": field_of(block, "content")})
        elif kind in ("thinking", "reasoning"):
            parts.append({"type": "reasoning", "content": field_of(block, "thinking") or field_of(block, "text")})
        else:
            parts.append({"type": str(kind or "unknown")})
    return parts


def usage_total(*values: Any) -> int | None:
    ints = [v for v in (as_int(x) for x in values) if v is not None]
    return sum(ints) if ints else None


def iter_items(value: Any) -> Iterable[Any]:
    return value if isinstance(value, (list, tuple)) else ()


# --- wrapping and unwrapping -----------------------------------------------------------------------
class Patches:
    """The wrapt patches one instrumentor applied, so that ``uninstrument()`` undoes exactly those."""

    def __init__(self) -> None:
        self._applied: list[tuple[Any, str, Any]] = []

    def wrap(self, module: str, name: str, wrapper_fn: Any) -> bool:
        """Wrap ``module.name`` ("Class.method"); a target missing in this SDK version is skipped."""
        import importlib

        try:
            mod = importlib.import_module(module)
            owner_name, _, attr = name.rpartition(".")
            owner = getattr(mod, owner_name) if owner_name else mod
            getattr(owner, attr)
        except (ImportError, AttributeError):
            return False
        wrapt.wrap_function_wrapper(owner, attr, wrapper_fn)
        self._applied.append((owner, attr, wrapper_fn))
        return True

    def unwrap_all(self) -> None:
        for owner, attr, wrapper_fn in reversed(self._applied):
            active = getattr(wrapper_fn, "active", None)
            if active is not None:
                active["on"] = False  # bound copies cached by the SDK (with_raw_response) pass through
            current = owner.__dict__.get(attr)
            if isinstance(current, wrapt.FunctionWrapper) and current._self_wrapper is wrapper_fn:
                unwrap(owner, attr)
            else:
                _restore_inner(owner, attr, wrapper_fn)
        self._applied.clear()


def _restore_inner(owner: Any, attr: str, wrapper_fn: Any) -> None:
    """Another instrumentation wrapped on top of ours: drop our layer from inside the chain."""
    outer = owner.__dict__.get(attr)
    while isinstance(outer, wrapt.FunctionWrapper):
        inner = outer.__wrapped__
        if isinstance(inner, wrapt.FunctionWrapper) and inner._self_wrapper is wrapper_fn:
            try:
                outer.__wrapped__ = inner.__wrapped__
            except (AttributeError, TypeError):
                pass  # our wrapper stays, switched off by its ``active`` flag
            return
        outer = inner


class GenAIInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Base of auditel's model-call instrumentors: ``_apply(patches)`` wraps, uninstrument undoes it."""

    requirement = ""

    def __init__(self) -> None:
        if not hasattr(self, "_patches"):  # BaseInstrumentor is a per-class singleton
            self._patches = Patches()

    def instrumentation_dependencies(self) -> Collection[str]:
        return (self.requirement,)

    def _instrument(self, **kwargs: Any) -> None:
        self._apply(self._patches)

    def _uninstrument(self, **kwargs: Any) -> None:
        self._patches.unwrap_all()

    def _apply(self, patches: Patches) -> None:
        raise NotImplementedError
