"""OpenAI Agents SDK instrumentation: the real runner executes function tools, guardrails and a
handoff; the model is the SDK's own offline ``ScriptedModel`` (a ``Model`` subclass, no network)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, Iterator

import pytest
from agents import (
    Agent,
    GuardrailFunctionOutput,
    InputGuardrailTripwireTriggered,
    OutputGuardrailTripwireTriggered,
    RunConfig,
    Runner,
    ToolGuardrailFunctionOutput,
    function_tool,
    input_guardrail,
    output_guardrail,
    tool_input_guardrail,
)
from agents.testing import ScriptedModel
from agents.testing.model import assistant_message, function_call

import auditel

from .conftest import Audit

NO_TRACE = RunConfig(tracing_disabled=True)  # our records must not depend on the SDK's tracing


@function_tool
def get_weather(city: str) -> str:
    """Weather for a city."""
    return f"sunny in {city}"


@function_tool
def crash(x: int) -> int:
    """Always raises."""
    raise ZeroDivisionError("crash")


@tool_input_guardrail
def no_rm(data: Any) -> ToolGuardrailFunctionOutput:
    if "rm -rf" in data.context.tool_arguments:
        return ToolGuardrailFunctionOutput.reject_content("not allowed")
    return ToolGuardrailFunctionOutput.allow()


@function_tool(tool_input_guardrails=[no_rm])
def shell(command: str) -> str:
    """Runs a shell command (pretend)."""
    raise AssertionError("must never run when denied")


@input_guardrail
def block_secrets(ctx: Any, agent: Any, user_input: Any) -> GuardrailFunctionOutput:
    return GuardrailFunctionOutput(output_info=None, tripwire_triggered="password" in str(user_input))


@output_guardrail
def polite(ctx: Any, agent: Any, output: Any) -> GuardrailFunctionOutput:
    return GuardrailFunctionOutput(output_info=None, tripwire_triggered=False)


@pytest.fixture
def instrumented(audit: Audit) -> Iterator[Audit]:
    auditel.instrument("openai_agents")
    yield audit
    auditel.uninstrument("openai_agents")


def _phases(audit: Audit, tool: str) -> dict[str, dict[str, Any]]:
    return {r["attributes"]["audit.phase"]: r["attributes"] for r in audit.tool_calls(tool)}


def test_agent_runs_tools_with_guardrails(instrumented: Audit, spans: Any) -> None:
    model = ScriptedModel([
        [function_call("get_weather", {"city": "Oslo"}, call_id="call_w"),
         function_call("crash", {"x": 1}, call_id="call_c")],
        [function_call("shell", {"command": "rm -rf /"}, call_id="call_s")],
        [assistant_message("done")],
    ])
    agent = Agent(name="assistant", instructions="help", tools=[get_weather, crash, shell], model=model,
                  input_guardrails=[block_secrets], output_guardrails=[polite])
    result = asyncio.run(Runner.run(agent, "weather please", run_config=NO_TRACE))
    assert result.final_output == "done"

    weather = _phases(instrumented, "get_weather")
    assert weather["intent"]["gen_ai.tool.call.id"] == "call_w"
    assert weather["outcome"]["audit.outcome"] == "success"
    assert weather["intent"]["gen_ai.agent.name"] == "assistant"
    crashed = _phases(instrumented, "crash")
    assert crashed["outcome"]["audit.outcome"] == "failure"
    assert crashed["outcome"]["error.type"] == "ZeroDivisionError"
    # denied by a tool guardrail: an intent and a denial, the tool never ran
    shell_calls = _phases(instrumented, "shell")
    assert "intent" in shell_calls
    decisions = [r["attributes"] for r in instrumented.records("auditel.policy_decision")]
    tool_denial = next(d for d in decisions if d.get("gen_ai.tool.name") == "shell")
    assert tool_denial["audit.policy.verdict"] == "deny"
    assert tool_denial["audit.policy.action_taken"] == "blocked"
    assert tool_denial["audit.policy.id"] == "no_rm"
    assert tool_denial["audit.correlation.id"] == shell_calls["intent"]["audit.correlation.id"]
    assert shell_calls["outcome"]["audit.outcome"] == "denied"
    assert shell_calls["outcome"]["audit.reason"] == "guardrail:no_rm"
    agent_level = {d["audit.policy.id"]: d for d in decisions if d.get("audit.guardrail.target.type") in ("input", "output")}
    assert agent_level["block_secrets"]["audit.policy.verdict"] == "allow"
    assert agent_level["polite"]["audit.policy.verdict"] == "allow"

    runs = instrumented.records("auditel.agent_run")
    assert [r["attributes"]["audit.phase"] for r in runs] == ["intent", "outcome"]
    assert runs[1]["attributes"]["audit.outcome"] == "success"
    finished = spans.get_finished_spans()
    agent_span = next(s for s in finished if s.name == "invoke_agent assistant")
    weather_span = next(s for s in finished if s.name == "execute_tool get_weather")
    assert weather_span.parent.span_id == agent_span.context.span_id
    assert "Oslo" not in json.dumps(instrumented.records())


def test_input_guardrail_tripwire_is_a_deny(instrumented: Audit) -> None:
    agent = Agent(name="guarded", instructions="x", model=ScriptedModel([[assistant_message("never")]]),
                  input_guardrails=[block_secrets])
    with pytest.raises(InputGuardrailTripwireTriggered):
        asyncio.run(Runner.run(agent, "my password is hunter2", run_config=NO_TRACE))
    (decision,) = [r["attributes"] for r in instrumented.records("auditel.policy_decision")]
    assert decision["audit.policy.verdict"] == "deny"
    assert decision["audit.policy.action_taken"] == "halted"
    assert decision["audit.policy.id"] == "block_secrets"
    runs = instrumented.records("auditel.agent_run")
    assert runs[-1]["attributes"]["audit.outcome"] == "denied"
    assert "hunter2" not in json.dumps(instrumented.records())


def test_handoff_and_run_sync(instrumented: Audit) -> None:
    billing = Agent(name="billing", instructions="b", model=ScriptedModel([[assistant_message("refunded")]]))
    triage = Agent(name="triage", instructions="t", handoffs=[billing],
                   model=ScriptedModel([[function_call("transfer_to_billing", {}, call_id="h1")]]))
    result = Runner.run_sync(triage, "refund me", run_config=NO_TRACE)
    assert result.final_output == "refunded"
    (handoff,) = [r["attributes"] for r in instrumented.records("auditel.handoff")]
    assert handoff["audit.handoff.from_agent"] == "triage"
    assert handoff["audit.handoff.to_agent"] == "billing"
    runs = instrumented.records("auditel.agent_run")
    assert runs[-1]["attributes"]["audit.agent.last"] == "billing"


def test_streamed_run(instrumented: Audit) -> None:
    model = ScriptedModel([[function_call("get_weather", {"city": "Rome"}, call_id="c1")], [assistant_message("ok")]])
    agent = Agent(name="streamer", instructions="s", tools=[get_weather], model=model)

    async def main() -> str:
        result = Runner.run_streamed(agent, "hi", run_config=NO_TRACE)
        async for _ in result.stream_events():
            pass
        await asyncio.sleep(0)
        return str(result.final_output)

    assert asyncio.run(main()) == "ok"
    assert _phases(instrumented, "get_weather")["outcome"]["audit.outcome"] == "success"
    runs = instrumented.records("auditel.agent_run")
    assert [r["attributes"]["audit.phase"] for r in runs] == ["intent", "outcome"]


def test_uninstrument(audit: Audit) -> None:
    from agents.guardrail import InputGuardrail
    from agents.run import AgentRunner

    before = (AgentRunner.__dict__["run"], InputGuardrail.__dict__["run"])
    auditel.instrument("openai_agents")
    auditel.uninstrument("openai_agents")
    assert (AgentRunner.__dict__["run"], InputGuardrail.__dict__["run"]) == before
    agent = Agent(name="a", instructions="x", tools=[get_weather],
                  model=ScriptedModel([[function_call("get_weather", {"city": "X"}, call_id="c")], [assistant_message("k")]]))
    asyncio.run(Runner.run(agent, "hi", run_config=NO_TRACE))
    assert audit.tool_calls() == []


@output_guardrail
def no_leaks(ctx: Any, agent: Any, output: Any) -> GuardrailFunctionOutput:
    return GuardrailFunctionOutput(output_info={"leak": True}, tripwire_triggered="sk-" in str(output))


def test_output_guardrail_tripwire_is_a_deny(instrumented: Audit) -> None:
    agent = Agent(name="leaky", instructions="x", output_guardrails=[no_leaks],
                  model=ScriptedModel([[assistant_message("the key is sk-live-123")]]))
    with pytest.raises(OutputGuardrailTripwireTriggered) as caught:
        asyncio.run(Runner.run(agent, "what is the key?", run_config=NO_TRACE))
    # the SDK's own exception, unchanged: it names our guardrail and carries its output
    assert type(caught.value) is OutputGuardrailTripwireTriggered
    assert caught.value.guardrail_result.guardrail is no_leaks
    assert caught.value.guardrail_result.output.output_info == {"leak": True}
    assert caught.value.guardrail_result.agent_output == "the key is sk-live-123"
    (decision,) = [r["attributes"] for r in instrumented.records("auditel.policy_decision")]
    assert decision["audit.policy.verdict"] == "deny"
    assert decision["audit.policy.action_taken"] == "halted"
    assert decision["audit.policy.id"] == "no_leaks"
    assert decision["audit.guardrail.target.type"] == "output"
    assert decision["gen_ai.agent.name"] == "leaky"
    runs = instrumented.records("auditel.agent_run")
    assert [r["attributes"]["audit.phase"] for r in runs] == ["intent", "outcome"]
    assert runs[-1]["attributes"]["audit.outcome"] == "denied"
    assert runs[-1]["attributes"]["audit.reason"] == "OutputGuardrailTripwireTriggered"
    assert "sk-live-123" not in json.dumps(instrumented.records())
