"""The ship floor: pending records are found above it without an index the emit path would write.

Every record at or below the floor is shipped or dead-lettered. These tests drive the outbox and the
delivery queue directly (real SQLite files) through the cases that move the floor: shipping in
order and out of order, dead letters and their requeue, pruning the newest rows (SQLite then
reuses their rids), and a restart.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from auditel.store.outbox import Outbox
from auditel.store.shipping_queue import ShippingQueue


def _append(box: Outbox, n: int, stream: str = "s1", start_seq: int = 1) -> None:
    for i in range(n):
        seq = start_seq + i
        box.append(f"01REC{stream}{seq:018d}", stream, seq, 1_000 + seq, "auditel.tool_call", '{"x":1}', f"h{seq}")


def _claim(queue: ShippingQueue, owner: str, n: int):
    lease = queue.claim(owner, lease_s=60.0, max_records=n, max_bytes=1 << 20)
    assert lease is not None
    return lease


def test_floor_rises_past_shipped_records_and_stops_below_a_leased_batch(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    queue = ShippingQueue(box)
    _append(box, 30)
    conn = box.connect()
    first = _claim(queue, "a", 10)  # rids 1-10, on the network
    second = _claim(queue, "b", 10)  # rids 11-20
    assert [r[0] for r in second.rows] == list(range(11, 21))
    queue.mark_shipped([r[0] for r in second.rows])  # acknowledged before the first batch
    queue.end_lease(second)
    third = _claim(queue, "b", 50)
    assert [r[0] for r in third.rows] == list(range(21, 31))  # never the shipped ones, never the leased ones
    assert box.ship_floor(conn) == 0  # rids 1-10 are still pending: the floor cannot pass them
    assert queue.pending() == 20 and box.stats().pending == 20 and box.stats().shipped == 10
    queue.mark_shipped([r[0] for r in first.rows])
    queue.end_lease(first)
    queue.end_lease(third)
    assert queue.claim("c", lease_s=60.0, max_records=50, max_bytes=1 << 20).rows[0][0] == 21
    assert box.ship_floor(conn) == 20  # just below the first pending record
    assert queue.pending() == 10


def test_requeued_dead_letter_below_the_floor_is_pending_again(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    queue = ShippingQueue(box)
    _append(box, 20)
    conn = box.connect()
    batch = _claim(queue, "a", 5)
    queue.dead_letter([r[0] for r in batch.rows], reason="http 400", status="400")
    queue.end_lease(batch)
    rest = _claim(queue, "a", 50)
    queue.mark_shipped([r[0] for r in rest.rows])
    queue.end_lease(rest)
    assert queue.claim("a", lease_s=60.0, max_records=50, max_bytes=1 << 20) is None
    assert box.ship_floor(conn) == 20
    stats = box.stats()
    assert (stats.pending, stats.shipped, stats.dead_lettered, stats.records_total) == (0, 15, 5, 20)

    assert queue.requeue() == 5
    assert box.ship_floor(conn) == 0
    assert queue.pending() == 5 and queue.any_pending(through_rid=5)
    again = _claim(queue, "a", 50)
    assert [r[0] for r in again.rows] == [1, 2, 3, 4, 5]


def test_requeue_of_one_dead_letter_lowers_the_floor_to_it(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    queue = ShippingQueue(box)
    _append(box, 10)
    batch = _claim(queue, "a", 10)
    rids = [r[0] for r in batch.rows]
    queue.dead_letter(rids[6:7], reason="partial_success", status=None)  # rid 7
    queue.mark_shipped(rids)
    queue.end_lease(batch)
    assert queue.claim("a", lease_s=60.0, max_records=50, max_bytes=1 << 20) is None
    assert box.ship_floor(box.connect()) == 10
    did = queue.dead_letters()[0].did
    assert queue.requeue([did]) == 1
    assert box.ship_floor(box.connect()) == 6
    assert [r[0] for r in _claim(queue, "a", 50).rows] == [7]


def test_pruning_the_newest_rows_keeps_reused_rids_above_the_floor(tmp_path: Path) -> None:
    """SQLite gives a new row max(rid)+1: once every row is pruned, rid 1 comes back. A floor left at
    the old top would hide the new records from the shipper for ever."""
    box = Outbox(tmp_path / "o.db")
    queue = ShippingQueue(box)
    _append(box, 12)
    batch = _claim(queue, "a", 50)
    queue.mark_shipped([r[0] for r in batch.rows])
    queue.end_lease(batch)
    assert queue.claim("a", lease_s=60.0, max_records=50, max_bytes=1 << 20) is None
    conn = box.connect()
    assert box.ship_floor(conn) == 12
    assert box.prune(shipped_only=True, reason="retention") == 12
    assert box.ship_floor(conn) == 0
    _append(box, 3, stream="s2")
    assert [r[0] for r in conn.execute("SELECT rid FROM records")] == [1, 2, 3]  # rids reused
    assert queue.pending() == 3 and box.stats().pending == 3
    assert [r[0] for r in _claim(queue, "a", 50).rows] == [1, 2, 3]


def test_floor_survives_a_restart_and_new_records_land_above_it(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    box = Outbox(path)
    queue = ShippingQueue(box)
    _append(box, 8)
    batch = _claim(queue, "a", 50)
    queue.mark_shipped([r[0] for r in batch.rows])
    queue.end_lease(batch)
    queue.claim("a", lease_s=60.0, max_records=50, max_bytes=1 << 20)
    box.close()

    reopened = Outbox(path)
    assert reopened.ship_floor(reopened.connect()) == 8
    _append(reopened, 4, stream="s2")
    q2 = ShippingQueue(reopened)
    assert q2.pending() == 4
    assert [r[0] for r in _claim(q2, "b", 50).rows] == [9, 10, 11, 12]
    raw = sqlite3.connect(path)
    assert raw.execute("SELECT count(*) FROM records WHERE state=0").fetchone()[0] == 4
    raw.close()


def test_audit_finds_pending_records_below_the_floor_and_lowers_it_once_a_day(tmp_path: Path) -> None:
    """The safety net: a row made pending again behind the floor's back (here by hand, as a restore
    from a backup would) is found by the audit and shipped; the audit then rests for a day."""
    box = Outbox(tmp_path / "o.db")
    queue = ShippingQueue(box)
    _append(box, 10)
    batch = _claim(queue, "a", 50)
    queue.mark_shipped([r[0] for r in batch.rows], end_lease=batch)
    assert queue.claim("a", lease_s=60.0, max_records=50, max_bytes=1 << 20) is None
    conn = box.connect()
    assert box.ship_floor(conn) == 10
    assert box.audit_ship_floor() == 0  # nothing wrong

    conn.execute("UPDATE records SET state=0 WHERE rid IN (4, 7)")
    assert queue.claim("a", lease_s=60.0, max_records=50, max_bytes=1 << 20) is None  # hidden by the floor
    assert box.audit_ship_floor() is None  # audited moments ago: rests
    assert box.audit_ship_floor(min_interval_s=0) == 2
    assert box.ship_floor(conn) == 3
    assert [r[0] for r in _claim(queue, "a", 50).rows] == [4, 7]
