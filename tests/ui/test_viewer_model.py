"""The viewer's session index and timeline layout over real outboxes (no browser)."""

from __future__ import annotations

import time
from pathlib import Path

import auditel
from auditel.store.outbox import Outbox
from auditel.ui.model import SessionIndex, build_timeline, session_records


def _session(sid: str, *, fail: bool = False) -> None:
    auditel.set_identity(session_id=sid)
    with auditel.audited("agent.run", attributes={"gen_ai.agent.name": f"agent-{sid}"}):
        auditel.model_call("m1", provider="openai", duration_ms=0.01)
        auditel.tool_call("search", phase="intent", call_id=f"{sid}-c1")
        time.sleep(0.002)
        auditel.file_access("/tmp/x", operation="read")
        auditel.tool_call("search", phase="outcome", call_id=f"{sid}-c1", outcome="failure" if fail else "success")
    auditel.policy_decision("deny", policy_id="p", tool_name="send")


def test_index_counts_filters_and_follows_new_records(outbox_path: Path) -> None:
    auditel.configure(outbox=str(outbox_path))
    for i in range(30):
        _session(f"s{i:02d}", fail=i % 10 == 0)
    auditel.flush(2.0)
    index = SessionIndex(outbox_path, first_chunk=40)  # small first chunk: the rest comes from index_older
    index.refresh()
    assert not index.complete and 0 < len(index.sessions) < 31
    while index.index_older(25):
        pass
    assert index.complete
    s = index.sessions["s05"]
    assert (s.model_calls, s.tool_calls, s.denials, s.failures, s.agent) == (1, 1, 1, 0, "agent-s05")
    assert index.select(outcome="failure")["total"] == 3
    assert index.select(tool="search", limit=5)["sessions"][0]["key"] == "s29"  # newest first
    assert index.select(text="agent-s07")["total"] == 1
    assert index.select(until_ns=1)["total"] == 0
    _session("late")
    auditel.flush(2.0)
    index.refresh()
    assert "late" in index.sessions
    auditel.shutdown()


def test_index_starts_over_when_counted_records_are_purged(outbox_path: Path) -> None:
    auditel.configure(outbox=str(outbox_path))
    for i in range(5):
        _session(f"p{i}")
    auditel.shutdown()
    index = SessionIndex(outbox_path)
    index.index_all()
    assert "p0" in index.sessions
    ob = Outbox(outbox_path)
    ob.prune(shipped_only=False, limit=12, reason="test")  # the oldest 12 records: session p0 and more
    ob.close()
    index.refresh()
    index.index_all()
    for sid in ("p0", "p1", "p2"):
        left = len(list(auditel.query(session=sid, outbox=outbox_path)))
        assert (index.sessions[sid].records if sid in index.sessions else 0) == left, sid


def test_timeline_pairs_intent_and_outcome_and_nests_by_time(outbox_path: Path) -> None:
    auditel.configure(outbox=str(outbox_path))
    _session("t1")
    auditel.shutdown()
    index = SessionIndex(outbox_path)
    index.index_all()
    records, truncated = session_records(outbox_path, index.sessions["t1"])
    assert not truncated
    rows = {r["kind"]: r for r in build_timeline(records)}
    tool = rows["tool_call"]
    assert len(tool["rids"]) == 2 and tool["label"] == "tool search → success"
    # the file read happened inside the tool call, which ran inside the agent run
    assert rows["file_access"]["depth"] == tool["depth"] + 1
    assert tool["depth"] >= 1 and rows["action"]["depth"] < tool["depth"]
    assert rows["policy_decision"]["status"] == "denied"
