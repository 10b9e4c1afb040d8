"""The SQLite outbox: every audit record is committed here before ``emit`` returns.

One file, WAL journal, created 0600 in a 0700 directory. Writes use ``BEGIN IMMEDIATE``
with a long busy timeout, so many threads and many processes (gunicorn workers) can share
one file without "database is locked" reaching anyone. Connections are per thread and per
process: after ``os.fork()`` the child opens its own and never touches the parent's.
Within one process every write also holds ``Outbox.write_lock`` (a ``threading.Lock``): threads
of one process queue on it and wake the moment it is free, instead of meeting SQLite's lock and
sleeping in its busy handler (1, 2, 5, 10 ... 100 ms steps). Other processes rely on the busy timeout.

The tables and their migrations are in ``auditel.store.schema``; the file checks (no symlinks,
no foreign owners, no directory others can write) in ``auditel.store.files``.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditel.store.files import prepare_outbox
from auditel.store.fork_gate import GATE, GatedConnection
from auditel.store.schema import MIGRATIONS as _MIGRATIONS  # noqa: F401 - re-exported for tests
from auditel.store.schema import RECORDS_COLUMNS as _RECORDS_COLUMNS  # noqa: F401
from auditel.store.schema import SCHEMA_VERSION, OutboxError, migrate, rollback

__all__ = ["Outbox", "OutboxError", "OutboxStats", "SCHEMA_VERSION"]

_PLAIN_EXECUTE = sqlite3.Connection.execute  # C: runs the statement on a plain cursor
_INSERT_RECORD = (
    "INSERT INTO records(record_id, stream_id, seq, time_ns, event_name, data, record_hash) VALUES (?,?,?,?,?,?,?)"
)

STATE_PENDING = 0
STATE_SHIPPED = 1
STATE_DEAD = 2

BUSY_TIMEOUT_S = 30.0

# The WAL is kept bounded by the worker (``checkpoint_wal``), not by commits: it checkpoints once the
# WAL holds WAL_CHECKPOINT_BYTES; after a completed checkpoint the WAL restarts and SQLite trims the
# file to JOURNAL_SIZE_LIMIT. A RESTART checkpoint waits at most WAL_RESTART_WAIT_MS for readers.
WAL_CHECKPOINT_BYTES = 8 << 20
JOURNAL_SIZE_LIMIT = 4 << 20  # below WAL_CHECKPOINT_BYTES: a WAL file that size holds that many new frames
WAL_RESTART_WAIT_MS = 200

# The ship floor (schema 4): every record with ``rid`` at or below it is shipped or dead-lettered (or
# gone). It lets the pending records be found by a range scan on the primary key instead of an index
# the emit path would have to write. It only rises in ``advance_ship_floor`` (inside a write
# transaction, to just below the first pending record) and is lowered in the same transaction by
# anything that makes a record pending again (``requeue``) or removes the newest records (``prune``:
# SQLite then reuses their rids). New records always get a rid above it.
SHIP_FLOOR_SQL = "coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key='ship_floor'), 0)"
PENDING_WHERE = f"rid > {SHIP_FLOOR_SQL} AND state=0"
_LIVE_BYTES_SQL = (
    "SELECT (p.page_count - f.freelist_count) * s.page_size"
    " FROM pragma_page_count() AS p, pragma_freelist_count() AS f, pragma_page_size() AS s"
)


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


@dataclass
class OutboxStats:
    records_total: int
    pending: int
    shipped: int
    dead_lettered: int
    outbox_bytes: int
    oldest_pending_age_s: float | None
    streams: int
    checkpoints: int


class Outbox:
    """A handle on one outbox file. Safe to share between threads; re-opens after fork."""

    def __init__(
        self, path: str | os.PathLike[str], *, durability: str = "process", wal_autocheckpoint: bool = True
    ) -> None:
        """``wal_autocheckpoint=False``: commits never run a WAL checkpoint themselves (the runtime's
        worker does, see ``checkpoint_wal``), which keeps checkpoint I/O off the emit path."""
        self.path = Path(path).expanduser()
        self.durability = durability
        self.wal_autocheckpoint = wal_autocheckpoint
        self._local = threading.local()
        self._pid = os.getpid()
        self._abandoned: list[Any] = []  # connections inherited across fork: never closed by the child
        # Every write of this process holds it (see the module docstring); a forked child gets a
        # fresh one from ``connect``, which every write calls before taking it.
        self.write_lock = threading.Lock()
        self._wal_seen: int | None = None  # the WAL's mtime at the last wal_task
        self._ckpt_backoff = 0.0  # seconds; see _checkpoint
        self._ckpt_retry_at = 0.0
        prepare_outbox(self.path)  # refuses links, devices, foreign owners, directories others can write
        self._migrate()

    # --- connections -------------------------------------------------------
    def connect(self) -> sqlite3.Connection:
        """The calling thread's connection (opened on first use, and again after fork)."""
        pid = os.getpid()
        if pid != self._pid:
            # Forked: never reuse or close the parent's connections in the child. The inherited
            # write lock may be held by a parent thread that does not exist here: take a new one.
            self._abandoned.append(self._local)
            self._local = threading.local()
            self.write_lock = threading.Lock()
            self._pid = pid
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            self._local.conn = conn
        return conn

    def _open(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            str(self.path),
            timeout=BUSY_TIMEOUT_S,
            isolation_level=None,
            check_same_thread=False,
            factory=GatedConnection,  # a fork never lands inside one of our SQLite calls (see fork_gate)
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=" + ("FULL" if self.durability == "fsync" else "NORMAL"))
        conn.execute(f"PRAGMA journal_size_limit={JOURNAL_SIZE_LIMIT}")
        conn.execute("PRAGMA foreign_keys=OFF")
        conn.execute("PRAGMA trusted_schema=OFF")
        if not self.wal_autocheckpoint:
            conn.execute("PRAGMA wal_autocheckpoint=0")
        return conn

    def close(self) -> None:
        """Close this thread's connection (other threads' close when they end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and os.getpid() == self._pid:
            try:
                conn.close()
            except sqlite3.Error:
                pass
        self._local.conn = None

    def _migrate(self) -> None:
        try:
            conn = self._open()
        except sqlite3.Error as exc:
            raise OutboxError(f"{self.path}: not an auditel outbox or not usable: {type(exc).__name__}: {exc}") from exc
        try:
            migrate(conn, self.path)
        finally:
            conn.close()

    # --- writes --------------------------------------------------------------
    @contextmanager
    def write_transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT`` (rolled back on error) on this thread's connection,
        holding ``write_lock`` throughout."""
        conn = self.connect()
        with self.write_lock:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise

    def register_stream(self, stream_id: str, resource: dict[str, Any], *, pid: int, host: str) -> None:
        """Raises ``OutboxError`` (a ``ConfigError``) naming the file when it cannot be written."""
        try:
            with self.write_transaction() as conn:
                conn.execute(
                    "INSERT OR IGNORE INTO streams(stream_id, started_ns, pid, host, resource) VALUES (?,?,?,?,?)",
                    (stream_id, time.time_ns(), pid, host, json.dumps(resource, sort_keys=True, ensure_ascii=False)),
                )
        except sqlite3.Error as exc:
            raise OutboxError(f"{self.path}: cannot write to the outbox: {type(exc).__name__}: {exc}") from exc

    def end_stream(self, stream_id: str) -> None:
        conn = self.connect()
        with self.write_lock:
            conn.execute("UPDATE streams SET ended_ns=? WHERE stream_id=?", (time.time_ns(), stream_id))

    def append(
        self,
        record_id: str,
        stream_id: str,
        seq: int,
        time_ns: int,
        event_name: str,
        data: str,
        record_hash: str | None,
    ) -> None:
        """Insert one record and commit. Returns only once the row is committed.

        A single INSERT in autocommit mode is its own write transaction: it takes the write
        lock directly (no read-then-upgrade, so the busy handler applies and BUSY_SNAPSHOT
        cannot happen) and commits when the statement ends — one statement instead of three.
        ``write_lock`` is held meanwhile: a write by another thread of this process is waited for
        on the lock, never in SQLite's sleeping busy handler.
        """
        conn = self.connect()
        with self.write_lock:
            # the emit path's one statement: inside the fork gate, without the gated cursor's
            # bookkeeping (an autocommit INSERT returns no rows and leaves no transaction open)
            GATE.enter()
            try:
                row = (record_id, stream_id, seq, time_ns, event_name, data, record_hash)
                _PLAIN_EXECUTE(conn, _INSERT_RECORD, row)
            finally:
                GATE.leave()

    # --- the ship floor (see SHIP_FLOOR_SQL) ---------------------------------------------
    @staticmethod
    def ship_floor(conn: sqlite3.Connection) -> int:
        return int(conn.execute(f"SELECT {SHIP_FLOOR_SQL}").fetchone()[0])

    @staticmethod
    def advance_ship_floor(conn: sqlite3.Connection) -> int:
        """Raise the floor to just below the first pending record; call inside a write transaction.

        Scans the rows shipped since the last call (a primary-key range), so it is cheap when
        called once per claimed batch. Returns the floor.
        """
        floor = Outbox.ship_floor(conn)
        row = conn.execute(
            "SELECT rid FROM records WHERE rid > ? AND state=0 ORDER BY rid LIMIT 1", (floor,)
        ).fetchone()
        if row is not None:
            new = row[0] - 1
        else:
            new = conn.execute("SELECT coalesce(max(rid), 0) FROM records").fetchone()[0]
        if new != floor:
            conn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('ship_floor', ?)", (str(new),))
        return int(new)

    @staticmethod
    def lower_ship_floor(conn: sqlite3.Connection, first_pending_rid: int) -> None:
        """A record at ``first_pending_rid`` is pending again; call inside that write transaction."""
        conn.execute(
            f"UPDATE meta SET value=? WHERE key='ship_floor' AND {SHIP_FLOOR_SQL} >= ?",
            (str(first_pending_rid - 1), first_pending_rid),
        )

    def audit_ship_floor(self, *, min_interval_s: float = 86400.0) -> int | None:
        """Safety net for the floor: pending records at or below it (there should be none; rows
        restored by hand or a bug could leave some) lower it to just below the first, so they ship.

        Scans the shipped part of the outbox in a read transaction (never blocks the app's commits),
        at most once per ``min_interval_s`` per outbox, whichever process runs it. Returns how many
        such records were found, or None when the last audit is recent.
        """
        conn = self.connect()
        now = time.time_ns()
        row = conn.execute("SELECT value FROM meta WHERE key='ship_floor_audited_ns'").fetchone()
        if row is not None and now - int(row[0]) < min_interval_s * 1e9:
            return None
        first, count = conn.execute(
            f"SELECT min(rid), count(*) FROM records WHERE rid <= {SHIP_FLOOR_SQL} AND state=0"
        ).fetchone()
        with self.write_transaction() as wconn:
            if count:
                self.lower_ship_floor(wconn, first)
            wconn.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('ship_floor_audited_ns', ?)", (str(now),))
        return int(count)

    def sync_barrier(self) -> None:
        """Make every committed record durable against power loss (``wal_checkpoint(FULL)``)."""
        self.connect().execute("PRAGMA wal_checkpoint(FULL)")

    # --- space ------------------------------------------------------------------
    def logical_bytes(self) -> int:
        """Bytes in use by live pages (the cap is measured on this, not on the file size).

        One statement, not three PRAGMAs: the cap check runs on the app's thread, and each SQLite call
        there lets other threads take the GIL (a stall of tens of ms was measured inside model calls).
        """
        row = self.connect().execute(_LIVE_BYTES_SQL).fetchone()
        return int(row[0])

    def file_bytes(self) -> int:
        """The database file, its ``-wal`` and its ``-shm`` as they are on disk."""
        return self._side_bytes(include_db=True)

    def disk_bytes(self) -> int:
        """What the size cap counts: live pages of the database plus its ``-wal`` and ``-shm`` files.

        Free pages are left out (they are reused before the file grows), the WAL is not: it is
        disk the outbox takes, and it is kept near ``WAL_CHECKPOINT_BYTES`` by ``checkpoint_wal``.
        """
        return self.logical_bytes() + self._side_bytes(include_db=False)

    def bytes_for_cap(self, cap: int) -> int:
        """What the size cap measures: live pages, the ``-shm`` file, and the WAL beyond its working
        size (``WAL_CHECKPOINT_BYTES``, which ``wal_task`` keeps it near). A WAL past that (a reader
        pinning it, a starved worker) counts; when the total reaches ``cap`` the WAL is emptied
        first (``shrink_wal``) and the size measured again."""
        size = self._cap_size()
        if size >= cap and self._side_bytes(include_db=False) > WAL_CHECKPOINT_BYTES:
            self.shrink_wal()
            size = self._cap_size()
        return size

    def _cap_size(self) -> int:
        """``disk_bytes()`` minus the WAL's working size, with one ``stat`` per side file."""
        wal = _size(str(self.path) + "-wal")
        return self.logical_bytes() + wal + _size(str(self.path) + "-shm") - min(wal, WAL_CHECKPOINT_BYTES)

    def shrink_wal(self) -> bool:
        """Checkpoint the whole WAL and truncate its file (TRUNCATE); see ``_checkpoint``."""
        return self._checkpoint("TRUNCATE")

    def _side_bytes(self, *, include_db: bool) -> int:
        suffixes = ("", "-wal", "-shm") if include_db else ("-wal", "-shm")
        return sum(_size(str(self.path) + suffix) for suffix in suffixes)

    def prune(self, *, shipped_only: bool = True, before_ns: int | None = None, limit: int = 5000, reason: str) -> int:
        """Delete the oldest records (shipped only, unless told otherwise), noting what went in ``pruned``.

        Records are deleted per stream from the start of the stream, so what remains of each
        stream is always a contiguous tail whose first ``prev_hash`` the ``pruned`` row explains.
        """
        with self.write_transaction() as conn:
            where = "state != 0 AND state=1" if shipped_only else "1=1"  # the first term selects records_done
            params: list[Any] = []
            if before_ns is not None:
                where += " AND time_ns < ?"
                params.append(before_ns)
            rows = conn.execute(
                f"SELECT rid, stream_id, seq, record_hash FROM records WHERE {where} ORDER BY rid LIMIT ?",
                (*params, limit),
            ).fetchall()
            if not rows:
                return 0
            # Keep only a prefix per stream: stop a stream at the first record we must keep.
            by_stream: dict[str, list[tuple[int, int, str | None]]] = {}
            for rid, stream_id, seq, rhash in rows:
                by_stream.setdefault(stream_id, []).append((rid, seq, rhash))
            deleted = 0
            now = time.time_ns()
            for stream_id, items in by_stream.items():
                first = conn.execute("SELECT min(seq) FROM records WHERE stream_id=?", (stream_id,)).fetchone()[0]
                items.sort(key=lambda item: item[1])
                expected = first
                prefix: list[tuple[int, int, str | None]] = []
                for item in items:
                    if item[1] != expected:
                        break
                    prefix.append(item)
                    expected += 1
                if not prefix:
                    continue
                conn.executemany("DELETE FROM records WHERE rid=?", [(item[0],) for item in prefix])
                last = prefix[-1]
                conn.execute(
                    "INSERT INTO pruned(stream_id, through_seq, head_hash, count, reason, time_ns)"
                    " VALUES (?,?,?,?,?,?)",
                    (stream_id, last[1], last[2], len(prefix), reason, now),
                )
                deleted += len(prefix)
            if deleted:
                # Deleting the newest records lets SQLite hand their rids out again: the next record
                # gets max(rid)+1, which must be above the floor.
                top = conn.execute("SELECT coalesce(max(rid), 0) FROM records").fetchone()[0]
                self.lower_ship_floor(conn, top + 1)
            return deleted

    def checkpoint_wal(self, *, above_bytes: int = WAL_CHECKPOINT_BYTES) -> bool:
        """Copy the WAL back into the database once it holds ``above_bytes``, so that it restarts.

        A PASSIVE checkpoint never blocks anyone, but under a steady stream of commits it never
        catches up (new frames land while it copies), so the WAL would never restart and grow
        without bound. So: PASSIVE first (copies nearly everything, blocking no one), then, if
        frames remain, RESTART while holding ``write_lock`` with a short busy timeout. This
        process's writers wait on the lock for the few remaining frames (milliseconds); other
        processes' writers wait in their busy handler as long as the RESTART waits at most
        (``WAL_RESTART_WAIT_MS``). Once it completes, the next commit writes from the start of
        the WAL and trims the file to ``journal_size_limit``. Returns whether it checkpointed.
        """
        try:
            size = os.stat(str(self.path) + "-wal").st_size
        except OSError:
            return False
        if size < above_bytes:
            return False
        self._checkpoint("RESTART")
        return True

    def _checkpoint(self, mode: str) -> bool:
        """PASSIVE, then ``mode`` (RESTART or TRUNCATE) for the frames committed meanwhile, with this
        process's writers held off on ``write_lock`` (not in SQLite's sleeping handler) for at most
        ``WAL_RESTART_WAIT_MS``. When that wait fails (a reader holds an older snapshot), the next
        attempts back off (0.25 s doubling to 5 s), so a long reader stalls the writers for at most
        ``WAL_RESTART_WAIT_MS`` per back-off period. True when done."""
        conn = self.connect()
        conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        now = time.monotonic()
        if now < self._ckpt_retry_at:
            return False
        with self.write_lock:
            conn.execute(f"PRAGMA busy_timeout={WAL_RESTART_WAIT_MS}")
            try:
                busy = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()[0]
            finally:
                conn.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
        if busy:
            self._ckpt_backoff = min(5.0, max(0.25, self._ckpt_backoff * 2))
            self._ckpt_retry_at = time.monotonic() + self._ckpt_backoff
            return False
        self._ckpt_backoff = 0.0
        return True

    def wal_task(self) -> float:
        """The worker's WAL task: ``checkpoint_wal`` when due; returns the delay until the next run.

        While the WAL grows it is looked at every 20 ms (one ``stat``), once a second when idle, so it
        stays near WAL_CHECKPOINT_BYTES whatever the commit rate.
        """
        try:
            written = os.stat(str(self.path) + "-wal").st_mtime_ns
        except OSError:
            written = 0
        # After a restart the WAL is rewritten from its start, so its size does not show commits;
        # its modification time does.
        active = written != self._wal_seen
        self._wal_seen = written
        checkpointed = self.checkpoint_wal()
        # while commits come, look again in 20 ms (a stat each time); when idle, once a second
        return 0.02 if checkpointed or active else 1.0

    def maintenance(self, *, pages: int = 2000) -> None:
        """Give free pages back to the filesystem and keep the WAL short."""
        conn = self.connect()
        with self.write_lock:
            conn.execute(f"PRAGMA incremental_vacuum({int(pages)})")
        pending = conn.execute(f"SELECT 1 FROM records WHERE {PENDING_WHERE} LIMIT 1").fetchone()
        if pending is None:
            self.shrink_wal()  # bounded waits (see _checkpoint), never SQLite's 30 s busy timeout
        else:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)")

    # --- reads --------------------------------------------------------------------
    def stats(self) -> OutboxStats:
        conn = self.connect()
        # one read transaction, so the counts agree with each other
        conn.execute("BEGIN")
        try:
            counts = dict(
                conn.execute("SELECT state, count(*) FROM records WHERE state != 0 GROUP BY state").fetchall()
            )
            counts[STATE_PENDING] = conn.execute(f"SELECT count(*) FROM records WHERE {PENDING_WHERE}").fetchone()[0]
            row = conn.execute(f"SELECT time_ns FROM records WHERE {PENDING_WHERE} ORDER BY rid LIMIT 1").fetchone()
        finally:
            conn.execute("COMMIT")
        oldest = row[0] if row else None
        streams = conn.execute("SELECT count(*) FROM streams").fetchone()[0]
        checkpoints = conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
        return OutboxStats(
            records_total=sum(counts.values()),
            pending=counts.get(STATE_PENDING, 0),
            shipped=counts.get(STATE_SHIPPED, 0),
            dead_lettered=counts.get(STATE_DEAD, 0),
            outbox_bytes=self.file_bytes(),
            oldest_pending_age_s=None if oldest is None else max(0.0, (time.time_ns() - oldest) / 1e9),
            streams=streams,
            checkpoints=checkpoints,
        )

    # --- counters persisted for other processes and the CLI (schema 5) -------------------------------
    def save_counters(self, stream_id: str, pid: int, data: dict[str, Any]) -> None:
        """Store one stream's counters (replacing its previous row). Called by the worker, rarely."""
        text = json.dumps(data, sort_keys=True, ensure_ascii=False, default=str)
        with self.write_transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO counters(stream_id, pid, time_ns, data) VALUES (?,?,?,?)",
                (stream_id, pid, time.time_ns(), text),
            )

    def load_counters(self) -> list[tuple[str, int | None, int, dict[str, Any]]]:
        """Every stream's stored counters: (stream_id, pid, time_ns, data), oldest first."""
        out = []
        rows = self.connect().execute("SELECT stream_id, pid, time_ns, data FROM counters ORDER BY time_ns").fetchall()
        for stream_id, pid, time_ns, data in rows:
            try:
                parsed = json.loads(data)
            except ValueError:
                continue
            if isinstance(parsed, dict):
                out.append((stream_id, pid, int(time_ns), parsed))
        return out

    def stream_resource(self, stream_id: str) -> dict[str, Any]:
        row = self.connect().execute("SELECT resource FROM streams WHERE stream_id=?", (stream_id,)).fetchone()
        return json.loads(row[0]) if row else {}


_rollback = rollback  # the shipping queue's name for it
