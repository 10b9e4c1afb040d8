"""Issue 13 item 13: ``tail`` and ``query`` (and ``auditel.query``) on a file that is not an auditel
outbox say what is wrong with which file (exit 2), never a traceback."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import auditel
from auditel.store.trail import TrailUnusable


def _not_a_database(tmp_path: Path) -> Path:
    path = tmp_path / "garbage.db"
    path.write_bytes(os.urandom(4096))
    return path


def _another_apps_database(tmp_path: Path) -> Path:
    path = tmp_path / "other.db"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE invoices (id INTEGER)")
    con.commit()
    con.close()
    return path


@pytest.mark.parametrize("make", [_not_a_database, _another_apps_database])
@pytest.mark.parametrize("command", [["tail"], ["query"], ["query", "--json"], ["query", "--count"]])
def test_read_commands_name_the_unusable_file(tmp_path: Path, make: object, command: list[str]) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_"))}
    done = subprocess.run(
        [sys.executable, "-m", "auditel.cli", "--outbox", str(path), *command],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert str(path) in done.stderr and "not an auditel outbox" in done.stderr


def test_read_api_refuses_an_unusable_file_at_the_call(tmp_path: Path) -> None:
    with pytest.raises(TrailUnusable, match="not an auditel outbox"):
        auditel.query(outbox=_not_a_database(tmp_path))
