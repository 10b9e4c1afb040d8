"""The guarded lifecycle entry points of ``auditel``: ``shutdown``, ``instrument``, ``uninstrument``.

(``configure`` is ``auditel.runtime.configure``: the one entry point that raises, by design.)
"""

from __future__ import annotations

from auditel.api.guard import guarded


@guarded("shutdown")
def shutdown(timeout: float = 5.0) -> None:
    """Write the stream-end marker, flush (bounded by ``timeout`` seconds) and stop auditel."""
    from auditel.record.events import seconds
    from auditel.runtime import shutdown as shutdown_runtime

    shutdown_runtime(seconds(timeout, 5.0))


@guarded("instrument", list)
def instrument(*names: str, **kwargs: object) -> list[str]:
    """Switch on auditel's auto-instrumentations (all available ones, or those named).

    ``kwargs`` go to each ``BaseInstrumentor.instrument`` (e.g. ``tracer_provider=``)."""
    from auditel.instrumentation import instrument as instrument_all

    return instrument_all(*(n if type(n) is str else str(n) for n in names), **kwargs)


@guarded("uninstrument", list)
def uninstrument(*names: str) -> list[str]:
    """Remove auditel's auto-instrumentations (all, or those named)."""
    from auditel.instrumentation import uninstrument as uninstrument_all

    return uninstrument_all(*(n if type(n) is str else str(n) for n in names))
