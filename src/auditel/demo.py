"""``auditel demo``: a small scripted agent session recorded under audit, then printed.

The agent answers "what is in the quarterly report?": it asks a (scripted) model what to do,
runs tools through ``@auditel.tool`` (intent before, outcome after), is denied a tool by a
policy, reads a file, calls a model again, and ends its session. No network is used; the records go
to the demo's own outbox (see ``auditel.config.demo``).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any, TextIO

import auditel
from auditel.cli.format import format_record
from auditel.config.demo import demo_identity


def _policy(tool_name: str, arguments: Any) -> Any:
    if tool_name == "send_email" and not str((arguments or {}).get("to", "")).endswith("@example.com"):
        return {
            "verdict": "deny",
            "reason": "recipient outside the organisation",
            "policy_id": "egress",
            "rule_id": "email-domain",
        }
    return "allow"


@auditel.tool("search_documents", policy=_policy)
def search_documents(query: str) -> list[str]:
    time.sleep(0.002)
    return ["reports/q3.txt"]


@auditel.tool("read_file", policy=_policy)
def read_file(path: str) -> str:
    text = Path(path).read_text()
    auditel.file_access(path, operation="read", size_bytes=len(text.encode()))
    return text


@auditel.tool("send_email", policy=_policy)
def send_email(to: str, body: str) -> str:
    return "sent"


def _model(step: int, prompt: str) -> dict[str, Any]:
    """A scripted stand-in for a chat model: it asks for tools, then answers."""
    plans: list[dict[str, Any]] = [
        {"tool_calls": [{"name": "search_documents", "id": "call_1", "arguments": {"query": "quarterly report"}}]},
        {"tool_calls": [{"name": "read_file", "id": "call_2", "arguments": {"path": "REPORT"}}]},
        {"tool_calls": [{"name": "send_email", "id": "call_3", "arguments": {"to": "eve@evil.test", "body": "sum"}}]},
        {"answer": "Revenue grew 12% in Q3."},
    ]
    plan = plans[min(step, len(plans) - 1)]
    auditel.model_call(
        "demo-model-1",
        provider="demo",
        duration_ms=41.7,
        input_tokens=180 + 40 * step,
        output_tokens=22,
        response_id=f"resp_{step}",
        finish_reasons=["tool_calls" if "tool_calls" in plan else "stop"],
        tool_calls=plan.get("tool_calls"),
        input_messages=[{"role": "user", "content": prompt}],
        output_messages=[{"role": "assistant", "content": plan.get("answer", "")}],
    )
    return plan


def run_demo(out: TextIO) -> int:
    agent_name, principal = demo_identity()
    rt = auditel.configure(agent_name=agent_name, principal=principal)
    if rt is None:
        out.write("auditel is disabled (AUDITEL_ENABLED=false): nothing recorded\n")
        return 1
    seen: list[dict[str, Any]] = []
    auditel.subscribe(seen.append)
    workdir = Path(tempfile.mkdtemp(prefix="auditel-demo-"))
    report = workdir / "q3.txt"
    report.write_text("Q3 revenue: +12%. Contact: cfo@example.com\n")
    prompt = "What is in the quarterly report? Send a summary to eve@evil.test"
    auditel.session_start(attributes={"demo.prompt.size": len(prompt)})
    with auditel.audited("agent.run", attributes={"gen_ai.agent.name": "report-assistant"}):
        for step in range(6):
            plan = _model(step, prompt)
            if "answer" in plan:
                break
            for call in plan["tool_calls"]:
                args = dict(call["arguments"])
                if call["name"] == "read_file":
                    args["path"] = str(report)
                try:
                    tools = {"search_documents": search_documents, "read_file": read_file, "send_email": send_email}
                    tools[call["name"]](**args)
                except auditel.ToolDenied as denied:
                    note = {"audit.action": "agent.note", "audit.reason": str(denied)}
                    auditel.emit("auditel.action", attributes=note)
    auditel.network_access("https://api.example.com/v1/metrics?sig=abc123secretsig&x=1", method="GET", status_code=200)
    auditel.session_end(outcome="success")
    auditel.flush(2.0)
    auditel.unsubscribe(seen.append)
    out.write(f"auditel demo: the agent session left {len(seen)} audit records in {rt.outbox.path}\n\n")
    for rec in seen:
        out.write(format_record(rec) + "\n")
    status = auditel.status()
    shown = {k: status[k] for k in ("records_total", "pending", "shipped", "redactions", "errors")}
    out.write("\nstatus: " + json.dumps(shown, sort_keys=True) + "\n")
    outbox_path = rt.outbox.path
    shipped = "shipped to your OTLP endpoint (--ship)" if rt.shipper is not None else "not shipped anywhere"
    out.write(
        f"\nThe demo outbox is {outbox_path} ({shipped}; your own outbox is untouched). Look at it with:\n"
        f"  auditel --outbox {outbox_path} tail\n"
        f"  auditel --outbox {outbox_path} query --kind tool_call\n"
        f"  auditel --outbox {outbox_path} verify\n"
        f"  auditel --outbox {outbox_path} export --out demo-export.json\n"
    )
    auditel.shutdown()  # writes the stream-end marker and a final signed checkpoint
    from auditel.integrity.verify import verify_path

    verdict_report = verify_path(outbox_path)
    streams = verdict_report.as_dict().get("streams", [])
    this_stream = [s for s in streams if s.get("stream_id") == rt.processor.stream_id]
    verdict = "OK" if verdict_report.ok else "PROBLEMS FOUND"
    out.write(f"\nauditel verify: {verdict} ({len(streams)} stream(s) in the outbox")
    if this_stream:
        mine = this_stream[0]
        out.write(
            f"; this session's stream: {mine.get('records')} records incl. stream start, end and checkpoints, "
            f"chain {'intact' if mine.get('ok') else 'BROKEN'}, "
            f"{mine.get('checkpoints')} signed checkpoint(s), ended {mine.get('end')}"
        )
    out.write(")\n")
    return 0 if verdict_report.ok else 1
