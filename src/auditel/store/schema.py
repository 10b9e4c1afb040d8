"""The outbox schema: its tables, the migrations from every older version, and ``migrate``.

Tables (schema version in ``meta``):

* ``streams``      one row per writer stream (process): resource and start time
* ``records``      the audit records, with shipping state. No secondary index is written when a
                   record is committed: every index is one more page written per commit on the emit
                   path (measured: the ``(state, rid)`` index of schema 1-3 was ~7 us of a ~23 us
                   insert), so not even ``record_id`` is UNIQUE. Pending records are found from the
                   *ship floor* (``meta.ship_floor``: every record at or below it is shipped or
                   dead-lettered) by a range scan on ``rid``; the partial index ``records_done`` holds
                   only shipped and dead-lettered rows, which the shipper writes, never the app.
                   Lookups by record id, stream or time scan, which only the CLI and background tasks do.
* ``checkpoints``  signed checkpoints over stream heads
* ``dead_letters`` why a record was rejected by a backend (the record itself stays)
* ``pruned``       what retention or a cap removed, so verification can tell pruning from tampering
* ``ship_leases``  shipping leases on rid ranges (schema 2)
* ``counters``     each stream's failure/redaction counters and last delivery error (schema 5)
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from auditel.config.settings import ConfigError


class OutboxError(ConfigError):
    """The outbox file cannot be used (not an auditel outbox, a newer schema, corrupt, unwritable).

    The message starts with the file's path. It is a ``ConfigError`` because ``configure()`` cannot
    go on with such a file; the CLI prints it as one line.
    """


# The records table as it is now. Version 1 had ``record_id ... UNIQUE``; a new outbox is created
# without it and migration 3 rebuilds older ones.
RECORDS_COLUMNS = """
            rid          INTEGER PRIMARY KEY,
            record_id    TEXT NOT NULL,
            stream_id    TEXT NOT NULL,
            seq          INTEGER NOT NULL,
            time_ns      INTEGER NOT NULL,
            event_name   TEXT NOT NULL,
            data         TEXT NOT NULL,
            record_hash  TEXT,
            state        INTEGER NOT NULL DEFAULT 0,
            lease_owner  TEXT,
            lease_until  INTEGER,
            attempts     INTEGER NOT NULL DEFAULT 0,
            shipped_ns   INTEGER
"""

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE IF NOT EXISTS streams (
            stream_id   TEXT PRIMARY KEY,
            started_ns  INTEGER NOT NULL,
            pid         INTEGER,
            host        TEXT,
            resource    TEXT NOT NULL,
            ended_ns    INTEGER
        );
        CREATE TABLE IF NOT EXISTS records (
"""
        + RECORDS_COLUMNS
        + """
        );
        CREATE INDEX IF NOT EXISTS records_state_rid ON records(state, rid);
        CREATE TABLE IF NOT EXISTS checkpoints (
            cid                   INTEGER PRIMARY KEY,
            stream_id             TEXT NOT NULL,
            tree_size             INTEGER NOT NULL,
            head_hash             TEXT,
            time_ns               INTEGER NOT NULL,
            prev_checkpoint_hash  TEXT,
            key_id                TEXT,
            algorithm             TEXT,
            signature             TEXT,
            data                  TEXT NOT NULL,
            checkpoint_hash       TEXT
        );
        CREATE INDEX IF NOT EXISTS checkpoints_stream ON checkpoints(stream_id, tree_size);
        CREATE TABLE IF NOT EXISTS dead_letters (
            did         INTEGER PRIMARY KEY,
            rid         INTEGER NOT NULL,
            record_id   TEXT NOT NULL,
            reason      TEXT NOT NULL,
            status      TEXT,
            time_ns     INTEGER NOT NULL,
            requeued_ns INTEGER
        );
        CREATE INDEX IF NOT EXISTS dead_letters_rid ON dead_letters(rid);
        CREATE TABLE IF NOT EXISTS pruned (
            stream_id    TEXT NOT NULL,
            through_seq  INTEGER NOT NULL,
            head_hash    TEXT,
            count        INTEGER NOT NULL,
            reason       TEXT NOT NULL,
            time_ns      INTEGER NOT NULL
        );
        """,
    ),
    (
        2,
        # Shipping leases, one row per claimed batch (auditel.store.shipping_queue): a lease on a rid range
        # costs one small insert instead of rewriting every claimed record row (measured ~6x faster).
        """
        CREATE TABLE IF NOT EXISTS ship_leases (
            owner  TEXT NOT NULL,
            lo     INTEGER NOT NULL,
            hi     INTEGER NOT NULL,
            until  INTEGER NOT NULL,
            PRIMARY KEY (owner, lo)
        );
        """,
    ),
    (
        3,
        # records.record_id loses its UNIQUE constraint: the automatic index behind it was one more
        # page written per commit on the emit path (measured ~8 us of a ~35 us insert). Ids are ULIDs
        # made by auditel; nothing looks a record up by id except the CLI, which scans.
        """
        CREATE TABLE records_v3 (
"""
        + RECORDS_COLUMNS
        + """
        );
        INSERT INTO records_v3 (rid, record_id, stream_id, seq, time_ns, event_name, data, record_hash,
                                state, lease_owner, lease_until, attempts, shipped_ns)
            SELECT rid, record_id, stream_id, seq, time_ns, event_name, data, record_hash,
                   state, lease_owner, lease_until, attempts, shipped_ns FROM records;
        DROP TABLE records;
        ALTER TABLE records_v3 RENAME TO records;
        CREATE INDEX IF NOT EXISTS records_state_rid ON records(state, rid);
        """,
    ),
    (
        4,
        # The (state, rid) index goes: it was one more page written by every commit on the emit path.
        # Pending records are found above the ship floor instead (see SHIP_FLOOR_SQL), and the shipped
        # and dead-lettered ones (counted by status, pruned first) in a partial index that inserts of
        # new, pending records never touch.
        """
        INSERT OR REPLACE INTO meta(key, value) VALUES ('ship_floor', CAST(coalesce(
            (SELECT min(rid) FROM records WHERE state=0) - 1, (SELECT max(rid) FROM records), 0) AS TEXT));
        DROP INDEX IF EXISTS records_state_rid;
        CREATE INDEX IF NOT EXISTS records_done ON records(state, rid) WHERE state != 0;
        """,
    ),
    (
        5,
        # Counters and the last delivery error, one row per writer stream (process), written by the
        # worker now and then and at shutdown (never on the emit path), so that any process and the
        # CLI can show why records are not stored or not shipped. Older auditel ignores the table.
        """
        CREATE TABLE IF NOT EXISTS counters (
            stream_id  TEXT PRIMARY KEY,
            pid        INTEGER,
            time_ns    INTEGER NOT NULL,
            data       TEXT NOT NULL
        );
        """,
    ),
    (
        6,
        # The public key of every key that signed a checkpoint, never pruned, so that verification
        # still knows the key after the stream-start record carrying it was purged
        # (store/integrity_store.py writes it beside each checkpoint).
        """
        CREATE TABLE IF NOT EXISTS signing_keys (
            key_id     TEXT PRIMARY KEY,
            algorithm  TEXT NOT NULL,
            public_key TEXT NOT NULL,
            first_ns   INTEGER NOT NULL
        );
        """,
    ),
]
SCHEMA_VERSION = MIGRATIONS[-1][0]


_AUDITEL_TABLES = {
    "meta",
    "streams",
    "records",
    "checkpoints",
    "dead_letters",
    "pruned",
    "ship_leases",
    "counters",
    "signing_keys",
}


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Create or upgrade the schema on ``conn`` (autocommit), in one write transaction.

    Raises ``OutboxError`` naming ``path`` for a file that is not an auditel outbox (another
    SQLite database, or not a database), a schema newer than this auditel, or a write that fails
    (full disk, read-only file): the real cause, never "cannot rollback" from the cleanup.
    """
    try:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise OutboxError(f"{path}: not an auditel outbox ({exc})") from exc
    if tables and ("meta" not in tables or not tables <= _AUDITEL_TABLES | {"sqlite_sequence"}):
        raise OutboxError(
            f"{path}: not an auditel outbox (an SQLite database with other tables: "
            f"{', '.join(sorted(tables - _AUDITEL_TABLES)) or 'no meta table'}); set AUDITEL_OUTBOX to another file"
        )
    try:
        if not tables:
            conn.execute("PRAGMA auto_vacuum=INCREMENTAL")  # must be chosen before the first table exists
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            try:
                current = int(row[0]) if row else 0
            except ValueError:
                raise OutboxError(f"{path}: not an auditel outbox (schema_version {row[0]!r})") from None
            if current > SCHEMA_VERSION:
                raise OutboxError(
                    f"{path}: schema {current} is newer than this auditel supports ({SCHEMA_VERSION}); upgrade auditel"
                )
            for version, ddl in MIGRATIONS:
                if version > current:
                    for statement in ddl.split(";"):
                        if statement.strip():
                            conn.execute(statement)
                    conn.execute(
                        "INSERT OR REPLACE INTO meta(key, value) VALUES ('schema_version', ?)", (str(version),)
                    )
            if not row:
                conn.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('created_ns', ?)", (str(time.time_ns()),))
            conn.execute("COMMIT")
        except BaseException:
            rollback(conn)  # SQLite may have rolled back already (full disk): keep the real error
            raise
    except sqlite3.Error as exc:
        raise OutboxError(f"{path}: cannot set up the outbox: {type(exc).__name__}: {exc}") from exc


def rollback(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if any; never raises (the caller re-raises the real error)."""
    try:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
    except sqlite3.Error:
        pass
