"""The fast paths of ``safe_attributes`` and ``safe_value`` (issue 16) give what the general path gives.

Top-level floats are handled inline and exact dicts, lists and tuples skip the isinstance chain; the
result, the reasons counted and the ``general`` flag (which picks the canonical serializer) must be
those of the general path, including once the node budget is spent.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from auditel.record.safe_value import MAX_NODES, Reasons, safe_attributes, safe_value

leaves = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
values = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(st.text(max_size=5), inner, max_size=4),
    ),
    max_leaves=20,
)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return type(a) is type(b) and a == b


@given(values)
def test_a_top_level_value_is_made_safe_as_a_nested_one(value: Any) -> None:
    top, nested = Reasons(), Reasons()
    got = safe_attributes({"k": value}, reasons=top)["k"]
    want = safe_value([value], reasons=nested)[0]
    assert _same(got, want) or got == want
    assert dict(top) == dict(nested)
    assert top.general == nested.general


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_a_float_attribute_sets_general_like_safe_value(x: float) -> None:
    top, inner = Reasons(), Reasons()
    assert safe_attributes({"d": x}, reasons=top)["d"] == x
    safe_value(x, reasons=inner)
    assert top.general == inner.general


def test_a_float_after_the_budget_is_spent_is_replaced_as_before() -> None:
    reasons = Reasons()
    big = list(range(MAX_NODES + 10))  # spends the whole budget (cut to MAX_ITEMS items per list...)
    deep = [[big[i : i + 1000] for i in range(0, len(big), 1000)] for _ in range(3)]
    out = safe_attributes({"a": deep, "b": 1.5, "c": math.inf}, reasons=reasons)
    assert reasons["budget"] == 1
    assert out["b"] == "[budget exceeded]" and out["c"] == "[budget exceeded]"


def test_dict_subclasses_and_exact_dicts_agree() -> None:
    plain = {"x": [1, 2.5, "s"], "y": (True, None)}
    assert safe_value(plain) == safe_value(OrderedDict(plain)) == {"x": [1, 2.5, "s"], "y": [True, None]}
