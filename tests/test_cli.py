"""The auditel command line against real outbox files (run as subprocesses, as users run it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import auditel
from auditel.record import schema as S

AUDITEL = [sys.executable, "-m", "auditel.cli"]


def run_cli(*args: str, outbox: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_"))}
    if outbox is not None:
        full_env["AUDITEL_OUTBOX"] = str(outbox)
    full_env.update(env or {})
    return subprocess.run([*AUDITEL, *args], capture_output=True, text=True, env=full_env, timeout=timeout)


def _populate(outbox: Path) -> None:
    auditel.configure(outbox=str(outbox))
    auditel.tool_call("search", phase="intent", call_id="c1")
    auditel.tool_call("search", phase="outcome", call_id="c1", outcome="failure", error=ValueError("x"))
    auditel.model_call("m1", provider="openai")
    auditel.policy_decision("deny", policy_id="p", tool_name="send")
    auditel.shutdown()


def test_status_json_has_the_same_keys_as_the_api(outbox_path: Path) -> None:
    _populate(outbox_path)
    api_keys = set(auditel.configure(outbox=str(outbox_path)).status())
    auditel.shutdown()
    proc = run_cli("status", "--json", outbox=outbox_path)
    assert proc.returncode == 0, proc.stderr
    cli = json.loads(proc.stdout)
    assert set(cli) == api_keys
    assert cli["records_total"] >= 6 and cli["pending"] == cli["records_total"]
    human = run_cli("status", outbox=outbox_path)
    assert human.returncode == 0 and "pending" in human.stdout


def test_status_without_outbox_is_a_clear_error(tmp_path: Path) -> None:
    proc = run_cli("status", outbox=tmp_path / "missing.db")
    assert proc.returncode == 2 and "no outbox" in proc.stderr


def test_bad_configuration_is_reported_by_the_cli(outbox_path: Path) -> None:
    _populate(outbox_path)
    proc = run_cli("status", outbox=outbox_path, env={"AUDITEL_DURABILITY": "turbo"})
    assert proc.returncode == 2 and "AUDITEL_DURABILITY='turbo'" in proc.stderr


def test_tail_prints_recent_records(outbox_path: Path) -> None:
    _populate(outbox_path)
    proc = run_cli("tail", "-n", "3", outbox=outbox_path)
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    # the stream ends with its end marker and the final checkpoint that covers it
    assert len(lines) == 3 and "policy_decision" in lines[0] and "stream.end" in lines[1] and "checkpoint" in lines[2]
    as_json = run_cli("tail", "-n", "4", "--json", outbox=outbox_path)
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert [r["event_name"] for r in records] == [S.EV_MODEL_CALL, S.EV_POLICY_DECISION, S.EV_STREAM_END, S.EV_CHECKPOINT]
    assert all(len(r["hash"]) == 64 for r in records)


def test_tail_follow_shows_new_records(outbox_path: Path) -> None:
    _populate(outbox_path)
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_"))}
    full_env["AUDITEL_OUTBOX"] = str(outbox_path)
    proc = subprocess.Popen([*AUDITEL, "tail", "-n", "1", "-f", "--interval", "0.05", "--max-seconds", "5"],
                            stdout=subprocess.PIPE, text=True, env=full_env)
    assert proc.stdout is not None and proc.stdout.readline()  # it is following now (a fixed sleep raced its start-up)
    auditel.configure(outbox=str(outbox_path))
    auditel.file_access("/srv/new-file", operation="write")
    auditel.shutdown()
    out, _ = proc.communicate(timeout=30)
    assert "/srv/new-file" in out


def test_query_filters(outbox_path: Path) -> None:
    _populate(outbox_path)
    proc = run_cli("query", "--kind", "tool_call", "--json", outbox=outbox_path)
    recs = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["attributes"][S.A_PHASE] for r in recs] == ["intent", "outcome"]
    assert run_cli("query", "--outcome", "failure", "--count", outbox=outbox_path).stdout.strip() == "1"
    assert run_cli("query", "--where", "gen_ai.provider.name=openai", "--count", outbox=outbox_path).stdout.strip() == "1"
    assert run_cli("query", "--where", "audit.policy.verdict=deny", "--count", outbox=outbox_path).stdout.strip() == "1"
    assert run_cli("query", "--since", "1h", "--count", outbox=outbox_path).stdout.strip() == str(len(_all(outbox_path)))
    assert run_cli("query", "--until", "1h", "--count", outbox=outbox_path).stdout.strip() == "0"
    bad = run_cli("query", "--since", "yesterday-ish", outbox=outbox_path)
    assert bad.returncode != 0 and "--since" in bad.stderr


def _all(outbox: Path) -> list[Any]:
    from conftest import read_records

    return read_records(outbox)


def test_purge_removes_only_shipped_unless_told(outbox_path: Path) -> None:
    import sqlite3

    _populate(outbox_path)
    conn = sqlite3.connect(outbox_path)
    conn.execute("UPDATE records SET time_ns = time_ns - 40 * 86400 * 1000000000")
    conn.execute("UPDATE records SET state=1 WHERE rid <= 3")
    conn.commit()
    proc = run_cli("purge", "--older-than", "30d", outbox=outbox_path)
    assert proc.returncode == 0 and "purged 3 records" in proc.stdout
    refused = run_cli("purge", "--older-than", "30d", "--include-unshipped", outbox=outbox_path)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == len(_all(outbox_path)) > 0
    forced = run_cli("purge", "--older-than", "30d", "--include-unshipped", "--yes", outbox=outbox_path)
    assert forced.returncode == 0
    assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == 0
    reasons = {r for (r,) in conn.execute("SELECT reason FROM pruned")}
    assert reasons == {"purge"}


def test_demo_records_a_realistic_session(tmp_path: Path) -> None:
    outbox = tmp_path / "demo.db"
    proc = run_cli("demo", outbox=outbox)
    assert proc.returncode == 0, proc.stderr
    from conftest import user_records

    recs = user_records(outbox)
    kinds = [r["event_name"] for r in recs]
    for needed in (S.EV_MODEL_CALL, S.EV_TOOL_CALL, S.EV_POLICY_DECISION, S.EV_FILE_ACCESS, S.EV_SESSION_START, S.EV_SESSION_END):
        assert needed in kinds
    denials = [r for r in recs if r["attributes"].get(S.A_POLICY_VERDICT) == "deny"]
    assert len(denials) == 1
    phases = [r["attributes"].get(S.A_PHASE) for r in recs if r["event_name"] == S.EV_TOOL_CALL]
    assert phases.count("intent") == phases.count("outcome") == 3
    assert "policy_decision" in proc.stdout and "audit records" in proc.stdout and "auditel verify: OK" in proc.stdout
