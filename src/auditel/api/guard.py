"""The API boundary: every public entry point of ``auditel`` passes through ``guarded``.

"Never raises" is a property of this boundary, not of each helper's care: whatever fails inside
auditel (a hostile ``__str__``, a cyclic value, a full disk, a bug) is counted in ``status()``
under ``errors[<entry point>]`` and the call returns its neutral value (``None`` for the
recording helpers). Only ``BaseException``s that are not ``Exception`` (``KeyboardInterrupt``,
``SystemExit``) pass, as they must. The user's own code is never run under this guard: the
decorators in ``auditel.api.audited`` call the wrapped function outside it, so its result and
its exception reach the caller unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from auditel import runtime as _rt
from auditel.counters import Counters

F = TypeVar("F", bound=Callable[..., Any])

# Failures with no configured runtime to count them (e.g. in ``status()`` itself, or while
# auditel is disabled): merged into ``status()``.
boundary_counters = Counters()


def describe(exc: BaseException) -> str:
    """``Type: message`` of an exception, even when its ``__str__`` raises (hostile input)."""
    try:
        name = type(exc).__name__
    except Exception:  # noqa: BLE001
        name = "Exception"
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001
        text = "<message unavailable>"
    return f"{name}: {text}"[:300]


def count_failure(entry: str, exc: BaseException) -> None:
    """Count an internal failure at the boundary; never raises."""
    try:
        rt = _rt.peek()
        counters = rt.counters if rt is not None else boundary_counters
        counters.error(entry, describe(exc))
    except Exception:  # noqa: BLE001 - the last line of defence: nothing may escape
        pass


def guarded(entry: str, default: Any = None) -> Callable[[F], F]:
    """Wrap a public entry point: auditel-side failures are counted and ``default`` is returned."""

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the API boundary: never raise into the host
                count_failure(entry, exc)
                return default() if callable(default) else default

        wrapper.__auditel_guarded__ = True  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
