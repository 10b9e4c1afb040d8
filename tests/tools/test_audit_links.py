"""Audit facts that must link (issue 12, items 6-9): the model's requested tool arguments and the
executed tool's arguments digest the same canonical form (real OpenAI SDK, LangGraph and the
OpenAI Agents SDK); LangChain tools with an injected ``runtime: ToolRuntime`` record only what
the model supplied; MCP client and server digest one result form; a tools/call the server's
own layer refuses leaves a server record; stdio servers inherit auditel's settings."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterator

import anyio
import openai
import pytest
from fake_llm_server import TOOL_ARGUMENTS, TOOL_NAME, FakeLLMServer

from langchain_core.tools import tool as lc_tool
from langgraph.prebuilt import ToolRuntime

import auditel
from auditel.record.content import tool_arguments_form

from .conftest import Audit


@pytest.fixture(scope="module")
def llm() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


def _requested(audit: Audit) -> list[tuple[str, str, int]]:
    """(tool name, arguments digest, size) the model asked for, over every model_call record."""
    out = []
    for r in audit.records("auditel.model_call"):
        a = r["attributes"]
        for name, digest, size in zip(a.get("audit.tool_calls.names", []), a.get("audit.tool_calls.arguments.digests", []),
                                      a.get("audit.tool_calls.arguments.sizes", [])):
            out.append((name, digest, size))
    return out


def _executed(audit: Audit, tool: str) -> dict[str, Any]:
    intents = [r["attributes"] for r in audit.tool_calls(tool) if r["attributes"]["audit.phase"] == "intent"]
    assert intents, f"no intent record for {tool}"
    return intents[0]


def test_tool_arguments_form_decodes_json_text_only() -> None:
    assert tool_arguments_form('{"city": "Paris"}') == {"city": "Paris"}
    assert tool_arguments_form(' [1, 2] ') == [1, 2]
    assert tool_arguments_form("Paris") == "Paris"
    assert tool_arguments_form("123") == "123"  # a scalar stays the text it was
    assert tool_arguments_form("{not json") == "{not json"
    assert tool_arguments_form({"a": 1}) == {"a": 1}


def test_openai_sdk_requested_arguments_match_the_executed_tool(audit: Audit, llm: FakeLLMServer) -> None:
    auditel.instrument("openai")
    try:
        client = openai.OpenAI(base_url=llm.openai_base_url, api_key="sk-test", max_retries=0)
        reply = client.chat.completions.create(model="gpt-tools", messages=[{"role": "user", "content": "weather?"}])
        call = reply.choices[0].message.tool_calls[0]

        @auditel.tool(TOOL_NAME)
        def get_weather(city: str, unit: str) -> str:
            return f"{city}: 21 {unit}"

        get_weather(**json.loads(call.function.arguments))
    finally:
        auditel.uninstrument("openai")
    [(name, digest, size)] = _requested(audit)
    executed = _executed(audit, TOOL_NAME)
    assert name == TOOL_NAME
    assert executed["audit.arguments.digest"] == digest
    assert executed["audit.arguments.size"] == size


def test_agents_sdk_model_and_tool_digests_match(audit: Audit, llm: FakeLLMServer) -> None:
    from agents import Agent, OpenAIChatCompletionsModel, Runner, function_tool, set_tracing_disabled

    set_tracing_disabled(True)
    auditel.instrument("openai", "openai_agents")
    try:
        @function_tool(name_override=TOOL_NAME)
        def get_weather(city: str, unit: str) -> str:
            """Weather in a city."""
            return f"{city}: 21 {unit}"

        client = openai.AsyncOpenAI(base_url=llm.openai_base_url, api_key="sk-test", max_retries=0)
        agent = Agent(name="weather", instructions="use the tool",
                      model=OpenAIChatCompletionsModel(model="gpt-tools-once", openai_client=client), tools=[get_weather])
        result = asyncio.run(Runner.run(agent, "weather in Paris?", max_turns=4))
        assert result.final_output
    finally:
        auditel.uninstrument("openai", "openai_agents")
    requested = [r for r in _requested(audit) if r[0] == TOOL_NAME]
    assert requested, "the model_call record lists the requested tool call"
    executed = _executed(audit, TOOL_NAME)
    assert executed["audit.arguments.digest"] == requested[0][1]
    assert executed["audit.arguments.digest"] == audit_digest(TOOL_ARGUMENTS)


def audit_digest(value: Any) -> str:
    from auditel import runtime

    rt = runtime.current()
    assert rt is not None
    return rt.digest(value)[0]


@lc_tool
def lookup(city: str, runtime: ToolRuntime) -> str:
    """Look a city up."""
    return f"{city} has {len(runtime.state['messages'])} messages"


def _langgraph_runtime_agent() -> Any:
    from langchain_core.messages import AIMessage
    from langgraph.prebuilt import create_react_agent

    from .test_langchain import ToolCallingFakeModel

    model = ToolCallingFakeModel(messages=iter([
        AIMessage(content="", tool_calls=[{"name": "lookup", "args": {"city": "Paris"}, "id": "call_rt_1"}]),
        AIMessage(content="done"),
    ]))
    return create_react_agent(model, [lookup])


@pytest.mark.parametrize("content", [False, True])
def test_langgraph_tool_runtime_is_not_recorded_as_arguments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bool
) -> None:
    """A LangChain v1 tool with an injected ``runtime: ToolRuntime`` (as every langchain-mcp-adapters
    tool has): the record holds the model's arguments only, never the graph state, and its digest
    is the model's requested digest."""
    from auditel import runtime

    from .conftest import read_outbox

    if content:
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "true")
    runtime._reset_for_tests()
    outbox = tmp_path / "outbox.db"
    auditel.configure(outbox=outbox, service_name="links-test")
    auditel.instrument("langchain")
    try:
        from langchain_core.messages import HumanMessage

        _langgraph_runtime_agent().invoke({"messages": [HumanMessage(content="where?")]})
    finally:
        auditel.uninstrument("langchain")
        runtime._reset_for_tests()
    audit = Audit(outbox)
    executed = _executed(audit, "lookup")
    requested = [r for r in _requested(audit) if r[0] == "lookup"]
    assert requested and executed["audit.arguments.digest"] == requested[0][1]
    assert executed["audit.arguments.size"] == len(b'{"city":"Paris"}')
    stored = json.dumps(read_outbox(outbox))
    assert "ToolRuntime" not in stored and "tool_call_id" not in json.dumps(executed)
    if content:
        assert json.loads(executed["gen_ai.tool.call.arguments"]) == {"city": "Paris"}


# --- MCP ------------------------------------------------------------------------------------------
def _mcp_pairs(records: list[dict[str, Any]], side: str) -> dict[str, dict[str, dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in records:
        a = r["attributes"]
        if r["event_name"] == "auditel.tool_call" and a.get("audit.mcp.side") == side:
            out.setdefault(a["gen_ai.tool.name"], {})[a["audit.phase"]] = r
    return out


def _mcp_session(server: Any, calls: list[tuple[str, dict[str, Any]]], mode: str = "legacy") -> list[Any]:
    from mcp import Client

    async def main() -> list[Any]:
        out = []
        async with Client(server, mode=mode) as client:
            for name, args in calls:
                try:
                    out.append(await client.call_tool(name, args))
                except Exception as exc:  # noqa: BLE001 - a refused call raises on the client
                    out.append(exc)
        return out

    return anyio.run(main)


@pytest.mark.parametrize("mode", ["legacy", "auto"])  # JSON-RPC over memory streams / direct dispatcher
def test_mcp_client_and_server_digest_one_result_form(audit: Audit, mode: str) -> None:
    from .mcp_server_app import build_server

    auditel.instrument("mcp")
    try:
        _mcp_session(build_server(), [("add", {"a": 2, "b": 3}), ("explode", {"reason": "x"}), ("nope", {})], mode)
    finally:
        auditel.uninstrument("mcp")
    records = audit.records()
    client, server = _mcp_pairs(records, "client"), _mcp_pairs(records, "server")
    for name in ("add", "explode", "nope"):
        c, s = client[name]["outcome"]["attributes"], server[name]["outcome"]["attributes"]
        assert c["audit.result.digest"] == s["audit.result.digest"], name
        assert c["audit.result.size"] == s["audit.result.size"], name
        assert client[name]["intent"]["attributes"]["audit.arguments.digest"] == \
            server[name]["intent"]["attributes"]["audit.arguments.digest"]


def test_mcp_call_refused_by_server_middleware_is_recorded_on_the_server(audit: Audit) -> None:
    from mcp.server.mcpserver import MCPServer
    from mcp.shared.exceptions import MCPError

    async def refuse_forbidden(ctx: Any, call_next: Any) -> Any:
        if ctx.method == "tools/call" and (ctx.params or {}).get("name") == "forbidden":
            raise MCPError(code=-32602, message="tool not allowed here")
        return await call_next(ctx)

    server = MCPServer("guarded", middleware=[refuse_forbidden])

    @server.tool()
    def forbidden(path: str) -> str:
        """Never runs."""
        raise AssertionError("the middleware refuses this tool")

    @server.tool()
    def allowed(x: int) -> int:
        """Runs."""
        return x

    auditel.instrument("mcp")
    try:
        results = _mcp_session(server, [("forbidden", {"path": "/etc/shadow"}), ("allowed", {"x": 1})])
    finally:
        auditel.uninstrument("mcp")
    assert isinstance(results[0], Exception)
    server_side = _mcp_pairs(audit.records(), "server")
    refused = server_side["forbidden"]
    assert refused["outcome"]["attributes"]["audit.outcome"] == "denied"
    assert refused["outcome"]["attributes"]["audit.mcp.handled_by"] == "server_layer"
    assert refused["intent"]["attributes"]["audit.arguments.digest"].startswith("hmac-sha256:")
    # a call that reached its handler is recorded once, by the handler-side run only
    assert [r["attributes"]["audit.phase"] for r in audit.tool_calls("allowed")
            if r["attributes"]["audit.mcp.side"] == "server"] == ["intent", "outcome"]
    assert "audit.mcp.handled_by" not in server_side["allowed"]["outcome"]["attributes"]


def test_mcp_stdio_server_started_by_an_audited_client_is_audited(audit: Audit, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SDK passes a stdio server only HOME, PATH, …: auditel adds its settings, so a server
    that knows nothing of auditel writes its side of the call into the same outbox."""
    from mcp.client.stdio import StdioServerParameters

    monkeypatch.setenv("OTEL_SERVICE_NAME", "links-client")
    params = StdioServerParameters(command=sys.executable, args=[str(Path(__file__).with_name("mcp_plain_server.py"))])
    auditel.instrument("mcp")
    try:
        _mcp_session(params, [("echo", {"text": "hi"})])
    finally:
        auditel.uninstrument("mcp")
    server_side = _mcp_pairs(audit.records(), "server")
    assert server_side["echo"]["outcome"]["attributes"]["audit.outcome"] == "success"
    client_side = _mcp_pairs(audit.records(), "client")
    assert client_side["echo"]["outcome"]["attributes"]["audit.result.digest"] == \
        server_side["echo"]["outcome"]["attributes"]["audit.result.digest"]


def test_mcp_stdio_env_inheritance_can_be_switched_off(audit: Audit, monkeypatch: pytest.MonkeyPatch) -> None:
    from mcp.client.stdio import StdioServerParameters

    monkeypatch.setenv("AUDITEL_MCP_INHERIT_ENV", "false")
    params = StdioServerParameters(command=sys.executable, args=[str(Path(__file__).with_name("mcp_plain_server.py"))])
    auditel.instrument("mcp")
    try:
        _mcp_session(params, [("echo", {"text": "hi"})])
    finally:
        auditel.uninstrument("mcp")
    assert "echo" not in _mcp_pairs(audit.records(), "server")
    assert "echo" in _mcp_pairs(audit.records(), "client")
