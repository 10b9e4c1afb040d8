"""Hostile values for the API-boundary tests: objects whose dunder methods raise, cycles, huge numbers."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Iterator

from hypothesis import strategies as st


class Boom(RuntimeError):
    """Raised by the hostile objects; its own __str__ raises too."""

    def __str__(self) -> str:
        raise RuntimeError("str of the exception raises")


class BadStr:
    def __str__(self) -> str:
        raise Boom()

    def __repr__(self) -> str:
        raise Boom()


class BadIter:
    def __iter__(self) -> Iterator[Any]:
        raise Boom()

    def __len__(self) -> int:
        raise Boom()


class BadLen(list):
    def __len__(self) -> int:
        raise Boom()


class BadGetattr:
    def __getattr__(self, name: str) -> Any:
        raise Boom()


class BadEqHash:
    def __eq__(self, other: object) -> bool:
        raise Boom()

    def __hash__(self) -> int:
        raise Boom()


class BadBool:
    def __bool__(self) -> bool:
        raise Boom()


class BadItems(Mapping):
    def __getitem__(self, key: Any) -> Any:
        raise Boom()

    def __iter__(self) -> Iterator[Any]:
        raise Boom()

    def __len__(self) -> int:
        return 3

    def items(self) -> Any:
        raise Boom()


class BadStrSubclass(str):
    def __str__(self) -> str:
        raise Boom()

    def lower(self) -> str:  # type: ignore[override]
        raise Boom()

    def __eq__(self, other: object) -> bool:
        raise Boom()

    __hash__ = str.__hash__


class BadException(Exception):
    def __str__(self) -> str:
        raise Boom()


def cyclic_dict() -> dict[str, Any]:
    d: dict[str, Any] = {"a": 1}
    d["self"] = d
    return d


def cyclic_list() -> list[Any]:
    x: list[Any] = [1]
    x.append(x)
    return x


def deep(n: int = 5000) -> Any:
    x: Any = "leaf"
    for _ in range(n):
        x = [x]
    return x


def dag(levels: int = 40) -> Any:
    node: Any = {"leaf": "x" * 10}
    for _ in range(levels):
        node = {"l": node, "r": node}
    return node


HOSTILE_MAKERS = [
    BadStr, BadIter, lambda: BadLen([1, 2]), BadGetattr, BadEqHash, BadBool, BadItems,
    lambda: BadStrSubclass("x"), lambda: BadException("e"), lambda: Boom("b"),
    cyclic_dict, cyclic_list, deep, dag,
    lambda: 10 ** 5000, lambda: -(10 ** 400), lambda: 2 ** 64, lambda: math.factorial(2000),
    lambda: b"\x00\xff" * 10, lambda: bytearray(b"ab"), lambda: float("nan"), lambda: float("inf"), lambda: -1e308,
    lambda: True, lambda: -1, lambda: 0, lambda: "\ud800", lambda: "x" * 300_000, lambda: "",
    lambda: {(1, 2): "tuple key", None: 1, BadStr(): 2, 3.5: "float key"},
    lambda: {BadEqHash.__name__: BadStr(), "n": [BadIter(), cyclic_dict()]},
    lambda: [BadStr()] * 3, lambda: object(), lambda: type, lambda: print, lambda: 1e20, lambda: 1.5e18,
    lambda: {"k": 10 ** 5000}, lambda: (1, 2, 3), lambda: {1, 2}, lambda: None,
]

hostile = st.sampled_from(HOSTILE_MAKERS).map(lambda make: make())
