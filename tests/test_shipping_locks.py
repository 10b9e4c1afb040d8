"""The outbox's in-process write lock, and claims that cost the same however many leases are live.

* Every write of one process (the app's ``append``, every shipper transaction) holds
  ``Outbox.write_lock``: a thread that meets another thread's write waits on that lock and never
  in SQLite's busy handler (which sleeps 1, 2, 5 ... 100 ms). Shown without timing: the waiting
  connection gets ``busy_timeout=0``, so reaching SQLite's lock would raise "database is locked".
* Marking a batch shipped ends its lease in the same transaction, all or nothing.
* A claim hops over live lease ranges on the index: it never returns a leased row, never skips the
  oldest free pending row, and runs the same statements for one lease or a hundred adjacent ones.
* A claim reads its batch before taking the write lock and re-checks it under the lock: a range
  another process claimed meanwhile is never claimed twice.

Everything runs on real SQLite files; a second ``Outbox`` on the same file stands for another process.
"""

from __future__ import annotations

import random
import re
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from auditel.store.outbox import STATE_PENDING, STATE_SHIPPED, Outbox
from auditel.store.shipping_queue import Lease, ShippingQueue


class ObservedLock:
    """``Outbox.write_lock`` with a window on it: counts acquisitions, signals a thread that has to
    wait, and can run a hook just before the next acquisition."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.acquired = 0
        self.someone_waits = threading.Event()
        self.before_acquire: Callable[[], None] | None = None

    def __enter__(self) -> "ObservedLock":
        hook, self.before_acquire = self.before_acquire, None
        if hook is not None:
            hook()
        if not self.lock.acquire(blocking=False):
            self.someone_waits.set()
            self.lock.acquire()
        self.acquired += 1
        return self

    def __exit__(self, *exc: Any) -> None:
        self.lock.release()


def fill(outbox: Outbox, n: int) -> list[int]:
    for i in range(n):
        outbox.append(f"id{i:06d}", "stream", i + 1, time.time_ns(), "auditel.custom", '{"n":%d}' % i, None)
    return [row[0] for row in outbox.connect().execute("SELECT rid FROM records ORDER BY rid")]


def states(outbox: Outbox) -> dict[int, int]:
    return dict(outbox.connect().execute("SELECT rid, state FROM records"))


def leases(outbox: Outbox) -> list[tuple[str, int, int]]:
    return outbox.connect().execute("SELECT owner, lo, hi FROM ship_leases ORDER BY lo").fetchall()


def claim(queue: ShippingQueue, owner: str = "me", n: int = 10) -> Lease | None:
    return queue.claim(owner, lease_s=60, max_records=n, max_bytes=1 << 20)


def test_append_waits_on_the_write_lock_while_a_shipper_transaction_of_the_same_process_runs(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    queue = ShippingQueue(outbox)
    fill(outbox, 5)
    observed = outbox.write_lock = ObservedLock()  # type: ignore[assignment]
    inside, release = threading.Event(), threading.Event()
    order: list[str] = []

    def shipper() -> None:  # a shipper write transaction that stays open until told to commit
        with outbox.write_transaction() as conn:
            conn.execute("UPDATE records SET attempts=attempts+1 WHERE state=0")
            inside.set()
            release.wait(30)
            order.append("shipper commits")

    errors: list[BaseException] = []

    def app() -> None:
        try:
            outbox.connect().execute("PRAGMA busy_timeout=0")  # SQLite's lock would fail at once
            outbox.append("app-1", "stream", 6, time.time_ns(), "auditel.custom", "{}", None)
            order.append("app committed")
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    ship_thread = threading.Thread(target=shipper)
    ship_thread.start()
    assert inside.wait(30)
    app_thread = threading.Thread(target=app)
    app_thread.start()
    assert observed.someone_waits.wait(30), "the append did not queue on the write lock"
    assert order == [] and app_thread.is_alive()
    release.set()
    ship_thread.join(30)
    app_thread.join(30)
    assert errors == []
    assert order == ["shipper commits", "app committed"]
    assert outbox.connect().execute("SELECT count(*) FROM records WHERE record_id='app-1'").fetchone()[0] == 1
    assert queue.pending() == 6


def test_every_shipper_write_holds_the_write_lock_and_a_claim_with_nothing_to_claim_takes_none(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    queue = ShippingQueue(outbox)
    rids = fill(outbox, 6)
    observed = outbox.write_lock = ObservedLock()  # type: ignore[assignment]

    def takes_the_lock(action: Callable[[], Any]) -> Any:
        before = observed.acquired
        result = action()
        assert observed.acquired > before, action
        return result

    lease = takes_the_lock(lambda: claim(queue, n=2))
    assert lease is not None and [row[0] for row in lease.rows] == rids[:2]
    takes_the_lock(lambda: queue.count_attempt(rids[:2]))
    takes_the_lock(lambda: queue.mark_shipped(rids[:2], end_lease=lease))
    other = takes_the_lock(lambda: claim(queue, n=2))
    takes_the_lock(lambda: queue.end_lease(other))
    takes_the_lock(lambda: queue.dead_letter(rids[2:4], reason="rejected", status="400"))
    takes_the_lock(lambda: queue.requeue())
    takes_the_lock(lambda: queue.mark_shipped(rids[2:]))
    takes_the_lock(lambda: outbox.prune(reason="test", limit=1))
    assert claim(queue) is None  # nothing pending; the ship floor rises (a write)
    before = observed.acquired
    assert claim(queue) is None  # nothing pending, the floor is up to date: a read, no write transaction
    assert observed.acquired == before


def test_mark_shipped_ends_the_lease_in_the_same_transaction_all_or_nothing(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    queue = ShippingQueue(outbox)
    fill(outbox, 8)
    lease = claim(queue, n=4)
    assert lease is not None
    batch = [row[0] for row in lease.rows]
    statements: list[str] = []
    conn = outbox.connect()
    conn.set_trace_callback(statements.append)
    try:
        assert queue.mark_shipped(batch, end_lease=lease) == 4
    finally:
        conn.set_trace_callback(None)
    writes = [s.split()[0] for s in statements if s.split()[0] in ("BEGIN", "UPDATE", "DELETE", "COMMIT")]
    assert writes == ["BEGIN", "UPDATE", "DELETE", "COMMIT"]
    assert leases(outbox) == [] and all(states(outbox)[rid] == STATE_SHIPPED for rid in batch)

    # A failure of the lease's end (a real SQLite trigger aborts it) rolls the marks back too.
    lease = claim(queue, n=4)
    assert lease is not None
    conn.execute("CREATE TEMP TRIGGER refuse BEFORE DELETE ON ship_leases BEGIN SELECT RAISE(ABORT, 'refused'); END")
    with pytest.raises(sqlite3.IntegrityError, match="refused"):
        queue.mark_shipped([row[0] for row in lease.rows], end_lease=lease)
    conn.execute("DROP TRIGGER refuse")
    assert all(states(outbox)[row[0]] == STATE_PENDING for row in lease.rows)
    assert leases(outbox) == [("me", lease.lo, lease.hi)]


def reference_claim(pending: list[int], live: list[tuple[int, int]], n: int) -> list[int]:
    """The oldest pending rows outside every live range, stopping at the next live range."""
    free = [rid for rid in pending if not any(lo <= rid <= hi for lo, hi in live)]
    if not free:
        return []
    first = free[0]
    stop = min((lo for lo, _hi in live if lo > first), default=None)
    return [rid for rid in free if stop is None or rid < stop][:n]


@pytest.mark.parametrize("seed", range(12))
def test_claims_never_take_a_leased_row_nor_skip_the_oldest_free_one(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    outbox = Outbox(tmp_path / "o.db")
    queue = ShippingQueue(outbox)
    rids = fill(outbox, 300)
    conn = outbox.connect()
    # some rows already shipped or dead, some leases live (ours and others', adjacent, nested,
    # overlapping as a crashed claimer's stale row could be), some expired
    conn.executemany("UPDATE records SET state=? WHERE rid=?", [(rng.choice((1, 2)), rid) for rid in rng.sample(rids, 60)])
    now = time.time_ns()
    for k in range(rng.randrange(0, 25)):
        lo = rng.choice(rids)
        hi = min(rids[-1], lo + rng.randrange(0, 20))
        until = now + (60_000_000_000 if rng.random() < 0.8 else -1_000_000_000)
        conn.execute("INSERT OR REPLACE INTO ship_leases(owner, lo, hi, until) VALUES (?,?,?,?)",
                     (rng.choice(("me", "other")) + str(k), lo, hi, until))
    while True:
        pending = [r for r, s in sorted(states(outbox).items()) if s == STATE_PENDING]
        live = [(lo, hi) for lo, hi in conn.execute("SELECT lo, hi FROM ship_leases WHERE until>=?", (time.time_ns(),))]
        expected = reference_claim(pending, live, 16)
        lease = claim(queue, "me-now", n=16)
        if lease is None:
            assert expected == []
            break
        assert [row[0] for row in lease.rows] == expected
        queue.mark_shipped([row[0] for row in lease.rows], end_lease=lease)
    left = {r for r, s in states(outbox).items() if s == STATE_PENDING}
    assert all(any(lo <= rid <= hi for lo, hi in live) for rid in left), "a pending row outside every lease was never claimed"


def test_a_claim_runs_the_same_statements_behind_one_lease_or_a_hundred(tmp_path: Path) -> None:
    def statements_of_a_claim(leased_batches: int) -> list[str]:
        outbox = Outbox(tmp_path / f"o{leased_batches}.db")
        queue = ShippingQueue(outbox)
        fill(outbox, leased_batches * 10 + 10)
        held = [claim(queue, "me", n=10) for _ in range(leased_batches)]  # a pipeline's window of leases
        assert all(lease is not None for lease in held)
        seen: list[str] = []
        outbox.connect().set_trace_callback(lambda sql: seen.append(re.sub(r"\d+", "N", sql)))  # shapes
        lease = claim(queue, "me", n=10)
        outbox.connect().set_trace_callback(None)
        assert lease is not None and lease.lo == held[-1].hi + 1  # type: ignore[union-attr]
        return seen

    assert statements_of_a_claim(1) == statements_of_a_claim(100)


def test_a_range_another_process_claims_between_the_read_and_the_write_is_not_claimed_twice(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    ours, theirs = Outbox(path), Outbox(path)  # two handles, two connections: as two processes
    fill(ours, 30)
    observed = ours.write_lock = ObservedLock()  # type: ignore[assignment]
    taken: list[Lease | None] = []
    # Just before our claim takes the write lock (its batch already read), the other process claims.
    observed.before_acquire = lambda: taken.append(claim(ShippingQueue(theirs), "them", n=10))
    lease = claim(ShippingQueue(ours), "us", n=10)
    assert taken[0] is not None and lease is not None
    theirs_rids = {row[0] for row in taken[0].rows}
    ours_rids = {row[0] for row in lease.rows}
    assert len(theirs_rids) == len(ours_rids) == 10
    assert not theirs_rids & ours_rids
    assert min(ours_rids) == max(theirs_rids) + 1  # the next free rows, none skipped
    assert sorted((lo, hi) for _o, lo, hi in leases(ours)) == [(taken[0].lo, taken[0].hi), (lease.lo, lease.hi)]


def test_a_forked_child_gets_a_fresh_write_lock(tmp_path: Path) -> None:
    import os

    outbox = Outbox(tmp_path / "o.db")
    fill(outbox, 1)
    with outbox.write_lock:  # held by this (parent) thread at the moment of the fork
        pid = os.fork()
        if pid == 0:  # the child: the lock it inherited is held by a thread it does not have
            code = 1
            try:
                outbox.append("child", "stream-child", 1, time.time_ns(), "auditel.custom", "{}", None)
                code = 0
            finally:
                os._exit(code)
    _pid, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    assert outbox.connect().execute("SELECT count(*) FROM records WHERE record_id='child'").fetchone()[0] == 1
