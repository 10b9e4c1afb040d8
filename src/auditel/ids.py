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
_SHIFTS = tuple(range(120, -1, -10))


def new_record_id() -> str:
    """A 26-character ULID: 48 bits of milliseconds then 80 random bits, Crockford base32."""
    value = (time.time_ns() // 1_000_000) << 80 | _entropy.rng.getrandbits(80)
    pairs = _PAIRS
    return "".join([pairs[(value >> shift) & 1023] for shift in _SHIFTS])


def new_stream_id() -> str:
    return uuid.uuid4().hex


def new_session_id() -> str:
    return uuid.uuid4().hex
