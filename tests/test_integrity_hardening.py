"""Verification under routine operations and hostile edits (issue 13 items 11, 12, 14; issue 12 item 13).

Real outbox files written by auditel, real `auditel purge`/`export`/`verify` runs; the attacks are raw SQL
on the file, as a local adversary would do them.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from auditel.integrity import checkpoint_log
from auditel.integrity.export_format import EXPORT_FORMAT, load_export
from auditel.integrity.verify import verify, verify_path
from auditel.record.canonical import canonical
from auditel.store.outbox import Outbox
from integrity_helpers import QUIET_ENV, build_outbox, copy_outbox, sha, sql, write_key

AUDITEL = [sys.executable, "-m", "auditel.cli"]


@pytest.fixture(autouse=True)
def quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in QUIET_ENV.items():
        monkeypatch.setenv(k, v)


@pytest.fixture
def keyed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    key, pub, _ = write_key(tmp_path)
    monkeypatch.setenv("AUDITEL_SIGNING_KEY_FILE", str(key))
    yield pub


def cli(*args: str, outbox: Path, umask: int | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_"))}
    env["AUDITEL_OUTBOX"] = str(outbox)

    def set_umask() -> None:
        if umask is not None:
            os.umask(umask)

    return subprocess.run([*AUDITEL, *args], capture_output=True, text=True, env=env, timeout=120, preexec_fn=set_umask)


def messages(report: Any) -> list[str]:
    return report.all_messages()


# --- issue 13 item 11: purge must not make verify fail --------------------------------------------------
@pytest.mark.parametrize("how_many", [25, None])
def test_purging_shipped_records_keeps_the_stream_verifiable(tmp_path: Path, how_many: int | None) -> None:
    """The stream-start record (the only record carrying the public key) is pruned with the oldest shipped
    records; the remaining checkpoints must still verify. Before the fix: 'signed by unknown key'."""
    path = tmp_path / "outbox.db"
    build_outbox(path)
    sql(path, "UPDATE records SET state=1")  # everything shipped
    if how_many is None:
        proc = cli("purge", "--older-than", "0s", outbox=path)
        assert proc.returncode == 0, proc.stderr
    else:
        assert Outbox(path).prune(shipped_only=True, reason="purge", limit=how_many) == how_many
    proc = cli("verify", str(path), outbox=path)
    assert proc.returncode == 0, proc.stdout
    assert "unknown key" not in proc.stdout
    report = verify_path(path)
    assert report.ok
    (stream,) = report.streams
    assert stream.key_id is not None and stream.anchored_through > 0
    assert any(n.code == "kept_key" for n in stream.notes)
    # an export of the purged outbox carries the kept key too
    export = tmp_path / "e.jsonl"
    assert cli("export", "--out", str(export), outbox=path).returncode == 0
    assert verify_path(export, from_export=True).ok


def test_a_forged_kept_key_is_not_used(tmp_path: Path) -> None:
    """A kept-key row whose public key does not hash to its key id is reported, not trusted."""
    path = tmp_path / "outbox.db"
    build_outbox(path)
    sql(path, "UPDATE records SET state=1")
    Outbox(path).prune(shipped_only=True, reason="purge", limit=10)
    other = __import__("auditel.integrity.signing", fromlist=["x"])
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    fake = other.public_key_b64(Ed25519PrivateKey.generate().public_key())
    sql(path, ("UPDATE signing_keys SET public_key=?", (fake,)))
    report = verify_path(path)
    assert not report.ok
    assert any("does not match key id" in m for m in messages(report))


def test_purged_outbox_still_verifies_with_the_pinned_key(tmp_path: Path, keyed: Path) -> None:
    path = tmp_path / "outbox.db"
    build_outbox(path)
    sql(path, "UPDATE records SET state=1")
    Outbox(path).prune(shipped_only=True, reason="purge", limit=30)
    proc = cli("verify", str(path), "--public-key", str(keyed), "--strict", outbox=path)
    assert proc.returncode == 0, proc.stdout


# --- issue 13 item 12: an end marker with no checkpoint -----------------------------------------------------
def _strip_checkpoints_and_rechain(path: Path, edit_seq: int) -> None:
    """The attack of issue 13 item 12, no key needed: delete every checkpoint (rows and records), renumber
    the records, edit one, and recompute every hash and link."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("BEGIN")
    conn.execute("DELETE FROM checkpoints")
    conn.execute("DELETE FROM records WHERE event_name='auditel.checkpoint'")
    rows = conn.execute("SELECT rid, data FROM records ORDER BY seq").fetchall()
    prev: str | None = None
    for n, (rid, data) in enumerate(rows, 1):
        rec = json.loads(data)
        attrs = rec["attributes"]
        attrs["audit.sequence.number"] = n
        if prev is None:
            attrs.pop("audit.sequence.previous_hash", None)
        else:
            attrs["audit.sequence.previous_hash"] = prev
        if n == edit_seq:
            attrs["audit.action"] = "READ"
        text = canonical(rec)
        prev = sha(text)
        conn.execute("UPDATE records SET data=?, record_hash=?, seq=? WHERE rid=?", (text, prev, n, rid))
    conn.execute("COMMIT")
    conn.close()


def test_an_end_marker_without_any_checkpoint_is_a_problem(tmp_path: Path, keyed: Path) -> None:
    """A clean end always writes a checkpoint after the end marker. Before the fix this verified OK with
    the pinned key."""
    path = tmp_path / "outbox.db"
    build_outbox(path)
    assert verify_path(path).ok
    _strip_checkpoints_and_rechain(path, edit_seq=5)
    checkpoint_log.log_path(path).unlink(missing_ok=True)  # the attacker removes the checkpoint log too
    proc = cli("verify", str(path), "--public-key", str(keyed), outbox=path)
    assert proc.returncode == 1, proc.stdout
    assert "no checkpoint covers it" in proc.stdout, proc.stdout


def test_a_stream_without_an_end_marker_and_without_checkpoints_is_still_only_noted(tmp_path: Path) -> None:
    """A process that crashed before its first checkpoint is honest: its stream must still verify."""
    path = tmp_path / "outbox.db"
    build_outbox(path, layout=(), end=False)
    import auditel

    auditel.emit("auditel.action", attributes={"audit.action": "EXECUTE"})
    report = verify_path(path)
    assert report.ok and not report.strict_ok()


# --- issue 13 item 14: records lost with the database's newest transactions ------------------------------------
def test_records_lost_from_the_database_are_a_problem(tmp_path: Path) -> None:
    """Put the database back to an earlier consistent state (what a deleted -wal leaves: the main file
    holds only what was checkpointed into it), keeping the checkpoint log beside it. Before the fix the
    loss looked like a crash: exit 0, notes only."""
    path = tmp_path / "outbox.db"
    snapshot = tmp_path / "snapshot.db"

    def between(k: int) -> None:
        if k == 0:
            copy_outbox(path, snapshot)

    build_outbox(path, between=between)
    assert verify_path(path).ok
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    shutil.copyfile(snapshot, path)
    proc = cli("verify", str(path), outbox=path)
    assert proc.returncode == 1, proc.stdout
    assert "PROBLEM records missing: seq 23..40" in proc.stdout, proc.stdout
    assert "checkpoint log" in proc.stdout


def test_a_whole_stream_lost_from_the_database_is_a_problem(tmp_path: Path) -> None:
    """The database put back to a copy from before a stream started: only the checkpoint log knows it."""
    path = tmp_path / "outbox.db"
    (tmp_path / "other").mkdir()
    older = tmp_path / "other" / "outbox.db"
    build_outbox(older, layout=(1,))
    build_outbox(path)
    for suffix in ("", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    copy_outbox(older, path)
    report = verify_path(path)
    assert not report.ok
    assert any(f.code == "missing" and "is absent from" in f.message for f in report.problems)


def test_the_checkpoint_log_is_private_and_bounded(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    old = os.umask(0)
    try:
        build_outbox(path)
    finally:
        os.umask(old)
    log = checkpoint_log.log_path(path)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["checkpoint"]["tree_size"] for line in lines] == [21, 32, 38, 40]
    # it is a valid --checkpoints file
    assert verify_path(path, checkpoints_file=log).ok


def test_heartbeat_checkpoints_covering_nothing_new_are_not_logged(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    import auditel

    rt = auditel.configure(outbox=str(path))
    auditel.emit("auditel.action", attributes={"audit.action": "EXECUTE"})
    for _ in range(5):
        rt.checkpointer.checkpoint()  # each covers only the previous checkpoint's own record
    lines = checkpoint_log.log_path(path).read_text().splitlines()
    assert len(lines) == 1


# --- issue 12 item 13: export files are private ---------------------------------------------------------------
def test_export_out_is_created_0600_under_umask_000(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    build_outbox(path)
    out = tmp_path / "export.jsonl"
    proc = cli("export", "--out", str(out), outbox=path, umask=0)
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    cps = tmp_path / "cps.jsonl"
    assert cli("export", "--checkpoints-only", "--out", str(cps), outbox=path, umask=0).returncode == 0
    assert stat.S_IMODE(cps.stat().st_mode) == 0o600


# --- issue 11: the export format is versioned ---------------------------------------------------------------------
def test_an_export_of_a_newer_format_fails_clearly(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    build_outbox(path)
    export = tmp_path / "e.jsonl"
    assert cli("export", "--out", str(export), outbox=path).returncode == 0
    lines = export.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["format"] == EXPORT_FORMAT
    header["format"] = EXPORT_FORMAT + 1
    export.write_text("\n".join([json.dumps(header), *lines[1:]]) + "\n")
    report = verify(load_export(export))
    assert not report.ok
    assert any(f"export format {EXPORT_FORMAT + 1} is newer than this auditel reads" in m for m in messages(report))
    proc = cli("verify", "--from-export", str(export), outbox=path)
    assert proc.returncode == 1 and "newer than this auditel reads" in proc.stdout


def test_a_format_1_export_still_verifies(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    build_outbox(path)
    export = tmp_path / "e.jsonl"
    assert cli("export", "--out", str(export), outbox=path).returncode == 0
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    lines[0]["format"] = 1
    export.write_text("".join(json.dumps(line) + "\n" for line in lines if line["type"] != "signing_key"))
    assert verify(load_export(export)).ok


def test_a_forged_watermark_head_at_a_signed_checkpoint_is_a_problem(tmp_path: Path, keyed: Path) -> None:
    """A `pruned` row through a checkpointed seq names a head; the signed checkpoint says what it was."""
    path = tmp_path / "outbox.db"
    build_outbox(path)
    sql(path, "UPDATE records SET state=1")
    assert Outbox(path).prune(shipped_only=True, reason="purge", limit=21) == 21  # through checkpoint 21
    assert verify_path(path).ok
    sql(path, ("UPDATE pruned SET head_hash=?", ("0" * 64,)))
    report = verify_path(path)
    assert any("head hash differs from the pruned watermark" in m for m in messages(report))


CHILD = r"""
import sys, auditel
auditel.configure(outbox=sys.argv[1])
def emit(n, start):
    for i in range(start, start + n):
        auditel.emit("auditel.action", attributes={"audit.action": "EXECUTE", "i": i})
emit(200, 0)
print("ready", flush=True)
sys.stdin.readline()          # the parent deletes outbox.db-wal and -shm now
emit(300, 200)
print("done", flush=True)
sys.stdin.readline()          # killed here (kill -9)
"""


def test_deleting_the_wal_of_a_running_process_then_kill_9_is_reported(tmp_path: Path) -> None:
    """Issue 13 item 14, as the operator did it: a running process, its -wal and -shm deleted, then
    kill -9. The acknowledged records that lived only in the deleted WAL are gone; verify must report
    the missing range as a problem (exit 1), not as notes."""
    path = tmp_path / "outbox.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_"))}
    env.update({"AUDITEL_CHECKPOINT_EVERY": "50", "AUDITEL_CHECKPOINT_INTERVAL_S": "1000000"})
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert child.stdout is not None and child.stdin is not None
        assert child.stdout.readline().strip() == "ready"
        for suffix in ("-wal", "-shm"):
            Path(str(path) + suffix).unlink(missing_ok=True)
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "done"
    finally:
        child.kill()  # SIGKILL
        child.wait(30)
    # What is left depends on when SQLite last copied the WAL into the file: part of the records, none of
    # this stream (nothing had been copied), or a file SQLite calls malformed (two WALs after the
    # deletion). Each must be a problem in verify's report, exit 1.
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        kept = conn.execute("SELECT count(*) FROM records WHERE event_name='auditel.action'").fetchone()[0]
        assert kept < 500  # acknowledged records were lost with the deleted WAL
    except sqlite3.DatabaseError:
        kept = None
    finally:
        conn.close()
    proc = cli("verify", str(path), outbox=path)
    assert proc.returncode == 1, proc.stdout
    if kept is None:
        assert "PROBLEM cannot read outbox: DatabaseError" in proc.stdout, proc.stdout
    else:  # a range of records missing, or the whole stream, against the checkpoint log beside the outbox
        assert "PROBLEM records missing: seq" in proc.stdout or "PROBLEM records missing: stream" in proc.stdout


def test_the_checkpoint_log_is_compacted_to_the_newest_checkpoint_of_each_stream(tmp_path: Path) -> None:
    """Bounded size: past its threshold the log keeps one line per stream, and still reveals loss."""
    path = tmp_path / "outbox.db"
    snapshot = tmp_path / "snapshot.db"

    def between(k: int) -> None:
        if k == 0:
            copy_outbox(path, snapshot)

    build_outbox(path, between=between)
    log = checkpoint_log.log_path(path)
    assert len(log.read_text().splitlines()) == 4
    assert checkpoint_log.compact(log)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["checkpoint"]["tree_size"] for line in lines] == [40]
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert verify_path(path).ok
    # appending past the threshold compacts
    statement = dict(lines[0]["checkpoint"], stream_id="other", tree_size=7)
    for _ in range(3):
        checkpoint_log.append(log, statement, "sig", compact_above=10)
    assert len(log.read_text().splitlines()) == 2
    for suffix in ("-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    shutil.copyfile(snapshot, path)
    proc = cli("verify", str(path), outbox=path)  # another process: this one still maps the old file
    assert proc.returncode == 1 and "records missing: seq 23..40 are absent" in proc.stdout, proc.stdout


APPENDER = r"""
import sys
from pathlib import Path
from auditel.integrity import checkpoint_log
name, log = sys.argv[1], Path(sys.argv[2])
for n in range(1, 301):
    statement = {"stream_id": name, "tree_size": n, "pad": "x" * 200}
    checkpoint_log.append(log, statement, "sig", compact_above=4000)
"""


def test_concurrent_appends_and_compactions_never_lose_a_streams_newest_checkpoint(tmp_path: Path) -> None:
    log = tmp_path / "o.db.checkpoints.jsonl"
    procs = [subprocess.Popen([sys.executable, "-c", APPENDER, f"s{k}", str(log)]) for k in range(4)]
    assert [p.wait(120) for p in procs] == [0, 0, 0, 0]
    newest: dict[str, int] = {}
    for line in log.read_text().splitlines():
        cp = json.loads(line)["checkpoint"]
        newest[cp["stream_id"]] = max(newest.get(cp["stream_id"], 0), cp["tree_size"])
    assert newest == {"s0": 300, "s1": 300, "s2": 300, "s3": 300}
    assert log.stat().st_size < 40_000 and not list(tmp_path.glob("*.tmp"))
