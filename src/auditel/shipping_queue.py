"""The outbox seen as a delivery queue: claim with a lease, release, mark shipped, dead-letter, requeue.

Several processes may ship one outbox. A claim is one short ``BEGIN IMMEDIATE`` transaction
that picks the oldest pending rows outside every live lease and inserts one ``ship_leases`` row
(owner, rid range, wall-clock expiry: wall clock, because leases are compared across processes).
A lease row per batch instead of ``records.lease_owner``/``lease_until`` per record: writing those
grows and rewrites every claimed row, which measured ~6x slower than the whole rest of a claim.
No transaction is ever held while the batch is on the network. A claimer that dies (kill -9)
leaves its lease behind; once it expires another shipper claims the rows again, so at most the
in-flight batch is sent twice. Failed attempts are counted in ``records.attempts``.

Dead letters are never deleted: the record keeps its row (``state=2``) and ``dead_letters`` holds
one row per record with the reason and status; ``requeue`` makes them pending again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .otlp_encode import StoredRow
from .outbox import PENDING_WHERE, STATE_DEAD, STATE_PENDING, STATE_SHIPPED, Outbox, _rollback

_IDS = "(SELECT value FROM json_each(?))"


@dataclass
class Lease:
    """A claimed batch: the rows and the ``ship_leases`` row (owner, lo..hi) that reserves them."""

    owner: str
    lo: int
    hi: int
    rows: list[StoredRow]


@dataclass
class DeadLetter:
    did: int
    rid: int
    record_id: str
    event_name: str | None
    reason: str
    status: str | None
    time_ns: int
    requeued_ns: int | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.did,
            "rid": self.rid,
            "record_id": self.record_id,
            "event_name": self.event_name,
            "reason": self.reason,
            "status": self.status,
            "time_ns": self.time_ns,
            "requeued_ns": self.requeued_ns,
        }


def _ids(rids: Iterable[int]) -> str:
    return json.dumps(list(rids))


class ShippingQueue:
    def __init__(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def _write(self, sql: str, params: Sequence[Any]) -> int:
        conn = self.outbox.connect()
        conn.execute("BEGIN IMMEDIATE")
        try:
            changed = conn.execute(sql, params).rowcount
            conn.execute("COMMIT")
            return changed
        except BaseException:
            _rollback(conn)
            raise

    def claim(self, owner: str, *, lease_s: float, max_records: int, max_bytes: int) -> Lease | None:
        """Lease up to ``max_records`` pending rows (and about ``max_bytes`` of stored text), oldest first.

        The lease is one ``ship_leases`` row covering the batch's rid range; rows inside another
        live lease are skipped, and a batch never spans a live lease, so ranges never overlap.
        """
        conn = self.outbox.connect()
        now = time.time_ns()
        conn.execute("BEGIN IMMEDIATE")
        try:
            live: list[tuple[int, int]] = []
            expired = False
            for lo, hi, until in conn.execute("SELECT lo, hi, until FROM ship_leases").fetchall():
                if until < now:
                    expired = True
                else:
                    live.append((lo, hi))
            if expired:
                conn.execute("DELETE FROM ship_leases WHERE until<?", (now,))
            floor = Outbox.advance_ship_floor(conn)
            skip = "".join(" AND rid NOT BETWEEN ? AND ?" for _ in live)
            params: list[Any] = [bound for rng in live for bound in rng]
            rows = conn.execute(
                f"SELECT rid, stream_id, data FROM records WHERE rid > ? AND state=0{skip} ORDER BY rid LIMIT ?",
                (floor, *params, max_records),
            ).fetchall()
            taken: list[StoredRow] = []
            size = 0
            for row in rows:
                size += len(row[2])
                if taken and (size > max_bytes or any(taken[0][0] < lo < row[0] for lo, _hi in live)):
                    break
                taken.append(row)
            if not taken:
                conn.execute("COMMIT")
                return None
            lease = Lease(owner, taken[0][0], taken[-1][0], taken)
            conn.execute(
                "INSERT OR REPLACE INTO ship_leases(owner, lo, hi, until) VALUES (?,?,?,?)",
                (owner, lease.lo, lease.hi, now + int(lease_s * 1e9)),
            )
            conn.execute("COMMIT")
            return lease
        except BaseException:
            _rollback(conn)
            raise

    def end_lease(self, lease: Lease) -> None:
        """Give the batch's range back: what is still pending in it may be claimed again at once."""
        self._write("DELETE FROM ship_leases WHERE owner=? AND lo=?", (lease.owner, lease.lo))

    def count_attempt(self, rids: Sequence[int]) -> int:
        """Note a failed delivery attempt on these rows (``records.attempts``)."""
        if not rids:
            return 0
        return self._write(
            f"UPDATE records SET attempts=attempts+1 WHERE rid IN {_IDS} AND state={STATE_PENDING}", (_ids(rids),)
        )

    def mark_shipped(self, rids: Sequence[int]) -> int:
        if not rids:
            return 0
        return self._write(
            f"UPDATE records SET state={STATE_SHIPPED}, shipped_ns=? WHERE rid IN {_IDS} AND state={STATE_PENDING}",
            (time.time_ns(), _ids(rids)),
        )

    def dead_letter(self, rids: Sequence[int], *, reason: str, status: str | None) -> int:
        """Move rows to ``state=2`` with one ``dead_letters`` row each. Nothing is deleted."""
        if not rids:
            return 0
        conn = self.outbox.connect()
        now = time.time_ns()
        ids = _ids(rids)
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                "INSERT INTO dead_letters(rid, record_id, reason, status, time_ns)"
                f" SELECT rid, record_id, ?, ?, ? FROM records WHERE rid IN {_IDS} AND state={STATE_PENDING}",
                (reason, status, now, ids),
            )
            changed = conn.execute(
                f"UPDATE records SET state={STATE_DEAD} WHERE rid IN {_IDS} AND state={STATE_PENDING}",
                (ids,),
            ).rowcount
            conn.execute("COMMIT")
            return changed
        except BaseException:
            _rollback(conn)
            raise

    def dead_letters(self, *, include_requeued: bool = False, limit: int | None = None) -> list[DeadLetter]:
        sql = (
            "SELECT d.did, d.rid, d.record_id, r.event_name, d.reason, d.status, d.time_ns, d.requeued_ns"
            " FROM dead_letters d LEFT JOIN records r ON r.rid=d.rid"
        )
        if not include_requeued:
            sql += " WHERE d.requeued_ns IS NULL"
        sql += " ORDER BY d.did"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [DeadLetter(*row) for row in self.outbox.connect().execute(sql).fetchall()]

    def requeue(self, dids: Sequence[int] | None = None) -> int:
        """Make dead-lettered records pending again (all, or the given dead-letter ids)."""
        conn = self.outbox.connect()
        now = time.time_ns()
        conn.execute("BEGIN IMMEDIATE")
        try:
            where = "requeued_ns IS NULL" + (f" AND did IN {_IDS}" if dids is not None else "")
            params: tuple[Any, ...] = (_ids(dids),) if dids is not None else ()
            first = conn.execute(f"SELECT min(rid) FROM dead_letters WHERE {where}", params).fetchone()[0]
            if first is not None:
                Outbox.lower_ship_floor(conn, first)
            changed = conn.execute(
                f"UPDATE records SET state={STATE_PENDING}"
                f" WHERE state={STATE_DEAD} AND rid IN (SELECT rid FROM dead_letters WHERE {where})",
                params,
            ).rowcount
            conn.execute(f"UPDATE dead_letters SET requeued_ns=? WHERE {where}", (now, *params))
            conn.execute("COMMIT")
            return changed
        except BaseException:
            _rollback(conn)
            raise

    def max_rid(self) -> int:
        return self.outbox.connect().execute("SELECT coalesce(max(rid), 0) FROM records").fetchone()[0]

    def pending(self, *, through_rid: int | None = None) -> int:
        sql = f"SELECT count(*) FROM records WHERE {PENDING_WHERE}"
        params: tuple[Any, ...] = ()
        if through_rid is not None:
            sql += " AND rid<=?"
            params = (through_rid,)
        return self.outbox.connect().execute(sql, params).fetchone()[0]

    def any_pending(self, *, through_rid: int | None = None) -> bool:
        sql = f"SELECT 1 FROM records WHERE {PENDING_WHERE}" + (" AND rid<=?" if through_rid is not None else "") + " LIMIT 1"
        params: tuple[Any, ...] = (through_rid,) if through_rid is not None else ()
        return self.outbox.connect().execute(sql, params).fetchone() is not None

    def resources(self, stream_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        ids = list(stream_ids)
        if not ids:
            return {}
        rows = self.outbox.connect().execute(
            f"SELECT stream_id, resource FROM streams WHERE stream_id IN {_IDS}", (_ids(ids),)
        ).fetchall()
        out: dict[str, dict[str, Any]] = {}
        for stream_id, resource in rows:
            try:
                value = json.loads(resource)
            except (TypeError, ValueError):
                value = {}
            out[stream_id] = value if isinstance(value, dict) else {}
        return out


__all__ = ["ShippingQueue", "DeadLetter"]
