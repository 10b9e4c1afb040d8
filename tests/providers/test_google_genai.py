"""google-genai instrumentation against the real SDK and a Gemini stand-in on 127.0.0.1
(``generateContent`` JSON, ``streamGenerateContent?alt=sse``), real SQLite outbox, SDK tracer."""

from __future__ import annotations

import asyncio
import gc
import json
from typing import Any

import pytest
from google import genai
from google.genai import errors, types
from provider_server import ProviderServer

from fake_llm_server import REPLY_TEXT, TOOL_ARGUMENTS, TOOL_NAME
from genai_support import outbox_bytes

PROMPT = "PROMPT-MARKER-91c2 what is the answer?"
SYSTEM = "SYSTEM-MARKER-5d10 be brief"


def only(items: list[Any]) -> Any:
    assert len(items) == 1, items
    return items[0]


_clients: list[genai.Client] = []  # a dropped Client closes its HTTP client: keep them for the session


class _Kept:
    def __init__(self, c: genai.Client) -> None:
        _clients.append(c)
        self.keep = c


def client(server: ProviderServer, attempts: int = 1) -> Any:
    retry = types.HttpRetryOptions(attempts=attempts, initial_delay=0.01, max_delay=0.05)
    return _Kept(
        genai.Client(api_key="test-key", http_options=types.HttpOptions(base_url=server.url, retry_options=retry))
    )


def config(**kw: Any) -> types.GenerateContentConfig:
    return types.GenerateContentConfig(system_instruction=SYSTEM, temperature=0.2, max_output_tokens=50, top_k=4, **kw)


def test_generate_content_span_and_record(audit_factory: Any, provider_server: ProviderServer) -> None:
    audit = audit_factory("google_genai")
    result = client(provider_server).keep.models.generate_content(
        model="gemini-2.5-flash", contents=PROMPT, config=config()
    )
    assert isinstance(result, types.GenerateContentResponse) and result.text == REPLY_TEXT
    span = only(audit.model_spans())
    assert span.name == "generate_content gemini-2.5-flash"
    a = span.attributes
    assert a["gen_ai.provider.name"] == "gcp.gemini"
    assert a["gen_ai.operation.name"] == "generate_content"
    assert (
        a["gen_ai.request.temperature"] == 0.2
        and a["gen_ai.request.max_tokens"] == 50
        and a["gen_ai.request.top_k"] == 4
    )
    assert a["gen_ai.response.id"] == "gemini-resp-1"
    assert a["gen_ai.response.model"] == "gemini-2.5-flash-001"
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("stop",)
    assert a["gen_ai.usage.input_tokens"] == 21
    assert a["gen_ai.usage.output_tokens"] == 12  # 9 candidate tokens + 3 thinking tokens
    assert a["gen_ai.usage.cache_read.input_tokens"] == 4
    assert a["gen_ai.usage.reasoning.output_tokens"] == 3
    assert a["server.address"] == "127.0.0.1" and a["server.port"] == provider_server.port
    assert "gen_ai.input.messages" not in a
    r = only(audit.records())["attributes"]
    assert r["audit.outcome"] == "success" and r["gen_ai.provider.name"] == "gcp.gemini"
    assert r["gen_ai.usage.reasoning.output_tokens"] == 3 and r["gen_ai.usage.cache_read.input_tokens"] == 4
    assert r["audit.input.digest"].startswith("hmac-sha256:")
    data = outbox_bytes(audit.outbox)
    for marker in (PROMPT, SYSTEM, REPLY_TEXT):
        assert marker.encode() not in data


def test_function_call_parts_become_tool_calls(audit_factory: Any, provider_server: ProviderServer) -> None:
    audit = audit_factory("google_genai")
    decl = types.FunctionDeclaration(name=TOOL_NAME, parameters_json_schema={"type": "object"})
    result = client(provider_server).keep.models.generate_content(
        model="gemini-tools",
        contents=PROMPT,
        config=types.GenerateContentConfig(tools=[types.Tool(function_declarations=[decl])]),
    )
    assert result.function_calls[0].name == TOOL_NAME
    r = only(audit.records())["attributes"]
    assert r["audit.tool_calls.names"] == [TOOL_NAME]
    assert r["audit.tool_calls.arguments.sizes"] == [len(json.dumps(TOOL_ARGUMENTS, separators=(",", ":")))]
    assert TOOL_ARGUMENTS["city"].encode() not in outbox_bytes(audit.outbox)


def test_automatic_function_calling_records_each_round_and_the_tool(
    audit_factory: Any, provider_server: ProviderServer
) -> None:
    audit = audit_factory("google_genai")
    calls: list[dict[str, Any]] = []

    def get_weather(city: str, unit: str) -> str:
        """Weather for a city."""
        calls.append({"city": city, "unit": unit})
        return "sunny"

    result = client(provider_server).keep.models.generate_content(
        model="gemini-tools-afc", contents=PROMPT, config=types.GenerateContentConfig(tools=[get_weather])
    )
    assert result.text == REPLY_TEXT and calls == [TOOL_ARGUMENTS]
    models = audit.records()
    assert len(models) == 2  # one record per model round trip
    assert models[0]["attributes"]["audit.tool_calls.names"] == [TOOL_NAME]
    tools = audit.records("auditel.tool_call")
    assert [t["attributes"]["audit.phase"] for t in tools] == ["intent", "outcome"]
    assert {t["attributes"]["gen_ai.tool.name"] for t in tools} == {TOOL_NAME}
    assert tools[1]["attributes"]["audit.outcome"] == "success"
    assert "ARGS-MARKER" not in json.dumps(tools)


def test_stream_exhausted_and_chat(audit_factory: Any, provider_server: ProviderServer) -> None:
    audit = audit_factory("google_genai")
    c = client(provider_server).keep
    text = "".join(chunk.text or "" for chunk in c.models.generate_content_stream(model="gemini-s", contents=PROMPT))
    assert text == REPLY_TEXT
    chat = c.chats.create(model="gemini-chat")
    assert chat.send_message(PROMPT).text == REPLY_TEXT
    assert "".join(ch.text or "" for ch in chat.send_message_stream("more")) == REPLY_TEXT
    records = [r["attributes"] for r in audit.records()]
    assert [r["gen_ai.request.model"] for r in records] == ["gemini-s", "gemini-chat", "gemini-chat"]
    assert [r["audit.model_call.streaming"] for r in records] == [True, False, True]
    assert records[0]["audit.stream.end"] == "exhausted" and records[0]["audit.outcome"] == "success"
    assert records[0]["gen_ai.usage.output_tokens"] == 12
    spans = audit.model_spans()
    assert len(spans) == 3 and all(
        s.attributes["gen_ai.response.time_to_first_chunk"] >= 0
        for s in spans
        if "streamGen" in s.name or s.attributes.get("auditel.stream.end")
    )


def test_stream_early_break_and_abandoned(audit_factory: Any, provider_server: ProviderServer) -> None:
    audit = audit_factory("google_genai")
    c = client(provider_server).keep
    stream = c.models.generate_content_stream(model="gemini-long", contents=PROMPT)
    for _ in stream:
        break
    stream.close()  # the public generator is closed: ours is closed with it
    abandoned = c.models.generate_content_stream(model="gemini-long-2", contents=PROMPT)
    next(abandoned)
    del abandoned
    gc.collect()
    records = {r["attributes"]["gen_ai.request.model"]: r["attributes"] for r in audit.records()}
    # the SDK's continuation layer drops (does not close) our stream when its generator closes
    assert records["gemini-long"]["audit.stream.end"] in ("closed", "abandoned")
    assert records["gemini-long"]["audit.outcome"] == "unknown"
    assert records["gemini-long-2"]["audit.stream.end"] in ("closed", "abandoned")
    assert len(audit.model_spans()) == 2


def test_async_generate_and_stream(audit_factory: Any, provider_server: ProviderServer) -> None:
    audit = audit_factory("google_genai")

    async def main() -> tuple[str, str]:
        c = client(provider_server).keep
        one = await c.aio.models.generate_content(model="gemini-a", contents=PROMPT)
        text = ""
        async for chunk in await c.aio.models.generate_content_stream(model="gemini-as", contents=PROMPT):
            text += chunk.text or ""
        chat = c.aio.chats.create(model="gemini-achat")
        await chat.send_message(PROMPT)
        return one.text or "", text

    one, streamed = asyncio.run(main())
    assert one == REPLY_TEXT and streamed == REPLY_TEXT
    records = [r["attributes"] for r in audit.records()]
    assert [r["gen_ai.request.model"] for r in records] == ["gemini-a", "gemini-as", "gemini-achat"]
    assert records[1]["audit.stream.end"] == "exhausted"
    assert all(r["audit.outcome"] == "success" for r in records)


def test_errors_429_retry_500_malformed(audit_factory: Any, provider_server: ProviderServer) -> None:
    audit = audit_factory("google_genai")
    ok = client(provider_server, attempts=3).keep.models.generate_content(model="gemini-rate-limited", contents=PROMPT)
    assert ok.text == REPLY_TEXT
    with pytest.raises(errors.ServerError) as server_error:
        client(provider_server).keep.models.generate_content(model="gemini-server-error", contents=PROMPT)
    with pytest.raises(Exception) as malformed:
        client(provider_server).keep.models.generate_content(model="gemini-malformed", contents=PROMPT)
    with pytest.raises(errors.APIError):
        list(client(provider_server).keep.models.generate_content_stream(model="gemini-stream-error", contents=PROMPT))
    records = {r["attributes"]["gen_ai.request.model"]: r["attributes"] for r in audit.records()}
    assert records["gemini-rate-limited"]["audit.outcome"] == "success"  # the SDK's retry is inside one call
    assert records["gemini-server-error"]["audit.outcome"] == "failure"
    assert records["gemini-server-error"]["error.type"] == type(server_error.value).__qualname__
    assert records["gemini-malformed"]["error.type"] == type(malformed.value).__qualname__
    assert records["gemini-stream-error"]["audit.stream.end"] == "error"
    assert len(audit.model_spans()) == 4


def test_vertex_ai_client_is_gcp_vertex_ai(audit_factory: Any, provider_server: ProviderServer) -> None:
    audit = audit_factory("google_genai")
    c = genai.Client(vertexai=True, api_key="test-key", http_options=types.HttpOptions(base_url=provider_server.url))
    _clients.append(c)
    assert c.models.generate_content(model="gemini-vertex", contents=PROMPT).text == REPLY_TEXT
    assert any("/publishers/google/models/gemini-vertex:generateContent" in p for p, _ in provider_server.requests)
    assert only(audit.records())["attributes"]["gen_ai.provider.name"] == "gcp.vertex_ai"
    assert only(audit.model_spans()).attributes["gen_ai.provider.name"] == "gcp.vertex_ai"


def test_content_opt_in_puts_messages_on_span(audit_factory: Any, provider_server: ProviderServer) -> None:
    audit = audit_factory("google_genai", content="SPAN_AND_EVENT")
    client(provider_server).keep.models.generate_content(model="gemini-c", contents=PROMPT, config=config())
    a = only(audit.model_spans()).attributes
    assert PROMPT in a["gen_ai.input.messages"] and SYSTEM in a["gen_ai.system_instructions"]
    assert REPLY_TEXT in a["gen_ai.output.messages"]


def test_uninstrument_restores_and_stops_recording(audit_factory: Any, provider_server: ProviderServer) -> None:
    import google.genai.models as M

    import auditel

    original = M.Models.__dict__["_generate_content"]
    audit = audit_factory("google_genai")
    assert M.Models.__dict__["_generate_content"] is not original
    auditel.uninstrument("google_genai")
    assert M.Models.__dict__["_generate_content"] is original
    client(provider_server).keep.models.generate_content(model="gemini-after", contents=PROMPT)
    assert audit.records() == []


def test_content_in_records_only_when_asked(audit_factory: Any, provider_server: ProviderServer) -> None:
    audit = audit_factory("google_genai", content="EVENT_ONLY")
    client(provider_server).keep.models.generate_content(model="gemini-ev", contents=PROMPT, config=config())
    record = json.dumps(only(audit.records()))
    assert PROMPT in record and REPLY_TEXT in record
    assert "gen_ai.input.messages" not in only(audit.model_spans()).attributes


def test_async_stream_break_and_error(audit_factory: Any, provider_server: ProviderServer) -> None:
    audit = audit_factory("google_genai")

    async def main() -> None:
        c = client(provider_server).keep
        stream = await c.aio.models.generate_content_stream(model="gemini-along", contents=PROMPT)
        async for _ in stream:
            break
        await stream.aclose()
        with pytest.raises(errors.ServerError):  # the public async stream sends the request on first read
            async for _ in await c.aio.models.generate_content_stream(model="gemini-aserver-error", contents=PROMPT):
                pass

    asyncio.run(main())
    gc.collect()
    records = {r["attributes"]["gen_ai.request.model"]: r["attributes"] for r in audit.records()}
    assert records["gemini-along"]["audit.stream.end"] in ("closed", "abandoned")
    assert records["gemini-aserver-error"]["audit.outcome"] == "failure"
    assert len(audit.model_spans()) == 2
