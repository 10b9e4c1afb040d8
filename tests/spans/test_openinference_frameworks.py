"""OpenInference instrumentation of two real frameworks -> the same audit records.

smolagents (openinference-instrumentation-smolagents) and the OpenAI Agents SDK
(openinference-instrumentation-openai-agents), models pointed at the local stand-in server.
auditel's own instrumentations are off here: every record comes from OpenInference's spans.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import auditel
from fake_llm_server import TOOL_ARGUMENTS
from genai_support import outbox_bytes
from spans.support import bridged


def test_smolagents_with_openinference(audit: Path, llm_server: Any) -> None:
    pytest.importorskip("smolagents")
    from openinference.instrumentation.smolagents import SmolagentsInstrumentor
    from smolagents import OpenAIServerModel, ToolCallingAgent, tool

    @tool
    def get_weather(city: str, unit: str) -> str:
        """The weather in a city.

        Args:
            city: the city
            unit: celsius or fahrenheit
        """
        return "RESULT-MARKER sunny"

    inst = SmolagentsInstrumentor()
    inst.instrument()
    try:
        model = OpenAIServerModel(model_id="agent-tools-once", api_base=llm_server.openai_base_url, api_key="t")
        agent = ToolCallingAgent(tools=[get_weather], model=model, max_steps=2, name="smol_agent")
        agent.run("USER-MARKER weather in Paris?")
    finally:
        inst.uninstrument()
    rt = auditel.runtime.current()
    tools = [r for r in bridged(audit, "tool_call") if r["attributes"].get("gen_ai.tool.name") == "get_weather"]
    phases = [r["attributes"]["audit.phase"] for r in tools]
    assert phases and phases == ["intent", "outcome"] * (len(phases) // 2)  # one pair per step that ran the tool
    assert len({r["attributes"]["audit.correlation.id"] for r in tools}) == len(phases) // 2
    assert {r["attributes"]["audit.source.convention"] for r in tools} == {"openinference"}
    assert tools[0]["attributes"]["audit.arguments.digest"] == rt.digest(TOOL_ARGUMENTS)[0]
    assert len(bridged(audit, "model_call")) >= 2
    agents = bridged(audit, "agent_run")
    assert [r["attributes"]["audit.phase"] for r in agents] == ["intent", "outcome"]
    stored = outbox_bytes(audit)
    assert b"USER-MARKER" not in stored and b"RESULT-MARKER" not in stored and b"ARGS-MARKER" not in stored


def test_openai_agents_with_openinference(audit: Path, llm_server: Any) -> None:
    import openai
    from agents import (
        Agent,
        OpenAIChatCompletionsModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )
    from openinference.instrumentation.openai_agents import OpenAIAgentsInstrumentor

    @function_tool
    def get_weather(city: str, unit: str) -> str:
        """The weather in a city."""
        return "RESULT-MARKER sunny"

    set_tracing_disabled(False)
    inst = OpenAIAgentsInstrumentor()
    inst.instrument()
    try:
        client = openai.AsyncOpenAI(base_url=llm_server.openai_base_url, api_key="t", max_retries=0)
        agent = Agent(
            name="oa_agent",
            instructions="PROMPT-MARKER",
            tools=[get_weather],
            model=OpenAIChatCompletionsModel(model="agent-tools-once", openai_client=client),
        )
        result = Runner.run_sync(agent, "USER-MARKER weather?")
        assert "forty-two" in str(result.final_output)
    finally:
        inst.uninstrument()
    rt = auditel.runtime.current()
    tools = [r for r in bridged(audit, "tool_call") if r["attributes"].get("gen_ai.tool.name") == "get_weather"]
    assert [r["attributes"]["audit.phase"] for r in tools][-1] == "outcome"
    assert tools[-1]["attributes"]["audit.outcome"] == "success"
    assert any(r["attributes"].get("audit.arguments.digest") == rt.digest(TOOL_ARGUMENTS)[0] for r in tools)
    assert len(bridged(audit, "model_call")) == 2
    assert any(
        r["attributes"].get("gen_ai.agent.name") == "oa_agent"
        or "oa_agent" in str(r["attributes"].get("audit.target.id"))
        for r in bridged(audit, "agent_run")
    )
    stored = outbox_bytes(audit)
    assert b"USER-MARKER" not in stored and b"RESULT-MARKER" not in stored
