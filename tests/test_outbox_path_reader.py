"""One reader of the outbox path (``auditel.config.read.outbox_path``) for every reader of the trail.

Before, the read API and ``tail``/``query``/``report``/``ui`` took ``AUDITEL_OUTBOX`` as given while
``status``/``verify``/``export`` refused a value that cannot be a file path: the same bad value gave
a clear error in one command and "no outbox at ..." in the next.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import auditel
from auditel.config.read import outbox_path
from auditel.config.settings import ConfigError, default_outbox_path
from test_cli import run_cli


def test_explicit_then_environment_then_default(tmp_path: Path) -> None:
    env = {"AUDITEL_OUTBOX": str(tmp_path / "env.db"), "XDG_DATA_HOME": str(tmp_path / "xdg")}
    assert outbox_path(tmp_path / "mine.db", env) == tmp_path / "mine.db"
    assert outbox_path(None, env) == tmp_path / "env.db"
    assert outbox_path("  ", env) == tmp_path / "env.db"
    assert outbox_path(None, {"XDG_DATA_HOME": env["XDG_DATA_HOME"]}) == default_outbox_path(env)


@pytest.mark.parametrize("command", [("tail",), ("query", "--kind", "tool_call"), ("report", "--out", "r.html"), ("status",)])
def test_every_read_command_names_a_bad_outbox_variable(tmp_path: Path, command: tuple[str, ...]) -> None:
    proc = run_cli(*command, env={"AUDITEL_OUTBOX": str(tmp_path)})  # a directory
    assert proc.returncode == 2, proc.stderr
    assert f"AUDITEL_OUTBOX={str(tmp_path)!r} is not valid" in proc.stderr and "is a directory" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_read_api_names_a_bad_outbox_argument(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"outbox='http://example.com/x' is not valid: expected a file path"):
        next(auditel.query(outbox="http://example.com/x"))
