"""The ``auditel export`` file format, written and read here (one module, so the two cannot drift).

JSON lines. The first line is a header ``{"type": "auditel.export", "format": N, ...}``; then, unless
``checkpoints_only``: ``pruned`` lines (each stream's prune watermark), ``signing_key`` lines (format 2:
the public keys kept through retention), ``record`` lines (stored canonical text and hash, as stored);
then ``checkpoint`` lines (the signed statement and its signature). The reader refuses a format newer
than ``EXPORT_FORMAT`` with a message saying so, rather than misreading it.

History: format 1 had no ``signing_key`` lines; format 2 adds them (a format-1 file reads the same).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from auditel._version import __version__
from auditel.integrity.evidence import (
    Evidence,
    RawCheckpoint,
    RawRecord,
    iter_json_lines,
)
from auditel.store import integrity_store

EXPORT_FORMAT = 2


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


# --- writing -----------------------------------------------------------------------------------------
def export_lines(
    conn: sqlite3.Connection,
    *,
    checkpoints_only: bool = False,
    since_ns: int | None = None,
    until_ns: int | None = None,
    events: list[str] | None = None,
    stream: str | None = None,
) -> Iterator[dict[str, Any]]:
    """The lines of an export of the outbox behind ``conn`` (rows copied as stored, not re-validated)."""
    filters = {"since_ns": since_ns, "until_ns": until_ns, "events": events}
    yield {
        "type": "auditel.export",
        "format": EXPORT_FORMAT,
        "auditel_version": __version__,
        "exported_at": str(time.time_ns()),
        "filters": {k: v for k, v in filters.items() if v is not None},
        "stream": stream,
        "checkpoints_only": checkpoints_only,
    }
    if not checkpoints_only:
        for sid, through, head in integrity_store.export_pruned(conn, stream):
            yield {"type": "pruned", "stream_id": _text(sid), "through_seq": through, "head_hash": _text(head)}
        for key_id, algorithm, public in integrity_store.export_signing_keys(conn):
            yield {
                "type": "signing_key",
                "key_id": _text(key_id),
                "algorithm": _text(algorithm),
                "public_key": _text(public),
            }
        for sid, seq, data, rhash in integrity_store.export_records(
            conn, events=events, stream=stream, since_ns=since_ns, until_ns=until_ns
        ):
            yield {"type": "record", "stream_id": _text(sid), "seq": seq, "hash": _text(rhash), "data": _text(data)}
    for sid, data, signature in integrity_store.export_checkpoints(conn, stream):
        try:
            statement: Any = json.loads(_text(data))
        except (ValueError, TypeError, RecursionError):
            statement = _text(data)  # exported as stored; the verifier reports it
        yield {"type": "checkpoint", "stream_id": _text(sid), "checkpoint": statement, "signature": _text(signature)}


def dump_line(line: dict[str, Any]) -> str:
    """One line of the file (sorted keys, no spaces, UTF-8 as is), with its newline."""
    return json.dumps(line, ensure_ascii=False, sort_keys=True, separators=(",", ":")) + "\n"


# --- reading -----------------------------------------------------------------------------------------
def load_export(path: str | Path) -> Evidence:
    ev = Evidence(source=str(path), kind="export")
    for number, obj in iter_json_lines(path, "export", ev.problems):
        if not isinstance(obj, dict):
            ev.problems.append(f"export line {number}: not an object")
            continue
        kind = obj.get("type")
        if kind == "auditel.export":
            filters = obj.get("filters")
            ev.partial = bool(filters) and isinstance(filters, dict) and any(v for v in filters.values())
            version = obj.get("format")
            if type(version) is not int or version < 1:
                ev.problems.append(f"export line {number}: no valid format version ({str(version)[:40]!r})")
            elif version > EXPORT_FORMAT:
                ev.problems.append(
                    f"export line {number}: export format {version} is newer than this auditel reads (format "
                    f"{EXPORT_FORMAT}, auditel {__version__}): verify it with a newer auditel"
                )
                return ev  # its lines may mean something else: read nothing more
        elif kind == "record":
            ev.records.append(
                RawRecord(
                    f"line {number}", number, obj.get("stream_id"), obj.get("seq"), obj.get("data"), obj.get("hash")
                )
            )
        elif kind == "checkpoint":
            ev.checkpoints.append(
                RawCheckpoint(f"export line {number}", "table", obj.get("checkpoint"), obj.get("signature"))
            )
        elif kind == "pruned":
            ev.pruned.append(
                (f"export line {number}", obj.get("stream_id"), obj.get("through_seq"), obj.get("head_hash"))
            )
        elif kind == "signing_key":
            ev.signing_keys.append(
                (f"export line {number}", obj.get("key_id"), obj.get("algorithm"), obj.get("public_key"))
            )
        else:
            ev.problems.append(f"export line {number}: unknown type {str(kind)[:40]!r}")
    return ev
