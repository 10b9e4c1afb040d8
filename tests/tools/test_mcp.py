"""MCP instrumentation against the real ``mcp`` SDK: in-process (JSON-RPC over memory streams,
and the direct dispatcher), a stdio server subprocess, and a streamable-HTTP server subprocess
on a free 127.0.0.1 port. No network beyond loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import anyio
import httpx2
import mcp_types as types
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.server import Server
from opentelemetry import trace

import auditel
from auditel.instrumentation import mcp as mcp_inst

from .conftest import Audit, read_outbox
from .mcp_server_app import build_server

APP = Path(__file__).with_name("mcp_server_app.py")


@pytest.fixture
def instrumented(audit: Audit) -> Any:
    auditel.instrument("mcp")
    yield audit
    auditel.uninstrument("mcp")


async def _session(client: Client) -> list[Any]:
    out: list[Any] = [await client.list_tools()]
    out.append(await client.call_tool("add", {"a": 2, "b": 3}))
    out.append(await client.call_tool("explode", {"reason": "secret-reason"}))
    out.append(await client.call_tool("nope", {}))
    return out


def _run(server: Any, mode: str) -> list[Any]:
    async def main() -> list[Any]:
        async with Client(server, mode=mode) as client:
            return await _session(client)

    return anyio.run(main)


def _pairs(records: list[dict[str, Any]], side: str) -> dict[str, dict[str, dict[str, Any]]]:
    """tool name -> {"intent": record, "outcome": record} for one side (client/server)."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in records:
        a = r["attributes"]
        if r["event_name"] == "auditel.tool_call" and a.get("audit.mcp.side") == side:
            out.setdefault(a["gen_ai.tool.name"], {})[a["audit.phase"]] = r
    return out


@pytest.mark.parametrize("mode", ["legacy", "auto"])  # legacy: JSON-RPC over memory streams; auto: direct dispatcher
def test_in_memory_intent_and_outcome_both_sides(instrumented: Audit, spans: Any, mode: str) -> None:
    results = _run(build_server(), mode)
    assert results[1].structured_content == {"result": 5}
    records = instrumented.records()
    for side in ("client", "server"):
        pairs = _pairs(records, side)
        assert set(pairs) == {"add", "explode", "nope"}
        for name, pair in pairs.items():
            intent, outcome = pair["intent"]["attributes"], pair["outcome"]["attributes"]
            assert intent["audit.correlation.id"] == outcome["audit.correlation.id"]
            assert intent["audit.arguments.digest"].startswith("hmac-sha256:")
            assert "gen_ai.tool.call.arguments" not in intent  # private by default
            assert pair["intent"]["time_unix_nano"] <= pair["outcome"]["time_unix_nano"]
        assert pairs["add"]["outcome"]["attributes"]["audit.outcome"] == "success"
        assert pairs["add"]["outcome"]["attributes"]["audit.result.size"] > 0
        for bad in ("explode", "nope"):
            assert pairs[bad]["outcome"]["attributes"]["audit.outcome"] == "failure"
    server = _pairs(records, "server")
    assert server["explode"]["outcome"]["attributes"]["error.type"] == "ValueError"
    assert server["nope"]["outcome"]["attributes"]["error.type"] == "ToolError"
    assert "secret-reason" not in json.dumps(records)
    # client intent is written before the server intent (the request had not left yet)
    seqs = {(r["attributes"].get("audit.mcp.side"), r["attributes"].get("gen_ai.tool.name"), r["attributes"].get("audit.phase")):
            r["attributes"]["audit.sequence.number"] for r in records if r["event_name"] == "auditel.tool_call"}
    assert seqs[("client", "add", "intent")] < seqs[("server", "add", "intent")] < seqs[("server", "add", "outcome")] \
        < seqs[("client", "add", "outcome")]
    # discovery
    (disc,) = instrumented.records("auditel.tool_discovery")
    assert disc["attributes"]["audit.tools.names"] == ["add", "explode", "hang"]
    assert disc["attributes"]["audit.target.id"] == "calc"

    # trace context: the server span is a child of the client span, one span per side per call
    finished = spans.get_finished_spans()
    calls = [s for s in finished if s.attributes.get("mcp.method.name") == "tools/call" and s.attributes.get("gen_ai.tool.name") == "add"]
    client_span = next(s for s in calls if s.kind == trace.SpanKind.CLIENT)
    server_span = next(s for s in calls if s.kind == trace.SpanKind.SERVER)
    assert len(calls) == 2, [s.name for s in calls]  # the SDK's spans enriched, never duplicated
    assert server_span.parent is not None and server_span.parent.span_id == client_span.context.span_id
    assert server_span.context.trace_id == client_span.context.trace_id
    # records sit inside those spans
    client_intent = _pairs(records, "client")["add"]["intent"]
    server_intent = _pairs(records, "server")["add"]["intent"]
    assert client_intent["span_id"] == format(client_span.context.span_id, "016x")
    assert server_intent["span_id"] == format(server_span.context.span_id, "016x")
    assert server_intent["trace_id"] == format(client_span.context.trace_id, "032x")
    assert client_span.attributes["audit.correlation.id"] == client_intent["attributes"]["audit.correlation.id"]
    explode_server = next(s for s in finished if s.kind == trace.SpanKind.SERVER and s.attributes.get("gen_ai.tool.name") == "explode")
    assert explode_server.status.status_code == trace.StatusCode.ERROR


def test_instrumented_client_returns_exactly_what_uninstrumented_returns(audit: Audit) -> None:
    plain = _run(build_server(), "legacy")
    auditel.instrument("mcp")
    try:
        traced = _run(build_server(), "legacy")
        direct_plain = None
    finally:
        auditel.uninstrument("mcp")
    direct_plain = _run(build_server(), "auto")
    auditel.instrument("mcp")
    try:
        direct_traced = _run(build_server(), "auto")
    finally:
        auditel.uninstrument("mcp")
    for a, b in ((plain, traced), (direct_plain, direct_traced)):
        assert [type(x) for x in a] == [type(x) for x in b]
        assert [x.model_dump() for x in a] == [x.model_dump() for x in b]
    assert len(audit.tool_calls()) == 2 * 2 * 2 * 3  # 2 runs x 2 sides x intent+outcome x 3 calls


def test_exceptions_pass_through_and_are_recorded(instrumented: Audit) -> None:
    class Boom(RuntimeError):
        pass

    async def on_call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        raise Boom("internal")

    server = Server("lowlevel", on_call_tool=on_call_tool)

    async def main() -> BaseException:
        async with Client(server, mode="legacy", raise_exceptions=False) as client:
            try:
                await client.call_tool("anything", {"x": 1})
            except BaseException as exc:  # noqa: BLE001
                return exc
        raise AssertionError("no exception")

    exc = anyio.run(main)
    from mcp.shared.exceptions import MCPError

    assert isinstance(exc, MCPError)
    client = _pairs(instrumented.records(), "client")["anything"]
    assert client["outcome"]["attributes"]["audit.outcome"] == "failure"
    assert client["outcome"]["attributes"]["error.type"] == "MCPError"
    server = _pairs(instrumented.records(), "server")["anything"]
    assert server["outcome"]["attributes"]["audit.outcome"] == "failure"
    assert server["outcome"]["attributes"]["audit.mcp.server.name"] == "lowlevel"


def test_lowlevel_server_without_sdk_middleware_gets_our_server_span(instrumented: Audit, spans: Any) -> None:
    async def on_call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return types.CallToolResult(content=[types.TextContent(type="text", text="ok")], is_error=params.name == "bad")

    async def on_list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=[types.Tool(name=n, input_schema={"type": "object"}) for n in ("good", "bad")])

    server = Server("bare", on_call_tool=on_call_tool, on_list_tools=on_list_tools)
    server.middleware = []  # the app opted out of the SDK's tracing middleware

    async def main() -> None:
        async with Client(server, mode="legacy") as client:
            await client.call_tool("good", {})
            await client.call_tool("bad", {})

    anyio.run(main)
    finished = spans.get_finished_spans()
    good = [s for s in finished if s.attributes.get("gen_ai.tool.name") == "good"]
    client_span = next(s for s in good if s.kind == trace.SpanKind.CLIENT)
    server_span = next(s for s in good if s.kind == trace.SpanKind.SERVER)
    assert server_span.name == "tools/call good"
    assert server_span.parent.span_id == client_span.context.span_id  # extracted from params._meta
    pairs = _pairs(instrumented.records(), "server")
    assert pairs["bad"]["outcome"]["attributes"]["audit.outcome"] == "failure"
    assert pairs["good"]["outcome"]["attributes"]["audit.outcome"] == "success"


def _server_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The server subprocess's environment: auditel on, its own outbox, spans to a JSON-lines file."""
    return {
        "AUDITEL_ENABLED": "true",
        "AUDITEL_OUTBOX": str(tmp_path / "server" / "outbox.db"),
        "AUDITEL_TEST_TRACE_FILE": str(tmp_path / "server-spans.jsonl"),
        "PYTHONPATH": os.pathsep.join(sys.path),
        **extra,
    }


def _server_spans(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (tmp_path / "server-spans.jsonl").read_text().splitlines()]


def _stdio_params(tmp_path: Path, **extra: str) -> StdioServerParameters:
    return StdioServerParameters(command=sys.executable, args=[str(APP)], env=_server_env(tmp_path, **extra))


def test_stdio_subprocess_server(instrumented: Audit, spans: Any, tmp_path: Path) -> None:
    results = _run(_stdio_params(tmp_path), "legacy")
    assert results[1].structured_content == {"result": 5}
    server_records = read_outbox(tmp_path / "server" / "outbox.db")
    server = _pairs(server_records, "server")
    assert server["add"]["outcome"]["attributes"]["audit.outcome"] == "success"
    assert server["explode"]["outcome"]["attributes"]["error.type"] == "ValueError"
    assert server["nope"]["outcome"]["attributes"]["audit.outcome"] == "failure"
    client = _pairs(instrumented.records(), "client")
    assert set(client) == {"add", "explode", "nope"}
    assert client["explode"]["outcome"]["attributes"]["audit.outcome"] == "failure"
    # trace context crossed the process boundary in params._meta
    server_add = next(s for s in _server_spans(tmp_path) if s["attributes"].get("gen_ai.tool.name") == "add")
    client_add = next(s for s in spans.get_finished_spans()
                      if s.kind == trace.SpanKind.CLIENT and s.attributes.get("gen_ai.tool.name") == "add")
    assert server_add["parent_span_id"] == format(client_add.context.span_id, "016x")
    assert server["add"]["intent"]["trace_id"] == format(client_add.context.trace_id, "032x")


def test_server_killed_mid_tool_leaves_intent_in_outbox(instrumented: Audit, tmp_path: Path) -> None:
    marker = tmp_path / "inside"
    params = _stdio_params(tmp_path, AUDITEL_TEST_HANG_MARKER=str(marker))
    pid_file = tmp_path / "pid"

    async def main() -> None:
        async with Client(params, mode="legacy") as client:
            async with anyio.create_task_group() as tg:
                async def call() -> None:
                    try:
                        await client.call_tool("hang", {"seconds": 60})
                    except Exception:  # noqa: BLE001 - the server died
                        pass

                tg.start_soon(call)
                with anyio.fail_after(20):
                    while not marker.exists():
                        await anyio.sleep(0.02)
                # the server process is the child of this test process running mcp_server_app.py
                out = subprocess.run(["pgrep", "-P", str(os.getpid()), "-f", str(APP)],
                                     capture_output=True, text=True).stdout.split()
                pids = [int(p) for p in out if int(p) != os.getpid()]
                pid_file.write_text(" ".join(map(str, pids)))
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
                tg.cancel_scope.cancel()

    try:
        anyio.run(main)
    except Exception:  # noqa: BLE001 - the transport may report the dead peer
        pass
    assert pid_file.read_text().strip()
    time.sleep(0.1)
    server = _pairs(read_outbox(tmp_path / "server" / "outbox.db"), "server")
    assert "intent" in server["hang"] and "outcome" not in server["hang"]
    client = _pairs(instrumented.records(), "client")
    assert "intent" in client["hang"]


def test_uninstrument_removes_wrappers(audit: Audit) -> None:
    from mcp.client.session import ClientSession
    from mcp.server.runner import ServerRunner
    import mcp.shared.jsonrpc_dispatcher as disp

    originals = (ClientSession.__dict__["call_tool"], ServerRunner.__dict__["_compose_server_middleware"], disp.otel_span)
    auditel.instrument("mcp")
    assert ClientSession.__dict__["call_tool"] is not originals[0]
    auditel.uninstrument("mcp")
    assert (ClientSession.__dict__["call_tool"], ServerRunner.__dict__["_compose_server_middleware"], disp.otel_span) == originals
    _run(build_server(), "legacy")
    assert audit.tool_calls() == []
    assert auditel.status()["errors"] == {}


# --- streamable HTTP (a server subprocess on a free loopback port) -------------------------------
def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[str]:
    """``mcp_server_app.py http PORT`` with auditel on in the server process; yields the MCP endpoint URL."""
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    proc = subprocess.Popen([sys.executable, str(APP), "http", str(port)], env=_server_env(tmp_path),
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"server exited ({proc.returncode}): {(tmp_path / 'server.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"server not listening: {(tmp_path / 'server.log').read_text()}")
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.parametrize("mode", ["legacy", "auto"])  # legacy: initialize handshake + sessions; auto: server/discover
def test_streamable_http_subprocess_server(instrumented: Audit, spans: Any, tmp_path: Path, http_server: str,
                                           mode: str) -> None:
    sent: list[tuple[dict[str, str], dict[str, Any]]] = []  # (headers, JSON-RPC body) of every POST

    async def keep(request: httpx2.Request) -> None:
        if request.method == "POST":
            sent.append((dict(request.headers), json.loads(request.content)))

    async def main() -> list[Any]:
        async with httpx2.AsyncClient(event_hooks={"request": [keep]}) as http:
            async with Client(streamable_http_client(http_server, http_client=http), mode=mode) as client:
                return await _session(client)

    results = anyio.run(main)
    assert results[1].structured_content == {"result": 5}
    assert results[2].is_error is True and results[3].is_error is True

    server = _pairs(read_outbox(tmp_path / "server" / "outbox.db"), "server")
    client = _pairs(instrumented.records(), "client")
    assert set(server) == set(client) == {"add", "explode", "nope"}
    for side in (server, client):
        for pair in side.values():
            assert pair["intent"]["attributes"]["audit.correlation.id"] == pair["outcome"]["attributes"]["audit.correlation.id"]
            assert pair["intent"]["attributes"]["audit.arguments.digest"].startswith("hmac-sha256:")
        assert side["add"]["outcome"]["attributes"]["audit.outcome"] == "success"
        assert side["explode"]["outcome"]["attributes"]["audit.outcome"] == "failure"
        assert side["nope"]["outcome"]["attributes"]["audit.outcome"] == "failure"
    assert server["explode"]["outcome"]["attributes"]["error.type"] == "ValueError"
    assert server["add"]["intent"]["attributes"]["audit.mcp.server.name"] == "calc"
    (discovery,) = instrumented.records("auditel.tool_discovery")
    assert discovery["attributes"]["audit.tools.names"] == ["add", "explode", "hang"]

    # trace context: client span -> params._meta of the HTTP POST -> server span, same trace
    client_add = next(s for s in spans.get_finished_spans()
                      if s.kind == trace.SpanKind.CLIENT and s.attributes.get("gen_ai.tool.name") == "add")
    trace_id, client_span_id = format(client_add.context.trace_id, "032x"), format(client_add.context.span_id, "016x")
    server_add = next(s for s in _server_spans(tmp_path) if s["kind"] == "SERVER" and s["attributes"].get("gen_ai.tool.name") == "add")
    assert server_add["trace_id"] == trace_id
    assert server_add["parent_span_id"] == client_span_id
    assert server["add"]["intent"]["trace_id"] == server["add"]["outcome"]["trace_id"] == trace_id
    assert server["add"]["intent"]["span_id"] == server_add["span_id"]
    assert client["add"]["intent"]["trace_id"] == trace_id and client["add"]["intent"]["span_id"] == client_span_id
    (headers, body), = [(h, b) for h, b in sent if b.get("method") == "tools/call" and b["params"]["name"] == "add"]
    version, meta_trace_id, meta_parent_id, _flags = body["params"]["_meta"]["traceparent"].split("-")
    assert (version, meta_trace_id, meta_parent_id) == ("00", trace_id, client_span_id)
    assert "traceparent" not in headers  # carried in the MCP message, not by HTTP instrumentation
    assert "secret-reason" not in json.dumps(read_outbox(tmp_path / "server" / "outbox.db") + instrumented.records())


def test_streamable_http_instrumented_client_returns_what_uninstrumented_returns(audit: Audit, http_server: str) -> None:
    for mode in ("legacy", "auto"):
        plain = _run(http_server, mode)  # a URL string: mcp.Client connects over streamable HTTP
        auditel.instrument("mcp")
        try:
            traced = _run(http_server, mode)
        finally:
            auditel.uninstrument("mcp")
        assert [type(x) for x in plain] == [type(x) for x in traced]
        assert [x.model_dump() for x in plain] == [x.model_dump() for x in traced]
    assert len(audit.tool_calls()) == 2 * 2 * 3  # 2 instrumented runs x intent+outcome x 3 calls (client side)
