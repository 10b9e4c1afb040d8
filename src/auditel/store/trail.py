"""Read-only queries over the trail: the read API, the viewer, the report and the CLI read through here.

Readers open the outbox with ``mode=ro`` (never migrate, never write, never create the file) and
read in short pages keyed on ``rid``: each page is its own read transaction, so a reader never pins
the WAL and never holds anything the recording app waits for. No index is added for readers: every
index is one more page written per commit on the emit path (see ``store.outbox``). Records are
stored in ``rid`` order, which is commit order, so "most recent", "after the last one seen" and
paging are primary-key range scans; filters on JSON attributes run in SQLite (``json_extract``)
so a non-matching row is never decoded in Python.
"""

from __future__ import annotations

import json
import sqlite3
import urllib.parse
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from auditel.store.outbox import PENDING_WHERE, STATE_DEAD, STATE_SHIPPED

PAGE_ROWS = 512  # rows per read transaction when iterating

# The attributes the viewer's session index needs from every record, extracted in one JSON parse.
SUMMARY_PATHS = (
    '$.attributes."session.id"',
    "$.trace_id",
    '$.attributes."gen_ai.agent.name"',
    '$.attributes."audit.outcome"',
    '$.attributes."audit.policy.verdict"',
    '$.attributes."gen_ai.tool.name"',
    '$.attributes."gen_ai.request.model"',
    '$.attributes."audit.phase"',
    '$.attributes."audit.action"',
    '$.attributes."audit.duration_ms"',
)


class TrailMissing(FileNotFoundError):
    """There is no outbox at the path given (or the file there is no auditel outbox: ``TrailUnusable``)."""


class TrailUnusable(TrailMissing):
    """The file is not an SQLite database, or not an auditel outbox (the message says which file and why)."""


@dataclass
class DeliveryCounts:
    records_total: int
    pending: int
    shipped: int
    dead_lettered: int
    oldest_pending_ns: int | None
    last_dead_letter: dict[str, Any] | None


def record_filter(
    *,
    event_names: Sequence[str] | None = None,
    stream_id: str | None = None,
    since_ns: int | None = None,
    until_ns: int | None = None,
) -> tuple[list[str], list[Any]]:
    """The WHERE clauses over ``records`` (to be joined with AND) and their parameters, for the
    filters every reader offers: kinds, one stream, a time window."""
    where: list[str] = []
    params: list[Any] = []
    for clause, value in (
        ("stream_id=?", stream_id),
        ("time_ns>=?", since_ns),
        ("time_ns<?", until_ns),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    if event_names:
        where.append(f"event_name IN ({','.join('?' * len(event_names))})")
        params.extend(event_names)
    return where, params


def _json_path_for(key: str) -> str:
    return '$.attributes."' + key.replace('"', '""') + '"'


class Trail:
    """A read-only handle on one outbox file. Cheap to create; one connection per handle."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        if not self.path.is_file():
            raise TrailMissing(f"no outbox at {self.path}")
        uri = "file:" + urllib.parse.quote(str(self.path.resolve())) + "?mode=ro"
        # check_same_thread=False: the viewer's server hands a handle to its request threads, each
        # request holding its own handle (see ui.server); sqlite3 serialises use of one connection.
        self._conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30.0)
        try:
            self._conn.execute("PRAGMA trusted_schema=OFF")
            self._conn.execute("PRAGMA query_only=ON")
            tables = {row[0] for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        except sqlite3.DatabaseError as exc:
            self.close()
            raise TrailUnusable(f"{self.path}: not an auditel outbox ({exc})") from None
        if tables and not {"records", "streams"} <= tables:
            self.close()
            raise TrailUnusable(f"{self.path}: not an auditel outbox (an SQLite database without its tables)")

    def close(self) -> None:
        try:
            self._conn.close()
        except sqlite3.Error:
            pass

    def __enter__(self) -> Trail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- records ----------------------------------------------------------------------------
    def iter_rows(
        self,
        *,
        event_names: Sequence[str] | None = None,
        stream_id: str | None = None,
        since_ns: int | None = None,
        until_ns: int | None = None,
        session: str | None = None,
        trace: str | None = None,
        equals: Sequence[tuple[str, Any]] = (),
        after_rid: int = 0,
        before_rid: int | None = None,
        newest_first: bool = False,
    ) -> Iterator[tuple[int, int, str | None, str]]:
        """``(rid, state, record_hash, data)`` rows matching, lazily, one short read per page.

        ``equals``: ``(attribute, value)`` pairs compared in SQL (exact, typed: JSON numbers match
        numbers, strings match strings)."""
        where, params = record_filter(
            event_names=event_names, stream_id=stream_id, since_ns=since_ns, until_ns=until_ns
        )
        pairs = list(equals)
        if session is not None:
            pairs.append(("session.id", session))
        for key, value in pairs:
            where.append("json_extract(data, ?)=?")
            params.extend((_json_path_for(key), value))
        if trace is not None:
            where.append("json_extract(data, '$.trace_id')=?")
            params.append(trace)
        lo: int | None = after_rid
        hi: int | None = before_rid
        while True:
            bounds = ["rid>?"] if lo is not None else []
            bparams: list[Any] = [lo] if lo is not None else []
            if hi is not None:
                bounds.append("rid<?")
                bparams.append(hi)
            clause = " AND ".join(bounds + where) or "1=1"
            order = "DESC" if newest_first else "ASC"
            rows = self._conn.execute(
                f"SELECT rid, state, record_hash, data FROM records WHERE {clause} "
                f"ORDER BY rid {order} LIMIT {PAGE_ROWS}",
                bparams + params,
            ).fetchall()
            yield from rows
            if len(rows) < PAGE_ROWS:
                return
            if newest_first:
                hi, lo = rows[-1][0], None
            else:
                lo = rows[-1][0]

    def row(self, rid: int) -> tuple[int, int, str | None, str] | None:
        found = self._conn.execute(
            "SELECT rid, state, record_hash, data FROM records WHERE rid=?", (int(rid),)
        ).fetchone()
        return None if found is None else (found[0], found[1], found[2], found[3])

    def rid_of(self, stream_id: str, seq: int) -> int | None:
        """The row holding a stream's record number ``seq`` (scans: used for the few records a
        verification finding names)."""
        found = self._conn.execute(
            "SELECT min(rid) FROM records WHERE stream_id=? AND seq=?", (stream_id, int(seq))
        ).fetchone()
        return None if found is None or found[0] is None else int(found[0])

    def max_rid(self) -> int:
        return int(self._conn.execute("SELECT coalesce(max(rid), 0) FROM records").fetchone()[0])

    def summary_rows(self, *, above: int = 0, below: int | None = None, limit: int = 20000) -> list[tuple[Any, ...]]:
        """For the session index: ``(rid, time_ns, event_name, stream_id, state, *SUMMARY_PATHS)`` for up
        to ``limit`` records with ``above < rid < below``, newest first when ``below`` is given (the
        index is built from the newest records back), else oldest first. One JSON parse per row, in SQLite."""
        paths = ", ".join("?" for _ in SUMMARY_PATHS)
        cols = f"rid, time_ns, event_name, stream_id, state, json_extract(data, {paths})"
        if below is None:
            sql = f"SELECT {cols} FROM records WHERE rid>? ORDER BY rid LIMIT {int(limit)}"
            params: tuple[Any, ...] = (*SUMMARY_PATHS, above)
        else:
            sql = f"SELECT {cols} FROM records WHERE rid>? AND rid<? ORDER BY rid DESC LIMIT {int(limit)}"
            params = (*SUMMARY_PATHS, above, below)
        out = []
        for rid, t, ev, stream, state, extracted in self._conn.execute(sql, params).fetchall():
            values = json.loads(extracted) if extracted else [None] * len(SUMMARY_PATHS)
            out.append((rid, t, ev, stream, state, *values))
        return out

    def min_rid(self) -> int:
        return int(self._conn.execute("SELECT coalesce(min(rid), 0) FROM records").fetchone()[0])

    def streams(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for stream_id, started, pid, host, resource, ended in self._conn.execute(
            "SELECT stream_id, started_ns, pid, host, resource, ended_ns FROM streams"
        ):
            try:
                res = json.loads(resource)
            except ValueError:
                res = {}
            out[stream_id] = {"started_ns": started, "pid": pid, "host": host, "ended_ns": ended, "resource": res}
        return out

    # --- delivery -----------------------------------------------------------------------------
    def delivery(self) -> DeliveryCounts:
        conn = self._conn
        conn.execute("BEGIN")  # one read transaction, so the counts agree with each other
        try:
            counts = dict(
                conn.execute("SELECT state, count(*) FROM records WHERE state != 0 GROUP BY state").fetchall()
            )
            pending = conn.execute(f"SELECT count(*) FROM records WHERE {PENDING_WHERE}").fetchone()[0]
            oldest = conn.execute(f"SELECT time_ns FROM records WHERE {PENDING_WHERE} ORDER BY rid LIMIT 1").fetchone()
            dead = conn.execute(
                "SELECT record_id, reason, status, time_ns FROM dead_letters ORDER BY did DESC LIMIT 1"
            ).fetchone()
        finally:
            conn.execute("COMMIT")
        return DeliveryCounts(
            records_total=int(pending) + sum(int(v) for v in counts.values()),
            pending=int(pending),
            shipped=int(counts.get(STATE_SHIPPED, 0)),
            dead_lettered=int(counts.get(STATE_DEAD, 0)),
            oldest_pending_ns=None if oldest is None else int(oldest[0]),
            last_dead_letter=None
            if dead is None
            else {
                "record_id": dead[0],
                "reason": dead[1],
                "status": dead[2],
                "time_ns": dead[3],
            },
        )

    def meta(self) -> dict[str, str]:
        try:
            return {k: v for k, v in self._conn.execute("SELECT key, value FROM meta")}
        except sqlite3.Error:
            return {}
