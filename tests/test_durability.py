"""Durability and concurrency against real SQLite files and real processes."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import auditel
from auditel.record import schema as S
from conftest import read_records, user_records

SCRIPT = str(Path(__file__).parent / "scripts" / "emit_loop.py")


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_"))}


def _stored_ids(path: Path) -> set[str]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {json.loads(d)["attributes"][S.A_RECORD_ID] for (d,) in conn.execute("SELECT data FROM records")}
    finally:
        conn.close()


def test_kill_minus_9_loses_no_acknowledged_record(tmp_path: Path) -> None:
    """20 times: a process emits in a tight loop and is SIGKILLed at a random moment.

    Every record whose emit() returned (its id was printed afterwards) must be in the outbox,
    and the file must open cleanly and pass integrity_check.
    """
    path = tmp_path / "crash.db"
    rng = random.Random(1234)
    acknowledged: set[str] = set()
    for _ in range(20):
        proc = subprocess.Popen([sys.executable, SCRIPT, str(path)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_env())
        assert proc.stdout is not None
        first = proc.stdout.readline()  # running: at least one acknowledged record
        assert first.strip()
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(proc.pid, signal.SIGKILL)
        rest = proc.stdout.read()
        proc.wait()
        ids = {line.strip() for line in (first + rest).decode().splitlines() if line.strip()}
        # a line cut in the middle by the kill is not an acknowledgement
        acknowledged |= {i for i in ids if len(i) == 26}
    stored = _stored_ids(path)
    missing = acknowledged - stored
    assert not missing, f"{len(missing)} acknowledged records lost"
    assert len(acknowledged) > 100
    # every crashed stream is still a contiguous sequence from 1
    by_stream: dict[str, list[int]] = {}
    for rec in read_records(path):
        by_stream.setdefault(rec["attributes"][S.A_STREAM_ID], []).append(rec["attributes"][S.A_SEQ])
    assert len(by_stream) == 20
    for seqs in by_stream.values():
        assert seqs == list(range(1, len(seqs) + 1))


def test_eight_processes_eight_threads_one_outbox(tmp_path: Path) -> None:
    path = tmp_path / "shared.db"
    per_thread = 60
    procs = [
        subprocess.Popen([sys.executable, SCRIPT, str(path), str(per_thread), "8"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env())
        for _ in range(8)
    ]
    acknowledged: set[str] = set()
    for proc in procs:
        out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err.decode()
        assert b"database is locked" not in err
        status_line = [line for line in err.decode().splitlines() if line.startswith("STATUS ")][-1]
        status = json.loads(status_line[len("STATUS ") :])
        assert status == {"errors": {}, "rejected": {}}
        acknowledged |= set(out.decode().split())
    assert len(acknowledged) == 8 * 8 * per_thread
    assert acknowledged <= _stored_ids(path)
    streams: dict[str, list[int]] = {}
    for rec in read_records(path):
        streams.setdefault(rec["attributes"][S.A_STREAM_ID], []).append(rec["attributes"][S.A_SEQ])
    assert len(streams) == 8
    for seqs in streams.values():  # each process's chain is contiguous despite 8 threads
        assert sorted(seqs) == list(range(1, len(seqs) + 1))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_keeps_recording(tmp_path: Path) -> None:
    path = tmp_path / "fork.db"
    rt = auditel.configure(outbox=str(path))
    parent_stream = rt.processor.stream_id
    auditel.emit("auditel.action", attributes={"who": "parent-before"})
    pid = os.fork()
    if pid == 0:  # child
        code = 0
        try:
            for i in range(5):
                if auditel.emit("auditel.action", attributes={"who": "child", "i": i}) is None:
                    code = 3
            auditel.shutdown()
        except BaseException:
            code = 4
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    auditel.emit("auditel.action", attributes={"who": "parent-after"})
    recs = read_records(path)
    child = [r for r in recs if r["attributes"].get("who") == "child"]
    assert len(child) == 5
    child_stream = child[0]["attributes"][S.A_STREAM_ID]
    assert child_stream != parent_stream
    child_all = [r for r in recs if r["attributes"][S.A_STREAM_ID] == child_stream]
    assert child_all[0]["event_name"] == S.EV_STREAM_START
    assert [r["event_name"] for r in child_all[-2:]] == [S.EV_STREAM_END, S.EV_CHECKPOINT]
    assert [r["attributes"][S.A_SEQ] for r in child_all] == list(range(1, len(child_all) + 1))
    parent = [r for r in recs if r["attributes"][S.A_STREAM_ID] == parent_stream]
    assert [r["attributes"][S.A_SEQ] for r in parent] == list(range(1, len(parent) + 1))
    assert parent[-1]["attributes"]["who"] == "parent-after"


def _fill(n: int, size: int = 2000) -> None:
    for i in range(n):
        auditel.emit("auditel.action", body="y" * size, attributes={"i": i})


def test_cap_block_times_out_then_rejects_visibly(tmp_path: Path) -> None:
    path = tmp_path / "cap.db"
    auditel.configure(outbox=str(path), max_outbox_mb=0.25, on_full="block", block_timeout_ms=50)
    _fill(140)
    st = auditel.status()
    assert st["rejected"].get("outbox_full", 0) > 0
    stored = len(user_records(path))
    assert stored + st["rejected"]["outbox_full"] == 140
    # nothing unshipped was deleted to make room
    seqs = [r["attributes"][S.A_SEQ] for r in read_records(path)]
    assert seqs == list(range(1, len(seqs) + 1))


def test_cap_prunes_shipped_records_first(tmp_path: Path) -> None:
    path = tmp_path / "cap2.db"
    rt = auditel.configure(outbox=str(path), max_outbox_mb=0.25, on_full="reject")
    _fill(60)
    rt.outbox.connect().execute("UPDATE records SET state=1")  # as if delivered
    _fill(60)
    st = auditel.status()
    assert st["rejected"].get("outbox_full", 0) == 0
    conn = sqlite3.connect(path)
    pruned = conn.execute("SELECT count, reason FROM pruned").fetchall()
    assert pruned and all(reason == "cap" for _, reason in pruned)
    assert conn.execute("SELECT count(*) FROM records WHERE state=0").fetchone()[0] == 60


def test_cap_drop_oldest_is_explicit_and_counted(tmp_path: Path) -> None:
    path = tmp_path / "cap3.db"
    auditel.configure(outbox=str(path), max_outbox_mb=0.25, on_full="drop_oldest")
    _fill(400)
    st = auditel.status()
    assert st["rejected"]["dropped_oldest_unshipped"] > 0
    assert st["errors"]["dropped_oldest_unshipped"] >= 1
    conn = sqlite3.connect(path)
    (dropped,) = conn.execute("SELECT sum(count) FROM pruned WHERE reason='cap_drop_oldest'").fetchone()
    assert dropped == st["rejected"]["dropped_oldest_unshipped"]


def test_cap_grow_keeps_everything(tmp_path: Path) -> None:
    path = tmp_path / "cap4.db"
    auditel.configure(outbox=str(path), max_outbox_mb=0.25, on_full="grow")
    _fill(400)
    assert len(user_records(path)) == 400
    assert auditel.status()["rejected"]["over_cap_kept"] > 0


def test_retention_deletes_only_shipped_records(tmp_path: Path) -> None:
    path = tmp_path / "ret.db"
    rt = auditel.configure(outbox=str(path), retention_days=1)
    _fill(10, size=10)
    conn = rt.outbox.connect()
    old = time.time_ns() - 3 * 86400 * 10**9
    conn.execute("UPDATE records SET time_ns=?", (old,))
    conn.execute("UPDATE records SET state=1 WHERE rid <= 5")
    rt._space_task()
    left = conn.execute("SELECT count(*), min(state) FROM records").fetchone()
    assert left == (6, 0)  # 11 records (stream start + 10), the 5 oldest shipped ones went


def test_retention_of_unshipped_needs_explicit_choice(tmp_path: Path) -> None:
    path = tmp_path / "ret2.db"
    rt = auditel.configure(outbox=str(path), retention_days=1, retention_unshipped=True)
    _fill(10, size=10)
    conn = rt.outbox.connect()
    conn.execute("UPDATE records SET time_ns=?", (time.time_ns() - 3 * 86400 * 10**9,))
    rt._space_task()
    assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == 0
    assert conn.execute("SELECT sum(count) FROM pruned WHERE reason='retention'").fetchone()[0] == 11


def test_schema_2_outbox_migrates_keeping_every_record(tmp_path: Path) -> None:
    """An outbox written by schema 2 (UNIQUE record_id, a (state, rid) index) is rebuilt by migrations
    3 and 4 without losing a record or its shipping state: no index is written per commit any more,
    and the ship floor sits just below the first pending record."""
    from auditel.store import outbox as outbox_mod

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    for version, ddl in outbox_mod._MIGRATIONS:
        if version <= 2:
            conn.executescript(ddl)
    # the records table as schema 1 and 2 wrote it: record_id UNIQUE
    unique_columns = outbox_mod._RECORDS_COLUMNS.replace("record_id    TEXT NOT NULL,", "record_id    TEXT NOT NULL UNIQUE,")
    assert unique_columns != outbox_mod._RECORDS_COLUMNS
    conn.executescript(
        f"DROP TABLE records; CREATE TABLE records ({unique_columns});"
        " CREATE INDEX records_state_rid ON records(state, rid);"
    )
    old_indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='records'")}
    assert old_indexes == {"records_state_rid", "sqlite_autoindex_records_1"}
    conn.execute("INSERT INTO meta VALUES ('schema_version', '2')")
    rows = [(f"01OLD{i:021d}", "s-old", i, 1000 + i, "auditel.tool_call", json.dumps({"i": i}), f"h{i}", i % 2) for i in range(1, 51)]
    conn.executemany(
        "INSERT INTO records(record_id, stream_id, seq, time_ns, event_name, data, record_hash, state) VALUES (?,?,?,?,?,?,?,?)", rows
    )
    conn.close()

    box = outbox_mod.Outbox(path)
    c = box.connect()
    assert c.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(outbox_mod.SCHEMA_VERSION)
    got = c.execute(
        "SELECT record_id, stream_id, seq, time_ns, event_name, data, record_hash, state FROM records ORDER BY rid"
    ).fetchall()
    assert got == rows
    indexes = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type='index' AND tbl_name='records'")}
    assert indexes == {"records_done"}  # partial: shipped and dead-lettered rows only
    assert box.ship_floor(c) == 1  # rid 1 shipped (state 1), rid 2 the first pending
    assert box.stats().pending == 25 and box.stats().shipped == 25
    box.append(rows[0][0], "s-new", 1, 5000, "auditel.tool_call", "{}", None)  # ids are not a constraint any more
    assert c.execute("SELECT count(*) FROM records WHERE record_id=?", (rows[0][0],)).fetchone()[0] == 2
    assert box.stats().pending == 26
    box.close()
