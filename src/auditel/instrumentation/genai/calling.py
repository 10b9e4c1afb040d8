"""Calling a wrapped SDK method: ``call_sync`` / ``call_async`` describe the request, start the
invocation, run the call with its span current and settle the result (a value, a stream, or a
raw response); ``wrapper`` makes the wrapt wrapper; ``GenAIInstrumentor`` is the base of the
model-call instrumentors (its wrappers go through the one ``Patcher``, hooked lazily)."""

from __future__ import annotations

import weakref
from collections.abc import Callable, Collection
from typing import Any

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from auditel import runtime as _rt
from auditel.instrumentation import base as _base
from auditel.instrumentation.genai.invocation import Invocation, start
from auditel.instrumentation.genai.shapes import Request, ResponseFacts
from auditel.instrumentation.genai.streams import (
    AsyncStreamProxy,
    StreamState,
    SyncStreamProxy,
)
from auditel.instrumentation.patching import PatchingInstrumentor

# --- calling ---------------------------------------------------------------------------------------
Describe = Callable[[Any, tuple[Any, ...], dict[str, Any]], Request]
FromResponse = Callable[[ResponseFacts, Any], None]
Observe = Callable[[ResponseFacts, Any], None]


def begin(
    describe: Describe,
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    describe_error: str = "genai_describe",
) -> Invocation | None:
    """The invocation of a call about to be made, or ``None`` and the call goes on unrecorded: auditel
    is off, recording is suppressed (``suppressed()``), the request has a shape ``describe`` does not
    know (counted as ``describe_error``) or starting failed (counted)."""
    if _rt.current() is None or _suppressed():
        return None
    try:
        req = describe(instance, args, kwargs)
    except Exception as exc:  # noqa: BLE001
        _base.count_error(describe_error, exc)
        return None
    return start(req)


def finish_from(
    inv: Invocation, from_response: FromResponse, response: Any, response_error: str = "genai_response"
) -> None:
    """A whole response came back: take its facts and finish the invocation (a response ``from_response``
    cannot read still finishes it, without details; counted as ``response_error``)."""
    try:
        from_response(inv.facts, response)
        inv.facts.complete = True
    except Exception as exc:  # noqa: BLE001
        _base.count_error(response_error, exc)
    inv.finish()


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
            finish_from(inv, from_response, result.parse())
            return result
    except Exception as exc:  # noqa: BLE001
        _base.count_error("genai_response", exc)
        inv.finish()
        return result
    finish_from(inv, from_response, result)
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
    inv = begin(describe, instance, args, kwargs)
    if inv is None:
        return wrapped(*args, **kwargs)
    # the span stays current until the call is settled: finish() then writes the record without
    # attaching it a second time
    token = otel_context.attach(trace.set_span_in_context(inv.span))
    try:
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            inv.finish(error=exc)
            raise
        return _settle(inv, result, from_response, observe, False)
    finally:
        otel_context.detach(token)


async def call_async(
    wrapped: Callable[..., Any],
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    describe: Describe,
    from_response: FromResponse,
    observe: Observe,
) -> Any:
    inv = begin(describe, instance, args, kwargs)
    if inv is None:
        return await wrapped(*args, **kwargs)
    # the span stays current until the call is settled: finish() then writes the record without
    # attaching it a second time
    token = otel_context.attach(trace.set_span_in_context(inv.span))
    try:
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            inv.finish(error=exc)
            raise
        return _settle(inv, result, from_response, observe, True)
    finally:
        otel_context.detach(token)


# Set (in the OTel context) while an outer model-call layer (LiteLLM) records the call: the SDK it
# calls underneath (openai) must not record it a second time.
OUTER_CALL_KEY = otel_context.create_key("auditel-genai-outer-call")


def _suppressed() -> bool:
    return not is_instrumentation_enabled() or otel_context.get_value(OUTER_CALL_KEY) is not None


suppressed = _suppressed  # for instrumentations with wrappers of their own (google_genai, litellm, bedrock)


class SpanScope:
    """``with SpanScope(inv):`` around the SDK call of a wrapper of its own: the call runs with the
    invocation's span current (``outer``: and the SDK underneath stands aside, ``OUTER_CALL_KEY``); the
    context is restored when it returns or raises, and an exception finishes the invocation as failed,
    then propagates unchanged. One class for sync and async calls (``with`` works around an ``await``)."""

    __slots__ = ("_inv", "_outer", "_token")

    def __init__(self, inv: Invocation, *, outer: bool = False) -> None:
        self._inv = inv
        self._outer = outer

    def __enter__(self) -> None:
        ctx = trace.set_span_in_context(self._inv.span)
        if self._outer:
            ctx = otel_context.set_value(OUTER_CALL_KEY, True, ctx)
        self._token = otel_context.attach(ctx)

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        otel_context.detach(self._token)
        if exc is not None:
            self._inv.finish(error=exc)


# --- raw responses ---------------------------------------------------------------------------------
class RawResponseProxy(wrapt.ObjectProxy):
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
        finish_from(self._self_inv, self._self_from_response, parsed)
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


class GenAIInstrumentor(PatchingInstrumentor):
    """Base of auditel's model-call instrumentors: ``_apply(patches)`` wraps, uninstrument undoes it."""

    requirement = ""

    def instrumentation_dependencies(self) -> Collection[str]:
        return (self.requirement,)
