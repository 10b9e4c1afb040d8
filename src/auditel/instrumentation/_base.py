"""Shared machinery of auditel's instrumentations.

* ``guard``: run auditel-side code (building attributes, recording) so that any failure is
  counted in ``status()`` and never reaches the host's call.
* ``tracer()``: the tracer for GenAI spans, from the global TracerProvider (never replaced).
* ``content_settings()``: the content-capture mode in force.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, TypeVar

from opentelemetry import trace

from auditel import runtime as _rt
from auditel.config.settings import Settings

T = TypeVar("T")

TRACER_NAME = "auditel"


_tracer: tuple[object, trace.Tracer] | None = None


def tracer() -> trace.Tracer:
    """auditel's tracer from the global TracerProvider (cached while that provider stays the same)."""
    global _tracer
    provider = trace.get_tracer_provider()
    cached = _tracer
    if cached is not None and cached[0] is provider:
        return cached[1]
    from auditel._version import __version__

    result = trace.get_tracer(TRACER_NAME, __version__, tracer_provider=provider)
    _tracer = (provider, result)
    return result


def settings() -> Settings:
    rt = _rt.current()
    if rt is not None:
        return rt.settings
    try:
        return Settings.from_env()
    except Exception:  # noqa: BLE001
        return Settings()


def count_error(kind: str, exc: BaseException | str) -> None:
    rt = _rt.current()
    if rt is not None:
        rt.counters.error(kind, exc)


def guard(kind: str, default: Any = None) -> Callable[[Callable[..., T]], Callable[..., T]]:
    """Decorator for auditel-side helpers: exceptions are counted under ``kind`` and swallowed."""

    def deco(fn: Callable[..., T]) -> Callable[..., T]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> T:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001
                count_error(kind, exc)
                return default

        return wrapper

    return deco
