"""One action, one record: the same call seen by several instrumentations gives one record.

Real SDKs and instrumentations against the local stand-in server: auditel's OpenAI/Anthropic
wrappers, Pydantic AI's native spans, the anthropic SDK's native spans, OpenLLMetry
(opentelemetry-instrumentation-openai) and OpenInference (openinference-instrumentation-openai).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

import auditel
from fake_llm_server import REPLY_TEXT
from genai_support import outbox_bytes
from spans.support import bridged, pydantic_ai_agent, records

MESSAGES = [{"role": "user", "content": "USER-MARKER hello"}]
CHILD = Path(__file__).with_name("openllmetry_child.py")


def oai(server: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.openai_base_url, api_key="sk-test", max_retries=0)


def three_calls(server: Any) -> None:
    """A plain call, a tool-call answer and a stream: results unchanged."""
    client = oai(server)
    assert client.chat.completions.create(model="gpt-4o", messages=MESSAGES).choices[0].message.content == REPLY_TEXT
    assert client.chat.completions.create(model="gpt-tools", messages=MESSAGES).choices[0].message.tool_calls
    stream = client.chat.completions.create(model="gpt-4o", messages=MESSAGES, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices) == REPLY_TEXT


def test_auditel_openai_and_pydantic_ai_chat_span_give_one_model_call(audit: Path, llm_server: Any) -> None:
    from pydantic_ai import Agent

    auditel.instrument("openai")
    Agent.instrument_all(True)
    try:
        agent = pydantic_ai_agent(llm_server.openai_base_url, "a1")

        @agent.tool_plain
        def get_weather(city: str, unit: str) -> str:
            return "sunny"

        assert agent.run_sync("weather?").output == REPLY_TEXT
    finally:
        Agent.instrument_all(False)
    models = records(audit, "model_call")
    assert len(models) == 2, [m["attributes"].get("audit.source") for m in models]
    assert bridged(audit, "model_call") == []  # auditel's own records won; Pydantic AI's chat spans deduplicated
    assert auditel.status()["span_bridge"]["deduplicated"] >= 2
    # the tool and the agent run, which auditel does not wrap, come from Pydantic AI's spans
    assert len(bridged(audit, "tool_call")) == 2 and len(bridged(audit, "agent_run")) == 2


def run_child(mode: str, outbox: Path, server: Any) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(CHILD), mode, str(outbox), server.openai_base_url, REPLY_TEXT],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_", "TRACELOOP_"))},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("order", ["auditel_first", "openllmetry_first"])
def test_auditel_openai_and_openllmetry_give_one_record(outbox_path: Path, llm_server: Any, order: str) -> None:
    """OpenLLMetry wrapped around or inside auditel's wrapper: auditel's record only (in a child process:
    OpenLLMetry cannot fully uninstrument)."""
    counts = run_child(order, outbox_path, llm_server)
    assert len(records(outbox_path, "model_call")) == 3
    assert bridged(outbox_path, "model_call") == []
    assert counts["deduplicated"] == 3


def test_openinference_and_openllmetry_on_the_same_calls_give_one_record_each(
    outbox_path: Path, llm_server: Any
) -> None:
    counts = run_child("oi_ol", outbox_path, llm_server)
    models = records(outbox_path, "model_call")
    assert len(models) == 3, [m["attributes"].get("audit.source") for m in models]
    assert all("audit.input.digest" in m["attributes"] for m in models)
    assert counts["deduplicated"] == 3 and counts["mapped"] == 3
    assert b"USER-MARKER" not in outbox_bytes(outbox_path)


def test_openinference_alone_records_each_call(audit: Path, llm_server: Any) -> None:
    from openinference.instrumentation.openai import OpenAIInstrumentor as OpenInference

    oi = OpenInference()
    oi.instrument()
    try:
        three_calls(llm_server)
    finally:
        oi.uninstrument()
    models = bridged(audit, "model_call")
    assert len(models) == 3
    assert {m["attributes"]["audit.source.convention"] for m in models} == {"openinference"}
    assert models[0]["attributes"]["gen_ai.request.model"].startswith("gpt-4o")  # llm.model_name


def test_anthropic_native_spans_and_auditel_give_one_record(audit: Path, llm_server: Any) -> None:
    client = anthropic.Anthropic(base_url=llm_server.anthropic_base_url, api_key="sk-ant-test", max_retries=0)
    msg = [{"role": "user", "content": "hi"}]
    client.messages.create(model="claude-x", max_tokens=5, messages=msg)  # only the SDK's own spans
    native = bridged(audit, "model_call")
    assert len(native) == 1 and native[0]["attributes"]["audit.source"] == "com.anthropic.sdk.python"
    auditel.instrument("anthropic")
    assert client.messages.create(model="claude-x", max_tokens=5, messages=msg).content[0].text == REPLY_TEXT
    assert len(records(audit, "model_call")) == 2  # the second call: auditel's own record only
    assert len(bridged(audit, "model_call")) == 1
