"""The retry/backoff policy (``auditel.delivery.retry``), tested directly: pure functions, no I/O."""

from __future__ import annotations

import pytest

from auditel.delivery.retry import Action, Kind, Policy, ShipState, action_for, next_delay, wait_state
from auditel.delivery.transport import classify_http

POLICY = Policy(backoff_min_s=1.0, backoff_max_s=60.0, slow_retry_s=30.0, retry_after_max_s=120.0)


def top(_lo: float, hi: float) -> float:
    return hi  # the jitter's upper end: the cap itself


def bottom(lo: float, _hi: float) -> float:
    return lo


@pytest.mark.parametrize(
    ("kind", "size", "action"),
    [
        (Kind.SUCCESS, 10, Action.MARK_SHIPPED),
        (Kind.PARTIAL, 10, Action.DEAD_LETTER),  # the backend said which were refused, not which: never retried
        (Kind.PERMANENT, 10, Action.SPLIT),
        (Kind.PERMANENT, 1, Action.DEAD_LETTER),
        (Kind.TOO_LARGE, 2, Action.SPLIT),
        (Kind.TOO_LARGE, 1, Action.DEAD_LETTER),
        (Kind.UNENCODABLE, 1, Action.DEAD_LETTER),
        (Kind.RETRY, 10, Action.BACK_OFF),
        (Kind.TRANSPORT, 10, Action.BACK_OFF),
        (Kind.AUTH, 10, Action.PAUSE),
        (Kind.CONFIG, 1, Action.PAUSE),
    ],
)
def test_each_kind_of_answer_has_one_action(kind: Kind, size: int, action: Action) -> None:
    assert action_for(kind, size) is action
    assert action_for(kind.value, size) is action  # the plain string names the same kind


def test_every_kind_has_an_action_and_a_wait_state() -> None:
    for kind in Kind:
        assert isinstance(action_for(kind, 2), Action)
        assert isinstance(wait_state(kind), ShipState)
    assert wait_state(Kind.AUTH) is ShipState.PAUSED_AUTH
    assert wait_state(Kind.CONFIG) is ShipState.MISCONFIGURED
    assert wait_state(Kind.TRANSPORT) is ShipState.BACKOFF


def test_backoff_doubles_up_to_the_cap_with_full_jitter() -> None:
    caps = [next_delay(POLICY, Kind.TRANSPORT, n, None, top) for n in range(1, 10)]
    assert caps == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]
    assert next_delay(POLICY, Kind.RETRY, 5, None, bottom) == 0.0  # full jitter: may retry at once
    assert next_delay(POLICY, Kind.TRANSPORT, 10_000, None, top) == 60.0  # no overflow after a long outage


def test_retry_after_is_a_floor_capped_against_hostile_values() -> None:
    assert next_delay(POLICY, Kind.RETRY, 1, 7.0, bottom) == 7.0
    assert next_delay(POLICY, Kind.RETRY, 1, 0.5, top) == 1.0  # the backoff wins when longer
    assert next_delay(POLICY, Kind.RETRY, 1, 10**9, top) == 120.0  # a server cannot park us for years


def test_auth_and_config_retry_slowly() -> None:
    assert next_delay(POLICY, Kind.AUTH, 1, None, top) == pytest.approx(33.0)
    assert next_delay(POLICY, Kind.CONFIG, 50, None, bottom) == pytest.approx(27.0)


def test_the_classifier_speaks_the_policy_enum() -> None:
    outcome = classify_http(503, {"Retry-After": "3"}, b"", json_body=False)
    assert outcome.kind is Kind.RETRY and outcome.retry_after_s == 3.0
    assert action_for(outcome.kind, 4) is Action.BACK_OFF
