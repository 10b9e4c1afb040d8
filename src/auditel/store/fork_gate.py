"""Keeping ``fork()`` away from SQLite calls in flight.

A thread inside SQLite holds SQLite's process-wide mutexes for a moment: its allocator's (taken by
every allocation when memory statistics are on, the default), and the lock and shared-memory
bookkeeping of each open database file. A child forked at that moment inherits them locked and
its first SQLite call waits forever. Measured before this module: a process whose second thread
commits and queries in a loop hung 3 of 40 forked children on their first INSERT.

Every connection auditel opens (``Outbox``) is a ``GatedConnection``: each statement, each fetch
and each explicit transaction (``BEGIN`` … ``COMMIT``/``ROLLBACK``, held as one) runs inside the
gate. An at-fork hook closes the gate before ``fork()`` (new SQLite calls wait; calls in flight
finish, bounded by ``FORK_WAIT_S``), and opens it again after, in the parent and, new, in the child.
The app's forks pay nothing unless auditel is inside SQLite at that moment, then at most that call.

A query's cursor keeps the gate entered until its rows are read or it is closed or collected
(its statement holds read locks until then), so a long-lived half-read cursor holds forks back up
to ``FORK_WAIT_S``; auditel's own queries read their rows at once.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterable
from typing import Any

# A fork waits at most this long for SQLite calls in flight (one can sit in SQLite's busy handler
# while another process holds the database's write lock). Past it the fork goes ahead.
FORK_WAIT_S = 2.0


class ForkGate:
    """A count of SQLite calls in flight, and a flag that holds new ones off while a fork is made."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)  # waits for the gate to open / calls to finish
        self._inside = 0
        self._closed = False
        self.timeouts = 0  # forks that went ahead with SQLite calls still in flight (diagnostics, tests)

    def enter(self, nested: bool = False) -> None:
        """``nested``: the caller already holds the gate (an open transaction, a half-read cursor) and
        must be let through while a fork waits, or the fork would wait for it in vain.

        On the emit path: two C lock calls when no fork is being made."""
        lock = self._lock
        lock.acquire()
        if self._closed and not nested:
            while self._closed:
                self._cond.wait()
        self._inside += 1
        lock.release()

    def leave(self) -> None:
        lock = self._lock
        lock.acquire()
        self._inside -= 1
        if self._closed and self._inside <= 0:
            self._cond.notify_all()
        lock.release()

    def before_fork(self) -> None:
        """Close the gate and wait (bounded) for calls in flight; its lock stays held across fork()."""
        cond = self._cond
        cond.acquire()
        self._closed = True
        deadline = time.monotonic() + FORK_WAIT_S
        while self._inside > 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                self.timeouts += 1
                break
            cond.wait(remaining)

    def after_fork_parent(self) -> None:
        self._closed = False
        self._cond.notify_all()
        self._cond.release()

    def after_fork_child(self) -> None:
        self._reset()  # the child's only thread is the one that forked: nothing is in flight here


GATE = ForkGate()
if hasattr(os, "register_at_fork"):
    # Registered when this module is first imported, before any AuditProcessor registers its own
    # hooks; "before" hooks run in reverse order, so the processor's lock is taken first (a commit in
    # progress finishes) and the gate closes last (no thread then waits at the gate holding that lock).
    os.register_at_fork(
        before=GATE.before_fork, after_in_parent=GATE.after_fork_parent, after_in_child=GATE.after_fork_child
    )


class GatedCursor(sqlite3.Cursor):
    """A cursor whose statements and fetches run inside the fork gate.

    A query's statement stays active (holding the database's read locks) until its rows are all
    read or the cursor is closed; until then the cursor keeps the gate entered, and closing it
    (also when it is collected) resets the statement inside the gate.
    """

    _active_pid = 0  # the pid that entered the gate for this cursor's active statement (0: none)
    connection: GatedConnection  # a GatedCursor is only made by a GatedConnection

    def _hold(self) -> None:
        if not self._active_pid:
            GATE.enter(nested=True)  # called inside the operation's own entry
            self._active_pid = os.getpid()
            self.connection._cursors_held += 1

    def _release(self) -> None:
        pid = self._active_pid
        if pid:
            self._active_pid = 0
            if pid == os.getpid():  # a parent's cursor collected in a forked child: the child's gate is new
                self.connection._cursors_held -= 1
                GATE.leave()

    def _statement_done(self) -> None:
        if self.description is None:
            self._release()  # no rows to read: SQLite has finished with the statement
        else:
            self._hold()

    def _enter(self) -> None:
        GATE.enter(nested=self.connection._holds_gate())

    def _statement(self, op: Any, *args: Any) -> GatedCursor:
        """Run ``execute``/``executemany``/``executescript`` inside the gate; hold it after while the
        statement has rows to read or the connection a transaction open."""
        conn = self.connection
        self._enter()
        try:
            op(*args)
            self._statement_done()
        finally:
            conn._note_transaction()
            GATE.leave()
        return self

    def _fetch(self, op: Any, *args: Any) -> Any:
        self._enter()
        try:
            return op(*args)
        finally:
            GATE.leave()

    def execute(self, sql: str, parameters: Any = (), /) -> GatedCursor:
        return self._statement(super().execute, sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> GatedCursor:
        return self._statement(super().executemany, sql, seq_of_parameters)

    def executescript(self, sql_script: str, /) -> GatedCursor:
        return self._statement(super().executescript, sql_script)

    def fetchone(self) -> Any:
        row = self._fetch(super().fetchone)
        if row is None:
            self._release()  # read to the end: SQLite has reset the statement
        return row

    def fetchmany(self, size: int | None = None) -> list[Any]:
        n = self.arraysize if size is None else size
        rows: list[Any] = self._fetch(super().fetchmany, n)
        if len(rows) < n:
            self._release()
        return rows

    def fetchall(self) -> list[Any]:
        rows: list[Any] = self._fetch(super().fetchall)
        self._release()
        return rows

    def __next__(self) -> Any:
        try:
            return self._fetch(super().__next__)
        except StopIteration:
            self._release()
            raise

    def close(self) -> None:
        try:
            self._fetch(super().close)
        finally:
            self._release()

    def __del__(self) -> None:
        if self._active_pid:
            if self._active_pid == os.getpid():
                try:
                    self.close()  # reset the statement inside the gate, not later in the C deallocator
                except Exception:  # noqa: BLE001 - a closed connection: nothing left to reset
                    self._release()
            else:
                self._active_pid = 0


class GatedConnection(sqlite3.Connection):
    """``sqlite3.connect(..., factory=GatedConnection)``: every use goes through the fork gate.

    Used by one thread at a time (auditel keeps a connection per thread). Inside an explicit
    transaction the gate stays entered from ``BEGIN`` to its end, so a fork never sees this
    connection's locks half taken.
    """

    _held = False  # an explicit transaction is open: the gate is held from BEGIN to its end
    _cursors_held = 0  # cursors of this connection with rows still pending (each holds the gate)

    def _holds_gate(self) -> bool:
        return self._held or self._cursors_held > 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        GATE.enter()  # opening allocates too
        try:
            super().__init__(*args, **kwargs)
        finally:
            GATE.leave()

    def cursor(self, factory: Any = GatedCursor) -> Any:
        return super().cursor(factory)

    # sqlite3.Connection.execute & co. run the statement in C without calling Cursor.execute:
    # route them through a gated cursor instead.
    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> Any:
        return self.cursor().executemany(sql, seq_of_parameters)

    def executescript(self, sql_script: str, /) -> Any:
        return self.cursor().executescript(sql_script)

    def _note_transaction(self) -> None:
        """After a statement: keep the gate entered while an explicit transaction is open."""
        try:
            open_ = self.in_transaction
        except sqlite3.ProgrammingError:  # closed
            open_ = False
        if open_ and not self._held:
            GATE.enter(nested=True)  # called inside the statement's own entry
            self._held = True
        elif not open_ and self._held:
            self._held = False
            GATE.leave()

    def _call(self, op: Any) -> None:
        GATE.enter(nested=self._holds_gate())
        try:
            op()
        finally:
            self._note_transaction()
            GATE.leave()

    def commit(self) -> None:
        self._call(super().commit)

    def rollback(self) -> None:
        self._call(super().rollback)

    def close(self) -> None:
        self._call(super().close)
