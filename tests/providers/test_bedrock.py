"""Bedrock Runtime instrumentation against real boto3/botocore and a stand-in on 127.0.0.1 that speaks
Converse JSON and the binary AWS event stream (frames with real CRCs, parsed by botocore)."""

from __future__ import annotations

import gc
import json
from typing import Any

import boto3
import botocore.client
import botocore.exceptions
import pytest
from botocore.config import Config
from provider_server import GUARDRAIL_TEXT, TOOL_USE_ID, ProviderServer

from fake_llm_server import REPLY_TEXT, TOOL_ARGUMENTS, TOOL_NAME
from genai_support import outbox_bytes

PROMPT = "PROMPT-MARKER-91c2 what is the answer?"
SYSTEM = "SYSTEM-MARKER-5d10 be brief"
MESSAGES = [{"role": "user", "content": [{"text": PROMPT}]}]


def only(items: list[Any]) -> Any:
    assert len(items) == 1, items
    return items[0]


def bedrock(server: ProviderServer, attempts: int = 1) -> Any:
    cfg = Config(retries={"mode": "standard", "max_attempts": attempts}, connect_timeout=5, read_timeout=10)
    return boto3.client("bedrock-runtime", endpoint_url=server.url, region_name="us-east-1", config=cfg)


def test_converse_span_record_and_client_made_before_instrument(
    audit_factory: Any, provider_server: ProviderServer
) -> None:
    early = bedrock(provider_server)  # made before instrument(): the dispatch patch covers it
    audit = audit_factory("bedrock")
    late = bedrock(provider_server)
    for c in (early, late):
        out = c.converse(
            modelId="amazon.nova-lite-v1:0",
            messages=MESSAGES,
            system=[{"text": SYSTEM}],
            inferenceConfig={"maxTokens": 50, "temperature": 0.2},
        )
        assert out["output"]["message"]["content"][0]["text"] == REPLY_TEXT
    spans = audit.model_spans()
    assert len(spans) == 2
    a = spans[0].attributes
    assert spans[0].name == "chat amazon.nova-lite-v1:0"
    assert a["gen_ai.provider.name"] == "aws.bedrock"
    assert a["gen_ai.request.max_tokens"] == 50 and a["gen_ai.request.temperature"] == 0.2
    assert tuple(a["gen_ai.response.finish_reasons"]) == ("end_turn",)
    assert a["gen_ai.usage.input_tokens"] == 27  # 21 fresh + 4 cache read + 2 cache write
    assert a["gen_ai.usage.output_tokens"] == 9
    assert a["gen_ai.usage.cache_read.input_tokens"] == 4 and a["gen_ai.usage.cache_creation.input_tokens"] == 2
    assert a["gen_ai.response.id"] == "req-test-1"
    assert a["server.port"] == provider_server.port
    records = audit.records()
    assert len(records) == 2 and all(r["attributes"]["audit.outcome"] == "success" for r in records)
    data = outbox_bytes(audit.outbox)
    for marker in (PROMPT, SYSTEM, REPLY_TEXT):
        assert marker.encode() not in data


def test_other_services_and_operations_pass_through(audit_factory: Any, provider_server: ProviderServer) -> None:
    audit = audit_factory("bedrock")
    s3 = boto3.client(
        "s3", endpoint_url=provider_server.url, region_name="us-east-1", config=Config(retries={"max_attempts": 1})
    )
    with pytest.raises(botocore.exceptions.ClientError):
        s3.list_buckets()
    assert audit.records() == [] and audit.model_spans() == []


def test_converse_tool_use(audit_factory: Any, provider_server: ProviderServer) -> None:
    audit = audit_factory("bedrock")
    bedrock(provider_server).converse(modelId="amazon.nova-tools", messages=MESSAGES)
    r = only(audit.records())["attributes"]
    assert r["audit.tool_calls.names"] == [TOOL_NAME] and r["audit.tool_calls.ids"] == [TOOL_USE_ID]
    assert TOOL_ARGUMENTS["city"].encode() not in outbox_bytes(audit.outbox)


def test_converse_stream_exhausted_with_tool(audit_factory: Any, provider_server: ProviderServer) -> None:
    audit = audit_factory("bedrock")
    out = bedrock(provider_server).converse_stream(modelId="amazon.nova-tools", messages=MESSAGES)
    events = list(out["stream"])
    text = "".join(e["contentBlockDelta"]["delta"].get("text", "") for e in events if "contentBlockDelta" in e)
    assert text == REPLY_TEXT
    r = only(audit.records())["attributes"]
    assert r["audit.stream.end"] == "exhausted" and r["audit.outcome"] == "success"
    assert r["audit.model_call.streaming"] is True
    assert r["gen_ai.response.finish_reasons"] == ["tool_use"]
    assert r["audit.tool_calls.names"] == [TOOL_NAME]
    assert r["gen_ai.usage.output_tokens"] == 9
    assert only(audit.model_spans()).attributes["gen_ai.response.time_to_first_chunk"] >= 0


def test_converse_stream_break_close_and_abandon(audit_factory: Any, provider_server: ProviderServer) -> None:
    audit = audit_factory("bedrock")
    c = bedrock(provider_server)
    out = c.converse_stream(modelId="amazon.nova-long", messages=MESSAGES)
    for _ in out["stream"]:
        break
    out2 = c.converse_stream(modelId="amazon.nova-long-2", messages=MESSAGES)
    out2["stream"].close()
    out3 = c.converse_stream(modelId="amazon.nova-long-3", messages=MESSAGES)
    del out3
    gc.collect()
    records = {r["attributes"]["gen_ai.request.model"]: r["attributes"] for r in audit.records()}
    assert records["amazon.nova-long"]["audit.stream.end"] == "closed"
    assert records["amazon.nova-long"]["audit.outcome"] == "unknown"
    assert records["amazon.nova-long-2"]["audit.stream.end"] == "closed"
    assert records["amazon.nova-long-3"]["audit.stream.end"] == "abandoned"
    assert len(audit.model_spans()) == 3


def test_guardrail_intervention_gives_policy_decision(audit_factory: Any, provider_server: ProviderServer) -> None:
    audit = audit_factory("bedrock")
    c = bedrock(provider_server)
    out = c.converse(
        modelId="amazon.nova-guardrail",
        messages=MESSAGES,
        guardrailConfig={"guardrailIdentifier": "gr-test-1", "guardrailVersion": "1", "trace": "enabled"},
    )
    assert out["stopReason"] == "guardrail_intervened"
    list(c.converse_stream(modelId="amazon.nova-guardrail-s", messages=MESSAGES)["stream"])
    json.loads(
        c.invoke_model(
            modelId="anthropic.claude-guardrail",
            body=json.dumps(
                {
                    "anthropic_version": "bedrock-2023-05-31",
                    "max_tokens": 5,
                    "messages": [{"role": "user", "content": PROMPT}],
                }
            ),
            guardrailIdentifier="gr-2",
            guardrailVersion="1",
        )["body"].read()
    )
    decisions = [d["attributes"] for d in audit.records("auditel.policy_decision")]
    assert len(decisions) == 3
    first = decisions[0]
    assert first["audit.policy.verdict"] == "deny" and first["audit.policy.action_taken"] == "blocked"
    assert first["audit.policy.id"] == "gr-test-1"
    assert first["audit.policy.rule_id"] == "contentPolicy:VIOLENCE"
    assert decisions[2]["audit.policy.id"] == "gr-2"
    models = audit.records()
    assert [m["attributes"]["gen_ai.response.finish_reasons"] for m in models][:2] == [["guardrail_intervened"]] * 2
    assert models[0]["trace_id"] == audit.records("auditel.policy_decision")[0]["trace_id"]
    assert GUARDRAIL_TEXT.encode() not in outbox_bytes(audit.outbox)


@pytest.mark.parametrize("model", ["anthropic.claude-3-haiku-20240307-v1:0", "amazon.nova-pro-v1:0"])
def test_invoke_model_body_shapes(audit_factory: Any, provider_server: ProviderServer, model: str) -> None:
    audit = audit_factory("bedrock")
    if model.startswith("anthropic"):
        body = {
            "anthropic_version": "bedrock-2023-05-31",
            "max_tokens": 50,
            "system": SYSTEM,
            "messages": [{"role": "user", "content": PROMPT}],
        }
    else:
        body = {
            "schemaVersion": "messages-v1",
            "system": [{"text": SYSTEM}],
            "messages": MESSAGES,
            "inferenceConfig": {"maxTokens": 50},
        }
    out = bedrock(provider_server).invoke_model(modelId=model, body=json.dumps(body))
    assert not audit.records()  # the facts come from the body the caller reads
    payload = json.loads(out["body"].read())
    assert REPLY_TEXT in json.dumps(payload)
    span = only(audit.model_spans())
    assert span.attributes["gen_ai.request.max_tokens"] == 50
    assert span.attributes["gen_ai.usage.output_tokens"] == 9
    assert span.attributes["gen_ai.usage.input_tokens"] == 27
    r = only(audit.records())["attributes"]
    assert r["audit.outcome"] == "success" and r["gen_ai.provider.name"] == "aws.bedrock"
    assert r["audit.input.digest"].startswith("hmac-sha256:")


def test_invoke_model_never_read_is_recorded_on_gc(audit_factory: Any, provider_server: ProviderServer) -> None:
    audit = audit_factory("bedrock")
    out = bedrock(provider_server).invoke_model(modelId="amazon.nova-pro-v1:0", body=json.dumps({"messages": MESSAGES}))
    del out
    gc.collect()
    assert only(audit.records())["attributes"]["audit.outcome"] == "success"


@pytest.mark.parametrize("model", ["anthropic.claude-3-haiku-20240307-v1:0", "amazon.nova-micro-v1:0"])
def test_invoke_model_with_response_stream(audit_factory: Any, provider_server: ProviderServer, model: str) -> None:
    audit = audit_factory("bedrock")
    body = (
        {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 9, "messages": [{"role": "user", "content": PROMPT}]}
        if "anthropic" in model
        else {"messages": MESSAGES}
    )
    out = bedrock(provider_server).invoke_model_with_response_stream(modelId=model, body=json.dumps(body))
    chunks = [json.loads(e["chunk"]["bytes"]) for e in out["body"]]
    assert chunks
    r = only(audit.records())["attributes"]
    assert r["audit.stream.end"] == "exhausted" and r["audit.outcome"] == "success"
    assert r["gen_ai.usage.output_tokens"] == 9 and r["gen_ai.usage.input_tokens"] == 21
    assert r["gen_ai.response.finish_reasons"] == ["end_turn"]


def test_errors_throttled_retry_500_malformed_stream_error(audit_factory: Any, provider_server: ProviderServer) -> None:
    audit = audit_factory("bedrock")
    ok = bedrock(provider_server, attempts=3).converse(modelId="amazon.nova-rate-limited", messages=MESSAGES)
    assert ok["stopReason"] == "end_turn"
    with pytest.raises(botocore.exceptions.ClientError) as server_error:
        bedrock(provider_server).converse(modelId="amazon.nova-server-error", messages=MESSAGES)
    broken = bedrock(provider_server).converse(modelId="amazon.nova-malformed", messages=MESSAGES)
    assert "output" not in broken  # botocore returns the metadata alone for a body it cannot parse
    with pytest.raises(botocore.exceptions.EventStreamError):
        list(bedrock(provider_server).converse_stream(modelId="amazon.nova-stream-error", messages=MESSAGES)["stream"])
    records = {r["attributes"]["gen_ai.request.model"]: r["attributes"] for r in audit.records()}
    assert records["amazon.nova-rate-limited"]["audit.outcome"] == "success"  # botocore's retry is inside one call
    assert records["amazon.nova-server-error"]["audit.outcome"] == "failure"
    assert records["amazon.nova-server-error"]["error.type"] == type(server_error.value).__qualname__
    assert records["amazon.nova-malformed"]["audit.outcome"] == "success"
    assert "gen_ai.response.finish_reasons" not in records["amazon.nova-malformed"]
    assert records["amazon.nova-stream-error"]["audit.stream.end"] == "error"
    assert len(audit.model_spans()) == 4


def test_uninstrument_restores_dispatch(audit_factory: Any, provider_server: ProviderServer) -> None:
    import auditel

    original = botocore.client.BaseClient.__dict__["_make_api_call"]
    audit = audit_factory("bedrock")
    assert botocore.client.BaseClient.__dict__["_make_api_call"] is not original
    auditel.uninstrument("bedrock")
    assert botocore.client.BaseClient.__dict__["_make_api_call"] is original
    bedrock(provider_server).converse(modelId="amazon.nova-after", messages=MESSAGES)
    assert audit.records() == []


def test_coexists_with_otel_botocore_instrumentation(audit_factory: Any, provider_server: ProviderServer) -> None:
    """The official botocore instrumentation wraps the same dispatch (on top of ours, or under it)."""
    otel = pytest.importorskip("opentelemetry.instrumentation.botocore")
    inst = otel.BotocoreInstrumentor()
    inst.instrument()
    try:
        audit = audit_factory("bedrock")
        out = bedrock(provider_server).converse(modelId="amazon.nova-coexist", messages=MESSAGES)
        assert out["output"]["message"]["content"][0]["text"] == REPLY_TEXT
        events = list(
            bedrock(provider_server).converse_stream(modelId="amazon.nova-coexist-s", messages=MESSAGES)["stream"]
        )
        assert events
        assert len(audit.records()) == 2
    finally:
        inst.uninstrument()


def test_content_opt_in(audit_factory: Any, provider_server: ProviderServer) -> None:
    audit = audit_factory("bedrock", content="SPAN_AND_EVENT")
    bedrock(provider_server).converse(modelId="amazon.nova-content", messages=MESSAGES, system=[{"text": SYSTEM}])
    a = only(audit.model_spans()).attributes
    assert (
        PROMPT in a["gen_ai.input.messages"]
        and SYSTEM in a["gen_ai.system_instructions"]
        and REPLY_TEXT in a["gen_ai.output.messages"]
    )
    record = json.dumps(only(audit.records()))
    assert PROMPT in record and REPLY_TEXT in record
