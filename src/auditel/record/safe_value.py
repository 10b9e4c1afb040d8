"""Turn arbitrary payloads into values that can be stored, hashed and shipped.

The rules (documented in docs/schema.md, "Safe forms"):

* ``None``, ``bool``, ``str`` and ``int`` within signed 64 bits stay as they are.
* Integers outside signed 64 bits become decimal strings (``int_out_of_range``); beyond Python's
  decimal conversion limit (4,300 digits) they become ``0x``-prefixed hexadecimal strings.
* ``NaN``, ``inf`` and ``-inf`` become the strings ``"NaN"``, ``"Infinity"``, ``"-Infinity"``
  (``non_finite_float``); finite floats stay floats.
* Lone surrogates in strings become U+FFFD (``lone_surrogate``).
* Strings longer than ``max_value_bytes`` are cut and end with ``…[truncated N chars]`` (``truncated``).
* ``bytes`` become ``{"$bytes": "<base64>"}`` (cut like strings when too long).
* Mappings keep string keys; other keys become ``str(key)`` (``non_str_key``).
* Lists, tuples, sets become lists; more than 1,000 items are cut (``truncated``).
* A container met again on its own path becomes ``"[cycle]"`` (``cycle``); nesting deeper than
  32 becomes ``"[max depth]"`` (``too_deep``).
* datetimes, dates, UUIDs, paths, enums and exceptions get readable string forms;
  pydantic models and dataclasses become dicts; anything else becomes its ``repr`` cut to
  200 characters, or ``"<unserializable TYPE>"`` when even ``repr`` fails (``unserializable``).
  An object whose ``__getattr__``, ``__len__``, ``__iter__`` or ``model_dump`` raises anything
  gets that same placeholder: a value loses its own form, never the record.
* The work per value is bounded: at most ``MAX_NODES`` containers and leaves are visited (a
  shared reference is visited again on each path, so a DAG cannot explode); past that budget
  every remaining value becomes ``"[budget exceeded]"`` (``budget``).

Nothing here raises: every departure from the input is counted by reason.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import enum
import math
import reprlib
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import PurePath
from typing import Any

MAX_DEPTH = 32
MAX_ITEMS = 1000
_INT_MIN = -(2**63)
_INT_MAX = 2**63 - 1
_REPR_MAX = 200


_MAX_SAFE = 2**53 - 1
MAX_NODES = 20_000
_KEY_REPR = reprlib.Repr()
_KEY_REPR.maxlevel = 3
# the largest magnitude Python turns into decimal text by default (4,300 digits, sys.int_info)
_MAX_DECIMAL_BITS = 14_000


class Reasons(dict):
    """Counter of why values were altered, by reason name.

    ``general`` is set when the value holds a float, an integer beyond 2^53 or a non-ASCII key:
    the canonicaliser then takes its general path (otherwise plain sorted ``json.dumps`` is exact).
    ``budget``: the nodes still to be visited for the record these reasons belong to.
    """

    general = False
    budget = MAX_NODES

    def add(self, reason: str, n: int = 1) -> None:
        self[reason] = self.get(reason, 0) + n


def _clean_str(s: str, limit: int, reasons: Reasons) -> str:
    if len(s) > limit:
        reasons.add("truncated")
        cut = len(s) - limit
        s = s[:limit] + f"…[truncated {cut} chars]"
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        reasons.add("lone_surrogate")
        s = _fix_surrogates(s)
    return s


def _fix_surrogates(s: str) -> str:
    return "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in s)


def safe_value(value: Any, *, max_value_bytes: int = 65536, reasons: Reasons | None = None) -> Any:
    """Return a JSON-safe copy of ``value`` following the rules above."""
    if reasons is None:
        reasons = Reasons()
    return _safe(value, max_value_bytes, reasons, 0, set())


def safe_attributes(
    attributes: Mapping[str, Any] | None, *, max_value_bytes: int = 65536, reasons: Reasons | None = None
) -> dict[str, Any]:
    """Sanitise an attribute mapping (keys become strings, values safe)."""
    if reasons is None:
        reasons = Reasons()
    out: dict[str, Any] = {}
    try:
        if not attributes:
            return out
        items = list(attributes.items())
    except Exception:  # noqa: BLE001 - a broken mapping: a plain copy may still work (dict subclasses copy without items())
        try:
            items = list(dict(attributes).items())  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - a hostile value: never raise
            reasons.add("unserializable")
            return out
    for key, val in items:
        if type(key) is not str or not key.isascii():
            key = _clean_key(key, reasons)
        tv = type(val)
        if tv is str:
            out[key] = (
                val
                if len(val) <= max_value_bytes and (val.isascii() or _is_clean_str(val))
                else _clean_str(val, max_value_bytes, reasons)
            )
        elif tv is bool or val is None:
            out[key] = val
        elif tv is int and -_MAX_SAFE <= val <= _MAX_SAFE:
            out[key] = val
        elif tv is float and reasons.budget > 0 and math.isfinite(val):
            # what _safe does for a finite float (a duration, a score), without the call
            reasons.budget -= 1
            if val.is_integer() or not (1e-4 <= abs(val) < 1e16):
                reasons.general = True
            out[key] = val
        else:
            out[key] = _safe(val, max_value_bytes, reasons, 0, set())
    return out


def _is_clean_str(s: str) -> bool:
    if s.isascii():
        return True
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _clean_key(key: Any, reasons: Reasons) -> str:
    """A key that is not a plain ASCII ``str``, as safe text (a non-ASCII one takes the general path)."""
    if type(key) is not str:
        reasons.add("non_str_key")
        key = _safe_key(key)
    else:
        key = _clean_str(key, 256, reasons)
    if not key.isascii():
        reasons.general = True
    return key


def _safe_key(key: Any) -> str:
    try:
        # a tuple key may nest (or share) without bound: its reprlib form is bounded
        text = _KEY_REPR.repr(key) if isinstance(key, tuple) else str(key)
    except Exception:  # noqa: BLE001 - a hostile value: never raise
        text = f"<key {type(key).__name__}>"
    return _fix_surrogates(text)[:256]


def _int_text(value: int) -> str:
    if value.bit_length() <= _MAX_DECIMAL_BITS:
        return str(value)
    return hex(value)  # no digit limit: exact, and cut like any long string by the caller's limit


def _safe(value: Any, limit: int, reasons: Reasons, depth: int, path: set[int]) -> Any:
    reasons.budget -= 1
    if reasons.budget < 0:
        if reasons.budget == -1:
            reasons.add("budget")
        return "[budget exceeded]"
    t = type(value)
    if value is None or t is bool:
        return value
    if t is str:
        if len(value) <= limit and (value.isascii() or _is_clean_str(value)):
            return value
        return _clean_str(value, limit, reasons)
    if t is int:
        if -_MAX_SAFE <= value <= _MAX_SAFE:
            return value
        if _INT_MIN <= value <= _INT_MAX:
            reasons.general = True
            return value
        reasons.add("int_out_of_range")
        return _int_text(value)
    if t is float:
        if math.isfinite(value):
            # Python's repr is the ECMAScript form for non-integral values in [1e-4, 1e16):
            # those keep the fast canonical path; anything else (1.0, 1e-05, 1e16) takes the general one
            if value.is_integer() or not (1e-4 <= abs(value) < 1e16):
                reasons.general = True
            return value
        reasons.add("non_finite_float")
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if depth >= MAX_DEPTH:
        reasons.add("too_deep")
        return "[max depth]"
    try:
        return _safe_object(value, limit, reasons, depth, path)
    except Exception:  # noqa: BLE001 - a hostile __getattr__/__len__/__iter__/model_dump, RecursionError...
        reasons.add("unserializable")
        return _placeholder(value)


def _placeholder(value: Any) -> str:
    try:
        return f"<unserializable {type(value).__qualname__}>"
    except Exception:  # noqa: BLE001 - a hostile value: never raise
        return "<unserializable>"


def _safe_object(value: Any, limit: int, reasons: Reasons, depth: int, path: set[int]) -> Any:
    t = type(value)
    # the usual containers first: an exact dict is the Mapping case, an exact list or tuple the
    # sequence case below, without the isinstance checks against bytes and the Mapping ABC
    if t is dict:
        return _nested(_safe_mapping, value, limit, reasons, depth, path)
    if t is list or t is tuple:
        return _nested(_safe_sequence, value, limit, reasons, depth, path)
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if len(raw) > limit:
            reasons.add("truncated")
            return {"$bytes": base64.b64encode(raw[:limit]).decode("ascii"), "$truncated_from": len(raw)}
        return {"$bytes": base64.b64encode(raw).decode("ascii")}
    if isinstance(value, Mapping):
        return _nested(_safe_mapping, value, limit, reasons, depth, path)
    if isinstance(value, (list, tuple, set, frozenset)):
        return _nested(_safe_sequence, value, limit, reasons, depth, path)
    if isinstance(value, float):  # float subclasses
        return _safe(float(value), limit, reasons, depth, path)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):  # int subclasses other than bool, e.g. IntEnum
        if isinstance(value, enum.Enum):
            return _safe(value.value, limit, reasons, depth + 1, path)
        return _safe(int(value), limit, reasons, depth, path)
    if isinstance(value, str):  # str subclasses (StrEnum...)
        return _safe(str.__str__(value), limit, reasons, depth, path)
    if isinstance(value, enum.Enum):
        return _safe(value.value, limit, reasons, depth + 1, path)
    if isinstance(value, (_dt.datetime, _dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (uuid.UUID, PurePath)):
        return str(value)
    if isinstance(value, BaseException):
        return _clean_str(f"{type(value).__name__}: {_safe_repr(value, str)}", limit, reasons)
    # pydantic models and dataclasses keep their structure
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):
        try:
            dumped = dump(mode="json")
        except Exception:  # noqa: BLE001 - a hostile value: never raise
            dumped = None
        if dumped is not None:
            return _safe(dumped, limit, reasons, depth + 1, path)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _nested(_safe_dataclass, value, limit, reasons, depth, path)
    reasons.add("unserializable")
    text = _safe_repr(value, repr)
    if len(text) > _REPR_MAX:
        text = text[:_REPR_MAX] + "…"
    return _fix_surrogates(text)


def _nested(
    convert: Callable[[Any, int, Reasons, int, set[int]], Any],
    value: Any,
    limit: int,
    reasons: Reasons,
    depth: int,
    path: set[int],
) -> Any:
    """``convert`` a container, unless it is already being converted further up (a cycle)."""
    vid = id(value)
    if vid in path:
        reasons.add("cycle")
        return "[cycle]"
    path.add(vid)
    try:
        return convert(value, limit, reasons, depth, path)
    finally:
        path.discard(vid)


def _safe_mapping(value: Mapping[Any, Any], limit: int, reasons: Reasons, depth: int, path: set[int]) -> Any:
    out: dict[str, Any] = {}
    try:
        items = list(value.items())
    except Exception:  # noqa: BLE001 - a hostile value: never raise
        reasons.add("unserializable")
        return f"<unserializable {type(value).__qualname__}>"
    if len(items) > MAX_ITEMS:
        reasons.add("truncated")
        out["…"] = f"[{len(items) - MAX_ITEMS} more items]"
        reasons.general = True  # a non-ASCII key
    for k, v in items[:MAX_ITEMS]:
        if type(k) is not str or not k.isascii():
            k = _clean_key(k, reasons)
        out[k] = _safe(v, limit, reasons, depth + 1, path)
    return out


def _safe_sequence(value: Iterable[Any], limit: int, reasons: Reasons, depth: int, path: set[int]) -> list[Any]:
    seq = list(value)
    extra = None
    if len(seq) > MAX_ITEMS:
        reasons.add("truncated")
        extra = f"[{len(seq) - MAX_ITEMS} more items]"
        seq = seq[:MAX_ITEMS]
    out = [_safe(v, limit, reasons, depth + 1, path) for v in seq]
    if extra:
        out.append(extra)
    return out


def _safe_dataclass(value: Any, limit: int, reasons: Reasons, depth: int, path: set[int]) -> dict[str, Any]:
    return {
        f.name: _safe(getattr(value, f.name, None), limit, reasons, depth + 1, path) for f in dataclasses.fields(value)
    }


def _safe_repr(value: Any, fn: Any) -> str:
    try:
        text = fn(value)
        if not isinstance(text, str):
            raise TypeError
        return text
    except Exception:  # noqa: BLE001 - a hostile value: never raise
        return _placeholder(value)
