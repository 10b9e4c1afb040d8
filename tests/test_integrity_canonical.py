"""Canonical form: the shipped vectors reproduce, and the canonicaliser agrees with the `rfc8785` package."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from auditel.record.canonical import MAX_SAFE_INT, canonical, canonical_json, needs_general_path
from auditel.record.safe_value import safe_value
from auditel.integrity.signing import Ed25519Signer, VerifyKey, statement_bytes, statement_hash
from auditel.integrity.verify import Evidence, RawCheckpoint, RawRecord, verify

VECTORS = Path(__file__).parent / "vectors"


def load(name: str) -> dict[str, Any]:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@pytest.mark.parametrize("vector", load("rfc8785_examples.json")["vectors"], ids=lambda v: v["name"])
def test_rfc8785_examples(vector: dict[str, Any]) -> None:
    assert canonical(vector["input"]) == vector.get("auditel_canonical", vector["canonical"])
    assert rfc8785.dumps(vector["input"]).decode("utf-8") == vector["canonical"]


@pytest.mark.parametrize("vector", load("records.json")["vectors"], ids=lambda v: v["name"])
def test_record_vectors_and_their_tampered_twins(vector: dict[str, Any]) -> None:
    text = canonical(vector["input"])
    assert text == vector["canonical"]
    assert sha(text) == vector["sha256"]
    assert canonical(json.loads(text)) == text  # a stored record re-canonicalises to itself
    kinds = {t["kind"] for t in vector["tampered"]}
    assert kinds == {"edit", "noncanonical"}
    for twin in vector["tampered"]:
        assert sha(twin["text"]) == twin["sha256"] != vector["sha256"], twin["what"]
        if twin["kind"] == "noncanonical":
            # same meaning, other bytes: the canonical check catches it even if the hash column is recomputed
            assert canonical(json.loads(twin["text"])) == text
        else:
            assert canonical(json.loads(twin["text"])) == twin["text"] != text


@pytest.mark.parametrize("vector", load("records.json")["vectors"], ids=lambda v: v["name"])
def test_verifier_flags_noncanonical_twin_even_with_matching_hash(vector: dict[str, Any]) -> None:
    twin = next(t for t in vector["tampered"] if t["kind"] == "noncanonical")
    attrs = vector["input"]["attributes"]
    raw = RawRecord("line 1", 1, attrs["audit.sequence.stream_id"], attrs["audit.sequence.number"], twin["text"], twin["sha256"])
    report = verify(Evidence("vector", records=[raw]))
    assert f"record {attrs['audit.sequence.number']}: not in canonical form" in report.all_messages()


@pytest.mark.parametrize("vector", load("safe_forms.json")["vectors"], ids=lambda v: v["name"])
def test_safe_form_rules(vector: dict[str, Any]) -> None:
    raw = vector["input"]
    value = float(raw["$float"]) if isinstance(raw, dict) and "$float" in raw else raw
    assert canonical(safe_value(value)) == vector["canonical"]


def test_chain_vector_links_and_signature() -> None:
    v = load("chain.json")
    signer = Ed25519Signer(Ed25519PrivateKey.from_private_bytes(base64.b64decode(v["test_seed_b64"])))
    assert signer.key_id == v["key_id"]
    prev = None
    for rec in v["records"]:
        obj = json.loads(rec["canonical"])
        assert canonical(obj) == rec["canonical"] and sha(rec["canonical"]) == rec["sha256"]
        assert obj["attributes"].get("audit.sequence.previous_hash") == prev
        prev = rec["sha256"]
    cp = v["checkpoint"]
    assert statement_bytes(cp["statement"]).decode() == cp["canonical"]
    assert statement_hash(cp["statement"]) == cp["checkpoint_hash"]
    assert cp["statement"]["head_hash"] == prev
    assert signer.sign(statement_bytes(cp["statement"])) == cp["signature"]  # Ed25519 is deterministic
    key = VerifyKey.from_public(signer.public)
    assert key.verify(statement_bytes(cp["statement"]), cp["signature"])
    bad = v["tampered"]["checkpoint_statement_edited_signature_kept"]
    assert not key.verify(statement_bytes(bad["statement"]), bad["signature"])


def _chain_evidence(v: dict[str, Any], edit_record_2: bool = False) -> Evidence:
    records = []
    for i, rec in enumerate(v["records"]):
        text = v["tampered"]["record_2_edited"] if (edit_record_2 and rec["seq"] == 2) else rec["canonical"]
        sid = json.loads(rec["canonical"])["attributes"]["audit.sequence.stream_id"]
        records.append(RawRecord(f"line {i + 1}", i + 1, sid, rec["seq"], text, sha(text)))
    cp = v["checkpoint"]
    return Evidence("chain vector", records=records, checkpoints=[RawCheckpoint("line 9", "table", cp["canonical"], cp["signature"])])


def test_chain_vector_verifies_and_its_twin_does_not() -> None:
    v = load("chain.json")
    key = VerifyKey.from_public(Ed25519PrivateKey.from_private_bytes(base64.b64decode(v["test_seed_b64"])).public_key())
    good = verify(_chain_evidence(v), keys=[key])
    assert good.ok, good.all_messages()
    assert good.streams[0].ended_cleanly and good.streams[0].anchored_through == 4
    bad = verify(_chain_evidence(v, edit_record_2=True), keys=[key])
    assert "record 2: hash mismatch (record 3 links to a different hash)" in bad.all_messages()


# --- agreement with rfc8785 on safe-form inputs -----------------------------------------------------------
safe_ints = st.integers(min_value=-MAX_SAFE_INT, max_value=MAX_SAFE_INT)
finite_floats = st.floats(allow_nan=False, allow_infinity=False)
# Where RFC 8785 and auditel's decimal-string rule coincide: numbers within +-(2^53 - 1), or
# written with an exponent (1e21 and beyond).
jcs_floats = finite_floats.filter(lambda f: abs(f) <= MAX_SAFE_INT or abs(f) >= 1e21)
valid_text = st.text(st.characters(blacklist_categories=("Cs",)))
safe_json = st.recursive(
    st.none() | st.booleans() | safe_ints | jcs_floats | valid_text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(valid_text, children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(safe_json)
def test_agrees_with_rfc8785(value: Any) -> None:
    assert canonical(value) == rfc8785.dumps(value).decode("utf-8")


@settings(max_examples=300, deadline=None)
@given(jcs_floats)
def test_numbers_agree_with_rfc8785(value: float) -> None:
    assert canonical(value) == rfc8785.dumps(value).decode("utf-8")


@pytest.mark.parametrize("value", [2.0**53, -(2.0**53), 1.5e20, 9.999999999999999e20])
def test_integral_floats_beyond_2_53_use_the_decimal_string_rule(value: float) -> None:
    text = canonical(value)
    assert text == '"' + rfc8785.dumps(value).decode("utf-8") + '"'
    assert canonical(json.loads(text)) == text


@settings(max_examples=300, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | finite_floats | valid_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(valid_text, children, max_size=4),
    max_leaves=20,
))
def test_stored_text_recanonicalises_to_itself(value: Any) -> None:
    """What the verifier relies on: parse(stored) re-canonicalises to the same bytes, big integers included."""
    text = canonical(value)
    assert canonical(json.loads(text)) == text
    assert canonical_json(value) == text
    assert needs_general_path(value) or canonical(value) == json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def test_fast_path_never_guesses_on_subclasses_and_keys() -> None:
    import enum

    class F(float):
        pass

    class E(enum.IntEnum):
        A = 3

    assert canonical({"a": F(1e-7), "b": E.A}) == '{"a":1e-7,"b":3}'
    with pytest.raises(TypeError):
        canonical({1: 2})
    with pytest.raises(ValueError):
        canonical(math.nan)


# --- the orjson fast path writes exactly what the stdlib encoder writes -------------------------------------
fast_floats = finite_floats.filter(lambda f: not needs_general_path(f))


def ascii_keyed(leaves: Any) -> Any:
    """Lists and ASCII-keyed objects of ``leaves``, as the fast path takes them."""
    return st.recursive(
        leaves,
        lambda children: st.lists(children, max_size=5)
        | st.dictionaries(st.text(st.characters(max_codepoint=127)), children, max_size=5),
        max_leaves=30,
    )


fast_domain = ascii_keyed(st.none() | st.booleans() | safe_ints | fast_floats | valid_text)


@settings(max_examples=500, deadline=None)
@given(fast_domain)
def test_fast_path_is_byte_equal_to_the_stdlib_encoder(value: Any) -> None:
    from auditel.record.canonical import _fast_dumps, _stdlib_dumps

    assert not needs_general_path(value)
    assert _fast_dumps(value) == _stdlib_dumps(value)


def test_fast_path_escapes_every_character_as_the_stdlib_encoder_does() -> None:
    from auditel.record.canonical import _fast_dumps, _stdlib_dumps

    chars = [chr(c) for c in range(0x3000) if not 0xD800 <= c <= 0xDFFF] + ["\ufeff", "\ufffe", "\uffff", "\U0001f600", "\U0010ffff"]
    for ch in chars:
        text = {"k": f"a{ch}b", "l": [ch]}
        assert _fast_dumps(text) == _stdlib_dumps(text), hex(ord(ch))


def test_fast_path_falls_back_when_nesting_is_deeper_than_orjson_allows() -> None:
    from auditel.record.canonical import _fast_dumps, _stdlib_dumps

    deep: Any = "x"
    for _ in range(300):
        deep = [deep]
    assert _fast_dumps(deep) == _stdlib_dumps(deep)


# --- content digests: the no-copy fast path gives the bytes the safe_value path gives ----------------------
any_text = st.text()  # lone surrogates included: the fast path must hand those to safe_value
content_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**60), max_value=2**60) | finite_floats | any_text,
    lambda children: st.lists(children, max_size=5) | st.tuples(children, children)
    | st.dictionaries(any_text, children, max_size=5),
    max_leaves=30,
)


def _slow_content_bytes(value: Any) -> bytes:
    from auditel.record.safe_value import Reasons

    return canonical(safe_value(value, max_value_bytes=1 << 30, reasons=Reasons())).encode("utf-8")


@settings(max_examples=500, deadline=None)
@given(content_values)
def test_content_bytes_fast_path_equals_the_safe_value_path(value: Any) -> None:
    from auditel.record.content import content_bytes

    if isinstance(value, str):  # text is digested as itself, not as JSON
        value = [value]
    assert content_bytes(value) == _slow_content_bytes(value)


def test_content_bytes_limits_match_the_safe_value_path() -> None:
    from auditel.record.content import content_bytes
    from auditel.record.safe_value import MAX_DEPTH, MAX_ITEMS

    deep: Any = "leaf"
    for _ in range(MAX_DEPTH + 3):
        deep = {"d": deep}
    cyclic: list[Any] = ["x"]
    cyclic.append(cyclic)
    for value in (deep, cyclic, list(range(MAX_ITEMS + 5)), {"k": "\ud800"}, [1.0, 1e-7, 2**60]):
        assert content_bytes(value) == _slow_content_bytes(value)
    assert b"[max depth]" in content_bytes(deep) and b"[cycle]" in content_bytes(cyclic)


# --- integral floats keep the fast path ------------------------------------------------------------------
integral_floats = st.integers(min_value=-MAX_SAFE_INT, max_value=MAX_SAFE_INT).map(float) | st.sampled_from(
    [0.0, -0.0, 1.0]
)
with_integral_floats = ascii_keyed(st.none() | st.booleans() | safe_ints | fast_floats | integral_floats | valid_text)


@settings(max_examples=500, deadline=None)
@given(with_integral_floats)
def test_integral_floats_take_the_fast_path_with_the_general_serializers_text(value: Any) -> None:
    from auditel.record import canonical as C

    assert C.fast_form(value) is not C.GENERAL
    assert canonical(value) == C._dumps(value) == rfc8785.dumps(value).decode("utf-8")


def test_a_record_with_temperature_zero_is_not_written_by_the_pure_python_serializer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``temperature=0.0`` or a duration of ``2.0`` ms once sent the whole record through ``_dumps``."""
    from auditel.record import canonical as C

    record = {"attributes": {"gen_ai.request.temperature": 0.0, "audit.duration_ms": 2.0, "n": [1.0, {"x": -0.0}]}}
    expected = C._dumps(record)

    def refuse(obj: Any) -> str:
        raise AssertionError("general serializer used")

    monkeypatch.setattr(C, "_dumps", refuse)
    text = '{"attributes":{"audit.duration_ms":2,"gen_ai.request.temperature":0,"n":[1,{"x":0}]}}'
    assert canonical(record) == expected == text
    attrs = record["attributes"]
    assert attrs["gen_ai.request.temperature"] == 0.0 and type(attrs["audit.duration_ms"]) is float  # not changed
    # what still needs it: a float beyond 2^53, a small float with an exponent, a non-ASCII key
    for value in (2.0**53, 1e-7, {"é": 1}):
        with pytest.raises(AssertionError):
            canonical({"v": value})
