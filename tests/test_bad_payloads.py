"""Bad payloads never raise into the caller: each is stored in its documented safe form or rejected with a counted reason."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import auditel
from auditel.record.canonical import canonical
from auditel.record.safe_value import Reasons, safe_value
from conftest import user_records


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("repr explodes")

    __str__ = __repr__


class Weird:
    def __repr__(self) -> str:
        return "Weird(\udcff)"


def _odd_object(name: str) -> Any:
    return {
        "unprintable": Unprintable,
        "weird": Weird,
        "object": object,
        "set": lambda: {1, 2},
        "tuple": lambda: (1, "t"),
        "range": lambda: range(3),
    }[name]()


def _cyclic_dict() -> dict[str, Any]:
    d: dict[str, Any] = {"a": 1}
    d["self"] = d
    return d


def _cyclic_list() -> list[Any]:
    lst: list[Any] = [1]
    lst.append(lst)
    return lst


def _deep(n: int) -> dict[str, Any]:
    d: dict[str, Any] = {}
    cur = d
    for _ in range(n):
        cur["x"] = {}
        cur = cur["x"]
    return d


leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF)),
    st.binary(max_size=64),
    st.sampled_from(["unprintable", "weird", "object", "set", "tuple", "range"]).map(_odd_object),
)
payloads = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers(), st.none()), children, max_size=5),
    ),
    max_leaves=30,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(body=payloads, attr=payloads)
def test_any_payload_is_stored_safely_or_rejected_with_reason(rt: Any, body: Any, attr: Any) -> None:
    rid = auditel.emit("auditel.action", body=body, attributes={"payload": attr, 7: "int key"})
    if rid is None:
        assert sum(auditel.status()["rejected"].values()) > 0
        return
    rows = rt.outbox.connect().execute("SELECT data FROM records WHERE record_id=?", (rid,)).fetchall()
    assert len(rows) == 1
    stored = json.loads(rows[0][0])
    assert canonical(stored) == rows[0][0]  # stored text is canonical JSON
    assert "7" in stored["attributes"]


@pytest.mark.parametrize(
    "value,expected,reason",
    [
        (float("nan"), "NaN", "non_finite_float"),
        (float("inf"), "Infinity", "non_finite_float"),
        (float("-inf"), "-Infinity", "non_finite_float"),
        (2**70, str(2**70), "int_out_of_range"),
        ("a\ud800b", "a\ufffdb", "lone_surrogate"),
        (b"\x00\xff", {"$bytes": "AP8="}, None),
        (_cyclic_dict(), {"a": 1, "self": "[cycle]"}, "cycle"),
        (_cyclic_list(), [1, "[cycle]"], "cycle"),
        ({1: "x"}, {"1": "x"}, "non_str_key"),
    ],
)
def test_documented_safe_forms(value: Any, expected: Any, reason: str | None) -> None:
    reasons = Reasons()
    assert safe_value(value, reasons=reasons) == expected
    if reason:
        assert reasons[reason] == 1
    else:
        assert not reasons


def test_deep_nesting_is_cut_at_max_depth() -> None:
    reasons = Reasons()
    out = safe_value(_deep(5000), reasons=reasons)
    depth = 0
    while isinstance(out, dict):
        out = out["x"]
        depth += 1
    assert out == "[max depth]" and depth == 32 and reasons["too_deep"] == 1


def test_unprintable_object_is_named_not_raised() -> None:
    reasons = Reasons()
    assert safe_value(Unprintable(), reasons=reasons) == "<unserializable Unprintable>"
    assert reasons["unserializable"] == 1


def test_ten_megabyte_string_is_truncated_and_counted(rt: Any, outbox_path: Path) -> None:
    big = "z" * (10 * 1024 * 1024)
    rid = auditel.emit("auditel.action", attributes={"big": big}, body=big)
    assert rid is not None
    (rec,) = user_records(outbox_path)
    assert rec["attributes"]["big"].endswith(f"…[truncated {len(big) - 65536} chars]")
    assert len(rec["attributes"]["big"]) < 70000
    assert auditel.status()["sanitized"]["truncated"] == 2


def test_oversized_record_keeps_a_safe_form(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    auditel.configure(outbox=str(path), max_record_bytes=8192, max_value_bytes=4096)
    rid = auditel.emit("auditel.action", attributes={f"k{i}": "v" * 4000 for i in range(10)}, body="b" * 4000)
    assert rid is not None
    (rec,) = user_records(path)
    assert rec["body"].startswith("[omitted: body of")
    assert len(json.dumps(rec)) < 9000
    assert auditel.status()["sanitized"]["record_too_large"] == 1


def test_wild_attribute_mapping_never_raises(rt: Any) -> None:
    class BadMapping(dict):
        def items(self) -> Any:  # type: ignore[override]
            raise RuntimeError("broken mapping")

    assert auditel.emit("auditel.action", attributes=BadMapping(a=1)) is not None  # copied, never raises
    assert auditel.emit("auditel.action", body=_deep(100000)) is not None
    assert auditel.status()["errors"].get("processor", 0) == 0


def test_attribute_mapping_that_cannot_even_be_tested_for_truth_is_counted_not_raised(rt: Any) -> None:
    from collections.abc import Mapping

    class Hostile(Mapping):  # type: ignore[type-arg]
        def __getitem__(self, key: Any) -> Any:
            raise KeyError(key)

        def __iter__(self) -> Any:
            raise RuntimeError("no iteration")

        def __len__(self) -> int:
            raise RuntimeError("no len")

    rid = auditel.emit("auditel.action", attributes=Hostile(), body="kept")
    assert rid is not None  # the record is kept without the attributes
    assert auditel.status()["sanitized"]["unserializable"] == 1
    assert auditel.status()["errors"] == {}
