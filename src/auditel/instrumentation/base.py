"""Shared machinery of auditel's instrumentations.

* ``tracer()``: THE tracer of every auditel instrumentation (model calls, tools, agents). It
  comes from the TracerProvider given to ``instrument(tracer_provider=...)`` when one was given
  (the OTel instrumentation convention), else from the global TracerProvider, which auditel
  never replaces; a ``ProxyTracer`` made before the app set its provider is never kept.
* ``settings()``: the settings in force (the configured runtime's, else the environment's).
* ``count_error()``: count an auditel-side failure in ``status()`` (never raised).
"""

from __future__ import annotations

from opentelemetry import trace

from auditel import runtime as _rt
from auditel.config.settings import Settings

TRACER_NAME = "auditel"

_provider: trace.TracerProvider | None = None  # given to instrument(tracer_provider=...)
_owner: object | None = None  # the instrumentor that gave it
_tracer: tuple[object, trace.Tracer] | None = None


def use_tracer_provider(provider: trace.TracerProvider | None) -> None:
    """Make auditel's spans go to ``provider`` (``None``: back to the global provider)."""
    global _provider, _tracer
    _provider = provider
    _tracer = None


def adopt_tracer_provider(owner: object, kwargs: dict[str, object]) -> None:
    """``instrument(tracer_provider=p)``: auditel's spans go to ``p`` (one tracer serves every auditel
    instrumentation, so the provider given last applies to all of them) until ``owner`` uninstruments."""
    global _owner
    provider = kwargs.get("tracer_provider")
    if provider is not None:
        use_tracer_provider(provider)  # type: ignore[arg-type]
        _owner = owner


def release_tracer_provider(owner: object) -> None:
    """``owner`` uninstrumented: the provider it gave stops being used."""
    global _owner
    if _owner is owner:
        use_tracer_provider(None)
        _owner = None


def tracer_provider() -> trace.TracerProvider:
    return _provider if _provider is not None else trace.get_tracer_provider()


def tracer() -> trace.Tracer:
    """auditel's tracer (cached while its provider stays the same)."""
    global _tracer
    provider = tracer_provider()
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
