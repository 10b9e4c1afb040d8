"""Shared set-up for the viewer's tests: an outbox written by the real demo (plus one session holding
hostile text), ``auditel ui`` as a real subprocess on a loopback port, and Debian's chromium driven
headless through Playwright (never ``playwright install``)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

AUDITEL = [sys.executable, "-m", "auditel.cli"]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
HOSTILE = "<script>alert(1)</script>"
HOSTILE_IMG = '<img src=x onerror="alert(2)">'

HOSTILE_SCRIPT = f"""
import auditel
auditel.configure(agent_name={HOSTILE!r}, principal="user:mallory")
auditel.session_start()
auditel.tool_call({HOSTILE_IMG!r}, phase="intent", call_id="h1", attributes={{"note": {HOSTILE!r}}})
auditel.tool_call({HOSTILE_IMG!r}, phase="outcome", call_id="h1", outcome="failure", error=ValueError({HOSTILE!r}))
auditel.session_end(outcome="failure")
auditel.shutdown()
"""


def clean_env(outbox: Path, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_"))}
    env["AUDITEL_OUTBOX"] = str(outbox)
    env["XDG_DATA_HOME"] = str(home / "xdg")
    return env


def make_demo_outbox(directory: Path) -> Path:
    """The demo's session, then a second session (another process) whose agent name, tool name,
    attribute and error hold HTML and script text."""
    outbox = directory / "audit" / "outbox.db"
    env = clean_env(outbox, directory)
    subprocess.run([*AUDITEL, "demo"], env=env, check=True, capture_output=True, text=True, timeout=120)
    subprocess.run(
        [sys.executable, "-c", HOSTILE_SCRIPT],
        env=env | {"AUDITEL_ENABLED": "true"},
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return outbox


def copy_outbox(src: Path, dst_dir: Path) -> Path:
    dst = dst_dir / "audit" / "outbox.db"
    dst.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    return dst


def tamper(outbox: Path, *, seq: int, old: str, new: str) -> int:
    """Change one record's stored text the way an intruder with file access would; returns its rid."""
    conn = sqlite3.connect(outbox)
    try:
        rid, data = conn.execute(
            "SELECT rid, data FROM records WHERE seq=? AND event_name='auditel.model_call' ORDER BY rid LIMIT 1", (seq,)
        ).fetchone()
        assert old in data, data
        conn.execute("UPDATE records SET data=? WHERE rid=?", (data.replace(old, new), rid))
        conn.commit()
        return int(rid)
    finally:
        conn.close()


@contextmanager
def ui_server(outbox: Path, home: Path) -> Iterator[str]:
    proc = subprocess.Popen(
        [*AUDITEL, "ui", "--port", "0"],
        env=clean_env(outbox, home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert "http://127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        yield line.split()[2]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def require_chromium() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is needed (scripts/setup.sh installs it: apt-get install chromium)")


@contextmanager
def browser(*, offline: bool = False) -> Iterator[Any]:
    """A fresh headless chromium (own profile directory) and one page. ``offline``: every request
    that is not for a file:// URL is refused and remembered in ``page.blocked``."""
    require_chromium()
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="auditel-chromium-")
    try:
        with sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                args=CHROMIUM_ARGS,
                headless=True,
                viewport={"width": 1280, "height": 900},
                offline=offline,
            )
            try:
                page = ctx.new_page()
                page.dialogs = []  # type: ignore[attr-defined]
                page.errors = []  # type: ignore[attr-defined]
                page.blocked = []  # type: ignore[attr-defined]
                page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))  # type: ignore[attr-defined]
                page.on("pageerror", lambda e: page.errors.append(str(e)))  # type: ignore[attr-defined]
                if offline:

                    def refuse(route: Any) -> None:
                        if route.request.url.startswith("file://"):
                            route.continue_()
                        else:
                            page.blocked.append(route.request.url)  # type: ignore[attr-defined]
                            route.abort()

                    ctx.route("**/*", refuse)
                yield page
            finally:
                ctx.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def wait_ready(page: Any) -> None:
    page.wait_for_selector("body[data-ready='1']", timeout=20000)


def session_rows(page: Any) -> list[str]:
    return page.eval_on_selector_all("#sessions tbody tr[data-key]", "rows => rows.map(r => r.innerText)")


def wait_until(predicate: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(0.2)
