"""Issue 13 items 1 (API side), 7 and 8: timestamps, values without a safe form, bounded work per record."""

from __future__ import annotations

import datetime as dt
import math
import time
from pathlib import Path
from typing import Any

import pytest

import auditel
from auditel.integrity.verify import verify_path
from auditel.record.safe_value import Reasons, safe_value
from conftest import read_records, user_records
from hostile_values import BadGetattr, BadLen, dag


# --- timestamps (issue 13 item 1) -----------------------------------------------------------------
NOW_S = 1_700_000_000


@pytest.mark.parametrize(
    "given, expected",
    [
        (NOW_S, NOW_S * 10**9),
        (NOW_S + 0.5, NOW_S * 10**9 + 500_000_000),
        (NOW_S * 1000, NOW_S * 10**9),
        (NOW_S * 1_000_000, NOW_S * 10**9),
        (NOW_S * 10**9, NOW_S * 10**9),
        (float(NOW_S * 10**9), NOW_S * 10**9),
        (dt.datetime.fromtimestamp(NOW_S, dt.timezone.utc), NOW_S * 10**9),
    ],
)
def test_timestamps_are_converted_to_int_nanoseconds(given: Any, expected: int) -> None:
    from auditel.record.timestamps import to_unix_nano

    assert to_unix_nano(given) == expected


@pytest.mark.parametrize("bad", [-1, -1.5, True, False, math.nan, math.inf, 10**30, 1e300, "1700000000", 0])
def test_unusable_timestamps_are_refused(bad: Any) -> None:
    from auditel.record.timestamps import to_unix_nano

    assert to_unix_nano(bad) is None


@pytest.mark.parametrize("bad", [time.time() * 1e9, time.time(), -5, True, math.nan, 10**25])
def test_emit_never_commits_a_non_int_time(rt: Any, outbox_path: Path, bad: Any) -> None:
    rid = auditel.emit("auditel.custom", timestamp=bad)
    assert isinstance(rid, str)
    rec = [r for r in user_records(outbox_path) if r["attributes"]["audit.record.id"] == rid][0]
    ns = int(rec["time_unix_nano"])  # an int's decimal text, never "1.5e+18" or "True"
    assert rec["time_unix_nano"] == str(ns)
    assert abs(ns - time.time_ns()) < 3600 * 10**9
    if isinstance(bad, bool) or not (isinstance(bad, (int, float)) and 0 < bad < 1e20):
        assert auditel.status()["sanitized"].get("bad_timestamp", 0) >= 1


def test_a_foreign_log_record_with_a_float_timestamp_is_stored_with_an_int(rt: Any, outbox_path: Path) -> None:
    """A record emitted through an app's own LoggerProvider carrying the AuditProcessor."""
    from opentelemetry.sdk._logs import LoggerProvider

    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(rt.processor)
    provider.get_logger("app").emit(event_name="auditel.custom", timestamp=time.time() * 1e9)  # type: ignore[arg-type]
    rec = user_records(outbox_path)[-1]
    assert rec["time_unix_nano"] == str(int(rec["time_unix_nano"]))


# --- values without a safe form (issue 13 item 7) ---------------------------------------------------
def test_tool_returning_a_huge_int_keeps_its_outcome(rt: Any, outbox_path: Path) -> None:
    @auditel.tool
    def fact() -> int:
        return math.factorial(2000)

    assert fact() == math.factorial(2000)
    phases = [r["attributes"].get("audit.phase") for r in user_records(outbox_path)]
    assert phases == ["intent", "outcome"]
    assert not auditel.status()["errors"]


def test_huge_int_and_hostile_objects_have_safe_forms(rt: Any, outbox_path: Path) -> None:
    rid = auditel.emit(
        "auditel.custom",
        attributes={"big": 10**5000, "getattr": BadGetattr(), "len": BadLen([1]), "nested": {"x": [BadGetattr()]}},
        body=math.factorial(3000),
    )
    assert isinstance(rid, str), auditel.status()
    rec = user_records(outbox_path)[-1]
    assert rec["attributes"]["big"].startswith("0x")
    assert rec["attributes"]["getattr"].startswith("<unserializable")
    assert rec["attributes"]["len"].startswith("<unserializable")
    assert isinstance(rec["body"], str)
    assert int(rec["attributes"]["big"][:200][2:], 16) > 0


# --- bounded work per record (issue 13 item 8) -----------------------------------------------------------
def test_a_dag_of_shared_references_is_cut_by_the_budget() -> None:
    reasons = Reasons()
    out = safe_value(dag(40), reasons=reasons)  # 2**40 paths: unbounded expansion would never end
    assert reasons.get("budget") == 1, "expected the node budget to cut the expansion"
    assert "[budget exceeded]" in str(out)[:10**7]


def test_emit_of_a_dag_is_stored(rt: Any, outbox_path: Path) -> None:
    assert isinstance(auditel.emit("auditel.custom", attributes={"dag": dag(30)}), str)
    assert verify_path(outbox_path).ok


def test_shrinking_many_attributes_is_linear(outbox_path: Path) -> None:
    """10,000 attributes over AUDITEL_MAX_RECORD_BYTES: shrinking canonicalises a bounded number of
    times (counted by wrapping the canonicaliser: the old code did it once per replaced attribute)."""
    from auditel.pipeline import processor as P

    auditel.configure(outbox=str(outbox_path), max_record_bytes=4096, max_value_bytes=256)
    calls = {"n": 0}
    real = P.canonical

    def counting(obj: Any) -> str:
        if isinstance(obj, dict) and "attributes" in obj:  # the whole record
            calls["n"] += 1
        return real(obj)

    P.canonical = counting  # type: ignore[assignment]
    try:
        attrs = {f"k{i:05d}": "v" * 200 for i in range(10_000)}
        rid = auditel.emit("auditel.custom", attributes=attrs)
    finally:
        P.canonical = real  # type: ignore[assignment]
    assert isinstance(rid, str)
    assert calls["n"] <= 3, calls
    rec = user_records(outbox_path)[-1]
    assert len(rec["attributes"]) >= 3
    auditel.shutdown()
    assert verify_path(outbox_path).ok
    assert max(len(r.get("_hash") or "") for r in read_records(outbox_path)) == 64
