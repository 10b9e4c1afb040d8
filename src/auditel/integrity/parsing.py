"""Parsing untrusted records and checkpoint statements into checked shapes (``Rec``, ``Cp``); what
cannot be parsed is reported, never raised."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from auditel.integrity.evidence import (
    MAX_DATA_BYTES,
    RawCheckpoint,
    RawRecord,
    reject_constant,
    text_of,
)
from auditel.integrity.signing import (
    ALGORITHMS,
    CHECKPOINT_FORMAT,
    STATEMENT_FIELDS,
    statement_hash,
)
from auditel.record import schema as S
from auditel.record.canonical import canonical

_HEX64 = re.compile(r"[0-9a-f]{64}")
MAX_SEQ = 2**63 - 1


@dataclass
class Rec:
    raw: RawRecord
    stream_id: str
    seq: int
    text: str
    digest: str
    obj: dict[str, Any]
    event: str
    prev: Any
    flagged_hash: bool = False


def parse_record(raw: RawRecord, problems: list[str]) -> Rec | None:
    data = raw.data
    if isinstance(data, str):
        try:
            data = data.encode("utf-8")
        except UnicodeEncodeError:
            problems.append(f"{raw.where}: data is not valid UTF-8")
            return None
    if not isinstance(data, bytes):
        problems.append(f"{raw.where}: data is not text ({type(data).__name__})")
        return None
    if len(data) > MAX_DATA_BYTES:
        problems.append(f"{raw.where}: data of {len(data)} bytes is too large to check")
        return None
    digest = hashlib.sha256(data).hexdigest()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        problems.append(f"{raw.where}: data is not valid UTF-8")
        return None
    try:
        obj = json.loads(text, parse_constant=reject_constant)
    except (ValueError, RecursionError) as exc:
        problems.append(f"{raw.where}: data is not JSON ({type(exc).__name__})")
        return None
    attrs = obj.get("attributes") if isinstance(obj, dict) else None
    if not isinstance(attrs, dict):
        problems.append(f"{raw.where}: data is not an audit record (no attributes)")
        return None
    stream_id, seq, event = attrs.get(S.A_STREAM_ID), attrs.get(S.A_SEQ), obj.get("event_name")
    if (
        not isinstance(stream_id, str)
        or type(seq) is not int
        or not (1 <= seq <= MAX_SEQ)
        or not isinstance(event, str)
    ):
        problems.append(f"{raw.where}: data lacks a valid stream id, sequence number or event name")
        return None
    return Rec(raw, stream_id, seq, text, digest, obj, event, attrs.get(S.A_PREV_HASH, None))


def is_canonical(obj: Any, text: str) -> bool:
    try:
        return canonical(obj) == text
    except (TypeError, ValueError, RecursionError):
        return False


# --- parsing checkpoints ---------------------------------------------------------------------------------------
@dataclass
class Cp:
    statement: dict[str, Any]
    signature: Any
    hash: str
    sources: set[str]
    wheres: list[str]
    tree_size: int
    stream_id: str
    valid_sig: bool | None = None  # None: could not be checked


def parse_checkpoint(raw: RawCheckpoint, problems: list[str]) -> Cp | None:
    statement = raw.statement
    if isinstance(statement, bytes):
        statement = text_of(statement)
    if isinstance(statement, str):
        text = statement
        try:
            statement = json.loads(text, parse_constant=reject_constant)
        except (ValueError, RecursionError):
            problems.append(f"{raw.where}: checkpoint data is not JSON")
            return None
        if isinstance(statement, dict) and not is_canonical(statement, text):
            problems.append(f"{raw.where}: checkpoint data is not canonical")
    if not isinstance(statement, dict):
        problems.append(f"{raw.where}: malformed checkpoint (not an object)")
        return None
    reason = statement_defect(statement)
    if reason:
        problems.append(f"{raw.where}: malformed checkpoint ({reason})")
        return None
    if raw.columns is not None:
        differing = [k for k, v in raw.columns.items() if statement.get(k) != v]
        if differing:
            problems.append(
                f"checkpoint {statement['tree_size']}: table columns disagree with the signed data "
                f"({', '.join(differing)})"
            )
    return Cp(
        statement,
        raw.signature,
        statement_hash(statement),
        {raw.source},
        [raw.where],
        statement["tree_size"],
        statement["stream_id"],
    )


def statement_defect(st: dict[str, Any]) -> str | None:
    if set(st) != set(STATEMENT_FIELDS):
        return "unexpected or missing fields"
    if st["format"] != CHECKPOINT_FORMAT:
        return "unknown format"
    if type(st["tree_size"]) is not int or not (1 <= st["tree_size"] <= MAX_SEQ):
        return "bad tree_size"
    if not isinstance(st["head_hash"], str) or not _HEX64.fullmatch(st["head_hash"]):
        return "bad head_hash"
    prev = st["previous_checkpoint_hash"]
    if prev is not None and (not isinstance(prev, str) or not _HEX64.fullmatch(prev)):
        return "bad previous_checkpoint_hash"
    if not isinstance(st["stream_id"], str) or not isinstance(st["key_id"], str) or not isinstance(st["origin"], str):
        return "bad stream_id, key_id or origin"
    if st["algorithm"] not in ALGORITHMS:
        return "unknown algorithm"
    if not isinstance(st["time"], str) or not st["time"].isdigit() or len(st["time"]) > 30:
        return "bad time"
    return None


def carried(rec: Rec) -> str | None:
    body = rec.obj.get("body")
    if isinstance(body, dict) and isinstance(body.get("checkpoint"), dict):
        try:
            return statement_hash(body["checkpoint"])
        except (TypeError, ValueError, RecursionError):
            return None
    return None
