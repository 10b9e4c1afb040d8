"""The background worker: one daemon thread per process that runs auditel's periodic tasks.

Tasks (shipping, retention, checkpoints, space hygiene) register with an interval; the
worker runs them when due, when asked (``run_soon``), and, for tasks registered ``on_wake``,
shortly after records are committed (``wake()``: one attribute store on the committing thread
while the worker is active; only a sleeping worker is signalled). It restarts itself in a
forked child. It is never needed for durability: records are on disk before ``emit``
returns, and nothing here runs on the caller's thread.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from auditel.counters import Counters


@dataclass
class Task:
    name: str
    fn: Callable[[], float | None]  # returns the delay until its next run, or None for its interval
    interval_s: float
    on_wake: bool = False
    next_run: float = field(default=0.0)
    soon: bool = False  # run_soon() was called: run again as soon as possible, even if asked mid-run


class Worker:
    def __init__(self, counters: Counters, *, name: str = "auditel-worker") -> None:
        self.counters = counters
        self.name = name
        self._tasks: list[Task] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._wake_tasks = False
        # Commits seen since the tasks last ran (set by wake(), cleared by this thread).
        self._pending = False
        # True while this thread sleeps on ``_wake``: only then does wake() need to signal it.
        self._asleep = False
        # After a commit, wait this long before running the on-wake tasks so that a burst of commits
        # costs one pass over them, not one per record. While commits keep coming the thread stays
        # active, looking for new ones every linger, so a commit is one attribute store on the
        # caller's thread (no Event, no futex syscall, no wake-up of this thread from the emit path).
        self.linger_s = 0.02
        self.signals = 0  # how often wake() had to signal the sleeping thread (diagnostics, tests)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork_child)

    def add_task(self, name: str, fn: Callable[[], float | None], interval_s: float, *, on_wake: bool = False) -> Task:
        task = Task(name, fn, interval_s, on_wake, time.monotonic())
        with self._lock:
            self._tasks.append(task)
            self._wake_tasks = any(t.on_wake for t in self._tasks)
        self._wake.set()
        return task

    def remove_task(self, name: str) -> None:
        with self._lock:
            self._tasks = [t for t in self._tasks if t.name != name]
            self._wake_tasks = any(t.on_wake for t in self._tasks)

    def wake(self) -> None:
        """Called after every commit: a no-op unless a task runs on wake; otherwise it notes the
        commit, and signals the thread only when it is asleep (at most once per quiet period)."""
        if self._wake_tasks:
            self._pending = True
            if self._asleep and not self._wake.is_set():
                self.signals += 1
                self._wake.set()

    def run_soon(self, task: Task) -> None:
        """Run ``task`` as soon as the worker can (it is due now), waking the thread if it sleeps."""
        task.soon = True
        task.next_run = 0.0
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and self._pid == os.getpid()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the thread to stop and wait at most ``timeout`` seconds (never forever)."""
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and self._pid == os.getpid():
            thread.join(max(0.0, timeout))

    def run_once(self, *, only_due: bool = False) -> None:
        """Run the tasks once on the calling thread (used by the CLI and tests)."""
        now = time.monotonic()
        with self._lock:
            tasks = list(self._tasks)
        for task in tasks:
            if only_due and task.next_run > now:
                continue
            self._run_task(task, now)

    def _run_task(self, task: Task, now: float) -> None:
        task.soon = False
        try:
            delay = task.fn()
        except Exception as exc:  # noqa: BLE001 - a failing task never kills the worker
            self.counters.error(f"task:{task.name}", exc)
            delay = None
        next_run = now + (task.interval_s if delay is None else max(0.0, delay))
        # a run_soon() that came while the task ran is not overwritten by its next scheduled time
        task.next_run = 0.0 if task.soon else next_run

    def _run(self) -> None:
        active = False  # commits came within the last linger: look for more on a timer, unsignalled
        while not self._stop.is_set():
            if active and self.linger_s:
                self._stop.wait(self.linger_s)
            # Take the commits noted so far before running the tasks: a commit after this line sets
            # _pending again and gets its own pass; one before it is covered by the tasks run now.
            woke = self._pending
            self._pending = False
            now = time.monotonic()
            with self._lock:
                tasks = list(self._tasks)
            for task in tasks:
                if self._stop.is_set():
                    break
                if task.next_run <= now or (woke and task.on_wake):
                    self._run_task(task, time.monotonic())
            if woke and self.linger_s:
                active = True  # stay awake one more linger: the next commit need not signal us
                continue
            active = False
            # Sleep until a task is due or something signals. The Event is cleared and the sleep
            # announced before the schedule and _pending are read, so a concurrent wake(),
            # run_soon() or add_task() is either seen here or signals the Event we wait on.
            self._wake.clear()
            self._asleep = True
            with self._lock:
                upcoming = min((t.next_run for t in self._tasks), default=time.monotonic() + 60.0)
            timeout = max(0.0, min(60.0, upcoming - time.monotonic()))
            if not self._pending:
                self._wake.wait(timeout)
            self._asleep = False
            active = self._pending  # woken by a commit: linger first, so a burst costs one pass

    def _after_fork_child(self) -> None:
        was_running = self._thread is not None and self._pid != os.getpid()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pending = False
        self._asleep = False
        self._thread = None
        if was_running:
            self._pid = os.getpid()
            try:
                self.start()
            except Exception as exc:  # noqa: BLE001
                self.counters.error("worker_fork_restart", exc)
