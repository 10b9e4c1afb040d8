"""LangChain / LangGraph: tool runs, graph (agent) invocations, chat-model runs.

* Tools: ``BaseTool.run`` / ``BaseTool.arun`` (every ``invoke``/``ainvoke``, LangGraph's
  ``ToolNode`` and agent loops go through them): an ``execute_tool {tool}`` span current while
  the tool runs, an intent record before, an outcome record after. An error swallowed by
  ``handle_tool_error`` / ``handle_validation_error`` is still a ``failure`` outcome with the real
  error type (``audit.reason=handled_by_tool``); the tool's return value is unchanged.
* Graphs: ``Pregel.stream`` / ``Pregel.astream`` (``invoke``/``ainvoke`` use them): an
  ``invoke_agent {graph name}`` span and ``auditel.agent_run`` intent/outcome records. The span is
  current only while the graph runs, never while the caller consumes the stream, so context stays
  right across yields, ``asyncio`` tasks and LangChain's thread pools (which copy contextvars).
* Chat models: a callback handler (added to every callback manager) records one
  ``auditel.model_call`` per chat-model run, *unless* auditel's instrumentation of that provider's
  SDK is active (``auditel_openai`` for ``ls_provider=openai``...), so a model call is recorded once.
"""

from __future__ import annotations

import contextvars
import time
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any
from uuid import UUID

from auditel.api import helpers as api
from auditel.api.runs import AgentRun, ToolRun, recording_enabled, wrap_async_generator, wrap_generator
from auditel.instrumentation.base import count_error
from auditel.instrumentation.patching import Patcher, PatchingInstrumentor

FRAMEWORK = "langchain"

_CURRENT_TOOL: contextvars.ContextVar[ToolRun | None] = contextvars.ContextVar("auditel_lc_tool", default=None)

# ls_provider (LangChain's provider tag) -> auditel instrumentation that records that SDK's calls itself
PROVIDER_INSTRUMENTATIONS = {
    "openai": "auditel_openai",
    "azure": "auditel_openai",
    "azure_openai": "auditel_openai",
    "anthropic": "auditel_anthropic",
}


# --- tools -------------------------------------------------------------------------------------
def _model_supplied(instance: Any, tool_input: Any) -> Any:
    """The arguments the model supplied: injected ones (``runtime: ToolRuntime``, ``InjectedState``,
    ``InjectedToolCallId``, callbacks) are dropped, as LangChain drops them from the tool-call schema
    and from its own callbacks. Recording them would store the whole graph state (and digests that
    change run to run), and the digest would never match the model's requested arguments."""
    if not isinstance(tool_input, dict):
        return tool_input
    drop_injected = getattr(instance, "_filter_injected_args", None)
    if callable(drop_injected):
        try:
            kept = _kept_keys(instance, tool_input, drop_injected)
            return {k: v for k, v in tool_input.items() if k in kept}
        except Exception:  # noqa: BLE001 - fall back to the tool-call schema's fields
            pass
    schema = getattr(instance, "tool_call_schema", None)
    fields = getattr(schema, "model_fields", None)
    if isinstance(fields, dict):
        return {k: v for k, v in tool_input.items() if k in fields}
    return tool_input


# LangChain's ``_filter_injected_args`` reads the schema's type hints on every call (~50 us; LangChain
# itself calls it once more per run): which keys it keeps depends only on the schema, the tool's
# injected parameters and the keys given, so the answer is kept for that triple. Weakly, by schema:
# apps that build tools per session (MCP adapters) make a schema class per tool, and those must go.
_KEPT: weakref.WeakKeyDictionary[Any, dict[tuple[Any, tuple[str, ...]], frozenset[str]]] = weakref.WeakKeyDictionary()
_KEPT_PER_SCHEMA = 64


def _kept_keys(instance: Any, tool_input: dict[str, Any], drop_injected: Any) -> frozenset[str]:
    schema = getattr(instance, "args_schema", None)
    per_schema = None
    if schema is not None and not isinstance(schema, dict):  # a JSON-schema dict is not hashable
        try:
            per_schema = _KEPT.get(schema)
            if per_schema is None:
                per_schema = _KEPT[schema] = {}
        except TypeError:  # not weakly referenceable: asked every time
            per_schema = None
    key = (getattr(instance, "_injected_args_keys", None), tuple(tool_input))
    if per_schema is not None:
        kept = per_schema.get(key)
        if kept is not None:
            return kept
    kept = frozenset(drop_injected(tool_input))
    if per_schema is not None:
        if len(per_schema) >= _KEPT_PER_SCHEMA:
            per_schema.clear()
        per_schema[key] = kept
    return kept


def _start_tool(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> ToolRun | None:
    try:
        tool_input = _model_supplied(instance, args[0] if args else kwargs.get("tool_input"))
        run = ToolRun(
            str(getattr(instance, "name", type(instance).__name__)),
            call_id=kwargs.get("tool_call_id"),
            arguments=tool_input,
            tool_type="function",
            attributes={"audit.framework": FRAMEWORK},
        )
        run.start_span()
        return run.start()
    except Exception as exc:  # noqa: BLE001
        count_error("langchain", exc)
        return None


def _finish_tool(run: ToolRun, output: Any) -> None:
    try:
        content = getattr(output, "content", output)
        status = getattr(output, "status", None)
        if run.error_hint is not None or status == "error":
            run.finish(
                result=content, outcome="failure", error=run.error_hint or "tool_error", reason="handled_by_tool"
            )
        else:
            run.finish(result=content)
    except Exception as exc:  # noqa: BLE001
        count_error("langchain", exc)


def _tool_run(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    run = _start_tool(instance, args, kwargs) if recording_enabled() else None
    if run is None:
        return wrapped(*args, **kwargs)
    token = _CURRENT_TOOL.set(run)
    try:
        with run.running():
            output = wrapped(*args, **kwargs)
    finally:
        _CURRENT_TOOL.reset(token)
    _finish_tool(run, output)
    return output


async def _tool_arun(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    run = _start_tool(instance, args, kwargs) if recording_enabled() else None
    if run is None:
        return await wrapped(*args, **kwargs)
    token = _CURRENT_TOOL.set(run)
    try:
        with run.running():
            output = await wrapped(*args, **kwargs)
    finally:
        _CURRENT_TOOL.reset(token)
    _finish_tool(run, output)
    return output


def _handled_error(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``_handle_tool_error(e, flag=...)``: the tool swallowed an error; remember its type."""
    run = _CURRENT_TOOL.get()
    if run is not None and args:
        run.error_hint = type(args[0]).__qualname__
    return wrapped(*args, **kwargs)


# --- graphs ------------------------------------------------------------------------------------
class _LazyAgentRun:
    """Starts the agent run (records + span) when the graph first runs, not when ``stream()`` is called."""

    def __init__(self, name: str | None) -> None:
        self.run = AgentRun(name, framework="langgraph")
        self.started = False

    @contextmanager
    def scope(self) -> Iterator[None]:
        if not self.started:
            self.started = True
            self.run.start()
        with self.run.active():
            yield

    def end(self, error: BaseException | None, complete: bool, items: int) -> None:
        if not self.started:
            return
        if error is not None or complete:
            self.run.finish(error=error, attributes={"audit.stream.items": items})
        else:
            self.run.finish(
                outcome="unknown",
                reason="stream closed before the run finished",
                attributes={"audit.stream.items": items},
            )


def _graph_stream(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    gen = wrapped(*args, **kwargs)
    if not recording_enabled():
        return gen
    lazy = _LazyAgentRun(getattr(instance, "name", None))
    return wrap_generator(gen, lazy.scope, lazy.end)


def _graph_astream(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    agen = wrapped(*args, **kwargs)
    if not recording_enabled():
        return agen
    lazy = _LazyAgentRun(getattr(instance, "name", None))
    return wrap_async_generator(agen, lazy.scope, lazy.end)


# --- chat models -------------------------------------------------------------------------------
def provider_sdk_instrumented(provider: str | None) -> bool:
    """True when auditel's own instrumentation of this provider's SDK is on (it records the call)."""
    name = PROVIDER_INSTRUMENTATIONS.get((provider or "").lower())
    if name is None:
        return False
    from auditel.instrumentation import _active

    inst = _active.get(name)
    return bool(inst is not None and inst.is_instrumented_by_opentelemetry)


def _make_handler_class() -> type:
    from langchain_core.callbacks import BaseCallbackHandler

    class AuditelCallbackHandler(BaseCallbackHandler):
        """Records chat-model runs; ignores every other callback event."""

        run_inline = True
        raise_error = False
        ignore_chain = True
        ignore_agent = True
        ignore_retriever = True
        ignore_retry = True
        ignore_custom_event = True

        def __init__(self) -> None:
            self._runs: dict[UUID, tuple[float, str | None, str | None, Any]] = {}

        def on_chat_model_start(
            self,
            serialized: dict[str, Any],
            messages: list[list[Any]],
            *,
            run_id: UUID,
            metadata: dict[str, Any] | None = None,
            **kwargs: Any,
        ) -> None:
            try:
                if not recording_enabled():
                    return
                metadata = metadata or {}
                provider = metadata.get("ls_provider")
                if provider_sdk_instrumented(provider):
                    return
                model = metadata.get("ls_model_name") or (kwargs.get("invocation_params") or {}).get("model")
                self._runs[run_id] = (time.perf_counter(), model, provider, _messages_payload(messages))
            except Exception as exc:  # noqa: BLE001
                count_error("langchain", exc)

        def on_llm_end(self, response: Any, *, run_id: UUID, **kwargs: Any) -> None:
            started = self._runs.pop(run_id, None)
            if started is None:
                return
            try:
                t0, model, provider, messages = started
                generation = response.generations[0][0] if response.generations and response.generations[0] else None
                message = getattr(generation, "message", None)
                usage = getattr(message, "usage_metadata", None) or {}
                meta = getattr(message, "response_metadata", None) or {}
                tool_calls: list[Mapping[str, Any]] = [
                    {"name": c.get("name"), "id": c.get("id"), "arguments": c.get("args")}
                    for c in (getattr(message, "tool_calls", None) or [])
                ]
                finish = meta.get("finish_reason") or meta.get("stop_reason")
                api.model_call(
                    model,
                    provider=provider,
                    duration_ms=round((time.perf_counter() - t0) * 1000.0, 3),
                    response_model=meta.get("model_name") or meta.get("model"),
                    response_id=getattr(message, "id", None),
                    finish_reasons=[str(finish)] if finish else None,
                    input_tokens=usage.get("input_tokens"),
                    output_tokens=usage.get("output_tokens"),
                    tool_calls=tool_calls or None,
                    input_messages=messages,
                    output_messages=_messages_payload([[message]]) if message is not None else api.UNSET,
                    attributes={"audit.framework": FRAMEWORK},
                )
            except Exception as exc:  # noqa: BLE001
                count_error("langchain", exc)

        def on_llm_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
            started = self._runs.pop(run_id, None)
            if started is None:
                return
            t0, model, provider, messages = started
            api.model_call(
                model,
                provider=provider,
                error=error,
                input_messages=messages,
                duration_ms=round((time.perf_counter() - t0) * 1000.0, 3),
                attributes={"audit.framework": FRAMEWORK},
            )

    return AuditelCallbackHandler


def _messages_payload(batches: list[list[Any]]) -> list[dict[str, Any]]:
    out = []
    for batch in batches:
        for m in batch:
            out.append(
                {
                    "role": getattr(m, "type", None),
                    "content": getattr(m, "content", m),
                    "tool_calls": getattr(m, "tool_calls", None) or None,
                }
            )
    return out


_handler: Any = None
_handler_wanted = False  # made on first use: instrumenting must not import langchain_core


def _manager_init(wrapped: Any, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    global _handler
    wrapped(*args, **kwargs)
    handler = _handler
    if handler is None:
        if not _handler_wanted:
            return
        try:
            handler = _handler = _make_handler_class()()  # langchain_core is imported by now
        except Exception as exc:  # noqa: BLE001
            count_error("langchain", exc)
            return
    try:
        if not any(h is handler for h in instance.inheritable_handlers):
            instance.add_handler(handler, inherit=True)
    except Exception as exc:  # noqa: BLE001
        count_error("langchain", exc)


class LangChainInstrumentor(PatchingInstrumentor):
    """``auditel_langchain``: LangChain tools and chat models, LangGraph graphs."""

    requirements = ("langchain-core >= 0.3",)
    patch_kind = "langchain"

    def _apply(self, p: Patcher) -> None:
        global _handler_wanted
        _handler_wanted = True
        p.patch("langchain_core.tools.base", "BaseTool.run", _tool_run)
        p.patch("langchain_core.tools.base", "BaseTool.arun", _tool_arun)
        p.patch("langchain_core.tools.base", "_handle_tool_error", _handled_error)
        p.patch("langchain_core.tools.base", "_handle_validation_error", _handled_error)
        p.patch("langchain_core.callbacks.base", "BaseCallbackManager.__init__", _manager_init)
        p.patch("langgraph.pregel.main", "Pregel.stream", _graph_stream)
        p.patch("langgraph.pregel.main", "Pregel.astream", _graph_astream)

    def _uninstrument(self, **kwargs: Any) -> None:
        global _handler, _handler_wanted
        _handler, _handler_wanted = None, False
        super()._uninstrument(**kwargs)
