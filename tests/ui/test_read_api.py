"""auditel.read_all() / auditel.query(): plain dicts in `query --json`'s shape, filters, lazy, read-only,
and safe while another process records into the same outbox."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from itertools import islice
from pathlib import Path

import pytest

import auditel
from auditel.api.read import KNOWN_KINDS
from auditel.cli.times import parse_time


def _populate(outbox: Path) -> None:
    auditel.configure(outbox=str(outbox))
    auditel.set_identity(session_id="s-1")
    auditel.tool_call("search", phase="intent", call_id="c1", attributes={"x.n": 5})
    auditel.tool_call("search", phase="outcome", call_id="c1", outcome="failure", error=ValueError("x"))
    auditel.model_call("m1", provider="openai")
    auditel.set_identity(session_id="s-2")
    auditel.policy_decision("deny", policy_id="p", tool_name="send")
    auditel.shutdown()


def test_query_json_shape_and_filters(outbox_path: Path) -> None:
    _populate(outbox_path)
    everything = list(auditel.read_all(outbox=outbox_path))
    assert everything[0]["event_name"] == "auditel.stream.start" and len(everything) >= 7
    # the same dicts `auditel query --json` prints
    out = subprocess.run(
        [sys.executable, "-m", "auditel.cli", "query", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, "AUDITEL_OUTBOX": str(outbox_path)},
        check=True,
    ).stdout
    assert [json.loads(line) for line in out.splitlines()] == everything
    assert all("hash" in r and "_rid" not in r for r in everything)

    tools = list(auditel.query(kind="tool_call", outbox=outbox_path))
    assert [r["attributes"]["audit.phase"] for r in tools] == ["intent", "outcome"]
    assert [r["event_name"] for r in auditel.query(kind=["model_call", "policy_decision"], outbox=outbox_path)] == [
        "auditel.model_call",
        "auditel.policy_decision",
    ]
    assert len(list(auditel.query(session="s-2", kind="policy_decision", outbox=outbox_path))) == 1
    assert [r["attributes"]["session.id"] for r in auditel.query(session="s-1", outbox=outbox_path)] and all(
        r["attributes"]["session.id"] == "s-1" for r in auditel.query(session="s-1", outbox=outbox_path)
    )
    assert len(list(auditel.query(outcome="failure", outbox=outbox_path))) == 1
    assert len(list(auditel.query(where={"x.n": 5}, outbox=outbox_path))) == 1
    assert len(list(auditel.query(where={"x.n": "5"}, outbox=outbox_path))) == 1
    assert len(list(auditel.query(where=[("audit.policy.verdict", "deny")], outbox=outbox_path))) == 1
    assert list(auditel.query(since="1h", until=time.time_ns() + 10**9, outbox=outbox_path)) == everything
    assert list(auditel.query(until=dt.datetime(2000, 1, 1), outbox=outbox_path)) == []
    last = list(auditel.query(limit=2, outbox=outbox_path))
    assert last == everything[-2:]
    assert list(auditel.query(limit=0, outbox=outbox_path)) == []


def test_query_rejects_bad_input_at_the_call(outbox_path: Path) -> None:
    _populate(outbox_path)
    with pytest.raises(ValueError) as err:
        auditel.query(kind="nonsense", outbox=outbox_path)
    assert "nonsense" in str(err.value) and all(k in str(err.value) for k in KNOWN_KINDS)
    with pytest.raises(ValueError, match="since"):
        auditel.query(since="yesterday-ish", outbox=outbox_path)
    with pytest.raises(ValueError, match="limit"):
        auditel.query(limit=-1, outbox=outbox_path)
    missing = outbox_path.parent / "nope.db"
    with pytest.raises(FileNotFoundError):
        auditel.query(outbox=missing)
    assert not missing.exists()  # a reader never creates an outbox


def test_reading_never_writes(outbox_path: Path) -> None:
    _populate(outbox_path)
    before = {
        p.name: (p.stat().st_mtime_ns, p.stat().st_size)
        for p in outbox_path.parent.iterdir()
        if p.name.startswith("outbox.db")
    }
    os.chmod(outbox_path, 0o400)  # a read-only file still reads
    try:
        assert len(list(auditel.read_all(outbox=outbox_path))) > 5
    finally:
        os.chmod(outbox_path, 0o600)
    after = {
        p.name: (p.stat().st_mtime_ns, p.stat().st_size)
        for p in outbox_path.parent.iterdir()
        if p.name.startswith("outbox.db") and p.name in before
    }
    assert {k: v for k, v in after.items() if not k.endswith("-shm")} == {
        k: v for k, v in before.items() if not k.endswith("-shm")
    }


WRITER = """
import sys, time, auditel
auditel.configure(outbox=sys.argv[1])
print("ready", flush=True)
deadline = time.monotonic() + float(sys.argv[2])
n = 0
while time.monotonic() < deadline:
    auditel.tool_call("t", phase="intent", attributes={"n": n})
    n += 1
auditel.shutdown()
print(n, flush=True)
"""


def test_lazy_and_safe_while_another_process_records(outbox_path: Path) -> None:
    """A writer process commits as fast as it can while we page through the outbox lazily; neither
    blocks the other and every record read is whole and in order."""
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(outbox_path), "4"], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
    time.sleep(0.5)
    seen = 0
    rounds = 0
    while writer.poll() is None:
        it = auditel.read_all(outbox=outbox_path)
        first = list(islice(it, 3))  # lazy: stopping early reads no more
        assert first
        seqs = [r["attributes"]["audit.sequence.number"] for r in auditel.query(kind="tool_call", outbox=outbox_path)]
        assert seqs == sorted(seqs)
        seen = max(seen, len(seqs))
        rounds += 1
    written = int(writer.stdout.read().split()[-1])
    assert writer.returncode == 0 and rounds >= 2
    assert len(list(auditel.query(kind="tool_call", outbox=outbox_path))) == written


def test_parse_time_forms() -> None:
    now = 1_800_000_000 * 10**9
    assert parse_time("90s", now_ns=now) == now - 90 * 10**9
    assert parse_time("1w", now_ns=now) == now - 7 * 86400 * 10**9
    assert (
        parse_time("2026-01-31T12:00:00Z")
        == parse_time("2026-01-31T12:00:00+00:00")
        == parse_time(dt.datetime(2026, 1, 31, 12, tzinfo=dt.timezone.utc))
    )
    assert parse_time(5) == 5 and parse_time(1.5) == 1_500_000_000
    for bad in ("soon", "", True):
        with pytest.raises(ValueError, match="ISO-8601"):
            parse_time(bad)  # type: ignore[arg-type]
