"""Stream proxies: an SDK stream wrapped so that its invocation finishes exactly once, on
exhaustion, error, ``close()``/``aclose()``, context-manager exit, early ``break`` or abandonment
(``weakref.finalize`` when the proxy is garbage-collected: outcome ``unknown``)."""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from typing import Any, SupportsIndex

import wrapt

from auditel.instrumentation import base as _base
from auditel.instrumentation.genai.invocation import Invocation
from auditel.instrumentation.genai.shapes import ResponseFacts


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

    def exited(self, exc: BaseException | None) -> None:
        """The stream's context manager exited: an exception (but the generator's own close) fails it."""
        if exc is not None and not isinstance(exc, GeneratorExit):
            self.failed(exc)
        else:
            self.closed()

    @staticmethod
    def abandoned(invocation: Invocation) -> None:
        """GC finalizer: the stream was dropped without being exhausted or closed."""
        invocation.finish(outcome="success" if invocation.facts.complete else "unknown", end="abandoned")


class _StreamProxy(wrapt.ObjectProxy):
    """What the sync and async proxies share: the state, and the finalizer for an abandoned stream."""

    def __init__(self, wrapped: Any, state: StreamState) -> None:
        super().__init__(wrapped)
        self._self_state = state
        # The finalizer holds the invocation, not the proxy, so it cannot keep the proxy alive.
        weakref.finalize(self, StreamState.abandoned, state.invocation)


class SyncStreamProxy(_StreamProxy):
    """An SDK stream that finishes its invocation exactly once, whatever way it ends."""

    def __iter__(self) -> SyncStreamProxy:
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

    def __enter__(self) -> SyncStreamProxy:
        self.__wrapped__.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return self.__wrapped__.__exit__(exc_type, exc, tb)
        finally:
            self._self_state.exited(exc)

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_state.closed()

    def __reduce_ex__(self, protocol: SupportsIndex) -> Any:  # pragma: no cover - streams are not picklable anyway
        return self.__wrapped__.__reduce_ex__(protocol)


class AsyncStreamProxy(_StreamProxy):
    """The async twin of ``SyncStreamProxy``."""

    def __aiter__(self) -> AsyncStreamProxy:
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

    async def __aenter__(self) -> AsyncStreamProxy:
        await self.__wrapped__.__aenter__()
        return self

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Any:
        try:
            return await self.__wrapped__.__aexit__(exc_type, exc, tb)
        finally:
            self._self_state.exited(exc)

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
    if isinstance(obj, _StreamProxy):
        return obj._self_state
    return None
