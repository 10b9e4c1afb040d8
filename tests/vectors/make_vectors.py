"""Regenerate the record, safe-form and chain vectors (``python tests/vectors/make_vectors.py``).

The RFC 8785 examples (``rfc8785_examples.json``) are hand-written from the RFC and are the
independent ground truth; this script only writes vectors for auditel's own record shapes,
and refuses to write anything the ``rfc8785`` package disagrees with (where it applies: no
integers beyond 2^53, which auditel writes as strings by its documented rule).
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditel.record.canonical import canonical
from auditel.record.safe_value import safe_value
from auditel.integrity.signing import CHECKPOINT_FORMAT, Ed25519Signer, statement_bytes, statement_hash

HERE = Path(__file__).parent
STREAM = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
# Test-only key: the seed is public, so these signatures prove nothing outside the tests.
TEST_SEED = hashlib.sha256(b"auditel test vector key - never use for real").digest()


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def agree_with_rfc8785(value: Any, text: str) -> None:
    def has_big(v: Any) -> bool:
        if type(v) is int:
            return abs(v) > 2**53 - 1
        if isinstance(v, dict):
            return any(has_big(x) for x in v.values())
        if isinstance(v, list):
            return any(has_big(x) for x in v)
        return False

    if not has_big(value):
        assert rfc8785.dumps(value).decode("utf-8") == text, text


def base_attrs(seq: int, prev: str | None, record_id: str) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        "audit.record.id": record_id,
        "audit.schema.version": "1",
        "audit.sequence.stream_id": STREAM,
        "audit.sequence.number": seq,
        "session.id": "5e55105e55105e55105e55105e551051",
    }
    if prev is not None:
        attrs["audit.sequence.previous_hash"] = prev
    return attrs


def record(event: str, seq: int, prev: str | None, extra: dict[str, Any], body: Any = None, t: int = 1767225600000000000) -> dict[str, Any]:
    attrs = base_attrs(seq, prev, f"01JGZ0000000000000000000{seq:02d}")
    attrs.update(extra)
    rec: dict[str, Any] = {
        "event_name": event,
        "time_unix_nano": str(t + seq * 1000),
        "observed_time_unix_nano": str(t + seq * 1000 + 7),
        "severity_number": 9,
        "severity_text": "INFO",
        "attributes": attrs,
    }
    if body is not None:
        rec["body"] = body
    return rec


def twins(rec: dict[str, Any], text: str, edits: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for what, mutate in edits:
        changed = json.loads(text)
        mutate(changed)
        t = canonical(changed)
        assert t != text
        out.append({"kind": "edit", "what": what, "text": t, "sha256": sha(t)})
    variants = {
        "whitespace": json.dumps(json.loads(text), ensure_ascii=False, sort_keys=True),
        "key order": json.dumps(json.loads(text), ensure_ascii=False, separators=(",", ":")),
        "escaped non-ASCII": json.dumps(json.loads(text), ensure_ascii=True, sort_keys=True, separators=(",", ":")),
        "trailing newline": text + "\n",
    }
    for what, t in variants.items():
        if t != text:
            out.append({"kind": "noncanonical", "what": what, "text": t, "sha256": sha(t)})
    return out


def main() -> None:
    vectors: list[dict[str, Any]] = []

    def add(name: str, rec: dict[str, Any], edits: list[tuple[str, Any]]) -> str:
        text = canonical(rec)
        agree_with_rfc8785(rec, text)
        assert canonical(json.loads(text)) == text
        vectors.append({"name": name, "input": rec, "canonical": text, "sha256": sha(text), "tampered": twins(rec, text, edits)})
        return sha(text)

    h1 = add(
        "stream_start",
        record("auditel.stream.start", 1, None, {}, {"auditel.version": "0.1.0", "integrity.algorithm": "Ed25519",
               "integrity.key_id": "ed25519:0123456789abcdef", "process.pid": 4242, "host.name": "worker-7"}),
        [("pid changed", lambda r: r["body"].__setitem__("process.pid", 4243)),
         ("previous hash added to genesis", lambda r: r["attributes"].__setitem__("audit.sequence.previous_hash", "0" * 64))],
    )
    h2 = add(
        "tool_call_intent",
        record("auditel.tool_call", 2, h1, {"audit.action": "EXECUTE", "audit.phase": "intent", "gen_ai.tool.name": "shell",
               "audit.arguments.digest": "hmac-sha256:" + "ab" * 32, "audit.arguments.size": 118,
               "audit.correlation.id": "c0ffee00c0ffee00"}),
        [("tool renamed", lambda r: r["attributes"].__setitem__("gen_ai.tool.name", "read_file")),
         ("sequence renumbered", lambda r: r["attributes"].__setitem__("audit.sequence.number", 3))],
    )
    add(
        "model_call_numbers",
        record("auditel.model_call", 3, h2, {"gen_ai.request.model": "gpt-4o", "gen_ai.usage.input_tokens": 1234,
               "gen_ai.request.temperature": 0.7, "gen_ai.request.top_p": 1.0, "audit.duration_ms": 1532.25,
               "cost.micro_usd": 2**60, "ratio": 1e-7, "big": 1e21}),
        [("tokens changed", lambda r: r["attributes"].__setitem__("gen_ai.usage.input_tokens", 1235)),
         ("temperature changed", lambda r: r["attributes"].__setitem__("gen_ai.request.temperature", 0.8))],
    )
    add(
        "policy_decision_unicode",
        record("auditel.policy_decision", 4, "f" * 64, {"audit.policy.verdict": "deny", "audit.policy.id": "pii-guard",
               "audit.reason": "Kunde M\u00fcller \u2014 \u20ac 12 \U0001F600", "\u00e9t\u00e9": "keys sort by UTF-16 units",
               "\uff61": "halfwidth", "\U0001F600": "emoji key"}, {"nested": {"z": [1, 2, {"b": None, "a": True}], "a": ""}}),
        [("verdict flipped", lambda r: r["attributes"].__setitem__("audit.policy.verdict", "allow")),
         ("body element dropped", lambda r: r["body"]["nested"]["z"].pop())],
    )
    add(
        "stream_end",
        record("auditel.stream.end", 5, "e" * 64, {"audit.sequence.end": True}),
        [("end marker removed", lambda r: r["attributes"].pop("audit.sequence.end"))],
    )

    safe = [
        {"name": "nan", "input": {"$float": "NaN"}, "canonical": "\"NaN\""},
        {"name": "infinity", "input": {"$float": "Infinity"}, "canonical": "\"Infinity\""},
        {"name": "minus_infinity", "input": {"$float": "-Infinity"}, "canonical": "\"-Infinity\""},
        {"name": "lone_surrogate", "input": "a\ud800b", "canonical": "\"a\ufffdb\""},
        {"name": "int_beyond_2_53", "input": 2**53, "canonical": "\"9007199254740992\""},
        {"name": "int_beyond_int64", "input": 2**64, "canonical": "\"18446744073709551616\""},
        {"name": "negative_int_beyond_2_53", "input": -(2**53), "canonical": "\"-9007199254740992\""},
        {"name": "absent_vs_empty_body", "input": {"attributes": {}, "body": ""}, "canonical": "{\"attributes\":{},\"body\":\"\"}"},
    ]
    for v in safe:
        raw = v["input"]
        value = float(raw["$float"]) if isinstance(raw, dict) and "$float" in raw else raw
        assert canonical(safe_value(value)) == v["canonical"], v

    # A chain with a signed checkpoint over its head (Ed25519 is deterministic: same seed, same signature).
    signer = Ed25519Signer(Ed25519PrivateKey.from_private_bytes(TEST_SEED))
    chain: list[dict[str, Any]] = []
    prev = None
    bodies = [
        ("auditel.stream.start", {}, {"integrity.algorithm": "Ed25519", "integrity.key_id": signer.key_id,
                                      "integrity.public_key": signer.public_info()["integrity.public_key"]}),
        ("auditel.tool_call", {"audit.action": "EXECUTE", "gen_ai.tool.name": "search"}, None),
        ("auditel.model_call", {"gen_ai.request.model": "claude", "gen_ai.usage.output_tokens": 77}, None),
        ("auditel.stream.end", {"audit.sequence.end": True}, None),
    ]
    for seq, (event, extra, body) in enumerate(bodies, 1):
        rec = record(event, seq, prev, extra, body)
        text = canonical(rec)
        agree_with_rfc8785(rec, text)
        prev = sha(text)
        chain.append({"seq": seq, "canonical": text, "sha256": prev})
    statement = {
        "format": CHECKPOINT_FORMAT, "origin": "vector-service@vector-host", "stream_id": STREAM, "tree_size": 4,
        "head_hash": prev, "time": "1767225600000009999", "previous_checkpoint_hash": None,
        "key_id": signer.key_id, "algorithm": "Ed25519",
    }
    checkpoint = {
        "statement": statement,
        "canonical": statement_bytes(statement).decode(),
        "checkpoint_hash": statement_hash(statement),
        "signature": signer.sign(statement_bytes(statement)),
    }
    bad_statement = dict(statement, tree_size=3)
    chain_vector = {
        "description": "A four-record stream and a signed checkpoint over its head. The key seed is public (test only).",
        "test_seed_b64": base64.b64encode(TEST_SEED).decode(),
        "public_key_b64": signer.public_info()["integrity.public_key"],
        "key_id": signer.key_id,
        "records": chain,
        "checkpoint": checkpoint,
        "tampered": {
            "checkpoint_statement_edited_signature_kept": {"statement": bad_statement, "signature": checkpoint["signature"]},
            "record_2_edited": chain[1]["canonical"].replace("search", "delete"),
        },
    }
    (HERE / "records.json").write_text(json.dumps({"description": "auditel record shapes: canonical text, SHA-256, tampered twins (edit: changed meaning; noncanonical: same meaning, other bytes - both must fail the stored hash).", "vectors": vectors}, indent=1, ensure_ascii=False) + "\n")
    (HERE / "safe_forms.json").write_text(json.dumps({"description": "Values JSON cannot carry exactly, after auditel.record.safe_value then canonical. {\"$float\": ...} stands for a non-finite float.", "vectors": safe}, indent=1, ensure_ascii=True) + "\n")
    (HERE / "chain.json").write_text(json.dumps(chain_vector, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
