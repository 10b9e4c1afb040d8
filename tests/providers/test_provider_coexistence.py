"""Beside another vendor's instrumentation of the same SDK methods.

The first tests need no vendor package: another wrapt layer (what every OTel instrumentation applies)
goes on top of ours; calls work through both, and ``uninstrument()`` takes our layer out of the
chain without removing theirs. The last tests use the real vendor packages when installed (the
``bench`` extra): the official OTel google-genai and botocore instrumentations and OpenLLMetry's
Bedrock and LiteLLM ones.
"""

from __future__ import annotations

import json
from typing import Any

import boto3
import litellm
import pytest
import wrapt
from botocore.config import Config
from google import genai
from provider_server import ProviderServer

import auditel
from fake_llm_server import REPLY_TEXT, FakeLLMServer

MESSAGES = [{"role": "user", "content": [{"text": "hello"}]}]


def _bedrock(server: ProviderServer) -> Any:
    return boto3.client(
        "bedrock-runtime", endpoint_url=server.url, region_name="us-east-1", config=Config(retries={"max_attempts": 1})
    )


def _gemini(server: ProviderServer) -> Any:
    return genai.Client(api_key="k", http_options={"base_url": server.url})


TARGETS = {
    "bedrock": ("botocore.client", "BaseClient._make_api_call"),
    "google_genai": ("google.genai.models", "Models._generate_content"),
    "litellm": ("litellm", "completion"),
}


def _call(sdk: str, provider_server: ProviderServer, llm_server: FakeLLMServer, keep: list[Any]) -> str:
    if sdk == "bedrock":
        return _bedrock(provider_server).converse(modelId="nova-coexist", messages=MESSAGES)["output"]["message"][
            "content"
        ][0]["text"]
    if sdk == "google_genai":
        client = _gemini(provider_server)
        keep.append(client)
        return client.models.generate_content(model="gemini-coexist", contents="hello").text or ""
    return (
        litellm.completion(
            model="openai/gpt-coexist",
            api_base=llm_server.openai_base_url,
            api_key="sk",
            messages=[{"role": "user", "content": "hi"}],
        )
        .choices[0]
        .message.content
    )


@pytest.mark.parametrize("sdk", sorted(TARGETS))
def test_foreign_wrapt_layer_on_top(
    sdk: str, audit_factory: Any, provider_server: ProviderServer, llm_server: FakeLLMServer
) -> None:
    audit = audit_factory(sdk)
    module, name = TARGETS[sdk]
    seen: list[str] = []

    def foreign(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        seen.append("foreign")
        return wrapped(*args, **kwargs)

    import importlib

    mod = importlib.import_module(module)
    owner_name, _, attr = name.rpartition(".")
    owner = getattr(mod, owner_name) if owner_name else mod
    before = owner.__dict__[attr]
    wrapt.wrap_function_wrapper(owner, attr, foreign)
    keep: list[Any] = []
    try:
        assert _call(sdk, provider_server, llm_server, keep) == REPLY_TEXT
        assert seen == ["foreign"] and len(_own(audit)) == 1
        auditel.uninstrument(sdk)
        assert _call(sdk, provider_server, llm_server, keep) == REPLY_TEXT  # theirs still works, ours is out
        assert seen == ["foreign", "foreign"] and len(_own(audit)) == 1
    finally:
        current = owner.__dict__[attr]
        if isinstance(current, wrapt.FunctionWrapper) and current._self_wrapper is foreign:
            setattr(owner, attr, current.__wrapped__)
    assert isinstance(before, wrapt.FunctionWrapper)  # ours was on before theirs
    assert not isinstance(owner.__dict__[attr], wrapt.FunctionWrapper)  # both layers are gone: the original is back


def _own(audit: Any) -> list[Any]:
    """Records of auditel's own provider instrumentation: not the span bridge's (``audit.source``),
    which records another instrumentation's spans (e.g. wrappers OpenLLMetry could not remove)."""
    return [r for r in audit.records() if "audit.source" not in r["attributes"]]


def test_official_google_genai_instrumentation(audit_factory: Any, provider_server: ProviderServer) -> None:
    mod = pytest.importorskip("opentelemetry.instrumentation.google_genai")
    other = mod.GoogleGenAiSdkInstrumentor()
    other.instrument()
    try:
        audit = audit_factory("google_genai")
        client = _gemini(provider_server)
        assert client.models.generate_content(model="gemini-official", contents="hello").text == REPLY_TEXT
        assert (
            "".join(
                c.text or "" for c in client.models.generate_content_stream(model="gemini-official-s", contents="hello")
            )
            == REPLY_TEXT
        )
        assert len(audit.records()) == 2
    finally:
        other.uninstrument()


def test_openllmetry_bedrock_and_official_botocore(audit_factory: Any, provider_server: ProviderServer) -> None:
    bedrock_mod = pytest.importorskip("opentelemetry.instrumentation.bedrock")
    botocore_mod = pytest.importorskip("opentelemetry.instrumentation.botocore")
    others = [bedrock_mod.BedrockInstrumentor(), botocore_mod.BotocoreInstrumentor()]
    for other in others:
        other.instrument()
    try:
        audit = audit_factory("bedrock")
        c = _bedrock(provider_server)
        assert c.converse(modelId="amazon.nova-vendors", messages=MESSAGES)["stopReason"] == "end_turn"
        events = list(c.converse_stream(modelId="amazon.nova-vendors-s", messages=MESSAGES)["stream"])
        assert events
        body = json.loads(
            c.invoke_model(
                modelId="anthropic.claude-vendors",
                body=json.dumps(
                    {
                        "anthropic_version": "bedrock-2023-05-31",
                        "max_tokens": 5,
                        "messages": [{"role": "user", "content": "hi"}],
                    }
                ),
            )["body"].read()
        )
        assert body["content"][0]["text"] == REPLY_TEXT
        records = audit.records()
        assert [r["attributes"]["gen_ai.request.model"] for r in records] == [
            "amazon.nova-vendors",
            "amazon.nova-vendors-s",
            "anthropic.claude-vendors",
        ]
        # OpenLLMetry swaps InvokeModel's body for its own (built from the raw stream, past our proxy):
        # the call is still recorded, without the details the body would give
        assert records[2]["attributes"]["audit.outcome"] == "success"
        assert records[1]["attributes"]["gen_ai.usage.output_tokens"] == 9
    finally:
        for other in others:
            other.uninstrument()


def test_openllmetry_litellm(audit_factory: Any, llm_server: FakeLLMServer) -> None:
    mod = pytest.importorskip("opentelemetry.instrumentation.litellm")
    other = mod.LiteLLMInstrumentor()
    other.instrument()
    try:
        audit = audit_factory("litellm")
        kw = {"api_base": llm_server.openai_base_url, "api_key": "sk", "messages": [{"role": "user", "content": "hi"}]}
        assert litellm.completion(model="openai/gpt-vendors", **kw).choices[0].message.content == REPLY_TEXT
        assert (
            "".join(
                c.choices[0].delta.content or ""
                for c in litellm.completion(model="openai/gpt-vendors-s", stream=True, **kw)
                if c.choices
            )
            == REPLY_TEXT
        )
        assert len(audit.records()) == 2
    finally:
        other.uninstrument()
