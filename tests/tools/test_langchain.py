"""LangChain / LangGraph instrumentation: real tools run by a real LangGraph agent loop
(``create_react_agent``) driven by langchain-core's ``GenericFakeChatModel`` (no network)."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Annotated, Any, Iterator

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.tools import InjectedToolArg, ToolException, tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, create_react_agent
from opentelemetry import trace

import auditel
from auditel.instrumentation import langchain as lc_inst

from .conftest import Audit


class ToolCallingFakeModel(GenericFakeChatModel):
    """langchain-core's fake chat model; the agent loop binds tools, which a scripted model ignores."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> "ToolCallingFakeModel":
        return self


THREADS: list[str] = []


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    THREADS.append(threading.current_thread().name)
    return a + b


@tool
def lookup(secret_query: str) -> str:
    """Look something up."""
    return f"answer to {secret_query}"


@tool
def broken(x: int) -> int:
    """Always raises."""
    raise RuntimeError("broken tool")


@tool
def fragile(x: int) -> int:
    """Raises a ToolException that the tool itself turns into a message."""
    raise ToolException("fragile failed")


fragile.handle_tool_error = True


@tool
async def slow_double(x: int) -> int:
    """Async tool."""
    await asyncio.sleep(0)
    return 2 * x


def _script(*calls: list[tuple[str, dict[str, Any], str]]) -> ToolCallingFakeModel:
    messages = [AIMessage(content="", tool_calls=[{"name": n, "args": a, "id": i} for n, a, i in batch]) for batch in calls]
    messages.append(AIMessage(content="all done"))
    return ToolCallingFakeModel(messages=iter(messages))


@pytest.fixture
def instrumented(audit: Audit) -> Iterator[Audit]:
    auditel.instrument("langchain")
    yield audit
    auditel.uninstrument("langchain")


def _by_phase(audit: Audit, tool: str) -> dict[str, dict[str, Any]]:
    return {r["attributes"]["audit.phase"]: r for r in audit.tool_calls(tool)}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_agent_loop_runs_real_tools(instrumented: Audit, spans: Any) -> None:
    model = _script([("add", {"a": 2, "b": 3}, "call_add"), ("lookup", {"secret_query": "s3cret"}, "call_lookup")],
                    [("fragile", {"x": 1}, "call_fragile")])
    agent = create_react_agent(model, [add, lookup, fragile], name="calc_agent")
    out = agent.invoke({"messages": [HumanMessage("hi")]})
    assert out["messages"][-1].content == "all done"

    pair = _by_phase(instrumented, "add")
    assert pair["intent"]["attributes"]["gen_ai.tool.call.id"] == "call_add"
    assert pair["outcome"]["attributes"]["audit.outcome"] == "success"
    assert pair["intent"]["attributes"]["audit.correlation.id"] == pair["outcome"]["attributes"]["audit.correlation.id"]
    fragile_out = _by_phase(instrumented, "fragile")["outcome"]["attributes"]
    assert fragile_out["audit.outcome"] == "failure"
    assert fragile_out["error.type"] == "ToolException"
    assert fragile_out["audit.reason"] == "handled_by_tool"
    assert "s3cret" not in json.dumps(instrumented.records())

    runs = instrumented.records("auditel.agent_run")
    assert [r["attributes"]["audit.phase"] for r in runs] == ["intent", "outcome"]
    assert runs[1]["attributes"]["audit.outcome"] == "success"
    assert runs[0]["attributes"]["gen_ai.agent.name"] == "calc_agent"

    # spans: execute_tool spans are children of the invoke_agent span, even from the tool thread pool
    finished = spans.get_finished_spans()
    agent_span = next(s for s in finished if s.name == "invoke_agent calc_agent")
    tool_spans = [s for s in finished if s.name.startswith("execute_tool ")]
    assert {s.name for s in tool_spans} == {"execute_tool add", "execute_tool lookup", "execute_tool fragile"}
    by_id = {s.context.span_id: s for s in finished}

    def ancestors(span: Any) -> list[int]:
        out = []
        while span.parent is not None and span.parent.span_id in by_id:
            out.append(span.parent.span_id)
            span = by_id[span.parent.span_id]
        return out

    for s in tool_spans:  # add and lookup ran in parallel on LangGraph's thread pool
        assert agent_span.context.span_id in ancestors(s), s.name
    assert any(name != threading.main_thread().name for name in THREADS)
    add_span = next(s for s in tool_spans if s.name == "execute_tool add")
    assert pair["intent"]["span_id"] == format(add_span.context.span_id, "016x")
    assert next(s for s in tool_spans if s.name == "execute_tool fragile").status.status_code == trace.StatusCode.ERROR

    # the fake model's provider SDK is not instrumented, so its runs are recorded here (once each)
    models = instrumented.records("auditel.model_call")
    assert len(models) == 3
    assert models[0]["attributes"]["audit.tool_calls.names"] == ["add", "lookup"]


def test_tool_that_raises_propagates_unchanged(instrumented: Audit) -> None:
    with pytest.raises(RuntimeError, match="broken tool"):
        broken.invoke({"x": 1})
    pair = _by_phase(instrumented, "broken")
    assert pair["outcome"]["attributes"]["audit.outcome"] == "failure"
    assert pair["outcome"]["attributes"]["error.type"] == "RuntimeError"
    assert "intent" in pair


def test_langgraph_graph_with_tool_node_async(instrumented: Audit, spans: Any) -> None:
    model = _script([("slow_double", {"x": 21}, "c1"), ("add", {"a": 1, "b": 1}, "c2")])

    def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def route(state: MessagesState) -> str:
        return "tools" if state["messages"][-1].tool_calls else END

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_node("tools", ToolNode([slow_double, add]))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", route, ["tools", END])
    graph.add_edge("tools", "model")
    app = graph.compile(name="doubler")

    async def main() -> list[Any]:
        chunks = []
        async for chunk in app.astream({"messages": [HumanMessage("go")]}):
            chunks.append(chunk)
        return chunks

    chunks = asyncio.run(main())
    assert chunks[-1]["model"]["messages"][-1].content == "all done"
    assert _by_phase(instrumented, "slow_double")["outcome"]["attributes"]["audit.outcome"] == "success"
    assert _by_phase(instrumented, "add")["outcome"]["attributes"]["audit.outcome"] == "success"
    runs = instrumented.records("auditel.agent_run")
    assert [r["attributes"]["audit.phase"] for r in runs] == ["intent", "outcome"]
    agent_span = next(s for s in spans.get_finished_spans() if s.name == "invoke_agent doubler")
    double_span = next(s for s in spans.get_finished_spans() if s.name == "execute_tool slow_double")
    assert double_span.context.trace_id == agent_span.context.trace_id


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_stream_closed_early_is_recorded_as_unknown(instrumented: Audit) -> None:
    model = _script([("add", {"a": 1, "b": 2}, "c1")])
    agent = create_react_agent(model, [add], name="early")
    stream = agent.stream({"messages": [HumanMessage("hi")]})
    next(stream)
    stream.close()
    runs = instrumented.records("auditel.agent_run")
    assert runs[-1]["attributes"]["audit.outcome"] == "unknown"


class OpenAITaggedFake(ToolCallingFakeModel):
    """The fake model tagged as LangChain tags ChatOpenAI runs (``ls_provider=openai``)."""

    def _get_ls_params(self, stop: Any = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "openai"
        return params


def test_model_calls_skipped_when_provider_sdk_is_instrumented(instrumented: Audit) -> None:
    OpenAITaggedFake(messages=iter([AIMessage("x")])).invoke("hi")
    assert len(instrumented.records("auditel.model_call")) == 1  # the openai SDK is not instrumented yet
    assert auditel.instrument("openai") == ["auditel_openai"]  # auditel's real OpenAI SDK instrumentation
    try:
        OpenAITaggedFake(messages=iter([AIMessage("x")])).invoke("hi")
        assert len(instrumented.records("auditel.model_call")) == 1  # left to the SDK instrumentation
        ToolCallingFakeModel(messages=iter([AIMessage("x")])).invoke("hi")
        assert len(instrumented.records("auditel.model_call")) == 2  # other providers still recorded here
    finally:
        auditel.uninstrument("openai")
    OpenAITaggedFake(messages=iter([AIMessage("x")])).invoke("hi")
    assert len(instrumented.records("auditel.model_call")) == 3


def test_uninstrument_restores_everything(audit: Audit) -> None:
    from langchain_core.callbacks.base import BaseCallbackManager
    from langchain_core.tools.base import BaseTool
    from langgraph.pregel.main import Pregel

    before = (BaseTool.__dict__["run"], BaseTool.__dict__["arun"], Pregel.__dict__["stream"],
              BaseCallbackManager.__dict__["__init__"])
    auditel.instrument("langchain")
    auditel.uninstrument("langchain")
    after = (BaseTool.__dict__["run"], BaseTool.__dict__["arun"], Pregel.__dict__["stream"],
             BaseCallbackManager.__dict__["__init__"])
    assert before == after
    add.invoke({"a": 1, "b": 2})
    assert audit.tool_calls() == []


def test_injected_arguments_left_out_on_every_call(instrumented: Audit, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kept keys are worked out once per (schema, injected parameters, keys given) and reused:
    every call still records the model's arguments alone, and a call with other keys is worked out anew."""
    @tool
    def scoped(query: str, user_token: Annotated[str, InjectedToolArg], limit: int = 3) -> str:
        """Search within the user's scope."""
        return f"{query}:{limit}"

    lc_inst._KEPT.clear()
    asked: list[tuple[str, ...]] = []
    real = type(scoped)._filter_injected_args

    def counting(self: Any, tool_input: dict[str, Any]) -> dict[str, Any]:
        asked.append(tuple(tool_input))
        return real(self, tool_input)

    monkeypatch.setattr(type(scoped), "_filter_injected_args", counting)
    for i in range(3):
        assert scoped.invoke({"query": f"q{i}", "user_token": "tok-secret"}) == f"q{i}:3"
    assert scoped.invoke({"query": "q9", "user_token": "tok-secret", "limit": 5}) == "q9:5"

    intents = [r["attributes"] for r in instrumented.tool_calls("scoped") if r["attributes"]["audit.phase"] == "intent"]
    assert len(intents) == 4
    sizes = [a["audit.arguments.size"] for a in intents]
    assert sizes == [len(b'{"query":"q0"}'), len(b'{"query":"q1"}'), len(b'{"query":"q2"}'),
                     len(b'{"limit":5,"query":"q9"}')]
    assert "tok-secret" not in json.dumps(instrumented.records())
    # LangChain asks once per run for its own callbacks; auditel asked once per key set (2), not per call (4)
    ours = len(asked) - 4
    assert ours == 2, asked


def test_injected_argument_answers_do_not_keep_a_tool_schema_alive(instrumented: Audit) -> None:
    """Tools built per session each have their own schema class: the kept answers must not hold it."""
    import gc
    import weakref

    def make() -> Any:
        @tool
        def per_session(query: str, user_token: Annotated[str, InjectedToolArg]) -> str:
            """Search."""
            return query

        per_session.invoke({"query": "q", "user_token": "t"})
        return weakref.ref(per_session.args_schema)

    schema_ref = make()
    gc.collect()
    assert schema_ref() is None
