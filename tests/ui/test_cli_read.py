"""`auditel query` / `auditel tail` for people (issue 12, items 16 and 17), `auditel report`, `auditel ui`'s
server outside the browser: an unknown kind is an error naming the known kinds; an empty result says
so; lines fit 120 columns and say which process wrote them; -v shows the rest; --json is unchanged."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import auditel
from auditel.api.read import KNOWN_KINDS
from auditel.ui.server import serve

AUDITEL = [sys.executable, "-m", "auditel.cli"]


def cli(outbox: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_"))}
    env["AUDITEL_OUTBOX"] = str(outbox)
    return subprocess.run([*AUDITEL, *args], capture_output=True, text=True, env=env, timeout=120)


@pytest.fixture
def demo(outbox_path: Path) -> Path:
    done = cli(outbox_path, "demo")
    assert done.returncode == 0, done.stderr
    long_reason = (
        "the quarterly numbers are confidential and may not leave the finance team under any circumstances " * 3
    )
    auditel.configure(outbox=str(outbox_path))
    auditel.policy_decision("deny", policy_id="dlp", tool_name="upload", reason=long_reason)
    auditel.shutdown()
    return outbox_path


def test_unknown_kind_is_an_error_naming_the_known_kinds(demo: Path) -> None:
    done = cli(demo, "query", "--kind", "nonsense")
    assert done.returncode == 2
    assert "nonsense" in done.stderr and all(k in done.stderr for k in KNOWN_KINDS), done.stderr
    assert cli(demo, "query", "--kind", "tool_call").returncode == 0


def test_an_empty_result_says_so(demo: Path) -> None:
    done = cli(demo, "query", "--kind", "handoff")
    assert done.returncode == 0 and done.stdout == ""
    assert "no records match" in done.stderr
    as_json = cli(demo, "query", "--kind", "handoff", "--json")
    assert as_json.stdout == "" and "no records match" in as_json.stderr


def test_lines_fit_120_columns_and_name_the_writer(demo: Path) -> None:
    pids = {row[0] for row in sqlite3.connect(demo).execute("SELECT pid FROM streams")}
    for args in (("tail", "-n", "100"), ("query",)):
        out = cli(demo, *args).stdout.splitlines()
        assert len(out) >= 20
        assert all(len(line) <= 120 for line in out), max(out, key=len)
        assert all(any(f"pid {pid}" in line for pid in pids) for line in out), out[:3]
        assert not any("name=" in line or "id=" in line for line in out)  # no key=value dump repeating itself
    denial = [line for line in cli(demo, "query", "--kind", "policy_decision").stdout.splitlines() if "dlp" in line]
    assert denial and denial[0].endswith("…") and "deny" in denial[0]


def test_verbose_shows_every_attribute_uncut(demo: Path) -> None:
    out = cli(demo, "query", "--kind", "policy_decision", "--where", "audit.policy.id=dlp", "-v").stdout
    assert "audit.reason = the quarterly numbers" in out and "under any circumstances" * 1 in out
    assert out.count("under any circumstances") == 3
    assert "audit.policy.verdict = deny" in out and "session.id = " in out


def test_json_is_unchanged(demo: Path) -> None:
    lines = cli(demo, "query", "--json").stdout.splitlines()
    stored = [
        (data, rhash)
        for data, rhash in sqlite3.connect(demo).execute("SELECT data, record_hash FROM records ORDER BY rid")
    ]
    assert [json.loads(line) for line in lines] == [dict(json.loads(d), hash=h) for d, h in stored]
    tail = cli(demo, "tail", "-n", "3", "--json").stdout.splitlines()
    assert [json.loads(line) for line in tail] == [json.loads(line) for line in lines[-3:]]


def test_tail_follow_prints_new_records(demo: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_"))} | {
        "AUDITEL_OUTBOX": str(demo)
    }
    proc = subprocess.Popen(
        [*AUDITEL, "tail", "-n", "1", "-f", "--interval", "0.1", "--max-seconds", "8"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None and proc.stdout.readline()  # following now
    auditel.configure(outbox=str(demo))
    auditel.tool_call("followed_tool", phase="intent")
    auditel.shutdown()
    out, _ = proc.communicate(timeout=30)
    assert "followed_tool" in out and all(len(line) <= 120 for line in out.splitlines())


def test_report_file_is_private_and_escapes_script_end(demo: Path, tmp_path: Path) -> None:
    auditel.configure(outbox=str(demo))
    auditel.tool_call("x", phase="intent", attributes={"note": "</script><script>alert(1)</script><!--"})
    auditel.shutdown()
    out = tmp_path / "r.html"
    done = cli(demo, "report", "--out", str(out), "--since", "7d")
    assert done.returncode == 0, done.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    html = out.read_text()
    assert html.count("</script>") == 2 and "<!--" not in html  # the data block cannot be closed from inside
    assert "Content-Security-Policy" in html and "'unsafe-inline'" not in html
    assert cli(demo, "report", "--out", str(out), "--session", "nope").returncode == 2
    assert cli(demo, "report", "--out", str(out), "--since", "soon").returncode == 2


def test_server_answers_only_its_own_host_name(demo: Path) -> None:
    """A page on another site that rebinds its DNS name to 127.0.0.1 sends its own Host header."""
    server = serve(demo, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        ok = urllib.request.urlopen(f"http://127.0.0.1:{port}/api/sessions")
        assert ok.status == 200 and "content-security-policy" in {k.lower() for k in ok.headers}
        req = urllib.request.Request(f"http://127.0.0.1:{port}/api/sessions", headers={"Host": f"evil.example:{port}"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req)
        assert err.value.code == 421
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/session?key=nope")
        assert err.value.code == 404
    finally:
        server.shutdown()
        server.server_close()


def test_ui_and_report_need_an_outbox(tmp_path: Path) -> None:
    missing = tmp_path / "none.db"
    for args in (("ui", "--port", "0"), ("report", "--out", str(tmp_path / "r.html")), ("tail",), ("query",)):
        done = cli(missing, *args)
        assert done.returncode == 2 and "no outbox" in done.stderr, (args, done.stderr)
    assert not missing.exists()
