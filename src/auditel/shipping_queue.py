"""The outbox seen as a delivery queue: claim with a lease, release, mark shipped, dead-letter, requeue.

Several processes may ship one outbox. A claim is one short ``BEGIN IMMEDIATE`` transaction
that picks pending rows whose lease is free or expired and stamps them with this shipper's
``lease_owner`` and a wall-clock ``lease_until`` (wall clock, because leases are compared across
processes). No transaction is ever held while the batch is on the network. A claimer that dies
(kill -9) leaves its lease behind; once it expires another shipper claims the rows again, so at
most the in-flight batch is sent twice.

Dead letters are never deleted: the record keeps its row (``state=2``) and ``dead_letters`` holds
one row per record with the reason and status; ``requeue`` makes them pending again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .otlp_encode import StoredRow
from .outbox import STATE_DEAD, STATE_PENDING, STATE_SHIPPED, Outbox, _rollback

_IDS = "(SELECT value FROM json_each(?))"


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

    def claim(self, owner: str, *, lease_s: float, max_records: int, max_bytes: int) -> list[StoredRow]:
        """Lease up to ``max_records`` pending rows (and about ``max_bytes`` of stored text), oldest first."""
        conn = self.outbox.connect()
        now = time.time_ns()
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute(
                "SELECT rid, stream_id, data FROM records WHERE state=0 AND (lease_until IS NULL OR lease_until<?)"
                " ORDER BY rid LIMIT ?",
                (now, max_records),
            ).fetchall()
            taken: list[StoredRow] = []
            size = 0
            for row in rows:
                size += len(row[2])
                if taken and size > max_bytes:
                    break
                taken.append(row)
            if taken:
                conn.execute(
                    f"UPDATE records SET lease_owner=?, lease_until=?, attempts=attempts+1 WHERE rid IN {_IDS}",
                    (owner, now + int(lease_s * 1e9), _ids(r[0] for r in taken)),
                )
            conn.execute("COMMIT")
            return taken
        except BaseException:
            _rollback(conn)
            raise

    def release(self, rids: Sequence[int], owner: str) -> int:
        """Give leased rows back (after a failed attempt) so any shipper may take them at once."""
        if not rids:
            return 0
        return self._write(
            f"UPDATE records SET lease_owner=NULL, lease_until=NULL WHERE rid IN {_IDS} AND state=0 AND lease_owner=?",
            (_ids(rids), owner),
        )

    def mark_shipped(self, rids: Sequence[int]) -> int:
        if not rids:
            return 0
        return self._write(
            f"UPDATE records SET state={STATE_SHIPPED}, shipped_ns=?, lease_owner=NULL, lease_until=NULL"
            f" WHERE rid IN {_IDS} AND state={STATE_PENDING}",
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
                f"UPDATE records SET state={STATE_DEAD}, lease_owner=NULL, lease_until=NULL"
                f" WHERE rid IN {_IDS} AND state={STATE_PENDING}",
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
            changed = conn.execute(
                f"UPDATE records SET state={STATE_PENDING}, lease_owner=NULL, lease_until=NULL"
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
        sql = "SELECT count(*) FROM records WHERE state=0"
        params: tuple[Any, ...] = ()
        if through_rid is not None:
            sql += " AND rid<=?"
            params = (through_rid,)
        return self.outbox.connect().execute(sql, params).fetchone()[0]

    def any_pending(self, *, through_rid: int | None = None) -> bool:
        sql = "SELECT 1 FROM records WHERE state=0" + (" AND rid<=?" if through_rid is not None else "") + " LIMIT 1"
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
