"""LiteLLM instrumentation against the real litellm package routed to local OpenAI-compatible and
Anthropic-compatible endpoints (``tests/fake_llm_server.py`` on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import gc
from typing import Any

import litellm
import pytest

from fake_llm_server import REPLY_TEXT, TOOL_NAME, FakeLLMServer
from genai_support import outbox_bytes

PROMPT = "PROMPT-MARKER-91c2 what is the answer?"
MESSAGES = [{"role": "user", "content": PROMPT}]


def only(items: list[Any]) -> Any:
    assert len(items) == 1, items
    return items[0]


def oai(server: FakeLLMServer, model: str = "gpt-4o", **kw: Any) -> dict[str, Any]:
    return {"model": f"openai/{model}", "api_base": server.openai_base_url, "api_key": "sk-test", **kw}


def ant(server: FakeLLMServer, model: str = "claude-sonnet-4", **kw: Any) -> dict[str, Any]:
    return {
        "model": f"anthropic/{model}",
        "api_base": server.anthropic_base_url,
        "api_key": "sk-ant-test",
        "max_tokens": 50,
        **kw,
    }


def test_completion_openai_route_one_record_and_cost(audit_factory: Any, llm_server: FakeLLMServer) -> None:
    """LiteLLM calls the OpenAI SDK underneath; with auditel's OpenAI instrumentation on too, the call
    still gives one span and one record: the LiteLLM layer's."""
    audit = audit_factory("litellm", "openai")
    result = litellm.completion(messages=MESSAGES, temperature=0.3, **oai(llm_server, "gpt-tools"))
    assert result.choices[0].message.tool_calls[0].function.name == TOOL_NAME
    span = only(audit.model_spans())
    a = span.attributes
    assert a["gen_ai.provider.name"] == "openai" and a["gen_ai.request.model"] == "gpt-tools"
    assert a["litellm.model"] == "openai/gpt-tools"
    assert a["gen_ai.request.temperature"] == 0.3
    assert a["gen_ai.usage.input_tokens"] == 21 and a["gen_ai.usage.output_tokens"] == 9
    assert a["server.port"] == llm_server.port
    r = only(audit.records())["attributes"]
    assert r["audit.tool_calls.names"] == [TOOL_NAME]
    assert r["gen_ai.usage.reasoning.output_tokens"] == 3
    assert PROMPT.encode() not in outbox_bytes(audit.outbox)
    litellm.completion(messages=MESSAGES, **oai(llm_server, "gpt-4o"))  # a model in LiteLLM's price list
    priced = audit.records()[1]["attributes"]
    assert isinstance(priced["audit.model_call.cost"], float) and priced["audit.model_call.cost"] > 0
    assert len(audit.model_spans()) == 2


def test_completion_anthropic_route(audit_factory: Any, llm_server: FakeLLMServer) -> None:
    audit = audit_factory("litellm", "anthropic")
    result = litellm.completion(messages=MESSAGES, **ant(llm_server))
    assert result.choices[0].message.content == REPLY_TEXT
    r = only(audit.records())["attributes"]
    assert r["gen_ai.provider.name"] == "anthropic" and r["gen_ai.request.model"] == "claude-sonnet-4"
    assert r["audit.outcome"] == "success" and r["gen_ai.usage.output_tokens"] > 0
    data = outbox_bytes(audit.outbox)
    assert PROMPT.encode() not in data and REPLY_TEXT.encode() not in data


def test_stream_exhausted_break_and_abandoned(audit_factory: Any, llm_server: FakeLLMServer) -> None:
    audit = audit_factory("litellm", "openai")
    stream = litellm.completion(messages=MESSAGES, stream=True, **oai(llm_server))
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == REPLY_TEXT
    early = litellm.completion(messages=MESSAGES, stream=True, **oai(llm_server, "gpt-long"))
    for _ in early:
        break
    early.close()
    dropped = litellm.completion(messages=MESSAGES, stream=True, **ant(llm_server, "claude-long"))
    next(iter(dropped))
    del dropped
    gc.collect()
    records = {r["attributes"]["gen_ai.request.model"]: r["attributes"] for r in audit.records()}
    assert records["gpt-4o"]["audit.stream.end"] == "exhausted" and records["gpt-4o"]["audit.outcome"] == "success"
    assert records["gpt-long"]["audit.stream.end"] == "closed"
    assert records["claude-long"]["audit.stream.end"] == "abandoned"
    assert records["claude-long"]["gen_ai.provider.name"] == "anthropic"
    assert len(audit.model_spans()) == 3


def test_async_completion_and_stream(audit_factory: Any, llm_server: FakeLLMServer) -> None:
    audit = audit_factory("litellm", "openai")

    async def main() -> str:
        await litellm.acompletion(messages=MESSAGES, **oai(llm_server, "gpt-a"))
        text = ""
        async for chunk in await litellm.acompletion(messages=MESSAGES, stream=True, **ant(llm_server, "claude-as")):
            text += (chunk.choices[0].delta.content or "") if chunk.choices else ""
        return text

    assert asyncio.run(main()) == REPLY_TEXT
    records = [r["attributes"] for r in audit.records()]
    assert [r["gen_ai.request.model"] for r in records] == ["gpt-a", "claude-as"]
    assert records[1]["audit.stream.end"] == "exhausted"
    assert len(audit.model_spans()) == 2


def test_responses_api(audit_factory: Any, llm_server: FakeLLMServer) -> None:
    audit = audit_factory("litellm", "openai")
    kw = oai(llm_server, "gpt-resp")
    result = litellm.responses(input=PROMPT, **kw)
    assert result.output
    r = only(audit.records())["attributes"]
    assert r["gen_ai.provider.name"] == "openai" and r["gen_ai.request.model"] == "gpt-resp"
    assert r["audit.outcome"] == "success" and r["gen_ai.usage.input_tokens"] > 0


def test_router_calls_are_recorded_once(audit_factory: Any, llm_server: FakeLLMServer) -> None:
    audit = audit_factory("litellm", "openai")
    router = litellm.Router(model_list=[{"model_name": "fast", "litellm_params": oai(llm_server, "gpt-routed")}])
    result = router.completion(model="fast", messages=MESSAGES)
    assert result.choices[0].message.content == REPLY_TEXT
    r = only(audit.records())["attributes"]
    assert r["gen_ai.request.model"] == "gpt-routed" and r["gen_ai.provider.name"] == "openai"


def test_errors_429_retry_500_malformed(audit_factory: Any, llm_server: FakeLLMServer) -> None:
    audit = audit_factory("litellm", "openai")
    ok = litellm.completion(messages=MESSAGES, max_retries=2, **oai(llm_server, "gpt-rate-limited"))
    assert ok.choices[0].message.content == REPLY_TEXT
    with pytest.raises(litellm.exceptions.InternalServerError) as server_error:
        litellm.completion(messages=MESSAGES, max_retries=0, **ant(llm_server, "claude-server-error"))
    with pytest.raises(Exception) as malformed:
        litellm.completion(messages=MESSAGES, max_retries=0, **oai(llm_server, "gpt-malformed"))
    records = {r["attributes"]["gen_ai.request.model"]: r["attributes"] for r in audit.records()}
    assert records["gpt-rate-limited"]["audit.outcome"] == "success"
    assert records["claude-server-error"]["audit.outcome"] == "failure"
    assert records["claude-server-error"]["error.type"] == type(server_error.value).__qualname__
    assert records["gpt-malformed"]["error.type"] == type(malformed.value).__qualname__
    assert len(audit.model_spans()) == 3


def test_uninstrument_restores(audit_factory: Any, llm_server: FakeLLMServer) -> None:
    import auditel

    original = litellm.completion
    audit = audit_factory("litellm")
    assert litellm.completion is not original
    auditel.uninstrument("litellm")
    assert litellm.completion is original
    litellm.completion(messages=MESSAGES, **oai(llm_server, "gpt-after"))
    assert audit.records() == []


def test_azure_route_through_openai_sdk_gives_one_record(audit_factory: Any, llm_server: FakeLLMServer) -> None:
    """LiteLLM's Azure route calls the OpenAI SDK's ``chat.completions.with_raw_response.create``, which
    auditel's OpenAI instrumentation wraps: the LiteLLM layer wins, the SDK layer stands aside."""
    audit = audit_factory("litellm", "openai")
    result = litellm.completion(
        model="azure/gpt-deployment",
        messages=MESSAGES,
        api_base=llm_server.anthropic_base_url,
        api_key="az-test",
        api_version="2024-10-21",
    )
    assert result.choices[0].message.content == REPLY_TEXT
    assert any(path.startswith("/openai/deployments/gpt-deployment/") for path, _ in llm_server.requests)
    span = only(audit.model_spans())
    assert span.attributes["gen_ai.provider.name"] == "azure.ai.openai"
    r = only(audit.records())["attributes"]
    assert r["gen_ai.request.model"] == "gpt-deployment"


def test_content_opt_in(audit_factory: Any, llm_server: FakeLLMServer) -> None:
    import json

    audit = audit_factory("litellm", content="SPAN_AND_EVENT")
    litellm.completion(messages=MESSAGES, **ant(llm_server, "claude-content"))
    a = only(audit.model_spans()).attributes
    assert PROMPT in a["gen_ai.input.messages"] and REPLY_TEXT in a["gen_ai.output.messages"]
    assert PROMPT in json.dumps(only(audit.records()))


def test_responses_stream_and_async_router(audit_factory: Any, llm_server: FakeLLMServer) -> None:
    audit = audit_factory("litellm", "openai")
    events = list(litellm.responses(input=PROMPT, stream=True, **oai(llm_server, "gpt-resp-s")))
    assert events
    router = litellm.Router(model_list=[{"model_name": "smart", "litellm_params": ant(llm_server, "claude-routed")}])

    async def main() -> Any:
        first = await router.acompletion(model="smart", messages=MESSAGES)
        second = await litellm.aresponses(input=PROMPT, **oai(llm_server, "gpt-aresp"))
        return first, second

    first, second = asyncio.run(main())
    assert first.choices[0].message.content == REPLY_TEXT and second.output
    records = [r["attributes"] for r in audit.records()]
    assert [r["gen_ai.request.model"] for r in records] == ["gpt-resp-s", "claude-routed", "gpt-aresp"]
    assert records[0]["audit.model_call.streaming"] is True and records[0]["audit.outcome"] == "success"
    assert records[1]["gen_ai.provider.name"] == "anthropic"
    assert len(audit.model_spans()) == 3
