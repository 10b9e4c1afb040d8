"""Issue 13 items 3 and 13: AUDITEL_ON_FULL=block waits without holding the stream lock; a full disk
is counted as a rejection with its reason."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import auditel


def _fill(limit: int = 300) -> None:
    filler = "x" * 60_000
    for _ in range(limit):
        if auditel.emit("auditel.custom", body=filler) is None:
            return
    raise AssertionError("the cap was never reached")


def test_a_thread_waiting_for_room_does_not_hold_the_stream_lock(outbox_path: Path) -> None:
    rt = auditel.configure(outbox=str(outbox_path), max_outbox_mb=1, on_full="block", block_timeout_ms=300)
    _fill()
    rt.settings = rt.processor.settings = rt.processor.capacity.settings = type(rt.settings)(
        **{**rt.settings.__dict__, "block_timeout_ms": 20_000}
    )
    waiting = threading.Thread(target=auditel.emit, args=("auditel.custom",), daemon=True)
    waiting.start()
    time.sleep(0.5)  # let it reach its wait for room
    assert waiting.is_alive()
    # the stream lock is free: a consistent head snapshot and an internal record need no wait
    rt.processor.head()
    assert rt.processor.append_internal("auditel.heartbeat", {"audit.action": "heartbeat"}, None) is not None
    assert waiting.is_alive(), "the internal record waited for the blocked emit: the lock was held"
    rt.processor.capacity.settings = type(rt.settings)(**{**rt.settings.__dict__, "block_timeout_ms": 0})
    waiting.join(25)


def test_each_blocked_emit_is_rejected_with_outbox_full(outbox_path: Path) -> None:
    auditel.configure(outbox=str(outbox_path), max_outbox_mb=1, on_full="block", block_timeout_ms=50)
    _fill()
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(auditel.emit("auditel.custom"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [None] * 4
    assert auditel.status()["rejected"]["outbox_full"] >= 5


def test_disk_full_is_a_rejection_not_a_processor_error(outbox_path: Path) -> None:
    """The disk is made full for SQLite with PRAGMA max_page_count on the emitting thread's own
    connection: SQLite then fails the INSERT with SQLITE_FULL, exactly as on a full filesystem."""
    rt = auditel.configure(outbox=str(outbox_path), max_outbox_mb=0)
    auditel.emit("auditel.custom")
    conn = rt.outbox.connect()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count={pages}")
    assert auditel.emit("auditel.custom", body="y" * 200_000) is None
    status = auditel.status()
    assert status["rejected"].get("disk_full") == 1, status
    assert "processor" not in status["errors"]
