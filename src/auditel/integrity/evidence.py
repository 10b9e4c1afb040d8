"""What verification reads, before any check: raw rows and lines from an outbox, an export, an archive
or a checkpoints file, kept as found (untrusted: every value's type is checked later)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MAX_DATA_BYTES = 64 * 1024 * 1024
MAX_LINE_BYTES = 64 * 1024 * 1024


@dataclass
class RawRecord:
    where: str  # "row 17" (outbox rid) or "line 17" (export)
    order: int  # physical order (rid or line number)
    stream_col: Any
    seq_col: Any
    data: Any
    hash_col: Any


@dataclass
class RawCheckpoint:
    where: str
    source: str  # "table" | "record" | "external"
    statement: Any  # a dict (parsed) or text (to parse)
    signature: Any
    columns: dict[str, Any] | None = None


@dataclass
class Evidence:
    source: str
    records: list[RawRecord] = field(default_factory=list)
    checkpoints: list[RawCheckpoint] = field(default_factory=list)
    pruned: list[tuple[str, Any, Any, Any]] = field(default_factory=list)  # (where, stream, through_seq, head_hash)
    # (where, key_id, algorithm, public_key): the keys kept through retention (``signing_keys``)
    signing_keys: list[tuple[str, Any, Any, Any]] = field(default_factory=list)
    streams: list[Any] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    partial: bool = False  # a filtered export: gaps are expected
    kind: str = "outbox"  # "outbox" | "export" | "archive" (a backend's OTLP/JSON copy)

    @property
    def label(self) -> str:
        return f"this {self.kind}"


def text_of(value: Any) -> str | None:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def int_of(value: Any) -> int | None:
    return value if type(value) is int else None


def iter_json_lines(path: str | Path, label: str, problems: list[str]) -> Iterator[tuple[int, Any]]:
    try:
        handle = open(path, "rb")
    except OSError as exc:
        problems.append(f"cannot read {label} {path}: {exc.strerror or exc}")
        return
    with handle:
        for number, line in enumerate(handle, 1):
            if len(line) > MAX_LINE_BYTES:
                problems.append(f"{label} line {number}: longer than {MAX_LINE_BYTES} bytes, not read")
                continue
            if not line.strip():
                continue
            try:
                yield number, json.loads(line.decode("utf-8"), parse_constant=reject_constant)
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                problems.append(f"{label} line {number}: not JSON ({type(exc).__name__})")


def reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
