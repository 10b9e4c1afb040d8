"""The background worker: commits wake on-wake tasks without signalling an active worker; run_soon."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

import auditel
from auditel.counters import Counters
from auditel.delivery.worker import Worker


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.005)


@pytest.fixture
def worker() -> Any:
    w = Worker(Counters(), name="auditel-worker-test")
    yield w
    w.stop(5)


def test_a_commit_wakes_a_sleeping_worker_once_and_a_burst_costs_one_pass(worker: Worker) -> None:
    runs: list[float] = []
    worker.add_task("on-wake", lambda: runs.append(time.monotonic()) or None, 3600.0, on_wake=True)
    worker.start()
    wait_for(lambda: len(runs) == 1 and worker._asleep)  # first run at start, then asleep (due in an hour)
    for _ in range(500):  # a burst of commits, far shorter than one linger
        worker.wake()
    wait_for(lambda: len(runs) == 2)
    wait_for(lambda: worker._asleep)  # after a linger with no commit it sleeps again
    assert len(runs) == 2  # one pass for the whole burst
    assert worker.signals == 1  # only the first commit of the burst had to signal the sleeping thread


def test_commits_while_the_worker_is_active_are_noted_not_signalled(worker: Worker) -> None:
    runs: list[float] = []
    worker.linger_s = 0.2  # long enough that a slow machine's late sleeps below stay within it
    worker.add_task("on-wake", lambda: runs.append(time.monotonic()) or None, 3600.0, on_wake=True)
    worker.start()
    wait_for(lambda: len(runs) == 1 and worker._asleep)
    commits = 0
    stop = time.monotonic() + 1.0
    while time.monotonic() < stop:  # a steady trickle: a commit every few ms for a second
        worker.wake()
        commits += 1
        time.sleep(0.002)
    # the on-wake task kept running while commits came (about once per linger) ...
    assert len(runs) >= 3
    # ... yet only the first commit signalled: the worker never went back to sleep in between
    assert worker.signals == 1 and commits > 50
    wait_for(lambda: worker._asleep)
    before = len(runs)
    worker.wake()  # a commit after the quiet period wakes it again
    wait_for(lambda: len(runs) == before + 1)


def test_without_on_wake_tasks_commits_never_signal(worker: Worker) -> None:
    worker.add_task("timer", lambda: None, 3600.0)
    worker.start()
    for _ in range(100):
        worker.wake()
    time.sleep(0.05)
    assert worker.signals == 0


def test_run_soon_runs_a_task_that_is_not_due(worker: Worker) -> None:
    ran = threading.Event()
    calls: list[int] = []

    def task_fn() -> None:
        calls.append(1)
        if len(calls) > 1:
            ran.set()

    task = worker.add_task("later", task_fn, 3600.0)
    worker.start()
    wait_for(lambda: len(calls) == 1 and worker._asleep)
    worker.run_soon(task)
    assert ran.wait(5)
    assert task.next_run > time.monotonic() + 3000  # back on its interval afterwards


def test_run_soon_asked_while_the_task_runs_is_not_lost(worker: Worker) -> None:
    """A request that arrives during the task's own run (here: from inside it) runs it once more,
    instead of being overwritten by the task's next scheduled time (an hour away)."""
    calls: list[int] = []
    holder: dict[str, Any] = {}

    def task_fn() -> None:
        calls.append(1)
        if len(calls) == 2:
            worker.run_soon(holder["task"])  # asked mid-run

    holder["task"] = worker.add_task("later", task_fn, 3600.0)
    worker.start()
    wait_for(lambda: len(calls) == 1 and worker._asleep)
    worker.run_soon(holder["task"])
    wait_for(lambda: len(calls) == 3)
    time.sleep(0.05)
    assert len(calls) == 3


def test_checkpoints_come_every_n_records_without_a_wake_per_commit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checkpointer asks the worker for a run when N records are due; other commits leave it asleep."""
    monkeypatch.setenv("AUDITEL_CHECKPOINT_EVERY", "25")
    monkeypatch.setenv("AUDITEL_CHECKPOINT_INTERVAL_S", "3600")
    for var in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "AUDITEL_ENDPOINT"):
        monkeypatch.delenv(var, raising=False)
    rt = auditel.configure(outbox=str(tmp_path / "o.db"))
    assert rt is not None and rt.shipper is None
    try:
        conn = rt.outbox.connect()

        def checkpoints() -> int:
            return int(conn.execute("SELECT count(*) FROM checkpoints").fetchone()[0])

        wait_for(lambda: rt.worker._asleep)
        for i in range(20):  # fewer than N: no checkpoint, and the worker is never signalled
            auditel.emit("auditel.action", attributes={"audit.action": f"a{i}"})
        time.sleep(0.1)
        assert checkpoints() == 0
        assert rt.worker.signals == 0
        for i in range(10):
            auditel.emit("auditel.action", attributes={"audit.action": f"b{i}"})
        wait_for(lambda: checkpoints() == 1)
        (tree_size,) = conn.execute("SELECT tree_size FROM checkpoints").fetchone()
        assert tree_size >= 25
    finally:
        auditel.shutdown()
