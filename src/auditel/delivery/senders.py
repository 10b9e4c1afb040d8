"""The shipper's helpers for concurrency: sender threads, and the pacer that gives the app room.

Moved out of ``shipper.py`` so that the shipper reads as its state machine.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from auditel.store.shipping_queue import ShippingQueue

# While the app is committing records, the shipper pauses after each batch (at most this long) so
# that its pumping thread uses at most this share of one CPU: the app's emits share the GIL with it.
PACE_MAX_S = 0.05
PACE_CPU_SHARE = 0.1


class Senders:
    """Daemon threads that send batches (daemon: a stuck request never holds up interpreter exit)."""

    def __init__(self, size: int, name: str = "auditel-ship") -> None:
        self.size = size
        self.name = name
        self._jobs: queue.SimpleQueue[tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None] = (
            queue.SimpleQueue()
        )
        self._threads: list[threading.Thread] = []

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        if len(self._threads) < self.size:
            thread = threading.Thread(target=self._run, name=f"{self.name}-{len(self._threads)}", daemon=True)
            self._threads.append(thread)
            thread.start()
        self._jobs.put((future, fn, args))
        return future

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            future, fn, args = job
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the thread that settles the batch
                future.set_exception(exc)

    def stop(self) -> None:
        """Let the threads end after their current job (no join: never blocks the caller)."""
        for _ in self._threads:
            self._jobs.put(None)
        self._threads = []


class Pacer:
    """Gives the app room while it emits: the shipper then keeps to a share of one CPU.

    A backlog drain is CPU work under the GIL (reading and encoding batches); an app committing
    records at the same moment waits for the GIL each time the shipper holds it. New rows in the
    outbox since the last batch mean the app (or another process) is committing: the shipper then
    sleeps, with nothing of its own running, until the CPU time the pumping thread spent on the last
    batch is at most ``PACE_CPU_SHARE`` of the time since.
    """

    def __init__(self, queue: ShippingQueue) -> None:
        self.queue = queue
        self.seen = queue.max_rid()
        self.since = time.monotonic()
        self.cpu_since = time.thread_time()

    def between_batches(self) -> bool:
        """Pause if the outbox grew since the last batch; True when it did."""
        top = self.queue.max_rid()
        paused = top != self.seen
        if paused:
            self.seen = top
            busy = time.thread_time() - self.cpu_since
            pause = busy / PACE_CPU_SHARE - (time.monotonic() - self.since)
            if pause > 0:
                time.sleep(min(pause, PACE_MAX_S))
        self.since = time.monotonic()
        self.cpu_since = time.thread_time()
        return paused
