"""The SQL of the integrity layer: writing checkpoints and signing keys, and the read-only queries of
``auditel verify`` and ``auditel export``.

Reads open the outbox read-only (``mode=ro``) with ``trusted_schema=OFF`` and ``query_only=ON`` and
text columns as bytes: everything read is untrusted input, decoded and type-checked by the caller.

The ``signing_keys`` table keeps the public key of every Ed25519 key that signed a checkpoint in this
outbox, keyed by its key id (a hash of the public key, so a row cannot claim another key's id). The
stream-start record carries the same key, but retention (``auditel purge``, the size cap) deletes the
oldest records, and without the key the stream's remaining checkpoints could not be checked. Nothing
prunes this table; it is written in the same transaction as a checkpoint row, so every stored
checkpoint's key is kept.
"""

from __future__ import annotations

import sqlite3
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from auditel.store.trail import record_filter

_SIGNING_KEYS_DDL = (
    "CREATE TABLE IF NOT EXISTS signing_keys ("
    " key_id TEXT PRIMARY KEY, algorithm TEXT NOT NULL, public_key TEXT NOT NULL, first_ns INTEGER NOT NULL)"
)

# The columns verify needs from each table; a table lacking one is refused (not read).
TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "records": ("rid", "stream_id", "seq", "data", "record_hash"),
    "checkpoints": (
        "cid",
        "stream_id",
        "tree_size",
        "head_hash",
        "prev_checkpoint_hash",
        "key_id",
        "algorithm",
        "signature",
        "data",
    ),
    "pruned": ("stream_id", "through_seq", "head_hash"),
    "streams": ("stream_id",),
}
# Optional tables: absent in outboxes written before they existed, so their absence is not reported.
OPTIONAL_TABLE_COLUMNS: dict[str, tuple[str, ...]] = {
    "signing_keys": ("key_id", "algorithm", "public_key"),
}


class _WritableOutbox(Protocol):
    def write_transaction(self) -> Any: ...


# --- writing --------------------------------------------------------------------------------------------
def insert_checkpoint(
    outbox: _WritableOutbox,
    row: tuple[Any, ...],
    signing_key: tuple[str, str, str, int] | None = None,
) -> None:
    """Insert one checkpoint row (``stream_id, tree_size, head_hash, time_ns, prev_checkpoint_hash, key_id,
    algorithm, signature, data, checkpoint_hash``) and, once per key, the signing key's public half
    (``key_id, algorithm, public_key, time_ns``) in the same transaction."""
    with outbox.write_transaction() as conn:  # queues with the app's commits on the write lock
        if signing_key is not None:
            conn.execute(_SIGNING_KEYS_DDL)
            conn.execute(
                "INSERT OR IGNORE INTO signing_keys(key_id, algorithm, public_key, first_ns) VALUES (?,?,?,?)",
                signing_key,
            )
        conn.execute(
            "INSERT INTO checkpoints(stream_id, tree_size, head_hash, time_ns, prev_checkpoint_hash, key_id,"
            " algorithm, signature, data, checkpoint_hash) VALUES (?,?,?,?,?,?,?,?,?,?)",
            row,
        )


# --- reading (untrusted) ------------------------------------------------------------------------------------
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


def schema_objects(conn: sqlite3.Connection) -> Iterator[tuple[Any, Any, Any]]:
    """``(type, name, sql)`` of every schema object, as stored (bytes)."""
    yield from conn.execute("SELECT type, name, sql FROM sqlite_master")


def table_columns(conn: sqlite3.Connection, table: str) -> Iterator[tuple[Any, int]]:
    """``(name, hidden)`` per column of ``table`` (one of the known table names; never user input)."""
    assert table in TABLE_COLUMNS or table in OPTIONAL_TABLE_COLUMNS
    for row in conn.execute(f"PRAGMA table_xinfo({table})"):
        yield row[1], (row[6] if len(row) > 6 else 0)


def record_rows(conn: sqlite3.Connection) -> Iterator[tuple[Any, Any, Any, Any, Any]]:
    yield from conn.execute("SELECT rid, stream_id, seq, data, record_hash FROM records ORDER BY rid")


def checkpoint_rows(conn: sqlite3.Connection) -> Iterator[tuple[Any, ...]]:
    yield from conn.execute(
        "SELECT cid, stream_id, tree_size, head_hash, prev_checkpoint_hash, key_id, algorithm, signature, data"
        " FROM checkpoints ORDER BY cid"
    )


def pruned_rows(conn: sqlite3.Connection) -> Iterator[tuple[Any, Any, Any]]:
    yield from conn.execute("SELECT stream_id, through_seq, head_hash FROM pruned")


def stream_ids(conn: sqlite3.Connection) -> Iterator[Any]:
    for (sid,) in conn.execute("SELECT stream_id FROM streams"):
        yield sid


def signing_key_rows(conn: sqlite3.Connection) -> Iterator[tuple[Any, Any, Any]]:
    yield from conn.execute("SELECT key_id, algorithm, public_key FROM signing_keys ORDER BY key_id")


def has_table(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone()
    return bool(row and row[0])


# --- export ----------------------------------------------------------------------------------------------------
def export_pruned(conn: sqlite3.Connection, stream: str | None) -> Iterator[tuple[Any, Any, Any]]:
    """The highest prune watermark per stream: ``(stream_id, through_seq, head_hash)``."""
    where, params = ("WHERE stream_id=?", [stream]) if stream else ("", [])
    yield from conn.execute(
        f"SELECT stream_id, max(through_seq), head_hash FROM pruned {where} GROUP BY stream_id", params
    )


def export_records(
    conn: sqlite3.Connection,
    *,
    events: list[str] | None,
    stream: str | None,
    since_ns: int | None,
    until_ns: int | None,
) -> Iterator[tuple[Any, Any, Any, Any]]:
    where, params = record_filter(event_names=events, stream_id=stream or None, since_ns=since_ns, until_ns=until_ns)
    sql = f"SELECT stream_id, seq, data, record_hash FROM records WHERE {' AND '.join(where) or '1=1'} ORDER BY rid"
    yield from conn.execute(sql, params)


def export_checkpoints(conn: sqlite3.Connection, stream: str | None) -> Iterator[tuple[Any, Any, Any]]:
    where, params = ("WHERE stream_id=?", [stream]) if stream else ("", [])
    yield from conn.execute(f"SELECT stream_id, data, signature FROM checkpoints {where} ORDER BY cid", params)


def export_signing_keys(conn: sqlite3.Connection) -> Iterator[tuple[Any, Any, Any]]:
    if has_table(conn, "signing_keys"):
        yield from signing_key_rows(conn)
