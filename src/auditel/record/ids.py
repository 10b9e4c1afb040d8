"""Identifiers: record ids (ULID: time-ordered, unique, the backend's dedup key) and stream/session ids."""

from __future__ import annotations

import os
import random
import time
import uuid

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class _Entropy:
    """Random bits for ids from a generator seeded with 128 bits of OS entropy, reseeded after fork.

    Ids must be unique, not secret, so a seeded generator (one ~0.1 us call) replaces an
    ``os.urandom`` syscall per record on the emit path.
    """

    def __init__(self) -> None:
        self.reseed()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self.reseed)

    def reseed(self) -> None:
        self.rng = random.Random(int.from_bytes(os.urandom(16), "big") ^ os.getpid())


_entropy = _Entropy()


_PAIRS = [a + b for a in _CROCKFORD for b in _CROCKFORD]  # 10 bits -> two base32 characters


_time_prefix: tuple[int, str] = (-1, "")  # (millisecond, its 10 characters), replaced as one tuple


def new_record_id() -> str:
    """A 26-character ULID: 48 bits of milliseconds then 80 random bits, Crockford base32.

    The 80 random bits start on a character boundary, so the ten time characters are encoded once
    per millisecond and reused; the random part is eight two-character lookups.
    """
    global _time_prefix
    ms = time.time_ns() // 1_000_000
    cached = _time_prefix
    if cached[0] != ms:
        cached = (ms, "".join([_PAIRS[(ms >> shift) & 1023] for shift in (40, 30, 20, 10, 0)]))
        _time_prefix = cached
    r = _entropy.rng.getrandbits(80)
    p = _PAIRS
    return (
        cached[1]
        + p[r >> 70]
        + p[(r >> 60) & 1023]
        + p[(r >> 50) & 1023]
        + p[(r >> 40) & 1023]
        + p[(r >> 30) & 1023]
        + p[(r >> 20) & 1023]
        + p[(r >> 10) & 1023]
        + p[r & 1023]
    )


def new_stream_id() -> str:
    return uuid.uuid4().hex


def new_session_id() -> str:
    return uuid.uuid4().hex
