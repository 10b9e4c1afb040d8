"""Record times: every stored ``time_unix_nano`` is an int of Unix nanoseconds (never a float or a bool).

``to_unix_nano`` accepts what callers really pass: nanoseconds, and seconds, milliseconds or
microseconds (int or float, e.g. ``time.time()``, ``time.time() * 1000``), told apart by
magnitude; an aware or naive ``datetime``. Anything else (negative, a bool, NaN or infinity,
a value beyond what signed 64-bit nanoseconds can hold, i.e. after 2262, a string) is refused:
``None`` is returned and the caller keeps the observation time instead, counting
``bad_timestamp``. A shipper can always encode what is stored, so one bad timestamp can never
stop delivery.
"""

from __future__ import annotations

import datetime as _dt
import math
import numbers
from typing import Any

MAX_NS = 2**63 - 1
# magnitude bands, chosen so that each covers 1973..2262 in its unit and none overlap
_SECONDS_BELOW = 1e11  # 1e11 s is year 5138; 1e11 ns is 1970-01-01T00:01:40
_MILLIS_BELOW = 1e14
_MICROS_BELOW = 1e17


def valid_ns(value: Any) -> bool:
    """True for a value that is stored as it is (an exact int within 0 < ns <= 2^63-1)."""
    return type(value) is int and 0 < value <= MAX_NS


def to_unix_nano(value: Any) -> int | None:
    """Unix nanoseconds from a caller's timestamp, or None when it is refused (see module doc)."""
    try:
        if isinstance(value, bool) or value is None:
            return None
        if isinstance(value, _dt.datetime):
            return _scale(value.timestamp(), 1e9)
        if isinstance(value, int):
            return _scale_int(int(value))
        if isinstance(value, numbers.Real):
            f = float(value)
            if not math.isfinite(f) or f <= 0:
                return None
            if f < _SECONDS_BELOW:
                return _scale(f, 1e9)
            if f < _MILLIS_BELOW:
                return _scale(f, 1e6)
            if f < _MICROS_BELOW:
                return _scale(f, 1e3)
            return _scale(f, 1.0)
    except Exception:  # noqa: BLE001 - a hostile number type: refused like any unusable value
        return None
    return None


def _scale_int(v: int) -> int | None:
    if v <= 0:
        return None
    if v < _SECONDS_BELOW:
        v *= 1_000_000_000
    elif v < _MILLIS_BELOW:
        v *= 1_000_000
    elif v < _MICROS_BELOW:
        v *= 1_000
    return v if v <= MAX_NS else None


def _scale(f: float, factor: float) -> int | None:
    ns = f * factor
    if not math.isfinite(ns) or ns <= 0 or ns > MAX_NS:
        return None
    return int(round(ns))
