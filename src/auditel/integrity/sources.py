"""Sources of evidence: the readers of an outbox, a backend's OTLP/JSON archive, a checkpoints file and
the checkpoint log beside an outbox. (The export file's reader is ``export_format``.) They never
judge: they collect rows as found, and report only what cannot be read at all."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from auditel.integrity import checkpoint_log, otlp_decode
from auditel.integrity.evidence import (
    Evidence,
    RawCheckpoint,
    RawRecord,
    iter_json_lines,
    reject_constant,
    text_of,
)
from auditel.integrity.signing import VerifyKey, load_ed25519_public
from auditel.record import schema as S
from auditel.record.canonical import canonical
from auditel.store import integrity_store
from auditel.store.integrity_store import (
    OPTIONAL_TABLE_COLUMNS,
    TABLE_COLUMNS,
    open_readonly,
)

__all__ = [
    "carriers_as_checkpoints",
    "load_archive",
    "load_checkpoint_log",
    "load_checkpoints_file",
    "load_outbox",
    "load_public_key_file",
    "open_readonly",
    "readable_tables",
]


# --- outbox ------------------------------------------------------------------------------------------
def readable_tables(conn: sqlite3.Connection, ev: Evidence) -> set[str]:
    """Names of the tables that are plain tables with plain columns (everything else is refused)."""
    objects: dict[str, tuple[str, str]] = {}
    wanted = {**TABLE_COLUMNS, **OPTIONAL_TABLE_COLUMNS}
    for kind, name, sql in integrity_store.schema_objects(conn):
        name_t, kind_t, sql_t = text_of(name), text_of(kind), text_of(sql) or ""
        if name_t in wanted and kind_t is not None:
            objects[name_t] = (kind_t, sql_t)
    ok: set[str] = set()
    for table, needed in wanted.items():
        if table not in objects:
            if table in TABLE_COLUMNS:
                (ev.problems if table in ("records", "checkpoints") else ev.notes).append(f"missing table {table}")
            continue
        kind, sql = objects[table]
        if kind != "table" or sql.lstrip().upper().startswith("CREATE VIRTUAL"):
            ev.problems.append(f"{table} is a {kind if kind != 'table' else 'virtual table'}, not a table: not read")
            continue
        columns = {}
        for name, hidden in integrity_store.table_columns(conn, table):
            columns[text_of(name)] = hidden
        missing = [c for c in needed if c not in columns]
        generated = [c for c in needed if columns.get(c) in (2, 3)]
        if missing:
            ev.problems.append(f"table {table} lacks column(s) {', '.join(missing)}: not read")
        elif generated:
            ev.problems.append(f"table {table} has generated column(s) {', '.join(generated)}: not read")
        else:
            ok.add(table)
    return ok


def load_outbox(path: str | Path) -> Evidence:
    ev = Evidence(source=str(path))
    if not Path(path).is_file():
        ev.problems.append(f"cannot read outbox: no file at {path}")
        return ev
    try:
        conn = integrity_store.open_readonly(path)
    except sqlite3.Error as exc:
        ev.problems.append(f"cannot read outbox: {type(exc).__name__}: {exc}")
        return ev
    try:
        tables = readable_tables(conn, ev)
        if "records" in tables:
            for rid, stream, seq, data, rhash in integrity_store.record_rows(conn):
                ev.records.append(RawRecord(f"row {rid}", rid if type(rid) is int else 0, stream, seq, data, rhash))
        if "checkpoints" in tables:
            for row in integrity_store.checkpoint_rows(conn):
                cid, stream, size, head, prev, key_id, alg, sig, data = row
                columns = {
                    "stream_id": text_of(stream),
                    "tree_size": size,
                    "head_hash": text_of(head),
                    "previous_checkpoint_hash": text_of(prev),
                    "key_id": text_of(key_id),
                    "algorithm": text_of(alg),
                }
                ev.checkpoints.append(RawCheckpoint(f"checkpoints row {cid}", "table", data, text_of(sig), columns))
        if "pruned" in tables:
            for stream, through, head in integrity_store.pruned_rows(conn):
                ev.pruned.append(("pruned table", text_of(stream), through, text_of(head)))
        if "streams" in tables:
            ev.streams = [text_of(sid) for sid in integrity_store.stream_ids(conn)]
        if "signing_keys" in tables:
            for key_id, algorithm, public in integrity_store.signing_key_rows(conn):
                ev.signing_keys.append(("signing_keys table", text_of(key_id), text_of(algorithm), text_of(public)))
    except sqlite3.Error as exc:
        ev.problems.append(f"cannot read outbox: {type(exc).__name__}: {exc}")
    finally:
        conn.close()
    return ev


# --- a backend's archive -------------------------------------------------------------------------------
def load_archive(paths: Iterable[str | Path]) -> Evidence:
    """A backend's copy: OTLP/JSON lines, one export request per line (the Collector's file exporter),
    from one or more files (rotated archives in any order). Each auditel record is rebuilt in its
    stored form (``otlp_decode``) and checked like an outbox row, except that the order of arrival
    is not checked (batches are sent in parallel and retried) and identical copies of a record are
    expected (at-least-once delivery): they are counted in a note, not reported as problems. Log
    records without auditel's chain attributes (other apps' logs in the same archive) are skipped."""
    names = [str(p) for p in paths]
    ev = Evidence(source=", ".join(names), kind="archive")
    order = 0
    foreign = 0
    for path in names:
        label = f"archive {path}" if len(names) > 1 else "archive"
        for number, obj in iter_json_lines(path, label, ev.problems):
            where = f"{label} line {number}"
            try:
                for index, _resource, scope, lr in otlp_decode.log_records(obj):
                    order += 1
                    if not otlp_decode.has_attribute(lr, (S.A_STREAM_ID, S.A_SEQ)):
                        foreign += 1
                        continue
                    try:
                        record = otlp_decode.stored_record(lr, scope)
                    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
                        ev.problems.append(f"{where} record {index}: not readable as an auditel record ({exc})")
                        continue
                    attrs = record["attributes"]
                    try:
                        data = canonical(record)
                    except (TypeError, ValueError, RecursionError) as exc:
                        ev.problems.append(f"{where} record {index}: cannot be put in canonical form ({exc})")
                        continue
                    # no stored hash to compare with: a changed record shows in the next record's link
                    # or in a checkpoint's head hash
                    ev.records.append(
                        RawRecord(
                            f"{where} record {index}", order, attrs.get(S.A_STREAM_ID), attrs.get(S.A_SEQ), data, None
                        )
                    )
            except (ValueError, TypeError) as exc:
                ev.problems.append(f"{where}: {exc}")
    if foreign:
        ev.notes.append(f"{foreign} log record(s) without auditel chain attributes skipped (not audit records)")
    return ev


# --- checkpoints held elsewhere -----------------------------------------------------------------------
def _otlp_json_checkpoint_bodies(request: dict[str, Any], where: str, problems: list[str]) -> Iterator[Any]:
    """The bodies of the ``auditel.checkpoint`` records in one OTLP/JSON ``ExportLogsServiceRequest``
    (a line of the Collector's file exporter)."""
    try:
        log_records = [lr for _index, _resource, _scope, lr in otlp_decode.log_records(request)]
    except ValueError:
        problems.append(f"{where}: malformed OTLP/JSON")
        return
    for lr in log_records:
        if not isinstance(lr, dict):
            problems.append(f"{where}: malformed OTLP/JSON log record")
            continue
        if lr.get("eventName") != S.EV_CHECKPOINT:
            continue
        try:
            yield otlp_decode.any_value(lr.get("body", {}))
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError, RecursionError):
            problems.append(f"{where}: malformed OTLP/JSON checkpoint body")


def load_checkpoints_file(path: str | Path, problems: list[str]) -> list[RawCheckpoint]:
    """Checkpoints held elsewhere: export lines, checkpoint record bodies, whole checkpoint records, or
    OTLP/JSON request lines (the Collector's file exporter)."""
    out: list[RawCheckpoint] = []
    for number, obj in iter_json_lines(path, "checkpoints file", problems):
        where = f"checkpoints file line {number}"
        if not isinstance(obj, dict):
            problems.append(f"{where}: not an object")
            continue
        if "resourceLogs" in obj:
            for body in _otlp_json_checkpoint_bodies(obj, where, problems):
                if isinstance(body, dict) and "checkpoint" in body:
                    out.append(RawCheckpoint(where, "external", body.get("checkpoint"), body.get("signature")))
                else:
                    problems.append(f"{where}: not a checkpoint")
            continue
        if obj.get("type") == "record" and isinstance(obj.get("data"), str):
            try:
                obj = json.loads(obj["data"], parse_constant=reject_constant)
            except (ValueError, RecursionError):
                problems.append(f"{where}: record data is not JSON")
                continue
            if not isinstance(obj, dict):
                continue
        if obj.get("type") in ("auditel.export", "pruned", "signing_key"):
            continue
        if obj.get("event_name") is not None:
            if obj.get("event_name") != S.EV_CHECKPOINT:
                continue  # other records of a backend dump
            obj = obj.get("body")
        if isinstance(obj, dict) and "checkpoint" in obj:
            out.append(RawCheckpoint(where, "external", obj.get("checkpoint"), obj.get("signature")))
        elif isinstance(obj, dict) and obj.get("type") == "record":
            continue
        else:
            problems.append(f"{where}: not a checkpoint")
    return out


def load_checkpoint_log(outbox_path: str | Path, problems: list[str]) -> tuple[list[RawCheckpoint], Path | None]:
    """The checkpoints of the log beside an outbox (``checkpoint_log``), marked as source ``log``; no
    log file: nothing (outboxes written before it existed, or logs removed on purpose)."""
    path = checkpoint_log.log_path(outbox_path)
    if not path.is_file():
        return [], None
    out = []
    for raw in load_checkpoints_file(path, problems):
        raw.source = "log"
        raw.where = raw.where.replace("checkpoints file", "checkpoint log")
        out.append(raw)
    return out, path


def carriers_as_checkpoints(evidence: Evidence) -> None:
    """Add the checkpoints carried by ``auditel.checkpoint`` records to ``evidence.checkpoints``."""
    for raw in evidence.records:
        data = raw.data
        if isinstance(data, bytes):
            data = text_of(data)
        if not isinstance(data, str) or f'"{S.EV_CHECKPOINT}"' not in data:
            continue
        try:
            obj = json.loads(data, parse_constant=reject_constant)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict) and obj.get("event_name") == S.EV_CHECKPOINT and isinstance(obj.get("body"), dict):
            body = obj["body"]
            evidence.checkpoints.append(
                RawCheckpoint(
                    f"{raw.where} (checkpoint record)", "record", body.get("checkpoint"), body.get("signature")
                )
            )


# --- keys -----------------------------------------------------------------------------------------------
def load_public_key_file(path: str | Path) -> VerifyKey:
    return VerifyKey.from_public(load_ed25519_public(Path(path).read_bytes()))
