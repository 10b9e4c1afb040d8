"""The MCP Python SDK's native telemetry (client "MCP send tools/call X" and server "tools/call X"
spans, mcp>=2.3) -> tool-call records on both sides; with auditel's own MCP instrumentation on,
auditel's records only (one action, one record). Real client and server, in-process memory streams.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import auditel
from genai_support import telemetry
from spans.support import bridged, records

mcp = pytest.importorskip("mcp")


def call_add(fail: bool = False) -> Any:
    import anyio
    from mcp import Client
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("calc")

    @server.tool()
    def add(a: int, b: int) -> int:
        if fail:
            raise ValueError("no")
        return a + b

    async def main() -> Any:
        async with Client(server, mode="legacy") as client:
            return await client.call_tool("add", {"a": 1, "b": 2})

    return anyio.run(main)


def test_native_mcp_spans_give_client_and_server_records(outbox_path: Path) -> None:
    telemetry()
    auditel.configure(outbox=str(outbox_path))
    auditel.uninstrument()
    result = call_add()
    assert not result.is_error
    tools = bridged(outbox_path, "tool_call")
    sides = [(t["attributes"].get("audit.mcp.side"), t["attributes"]["audit.phase"]) for t in tools]
    assert sorted(sides) == [("client", "intent"), ("client", "outcome"), ("server", "intent"), ("server", "outcome")]
    assert {t["attributes"]["gen_ai.tool.name"] for t in tools} == {"add"}
    assert {t["attributes"]["audit.source"] for t in tools} == {"mcp-python-sdk"}
    assert len({t["trace_id"] for t in tools}) == 1  # the server's span continues the client's trace
    server_args = [t for t in tools if t["attributes"].get("audit.mcp.side") == "server"]
    assert all(
        t["attributes"]["audit.outcome"] == "success"
        for t in server_args
        if t["attributes"]["audit.phase"] == "outcome"
    )


def test_native_mcp_tool_error_is_a_failure(outbox_path: Path) -> None:
    telemetry()
    auditel.configure(outbox=str(outbox_path))
    auditel.uninstrument()
    assert call_add(fail=True).is_error
    server_out = [
        t
        for t in bridged(outbox_path, "tool_call")
        if t["attributes"].get("audit.mcp.side") == "server" and t["attributes"]["audit.phase"] == "outcome"
    ]
    assert [(t["attributes"]["audit.outcome"], t["attributes"]["error.type"]) for t in server_out] == [
        ("failure", "tool_error")
    ]


def test_auditel_mcp_instrumentation_and_native_spans_give_one_record_per_side(outbox_path: Path) -> None:
    telemetry()
    auditel.configure(outbox=str(outbox_path))
    auditel.instrument("mcp")
    try:
        assert not call_add().is_error
    finally:
        auditel.uninstrument()
    tools = records(outbox_path, "tool_call")
    assert bridged(outbox_path) == []
    assert len(tools) == 4, [(t["attributes"].get("audit.phase"), t["attributes"].get("audit.source")) for t in tools]
    assert auditel.status()["span_bridge"]["deduplicated"] >= 2


def test_native_spans_are_recorded_again_once_auditel_mcp_is_uninstrumented(outbox_path: Path) -> None:
    """The bridge keeps the instrumentor it asks, not its answer: after ``uninstrument`` (here, straight
    on the instrumentor) the SDK's native spans are the only source again and give records."""
    from auditel.instrumentation import get_instrumentor

    telemetry()
    auditel.configure(outbox=str(outbox_path))
    auditel.instrument("mcp")
    try:
        assert not call_add().is_error
        assert bridged(outbox_path) == []
    finally:
        get_instrumentor("auditel_mcp").uninstrument()
    assert not call_add().is_error
    sides = sorted((a.get("audit.mcp.side"), a["audit.phase"]) for a in (t["attributes"] for t in bridged(outbox_path)))
    assert sides == [("client", "intent"), ("client", "outcome"), ("server", "intent"), ("server", "outcome")]
