"""Instrumenting never imports a framework the application does not use (issue 12 item 5).

Each test runs a fresh interpreter (``sys.modules`` of the test process is full of frameworks):
after ``auditel.instrument()`` none of the frameworks is imported; importing one afterwards
gets it patched, and calling it records (the OpenAI SDK against the local stand-in server, a
LangChain tool in process).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fake_llm_server import REPLY_TEXT, FakeLLMServer
from genai_support import model_records

FRAMEWORKS = ["openai", "anthropic", "agents", "langchain_core", "langgraph", "mcp"]

SCRIPT = r"""
import json, os, sys
import auditel

auditel.configure()
done = auditel.instrument()
loaded = sorted(m for m in FRAMEWORKS if m in sys.modules)

import openai  # imported after instrument(): patched by the post-import hooks
client = openai.OpenAI(base_url=os.environ["FAKE_LLM_BASE_URL"], api_key="sk-test")
reply = client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])

from langchain_core.tools import tool

@tool
def add(a: int, b: int) -> int:
    "Add two numbers."
    return a + b

total = add.invoke({"a": 2, "b": 3})

import anthropic
from mcp.client.session import ClientSession
from agents.guardrail import InputGuardrail
patched = {
    "anthropic": hasattr(anthropic.resources.messages.Messages.__dict__["create"], "__wrapped__"),
    "mcp": hasattr(ClientSession.__dict__["call_tool"], "__wrapped__"),
    "agents": hasattr(InputGuardrail.__dict__["run"], "__wrapped__"),
}
auditel.shutdown()
print(json.dumps({"done": done, "loaded": loaded, "reply": reply.choices[0].message.content,
                  "total": total, "patched": patched}))
""".replace("FRAMEWORKS", repr(FRAMEWORKS))


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


def _env(server: FakeLLMServer, outbox: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_", "TRACELOOP_"))}
    env.update(FAKE_LLM_BASE_URL=server.openai_base_url, AUDITEL_OUTBOX=str(outbox))
    return env


def _tool_records(outbox: Path) -> list[dict[str, object]]:
    import sqlite3

    con = sqlite3.connect(f"file:{outbox}?mode=ro", uri=True)
    try:
        rows = con.execute("SELECT data FROM records WHERE event_name = 'auditel.tool_call' ORDER BY rid").fetchall()
    finally:
        con.close()
    return [json.loads(r[0]) for r in rows]


def test_instrument_imports_no_framework_and_patches_on_later_import(server: FakeLLMServer, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.db"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=_env(server, outbox), capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(out["done"]) >= {
        "auditel_openai",
        "auditel_anthropic",
        "auditel_mcp",
        "auditel_langchain",
        "auditel_openai_agents",
    }
    assert out["loaded"] == []  # instrument() imported none of them
    assert out["reply"] == REPLY_TEXT and out["total"] == 5
    assert out["patched"] == {"anthropic": True, "mcp": True, "agents": True}
    records = model_records(outbox)
    assert [r["attributes"]["gen_ai.request.model"] for r in records] == ["gpt-4o"]
    assert [r["attributes"]["audit.outcome"] for r in records] == ["success"]
    tools = _tool_records(outbox)
    assert tools and {r["attributes"]["gen_ai.tool.name"] for r in tools} == {"add"}


def test_auditel_run_imports_no_framework(server: FakeLLMServer, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.db"
    code = f"import sys, json; print(json.dumps(sorted(m for m in {FRAMEWORKS!r} if m in sys.modules)))"
    auditel_bin = Path(sys.executable).with_name("auditel")
    proc = subprocess.run(
        [str(auditel_bin), "run", "--", sys.executable, "-c", code],
        env=_env(server, outbox),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
