"""Offline verification of an outbox, an export or a backend's OTLP/JSON archive: chain, markers,
checkpoints, truncation.

Everything read is untrusted input. The outbox is opened read-only (``mode=ro``) with
``trusted_schema=OFF`` and ``query_only=ON``; only plain tables are read (a view, a virtual
table or a generated column in their place is refused, so no stored SQL is run), text
columns come back as bytes and are decoded here, and every value's type is checked.

Per stream the verifier recomputes each record's SHA-256 over its stored bytes, checks that
the bytes are the canonical (RFC 8785) form of what they say, that sequence numbers are
contiguous from 1 (or from the ``pruned`` watermark), that each ``previous_hash`` is the
*recomputed* hash of the record before, that the stream starts with ``auditel.stream.start``
and that nothing but checkpoints follows ``auditel.stream.end``. It checks the checkpoint
chain, each signature, and that the record at each checkpoint's ``tree_size`` has the signed
``head_hash``; with checkpoints held elsewhere (``--checkpoints FILE``) it finds truncation
and rollback. It reports discontinuities, not intent: honest data loss looks like deletion.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import urllib.parse
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from auditel.integrity import otlp_decode
from auditel.record import schema as S
from auditel.record.canonical import canonical
from auditel.integrity.signing import (
    ALG_ED25519,
    ALG_HMAC,
    ALGORITHMS,
    CHECKPOINT_FORMAT,
    STATEMENT_FIELDS,
    KeyFormatError,
    VerifyKey,
    load_ed25519_public,
    statement_bytes,
    statement_hash,
)

MAX_DATA_BYTES = 64 * 1024 * 1024
MAX_LINE_BYTES = 64 * 1024 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")
_MAX_SEQ = 2**63 - 1


# --- untrusted input ---------------------------------------------------------------------------
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
    streams: list[Any] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    partial: bool = False  # a filtered export: gaps are expected
    kind: str = "outbox"  # "outbox" | "export" | "archive" (a backend's OTLP/JSON copy)

    @property
    def label(self) -> str:
        return f"this {self.kind}"


# --- results -----------------------------------------------------------------------------------------
@dataclass
class Finding:
    code: str
    message: str
    seq: int | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.seq is not None:
            out["seq"] = self.seq
        return out


@dataclass
class StreamReport:
    stream_id: str
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    pruned_through: int = 0
    checkpoints: int = 0
    anchored_through: int = 0
    key_id: str | None = None
    ended_cleanly: bool = False
    problems: list[Finding] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)

    def problem(self, code: str, message: str, seq: int | None = None) -> None:
        self.problems.append(Finding(code, message, seq))

    def note(self, code: str, message: str, seq: int | None = None) -> None:
        self.notes.append(Finding(code, message, seq))

    def as_dict(self) -> dict[str, Any]:
        return {
            "stream_id": self.stream_id,
            "records": self.records,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "pruned_through": self.pruned_through,
            "checkpoints": self.checkpoints,
            "anchored_through": self.anchored_through,
            "key_id": self.key_id,
            "end": "clean" if self.ended_cleanly else "unknown",
            "ok": not self.problems,
            "problems": [f.as_dict() for f in self.problems],
            "notes": [f.as_dict() for f in self.notes],
        }


@dataclass
class Report:
    source: str
    streams: list[StreamReport] = field(default_factory=list)
    problems: list[Finding] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and all(not s.problems for s in self.streams)

    def strict_ok(self) -> bool:
        """Also require every stream to be fully anchored and cleanly ended."""
        return self.ok and all(
            s.ended_cleanly and not any(n.code == "unanchored_tail" for n in s.notes) for s in self.streams
        )

    def all_messages(self) -> list[str]:
        out = [f.message for f in self.problems + self.notes]
        for s in self.streams:
            out += [f.message for f in s.problems + s.notes]
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "source": self.source,
            "streams": [s.as_dict() for s in self.streams],
            "problems": [f.as_dict() for f in self.problems],
            "notes": [f.as_dict() for f in self.notes],
            "summary": {
                "streams": len(self.streams),
                "records": sum(s.records for s in self.streams),
                "problems": len(self.problems) + sum(len(s.problems) for s in self.streams),
            },
        }

    def render(self) -> str:
        lines = [f"verifying {self.source}"]
        for f in self.problems:
            lines.append(f"  PROBLEM {f.message}")
        for f in self.notes:
            lines.append(f"  note    {f.message}")
        for s in self.streams:
            span = f"seq {s.first_seq}..{s.last_seq}" if s.first_seq is not None else "no records"
            key = f", key {s.key_id}" if s.key_id else ""
            lines.append(f"stream {s.stream_id}: {s.records} records ({span}), {s.checkpoints} checkpoints{key}")
            for f in s.problems:
                lines.append(f"  PROBLEM {f.message}")
            for f in s.notes:
                lines.append(f"  note    {f.message}")
        total = len(self.problems) + sum(len(s.problems) for s in self.streams)
        lines.append("OK: everything present verifies" if total == 0 else f"FAILED: {total} problem(s)")
        return "\n".join(lines)


# --- loading: outbox ------------------------------------------------------------------------------------
_TABLE_COLUMNS = {
    "records": ("rid", "stream_id", "seq", "data", "record_hash"),
    "checkpoints": ("cid", "stream_id", "tree_size", "head_hash", "prev_checkpoint_hash", "key_id", "algorithm",
                    "signature", "data"),
    "pruned": ("stream_id", "through_seq", "head_hash"),
    "streams": ("stream_id",),
}


def open_readonly(path: str | Path) -> sqlite3.Connection:
    """A read-only connection that will not run stored SQL functions (``trusted_schema=OFF``)."""
    uri = "file:" + urllib.parse.quote(str(Path(path).resolve())) + "?mode=ro"
    conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    conn.text_factory = bytes
    if hasattr(conn, "setconfig") and hasattr(sqlite3, "SQLITE_DBCONFIG_DEFENSIVE"):  # Python >= 3.12
        conn.setconfig(sqlite3.SQLITE_DBCONFIG_DEFENSIVE, True)
    conn.execute("PRAGMA trusted_schema=OFF")
    conn.execute("PRAGMA query_only=ON")
    return conn


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def readable_tables(conn: sqlite3.Connection, ev: Evidence) -> set[str]:
    """Names of the tables that are plain tables with plain columns (everything else is refused)."""
    objects: dict[str, tuple[str, str]] = {}
    for kind, name, sql in conn.execute("SELECT type, name, sql FROM sqlite_master"):
        name_t, kind_t, sql_t = _text(name), _text(kind), _text(sql) or ""
        if name_t in _TABLE_COLUMNS and kind_t is not None:
            objects[name_t] = (kind_t, sql_t)
    ok: set[str] = set()
    for table, needed in _TABLE_COLUMNS.items():
        if table not in objects:
            (ev.problems if table in ("records", "checkpoints") else ev.notes).append(f"missing table {table}")
            continue
        kind, sql = objects[table]
        if kind != "table" or sql.lstrip().upper().startswith("CREATE VIRTUAL"):
            ev.problems.append(f"{table} is a {kind if kind != 'table' else 'virtual table'}, not a table: not read")
            continue
        columns = {}
        for row in conn.execute(f"PRAGMA table_xinfo({table})"):
            columns[_text(row[1])] = row[6] if len(row) > 6 else 0
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
        conn = open_readonly(path)
    except sqlite3.Error as exc:
        ev.problems.append(f"cannot read outbox: {type(exc).__name__}: {exc}")
        return ev
    try:
        tables = readable_tables(conn, ev)
        if "records" in tables:
            for rid, stream, seq, data, rhash in conn.execute(
                "SELECT rid, stream_id, seq, data, record_hash FROM records ORDER BY rid"
            ):
                ev.records.append(RawRecord(f"row {rid}", rid if type(rid) is int else 0, stream, seq, data, rhash))
        if "checkpoints" in tables:
            for row in conn.execute(
                "SELECT cid, stream_id, tree_size, head_hash, prev_checkpoint_hash, key_id, algorithm, signature, data"
                " FROM checkpoints ORDER BY cid"
            ):
                cid, stream, size, head, prev, key_id, alg, sig, data = row
                columns = {
                    "stream_id": _text(stream), "tree_size": size, "head_hash": _text(head),
                    "previous_checkpoint_hash": _text(prev), "key_id": _text(key_id), "algorithm": _text(alg),
                }
                ev.checkpoints.append(RawCheckpoint(f"checkpoints row {cid}", "table", data, _text(sig), columns))
        if "pruned" in tables:
            for stream, through, head in conn.execute("SELECT stream_id, through_seq, head_hash FROM pruned"):
                ev.pruned.append(("pruned table", _text(stream), through, _text(head)))
        if "streams" in tables:
            ev.streams = [_text(r[0]) for r in conn.execute("SELECT stream_id FROM streams")]
    except sqlite3.Error as exc:
        ev.problems.append(f"cannot read outbox: {type(exc).__name__}: {exc}")
    finally:
        conn.close()
    return ev


# --- loading: JSON lines (exports and checkpoint files) ------------------------------------------------
def _iter_json_lines(path: str | Path, label: str, problems: list[str]) -> Iterator[tuple[int, Any]]:
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
                yield number, json.loads(line.decode("utf-8"), parse_constant=_reject_constant)
            except (ValueError, UnicodeDecodeError, RecursionError) as exc:
                problems.append(f"{label} line {number}: not JSON ({type(exc).__name__})")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def load_export(path: str | Path) -> Evidence:
    ev = Evidence(source=str(path), kind="export")
    for number, obj in _iter_json_lines(path, "export", ev.problems):
        if not isinstance(obj, dict):
            ev.problems.append(f"export line {number}: not an object")
            continue
        kind = obj.get("type")
        if kind == "auditel.export":
            filters = obj.get("filters")
            ev.partial = bool(filters) and isinstance(filters, dict) and any(v for v in filters.values())
        elif kind == "record":
            ev.records.append(
                RawRecord(f"line {number}", number, obj.get("stream_id"), obj.get("seq"), obj.get("data"), obj.get("hash"))
            )
        elif kind == "checkpoint":
            ev.checkpoints.append(RawCheckpoint(f"export line {number}", "table", obj.get("checkpoint"), obj.get("signature")))
        elif kind == "pruned":
            ev.pruned.append((f"export line {number}", obj.get("stream_id"), obj.get("through_seq"), obj.get("head_hash")))
        else:
            ev.problems.append(f"export line {number}: unknown type {str(kind)[:40]!r}")
    return ev


def load_archive(paths: Iterable[str | Path]) -> Evidence:
    """A backend's copy: OTLP/JSON lines, one export request per line (the Collector's file exporter),
    from one or more files (rotated archives in any order). Each auditel record is rebuilt in its
    stored form (``otlp_decode``) and checked like an outbox row, except that the order of arrival
    is not checked (batches are sent in parallel and retried) and identical copies of a record are
    expected (at-least-once delivery): they are counted in a note, not reported as problems. Log
    records without auditel's chain attributes (other apps' logs in the same archive) are skipped."""
    paths = [str(p) for p in paths]
    ev = Evidence(source=", ".join(paths), kind="archive")
    order = 0
    foreign = 0
    for path in paths:
        label = f"archive {path}" if len(paths) > 1 else "archive"
        for number, obj in _iter_json_lines(path, label, ev.problems):
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
                        RawRecord(f"{where} record {index}", order, attrs.get(S.A_STREAM_ID), attrs.get(S.A_SEQ), data, None)
                    )
            except (ValueError, TypeError) as exc:
                ev.problems.append(f"{where}: {exc}")
    if foreign:
        ev.notes.append(f"{foreign} log record(s) without auditel chain attributes skipped (not audit records)")
    return ev


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
    for number, obj in _iter_json_lines(path, "checkpoints file", problems):
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
                obj = json.loads(obj["data"], parse_constant=_reject_constant)
            except (ValueError, RecursionError):
                problems.append(f"{where}: record data is not JSON")
                continue
            if not isinstance(obj, dict):
                continue
        if obj.get("type") in ("auditel.export", "pruned"):
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


# --- keys -------------------------------------------------------------------------------------------------
def load_public_key_file(path: str | Path) -> VerifyKey:
    return VerifyKey.from_public(load_ed25519_public(Path(path).read_bytes()))


# --- parsing records ------------------------------------------------------------------------------------------
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


def _parse_record(raw: RawRecord, problems: list[str]) -> Rec | None:
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
        obj = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        problems.append(f"{raw.where}: data is not JSON ({type(exc).__name__})")
        return None
    attrs = obj.get("attributes") if isinstance(obj, dict) else None
    if not isinstance(attrs, dict):
        problems.append(f"{raw.where}: data is not an audit record (no attributes)")
        return None
    stream_id, seq, event = attrs.get(S.A_STREAM_ID), attrs.get(S.A_SEQ), obj.get("event_name")
    if not isinstance(stream_id, str) or type(seq) is not int or not (1 <= seq <= _MAX_SEQ) or not isinstance(event, str):
        problems.append(f"{raw.where}: data lacks a valid stream id, sequence number or event name")
        return None
    return Rec(raw, stream_id, seq, text, digest, obj, event, attrs.get(S.A_PREV_HASH, None))


def _is_canonical(obj: Any, text: str) -> bool:
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


def _parse_checkpoint(raw: RawCheckpoint, problems: list[str]) -> Cp | None:
    statement = raw.statement
    if isinstance(statement, bytes):
        statement = _text(statement)
    if isinstance(statement, str):
        text = statement
        try:
            statement = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            problems.append(f"{raw.where}: checkpoint data is not JSON")
            return None
        if isinstance(statement, dict) and not _is_canonical(statement, text):
            problems.append(f"{raw.where}: checkpoint data is not canonical")
    if not isinstance(statement, dict):
        problems.append(f"{raw.where}: malformed checkpoint (not an object)")
        return None
    reason = _statement_defect(statement)
    if reason:
        problems.append(f"{raw.where}: malformed checkpoint ({reason})")
        return None
    if raw.columns is not None:
        differing = [k for k, v in raw.columns.items() if statement.get(k) != v]
        if differing:
            problems.append(
                f"checkpoint {statement['tree_size']}: table columns disagree with the signed data ({', '.join(differing)})"
            )
    return Cp(statement, raw.signature, statement_hash(statement), {raw.source}, [raw.where],
              statement["tree_size"], statement["stream_id"])


def _statement_defect(st: dict[str, Any]) -> str | None:
    if set(st) != set(STATEMENT_FIELDS):
        return "unexpected or missing fields"
    if st["format"] != CHECKPOINT_FORMAT:
        return "unknown format"
    if type(st["tree_size"]) is not int or not (1 <= st["tree_size"] <= _MAX_SEQ):
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


# --- verification -------------------------------------------------------------------------------------------------
def verify(
    evidence: Evidence,
    *,
    external: Iterable[RawCheckpoint] = (),
    external_label: str = "the checkpoints file",
    keys: Iterable[VerifyKey] = (),
    stream: str | None = None,
) -> Report:
    report = Report(evidence.source)
    for message in evidence.problems:
        report.problems.append(Finding("unreadable", message))
    for message in evidence.notes:
        report.notes.append(Finding("note", message))
    trusted = {k.key_id: k for k in keys}
    global_problems: list[str] = []

    recs: dict[str, dict[int, list[Rec]]] = defaultdict(lambda: defaultdict(list))
    for raw in evidence.records:
        try:
            rec = _parse_record(raw, global_problems)
        except Exception as exc:  # noqa: BLE001 - never crash on hostile input
            global_problems.append(f"{raw.where}: unreadable ({type(exc).__name__})")
            continue
        if rec is not None:
            recs[rec.stream_id][rec.seq].append(rec)

    cps: dict[str, dict[str, Cp]] = defaultdict(dict)
    for raw in list(evidence.checkpoints) + list(external):
        try:
            cp = _parse_checkpoint(raw, global_problems)
        except Exception as exc:  # noqa: BLE001
            global_problems.append(f"{raw.where}: unreadable checkpoint ({type(exc).__name__})")
            continue
        if cp is None:
            continue
        known = cps[cp.stream_id].get(cp.hash)
        if known is None:
            cps[cp.stream_id][cp.hash] = cp
        else:
            known.sources |= cp.sources
            known.wheres += cp.wheres
            if known.signature != cp.signature and not isinstance(known.signature, str):
                known.signature = cp.signature

    pruned: dict[str, tuple[int, str | None]] = {}
    for where, sid, through, head in evidence.pruned:
        if not isinstance(sid, str) or type(through) is not int or through < 0 or (head is not None and not isinstance(head, str)):
            global_problems.append(f"{where}: malformed pruned row")
            continue
        if sid not in pruned or through > pruned[sid][0]:
            pruned[sid] = (through, head)

    local_streams = set(recs) | {s for s in evidence.streams if isinstance(s, str)} | set(pruned)
    local_streams |= {sid for sid, group in cps.items() if any(c.sources - {"external"} for c in group.values())}
    for sid in sorted(local_streams):
        if stream is not None and sid != stream:
            continue
        try:
            report.streams.append(
                _verify_stream(sid, recs.get(sid, {}), cps.get(sid, {}), pruned.get(sid), trusted, external_label, evidence)
            )
        except Exception as exc:  # noqa: BLE001 - a verifier bug must still produce a report
            report.problems.append(Finding("internal", f"stream {sid}: verifier error {type(exc).__name__}: {exc}"))

    local_origins = {c.statement["origin"] for sid in local_streams for c in cps.get(sid, {}).values()}
    foreign = 0
    for sid, group in cps.items():
        if sid in local_streams or (stream is not None and sid != stream):
            continue
        top = max(group.values(), key=lambda c: c.tree_size)
        if top.statement["origin"] in local_origins or stream is not None:
            report.problems.append(
                Finding(
                    "rolled_back",
                    f"rolled back: stream {sid} is missing from {evidence.label}, but checkpoint {top.tree_size} "
                    f"from {external_label} covers seq 1..{top.tree_size}",
                )
            )
        else:
            foreign += 1
    if foreign:
        report.notes.append(Finding("note", f"{external_label} has {foreign} stream(s) from other origins: ignored"))
    for message in global_problems:
        report.problems.append(Finding("malformed", message))
    if trusted:
        report.notes.append(Finding("note", "trusted key(s): " + ", ".join(sorted(trusted))))
    elif any(report.streams):
        report.notes.append(
            Finding(
                "key_not_pinned",
                "signatures checked against the key recorded in each stream start (not pinned): pass --public-key "
                "(or --hmac-key-env) to also detect a rewrite by someone without your key",
            )
        )
    return report


def _choose(copies: list[Rec], successor: list[Rec] | None) -> Rec:
    if len(copies) > 1 and successor:
        for rec in copies:
            if any(s.prev == rec.digest for s in successor):
                return rec
    return copies[0]


def _verify_stream(
    sid: str,
    by_seq: dict[int, list[Rec]],
    cps: dict[str, Cp],
    pruned: tuple[int, str | None] | None,
    trusted: dict[str, VerifyKey],
    external_label: str,
    evidence: Evidence,
) -> StreamReport:
    rep = StreamReport(sid)
    partial = evidence.partial  # a filtered export: gaps are expected
    archive = evidence.kind == "archive"  # arrival order is not stored order; delivery is at least once
    pruned_through, pruned_head = pruned if pruned else (0, None)
    rep.pruned_through = pruned_through
    seqs = sorted(by_seq)
    chosen: dict[int, Rec] = {}
    redelivered = 0
    for seq in seqs:
        copies = by_seq[seq]
        rec = _choose(copies, by_seq.get(seq + 1))
        chosen[seq] = rec
        for other in copies:
            if other is not rec and archive and other.digest == rec.digest:
                redelivered += 1
            elif other is not rec:
                rep.problem(
                    "duplicate",
                    f"record {seq}: conflicting copy ({other.raw.where}) not linked by record {seq + 1}"
                    if other.digest != rec.digest else f"record {seq}: duplicate ({other.raw.where})",
                    seq,
                )
    rep.records = len(chosen)
    if redelivered:
        rep.note("redelivered", f"{redelivered} identical copies of records delivered more than once (at-least-once delivery)")
    if seqs:
        rep.first_seq, rep.last_seq = seqs[0], seqs[-1]
    if pruned_through:
        rep.note("pruned", f"seq 1..{pruned_through} pruned by retention (not verifiable here)")

    # per-record checks
    ended_at: int | None = None
    last_order = -1
    for seq in seqs:
        rec = chosen[seq]
        raw = rec.raw
        if _text(raw.stream_col) != sid or _int(raw.seq_col) != seq:
            rep.problem("out_of_order", f"record {seq}: out of order ({raw.where} says seq {raw.seq_col!r}, data says seq {seq})", seq)
        elif raw.order < last_order and not archive:
            rep.problem("out_of_order", f"record {seq}: out of order (stored after a later record)", seq)
        last_order = max(last_order, raw.order)
        if not archive and _text(raw.hash_col) != rec.digest:
            rep.problem("hash_mismatch", f"record {seq}: hash mismatch", seq)
            rec.flagged_hash = True
        if not _is_canonical(rec.obj, rec.text):
            rep.problem("not_canonical", f"record {seq}: not in canonical form", seq)
        if seq <= pruned_through:
            rep.problem("pruned_conflict", f"record {seq}: present although seq 1..{pruned_through} were pruned", seq)
        if seq == 1 and rec.event != S.EV_STREAM_START:
            rep.problem("no_start", "record 1: not a stream-start record", seq)
        if seq != 1 and rec.event == S.EV_STREAM_START:
            rep.problem("start", f"record {seq}: unexpected stream-start record", seq)
        if ended_at is not None and rec.event != S.EV_CHECKPOINT:
            rep.problem("after_end", f"record {seq}: after the stream-end marker (seq {ended_at})", seq)
        if rec.event == S.EV_STREAM_END and rec.obj["attributes"].get(S.A_SEQ_END) is True and ended_at is None:
            ended_at = seq

    # sequence and links
    expected = pruned_through + 1
    for seq in seqs:
        rec = chosen[seq]
        if seq > expected:
            if partial:
                rep.note("not_exported", f"seq {expected}..{seq - 1} not in this export (filtered)")
            elif expected == 1:
                rep.problem("gap", f"start missing: seq 1..{seq - 1} absent", seq)
            else:
                rep.problem("gap", f"gap after seq {expected - 1}", expected - 1)
        elif seq == expected:
            if seq == 1:
                if rec.prev is not None:
                    rep.problem("link", "record 1: the first record has a previous hash", seq)
            elif rec.prev is None:
                rep.problem("link", f"record {seq}: missing previous hash", seq)
            elif seq == pruned_through + 1:
                if pruned_head is not None and rec.prev != pruned_head:
                    rep.problem("link", f"record {seq}: previous hash does not match the pruned watermark", seq)
            else:
                before = chosen[seq - 1]
                if rec.prev != before.digest and not before.flagged_hash:
                    rep.problem(
                        "hash_mismatch",
                        f"record {seq - 1}: hash mismatch (record {seq} links to a different hash)",
                        seq - 1,
                    )
        expected = max(expected, seq + 1)

    # key of the stream
    start = chosen.get(1)
    stream_key: VerifyKey | None = None
    start_key_id: str | None = None
    if start is not None and isinstance(start.obj.get("body"), dict):
        body = start.obj["body"]
        start_key_id = body.get("integrity.key_id") if isinstance(body.get("integrity.key_id"), str) else None
        pub = body.get("integrity.public_key")
        if body.get("integrity.algorithm") == ALG_ED25519 and isinstance(pub, str):
            try:
                stream_key = VerifyKey.from_public(load_ed25519_public(pub.encode("ascii")), trusted=False)
            except (KeyFormatError, UnicodeEncodeError, ValueError):
                rep.problem("key", "stream start: unreadable public key")
            if stream_key is not None and stream_key.key_id != start_key_id:
                rep.problem("key", f"stream start: public key does not match key id {start_key_id}")
                stream_key = None
    rep.key_id = start_key_id
    if trusted and start_key_id is not None and start_key_id not in trusted:
        rep.problem("untrusted_key", f"stream start: key id {start_key_id} is not a trusted key")

    # checkpoints
    ordered = sorted(cps.values(), key=lambda c: (c.tree_size, c.statement["time"]))
    rep.checkpoints = len(ordered)
    unchecked_hmac = False
    for cp in ordered:
        key_id = cp.statement["key_id"]
        key = trusted.get(key_id)
        if key is None and not trusted and stream_key is not None and stream_key.key_id == key_id:
            key = stream_key
        if key is None:
            if trusted:
                rep.problem("untrusted_key", f"checkpoint {cp.tree_size}: signed by untrusted key {key_id}", cp.tree_size)
                cp.valid_sig = False
            elif cp.statement["algorithm"] == ALG_HMAC:
                unchecked_hmac = True
            else:
                rep.problem("untrusted_key", f"checkpoint {cp.tree_size}: signed by unknown key {key_id}", cp.tree_size)
                cp.valid_sig = False
            continue
        if key.algorithm != cp.statement["algorithm"] or not key.verify(statement_bytes(cp.statement), cp.signature):
            rep.problem("bad_signature", f"checkpoint {cp.tree_size}: bad signature", cp.tree_size)
            cp.valid_sig = False
        else:
            cp.valid_sig = True
        if start_key_id is not None and key_id != start_key_id:
            rep.problem("key", f"checkpoint {cp.tree_size}: key {key_id} differs from the stream start's {start_key_id}")
    if unchecked_hmac:
        rep.note("unchecked", "HMAC-SHA256 checkpoint signatures not checked: give the key with --hmac-key-env VAR")

    by_size: dict[int, list[Cp]] = defaultdict(list)
    for cp in ordered:
        by_size[cp.tree_size].append(cp)
    for size, group in by_size.items():
        if len(group) > 1:
            rep.problem("conflict", f"checkpoint {size}: {len(group)} different checkpoints for one tree size (fork or forgery)", size)

    previous: Cp | None = None
    for cp in ordered:
        prev_hash = cp.statement["previous_checkpoint_hash"]
        if previous is None:
            if prev_hash is not None:
                rep.problem("checkpoint_chain", f"checkpoint {cp.tree_size}: previous checkpoint missing", cp.tree_size)
        elif prev_hash != previous.hash and previous.tree_size != cp.tree_size:
            rep.problem("checkpoint_chain", f"checkpoint {cp.tree_size}: previous checkpoint missing or different", cp.tree_size)
        previous = cp

    last_local = max(seqs[-1] if seqs else 0, pruned_through)
    anchored = 0
    for cp in ordered:
        size = cp.tree_size
        rec = chosen.get(size)
        if rec is not None:
            if rec.digest != cp.statement["head_hash"]:
                rep.problem("head_mismatch", f"checkpoint {size}: head hash mismatch (record {size} differs)", size)
            elif cp.valid_sig:
                anchored = max(anchored, size)
        elif size == pruned_through and pruned_head == cp.statement["head_hash"]:
            if cp.valid_sig:
                anchored = max(anchored, size)
        elif size < pruned_through:
            if cp.valid_sig:
                anchored = max(anchored, size)
        elif size <= last_local and not partial:
            rep.note("head_missing", f"checkpoint {size}: record {size} is missing, head not checked", size)
    rep.anchored_through = anchored

    # truncation and rollback
    local_top = max((c for c in ordered if c.valid_sig and c.sources - {"external"}), key=lambda c: c.tree_size, default=None)
    ext_top = max((c for c in ordered if c.valid_sig and "external" in c.sources), key=lambda c: c.tree_size, default=None)
    if local_top is not None and local_top.tree_size > last_local:
        rep.problem(
            "truncated",
            f"truncated: seq {last_local + 1}..{local_top.tree_size} missing, but checkpoint {local_top.tree_size} "
            f"in {evidence.label} covers them",
        )
    elif ext_top is not None and ext_top.tree_size > last_local:
        rep.problem(
            "rolled_back",
            f"rolled back: the stream ends at seq {last_local}, but checkpoint {ext_top.tree_size} from {external_label} "
            f"covers seq {ext_top.tree_size} (an older copy of the outbox, or its tail cut together with its checkpoints)",
        )

    # anchoring and end
    if seqs and not partial:
        # Records after the last verified checkpoint, except the records that carry valid checkpoints
        # themselves (each is a signed statement, not an event).
        carriers_ok = {c.hash for c in ordered if c.valid_sig and c.tree_size >= anchored}
        tail = [
            s for s in seqs
            if s > anchored and not (chosen[s].event == S.EV_CHECKPOINT and _carried(chosen[s]) in carriers_ok)
        ]
        if tail:
            rep.note(
                "unanchored_tail",
                f"unanchored tail: seq {tail[0]}..{seqs[-1]} (no signed checkpoint covers it yet; "
                "a cut here is detectable only with checkpoints held elsewhere)",
            )
    rep.ended_cleanly = ended_at is not None and not any(f.code == "after_end" for f in rep.problems)
    if rep.ended_cleanly:
        rep.note("ended", "stream ended cleanly")
    else:
        rep.note("end_unknown", "end unknown (no end marker: the process is running, crashed or was killed)")
    return rep


def _carried(rec: Rec) -> str | None:
    body = rec.obj.get("body")
    if isinstance(body, dict) and isinstance(body.get("checkpoint"), dict):
        try:
            return statement_hash(body["checkpoint"])
        except (TypeError, ValueError, RecursionError):
            return None
    return None


def carriers_as_checkpoints(evidence: Evidence) -> None:
    """Add the checkpoints carried by ``auditel.checkpoint`` records to ``evidence.checkpoints``."""
    for raw in evidence.records:
        data = raw.data
        if isinstance(data, bytes):
            data = _text(data)
        if not isinstance(data, str) or f'"{S.EV_CHECKPOINT}"' not in data:
            continue
        try:
            obj = json.loads(data, parse_constant=_reject_constant)
        except (ValueError, RecursionError):
            continue
        if isinstance(obj, dict) and obj.get("event_name") == S.EV_CHECKPOINT and isinstance(obj.get("body"), dict):
            body = obj["body"]
            evidence.checkpoints.append(RawCheckpoint(f"{raw.where} (checkpoint record)", "record", body.get("checkpoint"), body.get("signature")))


def verify_path(
    path: str | Path,
    *,
    from_export: bool = False,
    from_archive: Iterable[str | Path] | None = None,
    checkpoints_file: str | Path | None = None,
    keys: Iterable[VerifyKey] = (),
    stream: str | None = None,
) -> Report:
    """Load and verify an outbox, an export (``from_export``: ``path`` is one) or a backend's OTLP/JSON
    archive files (``from_archive``: ``path`` is ignored), optionally against checkpoints held elsewhere."""
    if from_archive is not None:
        evidence = load_archive(from_archive)
    else:
        evidence = load_export(path) if from_export else load_outbox(path)
    carriers_as_checkpoints(evidence)
    external: list[RawCheckpoint] = []
    label = "the checkpoints file"
    if checkpoints_file is not None:
        external = load_checkpoints_file(checkpoints_file, evidence.problems)
        label = str(checkpoints_file)
    return verify(evidence, external=external, external_label=label, keys=keys, stream=stream)
