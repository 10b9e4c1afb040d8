"""The retry and backoff policy: what the shipper does with each kind of answer, and when it tries again.

Pure functions over enums and numbers (no clock, no I/O, no randomness of its own: the caller
passes ``uniform``), so the whole policy is tested directly. ``transport.py`` classifies an answer
into a :class:`Kind`; :func:`action_for` turns it into an :class:`Action` on the batch;
:func:`next_delay` says how long to wait after a failed attempt; :func:`wait_state` names the
shipper's state meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum


class Kind(str, Enum):
    """How one delivery attempt ended (the classification of the backend's answer)."""

    SUCCESS = "success"  # 2xx / gRPC OK (a partial_success with 0 rejected is a warning)
    PARTIAL = "partial"  # partial_success with rejected records
    RETRY = "retry"  # 429, 502-504, retryable gRPC codes: the backend asks us to come back
    TRANSPORT = "transport"  # no usable answer: refused, reset, timed out, TLS failure
    AUTH = "auth"  # 401/403, UNAUTHENTICATED, PERMISSION_DENIED
    CONFIG = "config"  # redirect, 404/405/415, UNIMPLEMENTED: the endpoint is wrong
    TOO_LARGE = "too_large"  # 413
    PERMANENT = "permanent"  # any other refusal
    UNENCODABLE = "unencodable"  # the stored record cannot be encoded as OTLP (never sent)

    def __str__(self) -> str:
        return self.value


class Action(Enum):
    """What the shipper does with the batch after an attempt."""

    MARK_SHIPPED = "mark_shipped"
    SPLIT = "split"  # send each half on its own: one refused record must not take its batch down
    DEAD_LETTER = "dead_letter"  # keep the rows as dead letters (never deleted, never retried alone)
    BACK_OFF = "back_off"  # keep the rows pending; exponential backoff with full jitter
    PAUSE = "pause"  # keep the rows pending; retry slowly (a person must fix credentials or endpoint)


class ShipState(str, Enum):
    """The shipper's state as ``status()['shipper_state']`` shows it."""

    IDLE = "idle"
    SHIPPING = "shipping"
    BACKOFF = "backoff"
    PAUSED_AUTH = "paused_auth"
    MISCONFIGURED = "misconfigured"

    def __str__(self) -> str:
        return self.value


_REFUSED = (Kind.PARTIAL, Kind.PERMANENT, Kind.TOO_LARGE, Kind.UNENCODABLE)


def action_for(kind: Kind | str, batch_size: int) -> Action:
    """The action for an answer of ``kind`` to a batch of ``batch_size`` records."""
    kind = Kind(kind)
    if kind is Kind.SUCCESS:
        return Action.MARK_SHIPPED
    if kind in (Kind.TOO_LARGE, Kind.PERMANENT) and batch_size > 1:
        return Action.SPLIT  # bisect down to the record the backend refuses
    if kind in _REFUSED:
        return Action.DEAD_LETTER
    if kind in (Kind.AUTH, Kind.CONFIG):
        return Action.PAUSE
    return Action.BACK_OFF


def wait_state(kind: Kind | str) -> ShipState:
    """The state while waiting for the next attempt after a failure of ``kind``."""
    kind = Kind(kind)
    if kind is Kind.AUTH:
        return ShipState.PAUSED_AUTH
    if kind is Kind.CONFIG:
        return ShipState.MISCONFIGURED
    return ShipState.BACKOFF


@dataclass(frozen=True)
class Policy:
    """The numbers of the policy (from ``ShipTuning``)."""

    backoff_min_s: float
    backoff_max_s: float
    slow_retry_s: float
    retry_after_max_s: float


def next_delay(
    policy: Policy,
    kind: Kind | str,
    failures: int,
    retry_after_s: float | None,
    uniform: Callable[[float, float], float],
) -> float:
    """Seconds until the next attempt after ``failures`` consecutive failed attempts (≥ 1).

    Auth and configuration problems retry slowly (``slow_retry_s`` ± 10 %); everything else backs
    off exponentially with full jitter, up to ``backoff_max_s``. A ``Retry-After`` (or gRPC
    ``RetryInfo``) is honoured as a minimum, capped at ``retry_after_max_s`` so that a hostile
    endpoint cannot park the shipper for days.
    """
    kind = Kind(kind)
    if kind in (Kind.AUTH, Kind.CONFIG):
        delay = policy.slow_retry_s * uniform(0.9, 1.1)
    else:
        exponent = min(max(failures, 1) - 1, 30)
        cap = min(policy.backoff_max_s, policy.backoff_min_s * (2**exponent))
        delay = uniform(0.0, cap)
    if retry_after_s is not None:
        delay = max(delay, min(retry_after_s, policy.retry_after_max_s))
    return delay


__all__ = ["Action", "Kind", "Policy", "ShipState", "action_for", "next_delay", "wait_state"]
