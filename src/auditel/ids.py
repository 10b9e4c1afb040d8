"""Identifiers: record ids (ULID: time-ordered, unique, the backend's dedup key) and stream/session ids."""

from __future__ import annotations

import os
import time
import uuid

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_record_id() -> str:
    """A 26-character ULID: 48 bits of milliseconds then 80 random bits, Crockford base32."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    out = []
    for _ in range(26):
        out.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


def new_stream_id() -> str:
    return uuid.uuid4().hex


def new_session_id() -> str:
    return uuid.uuid4().hex
