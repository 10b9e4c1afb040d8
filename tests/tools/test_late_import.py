"""Instrumenting before the frameworks are imported (the usual order with ``opentelemetry-instrument`` or
``auditel.instrument()`` at start-up): the wrappers are applied by post-import hooks when the real
frameworks are imported later, and ``uninstrument()`` before that import leaves them unpatched. Each case
runs in a fresh interpreter, so nothing was imported before ``instrument()``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from .conftest import read_outbox

_TARGETS = """
from mcp.client.session import ClientSession
from mcp.server.mcpserver.server import MCPServer
from agents.run import AgentRunner
from agents.guardrail import InputGuardrail
from langgraph.pregel.main import Pregel
TARGETS = {
    "ClientSession.call_tool": ClientSession.__dict__["call_tool"],
    "MCPServer.call_tool": MCPServer.__dict__["call_tool"],
    "AgentRunner.run": AgentRunner.__dict__["run"],
    "InputGuardrail.run": InputGuardrail.__dict__["run"],
    "Pregel.stream": Pregel.__dict__["stream"],
}
"""

_MCP_CALL = """
import anyio
from mcp import Client
from mcp_server_app import build_server

async def call():
    async with Client(build_server(), mode="legacy") as client:
        return (await client.call_tool("add", {"a": 2, "b": 3})).structured_content

result = anyio.run(call)
"""


def _run(tmp_path: Path, body: str) -> dict[str, Any]:
    script = "import json, sys\nimport auditel\n" + f"auditel.configure(outbox={str(tmp_path / 'outbox.db')!r})\n" + body
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          cwd=str(Path(__file__).parent))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_hooks_wrap_frameworks_imported_after_instrument(tmp_path: Path) -> None:
    out = _run(tmp_path, textwrap.dedent("""
        done = auditel.instrument("mcp", "langchain", "openai_agents")
        before = [m for m in ("mcp", "agents", "langgraph") if m in sys.modules]
    """) + _TARGETS + _MCP_CALL + textwrap.dedent("""
        wrapped = sorted(n for n, f in TARGETS.items() if getattr(f, "_self_auditel", False))
        print(json.dumps({"done": done, "before": before, "wrapped": wrapped, "result": result,
                          "errors": auditel.status()["errors"]}))
    """))
    assert out["done"] == ["auditel_mcp", "auditel_langchain", "auditel_openai_agents"]
    assert out["before"] == []  # so only the post-import hooks could have wrapped them
    assert out["wrapped"] == ["AgentRunner.run", "ClientSession.call_tool", "InputGuardrail.run", "MCPServer.call_tool", "Pregel.stream"]
    assert out["result"] == {"result": 5} and out["errors"] == {}
    calls = [r for r in read_outbox(tmp_path / "outbox.db") if r["event_name"] == "auditel.tool_call"]
    assert len(calls) == 4  # client and server side, intent and outcome


def test_uninstrument_before_import_revokes_the_hooks(tmp_path: Path) -> None:
    out = _run(tmp_path, textwrap.dedent("""
        auditel.instrument("mcp", "langchain", "openai_agents")
        before = [m for m in ("mcp", "agents", "langgraph") if m in sys.modules]
        undone = auditel.uninstrument()
    """) + _TARGETS + _MCP_CALL + textwrap.dedent("""
        wrapped = sorted(n for n, f in TARGETS.items() if hasattr(f, "__wrapped__"))
        print(json.dumps({"undone": sorted(undone), "before": before, "wrapped": wrapped, "result": result,
                          "errors": auditel.status()["errors"]}))
    """))
    assert out["undone"] == ["auditel_langchain", "auditel_mcp", "auditel_openai_agents"]
    assert out["before"] == []
    assert out["wrapped"] == []
    assert out["result"] == {"result": 5} and out["errors"] == {}
    assert [r for r in read_outbox(tmp_path / "outbox.db") if r["event_name"] == "auditel.tool_call"] == []


@pytest.mark.parametrize("missing", ["agents", "mcp", "langchain_core"])
def test_a_missing_framework_is_skipped_silently(tmp_path: Path, missing: str) -> None:
    # A package cannot be uninstalled for one test, so it is hidden the standard way: None in
    # sys.modules makes importlib report it absent and `import` fail with ModuleNotFoundError.
    out = _run(tmp_path, textwrap.dedent(f"""
        sys.modules[{missing!r}] = None
        all_done = auditel.instrument()
        named = auditel.instrument({ {"agents": "openai_agents", "mcp": "mcp", "langchain_core": "langchain"}[missing]!r})
        undone = auditel.uninstrument()
        print(json.dumps({{"all": all_done, "named": named, "undone": sorted(undone), "errors": auditel.status()["errors"]}}))
    """))
    expected_missing = {"agents": "auditel_openai_agents", "mcp": "auditel_mcp", "langchain_core": "auditel_langchain"}[missing]
    assert expected_missing not in out["all"]
    assert {"auditel_mcp", "auditel_langchain", "auditel_openai_agents"} - {expected_missing} <= set(out["all"])
    assert out["named"] == []
    assert sorted(out["all"]) == out["undone"]
    assert out["errors"] == {}
