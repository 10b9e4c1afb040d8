"""Canonical JSON (RFC 8785, JCS) of stored records: the bytes that are hashed and chained.

Records reach this module already in safe form (see ``safe_value``): strings are valid
Unicode, integers fit in signed 64 bits, floats are finite. The remaining JCS rules:

* object keys sorted by their UTF-16 code units;
* numbers in the ECMAScript form (``1.0`` -> ``1``, ``1e-07`` -> ``1e-7``);
* integers whose magnitude exceeds 2^53 - 1 are written as decimal *strings* (I-JSON safe:
  a verifier in any language reads them back exactly); nanosecond timestamps are stored
  as decimal strings for the same reason. A float of such magnitude whose ECMAScript form
  has no exponent (2.0**53 -> ``9007199254740992``, up to 1e21) is quoted the same way, so
  that parsing stored text and canonicalising it again always gives the same bytes. This is
  the only departure from RFC 8785, and only for numbers beyond 2^53 (which JCS itself says
  cannot be exchanged exactly);
* strings escaped minimally (``"``, ``\\``, and control characters only).

The fast path is ``json.dumps(sort_keys=True, ensure_ascii=False)``, exact for records
without floats, without integers beyond 2^53 and with ASCII-only keys; anything else
takes the general serializer.
"""

from __future__ import annotations

import json
import math
from typing import Any

from auditel.record.safe_value import MAX_DEPTH, MAX_ITEMS

MAX_SAFE_INT = 2**53 - 1

_stdlib_dumps = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False).encode

try:
    from orjson import OPT_SORT_KEYS as _SORT_KEYS
    from orjson import dumps as _orjson_dumps
except ImportError:  # pragma: no cover - orjson is a dependency; a platform without a wheel still works
    _orjson_dumps = None  # type: ignore[assignment]


def fast_canonical_bytes(obj: Any) -> bytes | None:
    """UTF-8 JCS bytes of a value in the fast-path domain (``not needs_general_path(obj)``), or
    None when orjson is missing or refuses the value (lone surrogates, nesting beyond its limit).

    orjson writes that domain byte for byte as the stdlib encoder does (sorted ASCII keys, the same
    string escapes, shortest round-trip floats without exponent in [1e-4, 1e16); checked by
    tests/test_integrity_canonical.py) at a fifth of the cost: this is on every emit.
    """
    if _orjson_dumps is None:
        return None
    try:
        return _orjson_dumps(obj, option=_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError
        return None


def _fast_dumps(obj: Any) -> str:
    """JCS text of a value in the fast-path domain: orjson, or the stdlib encoder if it refuses."""
    data = fast_canonical_bytes(obj)
    return data.decode("utf-8") if data is not None else _stdlib_dumps(obj)


def canonical_json(obj: Any, *, simple: bool = False) -> str:
    """JCS text of ``obj``. ``simple=True`` promises no floats, no big ints and ASCII keys."""
    if simple:
        return _fast_dumps(obj)
    return _dumps(obj)


def needs_general_path(obj: Any) -> bool:
    """True unless ``obj`` is built only from exact ``str``/``bool``/``None``/safe ``int``, finite
    non-integral ``float`` in [1e-4, 1e16), ``dict`` with ASCII ``str`` keys, ``list`` and ``tuple``,
    within ``safe_value``'s depth and item limits (so a value that passes is one ``safe_value``
    returns unchanged, apart from lone surrogates, which the fast serializer refuses).

    Anything else (floats, big integers, non-ASCII or non-string keys, subclasses such as
    ``IntEnum`` or a ``float`` subclass, containers beyond the limits, cycles) goes to the general
    path, which either writes it exactly or raises ``TypeError``: the fast path never guesses.
    """
    return fast_form(obj) is not obj  # a copy (integral floats made ints) or GENERAL


GENERAL = object()


def fast_form(obj: Any, _depth: int = 0) -> Any:
    """``obj`` in the fast-path domain: ``obj`` itself when it already is (``not needs_general_path``),
    a copy with each integral float within 2^53 - 1 turned into its int when those are all that kept it
    out, else ``GENERAL``.

    JCS writes an integral float as the integer (``1.0`` -> ``1``, ``-0.0`` -> ``0``, see
    ``es6_number``), so the copy's fast text is the general serializer's text of ``obj``. Such floats
    are common (``temperature=0.0``, ``top_p=1.0``, a duration rounded to ``2.0`` ms) and would send
    the whole record through the pure-Python serializer (~5x the cost).
    """
    t = type(obj)
    if t is str or t is bool or obj is None:
        return obj
    if t is int:
        return obj if -MAX_SAFE_INT <= obj <= MAX_SAFE_INT else GENERAL
    if t is float:
        if obj.is_integer():
            return int(obj) if -MAX_SAFE_INT <= obj <= MAX_SAFE_INT else GENERAL
        return obj if 1e-4 <= abs(obj) < 1e16 else GENERAL
    if _depth >= MAX_DEPTH or t not in (dict, list, tuple) or len(obj) > MAX_ITEMS:
        return GENERAL
    is_dict = t is dict
    changed: Any = None  # the copy, made at the first value that changes
    for k, v in obj.items() if is_dict else enumerate(obj):
        if is_dict and (type(k) is not str or not k.isascii()):
            return GENERAL
        tv = type(v)
        if tv is str or v is None or tv is bool:
            continue
        f = fast_form(v, _depth + 1)
        if f is GENERAL:
            return GENERAL
        if f is not v:
            if changed is None:
                changed = dict(obj) if is_dict else list(obj)
            changed[k] = f
    return obj if changed is None else changed


def canonical(obj: Any) -> str:
    """JCS text of any safe-form value, choosing the fast path when it is exact."""
    fast = fast_form(obj)
    return _fast_dumps(fast) if fast is not GENERAL else _dumps(obj)


def _dumps(obj: Any) -> str:
    parts: list[str] = []
    _write(obj, parts)
    return "".join(parts)


_encode_str = json.JSONEncoder(ensure_ascii=False).encode


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _write(obj: Any, out: list[str]) -> None:
    if obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, str):
        out.append(_encode_str(obj))
    elif isinstance(obj, int):
        if -MAX_SAFE_INT <= obj <= MAX_SAFE_INT:
            out.append(str(int(obj)))
        else:
            out.append('"' + str(int(obj)) + '"')
    elif isinstance(obj, float):
        text = es6_number(obj)
        if abs(obj) > MAX_SAFE_INT and "e" not in text:
            # e.g. 2.0**53 prints as 9007199254740992, which reads back as an integer beyond 2^53:
            # the same decimal-string rule applies, so parse + canonicalise gives the same bytes.
            text = '"' + text + '"'
        out.append(text)
    elif isinstance(obj, dict):
        out.append("{")
        first = True
        for key in obj:
            if not isinstance(key, str):
                raise TypeError(f"not a safe-form key: {type(key).__name__}")
        for key in sorted(obj, key=_utf16_key):
            if not first:
                out.append(",")
            first = False
            out.append(_encode_str(key))
            out.append(":")
            _write(obj[key], out)
        out.append("}")
    elif isinstance(obj, (list, tuple)):
        out.append("[")
        for i, item in enumerate(obj):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    else:
        raise TypeError(f"not a safe-form value: {type(obj).__name__}")


def es6_number(value: float) -> str:
    """Format a finite float as ECMAScript ``Number.prototype.toString`` does."""
    if not math.isfinite(value):
        raise ValueError("non-finite numbers have no JSON form")
    if value == 0:
        return "0"
    if value.is_integer() and abs(value) <= MAX_SAFE_INT:
        return str(int(value))
    text = repr(value)  # shortest round-trip digits
    sign = ""
    if text[0] == "-":
        sign, text = "-", text[1:]
    if "e" in text:
        mantissa, exp_text = text.split("e")
        exponent = int(exp_text)
    else:
        mantissa, exponent = text, 0
    if "." in mantissa:
        int_part, frac_part = mantissa.split(".")
    else:
        int_part, frac_part = mantissa, ""
    digits = (int_part + frac_part).lstrip("0")
    # position of the decimal point relative to the start of `digits`
    point = (
        len(int_part.lstrip("0")) + exponent
        if int_part.strip("0")
        else exponent - (len(frac_part) - len(frac_part.lstrip("0")))
    )
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    n = point
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * (-n) + digits
    e = n - 1
    exp = ("+" if e >= 0 else "-") + str(abs(e))
    if k == 1:
        return sign + digits + "e" + exp
    return sign + digits[0] + "." + digits[1:] + "e" + exp
