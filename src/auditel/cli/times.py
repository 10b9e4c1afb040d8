"""The one time parser of the CLI and the read API: ``--since``/``--until``/``--older-than`` values."""

from __future__ import annotations

import datetime as _dt
import re
import sys
import time

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
ACCEPTED = "an ISO-8601 time (2026-01-31T12:00:00Z), an age such as 90s, 15m, 2h, 3d, 1w, or unix nanoseconds"


def parse_time(value: str | int | float | _dt.datetime, *, now_ns: int | None = None) -> int:
    """ISO-8601 text, a relative age (``90s``, ``15m``, ``2h``, ``3d``, ``1w``), a ``datetime`` or
    unix nanoseconds (an int, or digits) -> unix ns. Raises ``ValueError`` naming what is accepted."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time: expected {ACCEPTED}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value * 1e9)  # a float is unix seconds (time.time())
    if isinstance(value, _dt.datetime):
        t = value if value.tzinfo else value.replace(tzinfo=_dt.timezone.utc)
        return int(t.timestamp() * 1e9)
    text = str(value).strip()
    if text.isdigit():
        return int(text)  # unix nanoseconds, as an export's records carry them
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhdw])", text)
    if m:
        now = time.time_ns() if now_ns is None else now_ns
        return now - int(float(m.group(1)) * _UNITS[m.group(2)] * 1e9)
    try:
        t = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time: expected {ACCEPTED}") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return int(t.timestamp() * 1e9)


def parse_time_arg(value: str, option: str, command: str) -> int:
    """``parse_time`` for a command-line option: a bad value exits 2 naming the option."""
    try:
        return parse_time(value)
    except ValueError as exc:
        print(f"auditel {command}: {option} {exc}", file=sys.stderr)
        raise SystemExit(2) from None
