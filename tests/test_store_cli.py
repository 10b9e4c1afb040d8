"""The outbox as the CLI sees it: clear errors on unusable files, counters any process can read,
read-only commands that need only the path, the demo's own outbox (issues 12 items 11, 14, 15;
13 item 13; 11: SQL only under store/)."""

from __future__ import annotations

import http.server
import json
import os
import re
import sqlite3
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import auditel
from auditel.store.outbox import SCHEMA_VERSION, Outbox, OutboxError
from test_cli import _populate, run_cli

SRC = Path(__file__).resolve().parent.parent / "src" / "auditel"


def _no_traceback(proc: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in proc.stderr, proc.stderr


# --- unusable outbox files ----------------------------------------------------------------------
def test_status_on_a_file_that_is_not_a_database_says_so(tmp_path: Path) -> None:
    bad = tmp_path / "outbox.db"
    bad.write_bytes(os.urandom(8192))
    os.chmod(bad, 0o600)
    for command in ("status",):  # tail and query read through store.trail (helper "viewer")
        proc = run_cli(command, outbox=bad)
        assert proc.returncode == 2, (command, proc.stdout, proc.stderr)
        _no_traceback(proc)
        assert str(bad) in proc.stderr and "not an auditel outbox" in proc.stderr


def test_status_on_a_newer_schema_says_which_versions(outbox_path: Path) -> None:
    _populate(outbox_path)
    conn = sqlite3.connect(outbox_path)
    conn.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    proc = run_cli("status", outbox=outbox_path)
    assert proc.returncode == 2
    _no_traceback(proc)
    assert f"{outbox_path}: schema 99 is newer than this auditel supports ({SCHEMA_VERSION})" in proc.stderr


def test_another_apps_sqlite_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    other = tmp_path / "app.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(OutboxError, match="not an auditel outbox"):
        Outbox(other)
    conn = sqlite3.connect(other)
    assert {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")} == {"users"}
    conn.close()


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB filesystem (tmpfs; root only, skipped with the reason otherwise)."""
    mnt = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_migration_failing_on_a_full_disk_reports_the_real_error(small_fs: Path) -> None:
    """Old code reported "cannot rollback - no transaction is active" instead of the full disk."""
    path = small_fs / "outbox.db"
    box = Outbox(path)
    conn = box.connect()
    # a schema-3 outbox with shipped rows, so that migrations 4 (a new index) and 5 need new pages
    conn.execute("BEGIN")
    for n in range(1500):
        conn.execute("INSERT INTO records(record_id, stream_id, seq, time_ns, event_name, data, state)"
                     " VALUES (?,?,?,?,?,?,1)", (f"r{n}", "s", n, n, "auditel.custom", "x" * 20))
    conn.execute("COMMIT")
    conn.execute("DROP TABLE IF EXISTS counters")
    conn.execute("DROP INDEX records_done")
    conn.execute("CREATE INDEX records_state_rid ON records(state, rid)")
    conn.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    box.close()
    fd = os.open(small_fs / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    with pytest.raises(OutboxError) as info:
        Outbox(path)
    message = str(info.value)
    assert str(path) in message and "cannot rollback" not in message
    assert "full" in message or "disk" in message, message


# --- counters persisted in the outbox -----------------------------------------------------------
def test_cli_status_shows_counters_and_the_last_delivery_error_of_other_processes(
    outbox_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Old code kept them per process: `auditel status` showed empty redactions and no error."""
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there: every send is refused
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    auditel.configure(outbox=str(outbox_path))
    auditel.network_access("https://api.example.com/x?sig=abc123secretsig&x=1", method="GET", status_code=200)
    auditel.flush(1.0)
    auditel.shutdown(2.0)
    proc = run_cli("status", "--json", outbox=outbox_path)
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    assert status["redactions"].get("signed_url", 0) >= 1
    assert status["recorded"] >= 1
    assert status["last_ship_error"], status
    human = run_cli("status", outbox=outbox_path)
    assert "last delivery error" in human.stdout and "signed_url=" in human.stdout


def test_old_outbox_without_the_counters_table_is_migrated_and_readable(outbox_path: Path) -> None:
    _populate(outbox_path)
    conn = sqlite3.connect(outbox_path)
    conn.execute("DROP TABLE counters")
    conn.execute("UPDATE meta SET value='4' WHERE key='schema_version'")
    conn.commit()
    conn.close()
    proc = run_cli("status", "--json", outbox=outbox_path)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["records_total"] > 0


# --- read-only commands need only the path ------------------------------------------------------
def test_read_only_commands_ignore_a_bad_write_side_setting(outbox_path: Path, tmp_path: Path) -> None:
    _populate(outbox_path)
    env = {"AUDITEL_DURABILITY": "banana", "AUDITEL_ON_FULL": "nope"}
    for args in (("status",), ("tail",), ("query", "--kind", "tool_call"), ("verify",),
                 ("export", "--out", str(tmp_path / "e.json"))):
        proc = run_cli(*args, outbox=outbox_path, env=env)
        assert proc.returncode == 0, (args, proc.stderr)


def test_a_bad_outbox_path_still_fails_clearly(tmp_path: Path) -> None:
    proc = run_cli("status", env={"AUDITEL_OUTBOX": "http://example.com/x"})
    assert proc.returncode == 2 and "AUDITEL_OUTBOX" in proc.stderr


# --- the demo's own outbox ----------------------------------------------------------------------
class _Counting(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        type(self).hits += 1
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_demo_never_touches_the_real_outbox_nor_ships(tmp_path: Path) -> None:
    """Old code wrote the fictional session into AUDITEL_OUTBOX and shipped it to the backend."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        real = tmp_path / "real" / "outbox.db"
        xdg = tmp_path / "xdg"
        proc = run_cli("demo", outbox=real, env={
            "XDG_DATA_HOME": str(xdg),
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{server.server_address[1]}",
        })
    finally:
        server.shutdown()
    assert proc.returncode == 0, proc.stderr
    assert not real.exists()
    demo = xdg / "auditel" / "demo" / "outbox.db"
    assert demo.exists()
    assert _Counting.hits == 0
    assert f"The demo outbox is {demo}" in proc.stdout and f"auditel --outbox {demo} tail" in proc.stdout
    assert proc.stdout.rstrip().splitlines()[-1].startswith("auditel verify: OK")


# --- SQL lives under store/ only --------------------------------------------------------------
def test_no_sql_in_the_store_helpers_cli_commands_or_runtime() -> None:
    sql = re.compile(r"\b(SELECT|INSERT|UPDATE|DELETE)\b")
    for rel in ("cli/status_cmd.py", "cli/dead_letters_cmd.py", "cli/purge_cmd.py", "cli/demo_cmd.py",
                "cli/_common.py", "runtime.py", "demo.py", "counters.py"):
        text = (SRC / rel).read_text()
        assert not sql.search(text), (rel, sql.search(text))
