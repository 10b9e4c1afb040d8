"""fork() while auditel's threads use SQLite: the child must not inherit SQLite's mutexes locked."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from auditel.store import fork_gate
from auditel.store.fork_gate import GATE, GatedConnection
from auditel.store.outbox import Outbox

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _wait_child(pid: int, timeout: float) -> int | None:
    """The child's exit code, or None if it was still running after ``timeout`` (then it is killed)."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return None
        time.sleep(0.005)


def test_children_forked_while_another_thread_uses_the_outbox_never_hang(tmp_path: Path) -> None:
    """Before the fork gate, 2-4 of 40 such children hung for ever on their first SQLite call
    (SQLite's allocator mutex, held by the parent's other thread at the moment of fork())."""
    outbox = Outbox(tmp_path / "o.db")
    stop = threading.Event()

    def hammer() -> None:  # commits and queries without pause, like a busy shipper and app together
        i = 0
        while not stop.is_set():
            i += 1
            outbox.append(f"parent-{i}", "parent", i, 1, "ev", "x" * 300, "h")
            outbox.connect().execute("SELECT count(*) FROM records WHERE rid > ?", (i - 5,)).fetchone()

    thread = threading.Thread(target=hammer, daemon=True)
    thread.start()
    time.sleep(0.1)
    results = []
    try:
        for n in range(40):
            pid = os.fork()
            if pid == 0:  # child: its first SQLite use opens a new connection
                code = 1
                try:
                    outbox.append(f"child-{n}", f"child-{n}", 1, 1, "ev", "child", "h")
                    code = 0
                finally:
                    os._exit(code)
            results.append(_wait_child(pid, timeout=10.0))
    finally:
        stop.set()
        thread.join(5)
    assert results.count(None) == 0, f"{results.count(None)} of 40 children hung"
    assert results == [0] * 40
    conn = outbox.connect()
    assert conn.execute("SELECT count(*) FROM records WHERE stream_id LIKE 'child-%'").fetchone()[0] == 40


def test_a_fork_waits_for_a_statement_in_flight(tmp_path: Path) -> None:
    conn = GatedConnection(str(tmp_path / "g.db"), isolation_level=None, check_same_thread=False)
    conn.execute("CREATE TABLE t(x)")
    inside = threading.Event()
    order: list[str] = []

    def long_transaction() -> None:
        conn.execute("BEGIN IMMEDIATE")  # the gate stays entered until the transaction ends
        inside.set()
        time.sleep(0.3)
        conn.execute("INSERT INTO t VALUES (1)")
        order.append("committed")
        conn.execute("COMMIT")

    thread = threading.Thread(target=long_transaction)
    thread.start()
    assert inside.wait(5)
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    order.append("forked")
    assert _wait_child(pid, 10.0) == 0
    thread.join(5)
    assert order == ["committed", "forked"]  # fork() waited for the transaction to end
    assert GATE._inside == 0 and not GATE._closed


def test_a_fork_goes_ahead_after_the_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """A call stuck in flight (e.g. in SQLite's busy handler) holds a fork back at most FORK_WAIT_S."""
    monkeypatch.setattr(fork_gate, "FORK_WAIT_S", 0.2)
    GATE.enter()  # a call "in flight" on this thread, never leaving before the fork
    before = GATE.timeouts
    try:
        started = time.monotonic()
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        waited = time.monotonic() - started
        assert _wait_child(pid, 10.0) == 0
    finally:
        GATE.leave()
    assert GATE.timeouts == before + 1
    assert 0.15 <= waited < 5.0


def test_cursors_keep_the_gate_until_their_rows_are_read(tmp_path: Path) -> None:
    conn: Any = GatedConnection(str(tmp_path / "c.db"), isolation_level=None)
    conn.execute("CREATE TABLE t(x)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(3)])
    assert GATE._inside == 0
    cur = conn.execute("SELECT x FROM t ORDER BY x")
    assert GATE._inside == 1  # rows pending: the statement holds read locks
    assert cur.fetchone() == (0,)
    assert GATE._inside == 1
    assert cur.fetchall() == [(1,), (2,)]
    assert GATE._inside == 0
    cur = conn.execute("SELECT x FROM t")
    del cur  # collected half-read: closed inside the gate, which is then left
    assert GATE._inside == 0
    conn.execute("BEGIN")
    assert GATE._inside == 1  # an explicit transaction holds the gate from BEGIN ...
    conn.execute("INSERT INTO t VALUES (9)")
    conn.execute("COMMIT")
    assert GATE._inside == 0  # ... to its end
    conn.close()
