"""Issue 13 item 6: start-up failures never raise into the host on the automatic path (one clear
stderr line instead), and a code-first configure() raises ConfigError naming the path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import auditel

HOST = "import auditel\nprint('record', auditel.tool_call('x'))\nprint('host-ok')\n"


def _broken_outbox_dir(tmp_path: Path) -> Path:
    """A real start-up failure that is not a ConfigError today: the digest key is a directory."""
    d = tmp_path / "audit"
    d.mkdir(mode=0o700)
    (d / "digest.key").mkdir()
    return d / "outbox.db"


def test_auto_configure_never_raises_and_says_auditing_is_off(tmp_path: Path) -> None:
    outbox = _broken_outbox_dir(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_"))}
    env.update(AUDITEL_ENABLED="true", AUDITEL_OUTBOX=str(outbox))
    proc = subprocess.run([sys.executable, "-c", HOST], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["record None", "host-ok"]
    lines = [ln for ln in proc.stderr.splitlines() if "NOT running" in ln]
    assert len(lines) == 1, proc.stderr
    assert "AUDITEL_ENABLED=true" in lines[0] and str(outbox.parent) in lines[0]  # names the file at fault


def test_code_first_configure_raises_config_error_naming_the_path(tmp_path: Path) -> None:
    outbox = _broken_outbox_dir(tmp_path)
    with pytest.raises(auditel.ConfigError) as caught:
        auditel.configure(outbox=str(outbox))
    assert str(outbox) in str(caught.value) or str(outbox.parent) in str(caught.value)


def test_auto_configure_refuses_a_typo_in_auditel_enabled_visibly(tmp_path: Path) -> None:
    """``AUDITEL_ENABLED=ture`` asked for auditing: the automatic start (a plain ``import auditel``
    and a first record, no ``auditel run``) says on stderr that auditing is NOT running and why,
    instead of treating the typo as "off"."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_"))}
    env.update(AUDITEL_ENABLED="ture", AUDITEL_OUTBOX=str(tmp_path / "audit" / "outbox.db"))
    proc = subprocess.run([sys.executable, "-c", HOST], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["record None", "host-ok"]
    lines = [ln for ln in proc.stderr.splitlines() if "NOT running" in ln]
    assert len(lines) == 1 and "AUDITEL_ENABLED" in lines[0] and "ture" in lines[0], proc.stderr
