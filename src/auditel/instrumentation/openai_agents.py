"""OpenAI Agents SDK (``openai-agents``): function tools, handoffs, guardrails, agent runs.

The SDK's own tracing (``TracingProcessor``) is switched off by many deployments
(``tracing_disabled``, ``OPENAI_AGENTS_DISABLE_TRACING``) because it exports to OpenAI; an audit
trail must not depend on it. So we wrap the places where the runner acts:

* Function tools (the runner's per-call executor): ``execute_tool {tool}`` span, intent before
  the tool (and before any approval step), outcome after. The SDK turns a tool's exception into a
  message for the model (``failure_error_function``); we still record ``failure`` with the real
  error type, and the value the model sees is unchanged.
* Agent guardrails (``InputGuardrail.run`` / ``OutputGuardrail.run``) and tool guardrails
  (``ToolInputGuardrail.run`` / ``ToolOutputGuardrail.run``): one ``auditel.policy_decision``
  each; a tripwire is verdict ``deny`` (action ``halted``), ``reject_content`` is ``deny``
  (action ``blocked`` before a tool, ``replaced`` after it).
* Handoffs (``execute_handoffs``): one ``auditel.handoff`` record (from, to).
* Runs (``AgentRunner.run``, which ``run_sync`` drives, and ``run_streamed``): an
  ``invoke_agent {agent}`` span and ``auditel.agent_run`` intent/outcome records.
"""

from __future__ import annotations

import contextvars
from typing import Any

from auditel.api import helpers as api
from auditel.api.runs import AgentRun, ToolRun, recording_enabled
from auditel.instrumentation.base import count_error
from auditel.instrumentation.patching import Patcher, PatchingInstrumentor

FRAMEWORK = "openai_agents"

_CURRENT_TOOL: contextvars.ContextVar[ToolRun | None] = contextvars.ContextVar("auditel_agents_tool", default=None)


# --- function tools ----------------------------------------------------------------------------
async def _run_single_tool(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if not recording_enabled():
        return await wrapped(*args, **kwargs)
    run: ToolRun | None = None
    try:
        func_tool = kwargs.get("func_tool")
        tool_call = kwargs.get("tool_call")
        agent = getattr(instance, "public_agent", None)
        run = ToolRun(
            str(getattr(func_tool, "name", None) or getattr(tool_call, "name", "unknown")),
            call_id=getattr(tool_call, "call_id", None),
            arguments=_arguments(getattr(tool_call, "arguments", None)),
            tool_type="function",
            attributes={"audit.framework": FRAMEWORK, "gen_ai.agent.name": getattr(agent, "name", None)},
        )
        run.start_span()
        run.start()
    except Exception as exc:  # noqa: BLE001
        count_error("openai_agents", exc)
    if run is None:
        return await wrapped(*args, **kwargs)
    token = _CURRENT_TOOL.set(run)
    try:
        with run.running():
            result = await wrapped(*args, **kwargs)
    finally:
        _CURRENT_TOOL.reset(token)
    try:
        output = getattr(result, "output", result)
        if run.denied_by is not None:
            run.finish(outcome="denied", reason=run.denied_by)
        elif run.error_hint is not None:
            run.finish(result=output, outcome="failure", error=run.error_hint, reason="error_returned_to_model")
        else:
            run.finish(result=output)
    except Exception as exc:  # noqa: BLE001
        count_error("openai_agents", exc)
    return result


def _arguments(raw: Any) -> Any:
    """The model sends arguments as JSON text; digest the parsed value so equal arguments match."""
    if isinstance(raw, str):
        import json

        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw if raw is not None else {}


async def _tool_failure(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """The SDK is about to turn a tool's exception into text for the model: remember the error type."""
    run = _CURRENT_TOOL.get()
    error = kwargs.get("error")
    if run is not None and isinstance(error, BaseException):
        run.error_hint = type(error).__qualname__
    return await wrapped(*args, **kwargs)


# --- guardrails --------------------------------------------------------------------------------
def _guardrail_name(guardrail: Any) -> str:
    try:
        return str(guardrail.get_name())
    except Exception:  # noqa: BLE001
        return type(guardrail).__name__


async def _agent_guardrail(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = await wrapped(*args, **kwargs)
    if not recording_enabled():
        return result
    try:
        kind = "input" if type(instance).__name__ == "InputGuardrail" else "output"
        agent = kwargs.get("agent") or next((a for a in args if hasattr(a, "instructions")), None)
        triggered = bool(getattr(getattr(result, "output", None), "tripwire_triggered", False))
        api.policy_decision(
            "deny" if triggered else "allow",
            policy_id=_guardrail_name(instance),
            reason="tripwire_triggered" if triggered else None,
            action=f"agent.{kind}",
            action_taken="halted" if triggered else "allowed",
            target=getattr(agent, "name", None),
            attributes={
                "audit.framework": FRAMEWORK,
                "audit.guardrail.target.type": kind,
                "gen_ai.agent.name": getattr(agent, "name", None),
            },
        )
    except Exception as exc:  # noqa: BLE001
        count_error("openai_agents", exc)
    return result


_TOOL_ACTIONS = {
    ("input", "allow"): ("allow", "allowed"),
    ("input", "reject_content"): ("deny", "blocked"),
    ("input", "raise_exception"): ("deny", "halted"),
    ("output", "allow"): ("allow", "allowed"),
    ("output", "reject_content"): ("deny", "replaced"),
    ("output", "raise_exception"): ("deny", "halted"),
}


async def _tool_guardrail(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    result = await wrapped(*args, **kwargs)
    if not recording_enabled():
        return result
    try:
        kind = "input" if type(instance).__name__ == "ToolInputGuardrail" else "output"
        data = args[0] if args else kwargs.get("data")
        ctx = getattr(data, "context", None)
        raw = getattr(result, "behavior", None)
        behavior = (raw.get("type") if isinstance(raw, dict) else getattr(raw, "type", None)) or "allow"
        verdict, taken = _TOOL_ACTIONS.get((kind, str(behavior)), ("warn", "allowed"))
        run = _CURRENT_TOOL.get()
        if run is not None and kind == "input" and verdict == "deny":
            run.denied_by = f"guardrail:{_guardrail_name(instance)}"
        api.policy_decision(
            verdict,
            policy_id=_guardrail_name(instance),
            reason=str(behavior) if verdict != "allow" else None,
            action=f"tool.{kind}",
            action_taken=taken,
            tool_name=getattr(ctx, "tool_name", None),
            call_id=getattr(ctx, "tool_call_id", None),
            correlation_id=run.correlation_id if run is not None else None,
            attributes={"audit.framework": FRAMEWORK, "audit.guardrail.target.type": f"tool_{kind}"},
        )
    except Exception as exc:  # noqa: BLE001
        count_error("openai_agents", exc)
    return result


# --- handoffs ------------------------------------------------------------------------------------
async def _execute_handoffs(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if not recording_enabled():
        return await wrapped(*args, **kwargs)
    source = getattr(kwargs.get("public_agent"), "name", None)
    try:
        result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        requested = [getattr(getattr(h, "handoff", None), "agent_name", None) for h in kwargs.get("run_handoffs") or []]
        _record_handoff(source, requested[0] if requested else None, exc)
        raise
    new_agent = getattr(getattr(result, "next_step", None), "new_agent", None)
    _record_handoff(source, getattr(new_agent, "name", None), None)
    return result


def _record_handoff(source: str | None, target: str | None, error: BaseException | None) -> None:
    from auditel.api.runs import record_handoff

    record_handoff(source, target, framework=FRAMEWORK, error=error)


# --- runs ----------------------------------------------------------------------------------------
def _start_agent_run(args: tuple[Any, ...], kwargs: dict[str, Any]) -> AgentRun | None:
    try:
        agent = args[0] if args else kwargs.get("starting_agent")
        return AgentRun(getattr(agent, "name", None), framework=FRAMEWORK).start()
    except Exception as exc:  # noqa: BLE001
        count_error("openai_agents", exc)
        return None


def _run_outcome(run: AgentRun, error: BaseException | None, result: Any = None) -> None:
    try:
        last = getattr(getattr(result, "last_agent", None), "name", None)
        extra = {"audit.agent.last": last} if last else None
        name = type(error).__name__ if error is not None else ""
        if "Tripwire" in name:
            run.finish(outcome="denied", reason=name, attributes=extra)
        else:
            run.finish(error=error, attributes=extra)
    except Exception as exc:  # noqa: BLE001
        count_error("openai_agents", exc)


async def _runner_run(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if not recording_enabled():
        return await wrapped(*args, **kwargs)
    run = _start_agent_run(args, kwargs)
    if run is None:
        return await wrapped(*args, **kwargs)
    try:
        with run.active():
            result = await wrapped(*args, **kwargs)
    except BaseException as exc:
        _run_outcome(run, exc)
        raise
    _run_outcome(run, None, result)
    return result


def _runner_run_streamed(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if not recording_enabled():
        return wrapped(*args, **kwargs)
    run = _start_agent_run(args, kwargs)
    if run is None:
        return wrapped(*args, **kwargs)
    try:
        with run.active():  # the background run task copies this context: its spans nest under ours
            streamed = wrapped(*args, **kwargs)
    except BaseException as exc:
        _run_outcome(run, exc)
        raise
    task = getattr(streamed, "run_loop_task", None)
    if task is None:
        _run_outcome(run, None, streamed)
    else:

        def done(t: Any) -> None:
            error = None if t.cancelled() else t.exception()
            if t.cancelled():
                run.finish(outcome="unknown", reason="cancelled")
            else:
                _run_outcome(run, error, streamed)

        task.add_done_callback(done)
    return streamed


class OpenAIAgentsInstrumentor(PatchingInstrumentor):
    """``auditel_openai_agents``: function tools, guardrails, handoffs and runs of the OpenAI Agents SDK."""

    requirements = ("openai-agents >= 0.1",)
    patch_kind = "openai_agents"

    def _apply(self, p: Patcher) -> None:
        p.patch("agents.run_internal.tool_execution", "_FunctionToolBatchExecutor._run_single_tool", _run_single_tool)
        for module in ("agents.tool", "agents.run_internal.tool_execution"):
            p.patch(module, "maybe_invoke_function_tool_failure_error_function", _tool_failure)
        p.patch("agents.guardrail", "InputGuardrail.run", _agent_guardrail)
        p.patch("agents.guardrail", "OutputGuardrail.run", _agent_guardrail)
        p.patch("agents.tool_guardrails", "ToolInputGuardrail.run", _tool_guardrail)
        p.patch("agents.tool_guardrails", "ToolOutputGuardrail.run", _tool_guardrail)
        p.patch("agents.run_internal.turn_resolution", "execute_handoffs", _execute_handoffs)
        p.patch("agents.run", "AgentRunner.run", _runner_run)
        p.patch("agents.run", "AgentRunner.run_streamed", _runner_run_streamed)
