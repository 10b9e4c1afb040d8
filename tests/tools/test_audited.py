"""``@auditel.tool`` / ``auditel.audited`` on sync, async, generator and async-generator functions,
policies (verdict vs action), content privacy, and a tool killed mid-run."""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import pytest
from opentelemetry import trace

import auditel
from auditel import ToolDenied

from .conftest import Audit, read_outbox


def _pair(audit: Audit, tool: str) -> tuple[dict[str, Any], dict[str, Any]]:
    records = audit.tool_calls(tool)
    assert [r["attributes"]["audit.phase"] for r in records] == ["intent", "outcome"], records
    return records[0]["attributes"], records[1]["attributes"]


def test_sync_tool_intent_outcome_and_span(audit: Audit, spans: Any) -> None:
    seen: list[Any] = []

    @auditel.tool
    def search(query: str, limit: int = 3) -> list[str]:
        seen.append(trace.get_current_span())
        return [query] * limit

    assert search("private words", limit=2) == ["private words"] * 2
    intent, outcome = _pair(audit, "test_sync_tool_intent_outcome_and_span.<locals>.search")
    assert intent["audit.correlation.id"] == outcome["audit.correlation.id"]
    assert intent["gen_ai.tool.call.id"] == outcome["gen_ai.tool.call.id"]
    assert outcome["audit.outcome"] == "success" and outcome["audit.duration_ms"] >= 0
    assert intent["audit.arguments.digest"].startswith("hmac-sha256:")
    assert outcome["audit.result.size"] == len(json.dumps(["private words"] * 2, separators=(",", ":")))
    assert "private words" not in json.dumps(audit.records())
    (span,) = [s for s in spans.get_finished_spans() if s.name.startswith("execute_tool ")]
    assert seen[0].get_span_context().span_id == span.context.span_id  # current while the tool runs
    assert span.attributes["gen_ai.operation.name"] == "execute_tool"


def test_equal_arguments_give_equal_digests(audit: Audit) -> None:
    @auditel.tool("lookup")
    def lookup(key: str) -> str:
        return key.upper()

    lookup("a"), lookup("a"), lookup("b")
    intents = [r["attributes"]["audit.arguments.digest"] for r in audit.tool_calls("lookup") if r["attributes"]["audit.phase"] == "intent"]
    assert intents[0] == intents[1] != intents[2]


def test_content_capture_opt_in(audit: Audit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from auditel import runtime

    runtime._reset_for_tests()
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_AND_EVENT")
    auditel.configure(outbox=audit.outbox)

    @auditel.tool("echo")
    def echo(text: str) -> str:
        return text

    echo("visible")
    intent, outcome = _pair(audit, "echo")
    assert json.loads(intent["gen_ai.tool.call.arguments"]) == {"text": "visible"}
    assert outcome["gen_ai.tool.call.result"] == "visible"


def test_raising_tool_records_failure_and_reraises(audit: Audit) -> None:
    class Custom(Exception):
        pass

    @auditel.tool("breaks")
    def breaks() -> None:
        raise Custom("secret detail")

    with pytest.raises(Custom, match="secret detail"):
        breaks()
    intent, outcome = _pair(audit, "breaks")
    assert outcome["audit.outcome"] == "failure"
    assert outcome["error.type"] == "test_raising_tool_records_failure_and_reraises.<locals>.Custom"
    assert "audit.error.message" not in outcome  # messages are content


def test_async_tool_keeps_kind_and_context(audit: Audit, spans: Any) -> None:
    @auditel.tool("fetch")
    async def fetch(url: str) -> int:
        await asyncio.sleep(0)
        return len(url)

    assert inspect.iscoroutinefunction(fetch)

    async def main() -> list[int]:
        return await asyncio.gather(fetch("a"), fetch("bb"), fetch("ccc"))

    assert asyncio.run(main()) == [1, 2, 3]
    records = audit.tool_calls("fetch")
    assert len(records) == 6
    by_corr: dict[str, list[str]] = {}
    for r in records:
        by_corr.setdefault(r["attributes"]["audit.correlation.id"], []).append(r["attributes"]["audit.phase"])
    assert sorted(by_corr.values()) == [["intent", "outcome"]] * 3
    # each record sits in its own tool span despite interleaving
    span_ids = {r["span_id"] for r in records}
    assert len(span_ids) == 3


def test_generator_tool_forwards_send_and_return(audit: Audit) -> None:
    @auditel.tool("accumulate")
    def accumulate(start: int) -> Iterator[int]:
        total = start
        while True:
            got = yield total
            if got is None:
                return total
            total += got

    assert inspect.isgeneratorfunction(accumulate)
    gen = accumulate(10)
    assert next(gen) == 10
    assert gen.send(5) == 15
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value == 15
    _, outcome = _pair(audit, "accumulate")
    assert outcome["audit.outcome"] == "success" and outcome["audit.result.items"] == 2


def test_generator_closed_early_and_throw(audit: Audit) -> None:
    @auditel.tool("numbers")
    def numbers() -> Iterator[int]:
        try:
            yield from range(100)
        except KeyError:
            yield -1

    gen = numbers()
    next(gen), next(gen)
    assert gen.throw(KeyError("x")) == -1  # the exception reached the tool's own handler
    gen.close()
    _, outcome = _pair(audit, "numbers")
    assert outcome["audit.outcome"] == "success"
    assert outcome["audit.result.complete"] is False

    @auditel.tool("bad_gen")
    def bad_gen() -> Iterator[int]:
        yield 1
        raise ValueError("mid-stream")

    with pytest.raises(ValueError):
        list(bad_gen())
    _, outcome = _pair(audit, "bad_gen")
    assert outcome["audit.outcome"] == "failure" and outcome["error.type"] == "ValueError"


def test_async_generator_tool(audit: Audit) -> None:
    @auditel.tool("ticks")
    async def ticks(n: int) -> AsyncIterator[int]:
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    assert inspect.isasyncgenfunction(ticks)

    async def main() -> tuple[list[int], int]:
        full = [i async for i in ticks(3)]
        partial = ticks(10)
        first = await partial.__anext__()
        await partial.aclose()
        return full, first

    assert asyncio.run(main()) == ([0, 1, 2], 0)
    records = audit.tool_calls("ticks")
    outcomes = [r["attributes"] for r in records if r["attributes"]["audit.phase"] == "outcome"]
    assert outcomes[0]["audit.result.items"] == 3 and "audit.result.complete" not in outcomes[0]
    assert outcomes[1]["audit.result.complete"] is False

    @auditel.tool("agen_fails")
    async def agen_fails() -> AsyncIterator[int]:
        yield 1
        raise OSError("disk")

    async def consume() -> None:
        async for _ in agen_fails():
            pass

    with pytest.raises(OSError):
        asyncio.run(consume())
    _, outcome = _pair(audit, "agen_fails")
    assert outcome["error.type"] == "OSError"


def test_policy_deny_means_intent_plus_denial_and_no_execution(audit: Audit) -> None:
    ran: list[str] = []

    def policy(name: str, arguments: Any) -> Any:
        if arguments["path"].startswith("/etc"):
            return {"verdict": "deny", "reason": "system path", "policy_id": "fs-policy", "rule_id": "no-etc"}
        return "allow"

    @auditel.tool("delete_file", policy=policy)
    def delete_file(path: str) -> None:
        ran.append(path)

    with pytest.raises(ToolDenied, match="system path"):
        delete_file("/etc/passwd")
    delete_file("/tmp/x")
    assert ran == ["/tmp/x"]
    records = [r for r in audit.records() if r["event_name"] in ("auditel.tool_call", "auditel.policy_decision")]
    kinds = [(r["event_name"], r["attributes"].get("audit.phase"), r["attributes"].get("audit.policy.verdict")) for r in records]
    assert kinds[:3] == [("auditel.tool_call", "intent", None), ("auditel.policy_decision", None, "deny"),
                         ("auditel.tool_call", "outcome", None)]
    denial = records[1]["attributes"]
    assert denial["audit.policy.action_taken"] == "blocked"
    assert denial["audit.policy.id"] == "fs-policy" and denial["audit.policy.rule_id"] == "no-etc"
    assert denial["audit.correlation.id"] == records[0]["attributes"]["audit.correlation.id"]
    assert records[2]["attributes"]["audit.outcome"] == "denied"
    assert kinds[3:] == [("auditel.tool_call", "intent", None), ("auditel.policy_decision", None, "allow"),
                         ("auditel.tool_call", "outcome", None)]


@pytest.mark.parametrize("decision, verdict, taken", [
    (False, "deny", "blocked"), ("BLOCK", "deny", "blocked"), (("warn", "risky"), "warn", "allowed"),
    ("escalate", "escalate", "allowed"), ({"verdict": "modify"}, "modify", "modified"),
])
def test_policy_verdicts_are_kept_apart_from_action(audit: Audit, decision: Any, verdict: str, taken: str) -> None:
    @auditel.tool("op", policy=lambda n, a: decision)
    def op() -> str:
        return "ran"

    try:
        op()
    except ToolDenied:
        assert verdict == "deny"
    (d,) = [r["attributes"] for r in audit.records("auditel.policy_decision")]
    assert (d["audit.policy.verdict"], d["audit.policy.action_taken"]) == (verdict, taken)


def test_broken_policy_is_reported_and_tool_runs(audit: Audit) -> None:
    def policy(name: str, arguments: Any) -> Any:
        raise RuntimeError("policy bug")

    @auditel.tool("guarded", policy=policy)
    def guarded() -> str:
        return "ran"

    assert guarded() == "ran"
    (d,) = [r["attributes"] for r in audit.records("auditel.policy_decision")]
    assert d["audit.policy.verdict"] == "warn" and d["audit.reason"] == "policy_error:RuntimeError"
    assert auditel.status()["errors"]["policy"] == 1


def test_context_manager_shared_across_threads(audit: Audit) -> None:
    guard = auditel.tool("step")
    barrier = threading.Barrier(4)

    def work(i: int) -> None:
        with guard as scope:
            barrier.wait()
            scope.set_result(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    outcomes = [r["attributes"] for r in audit.tool_calls("step") if r["attributes"]["audit.phase"] == "outcome"]
    assert len(outcomes) == 4 and len({o["audit.result.digest"] for o in outcomes}) == 4


def test_methods_and_action_kind(audit: Audit) -> None:
    class Repo:
        @auditel.tool
        def push(self, branch: str) -> str:
            return branch

    assert Repo().push("main") == "main"
    intent, _ = _pair(audit, "test_methods_and_action_kind.<locals>.Repo.push")

    with auditel.audited("deploy") as scope:
        scope.set_attribute("deploy.target", "prod")
    (action,) = audit.records("auditel.action")
    assert action["attributes"]["deploy.target"] == "prod" and action["attributes"]["audit.outcome"] == "success"


def test_disabled_auditel_is_a_pass_through(monkeypatch: pytest.MonkeyPatch) -> None:
    from auditel import runtime

    runtime._reset_for_tests()
    monkeypatch.delenv("AUDITEL_ENABLED", raising=False)

    @auditel.tool("noop")
    def noop(x: int) -> int:
        return x + 1

    assert noop(1) == 2


def test_tool_killed_mid_run_leaves_intent(tmp_path: Path) -> None:
    outbox, marker = tmp_path / "outbox.db", tmp_path / "inside"
    app = Path(__file__).with_name("crash_tool_app.py")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, str(app), str(outbox), str(marker)], env=env)
    try:
        deadline = time.monotonic() + 30
        while not marker.exists():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    calls = [r for r in read_outbox(outbox) if r["event_name"] == "auditel.tool_call"]
    assert [r["attributes"]["audit.phase"] for r in calls] == ["intent"]
    assert calls[0]["attributes"]["gen_ai.tool.name"] == "long_job"


def _reference_arguments(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """What the decorator recorded before its plain-signature fast path: ``bind_partial`` or the raw call."""
    try:
        bound = inspect.signature(fn).bind_partial(*args, **kwargs)
    except TypeError:
        return {"args": list(args), "kwargs": kwargs}
    return {k: v for k, v in bound.arguments.items() if k not in ("self", "cls")}


class _Box:
    def put(self, key: str, value: int = 0) -> None: ...


def _kw_only(a: int, *, b: int = 0) -> None: ...


def _pos_only(a: int, /, b: int = 0) -> None: ...


def _variadic(a: int, *rest: int, **extra: int) -> None: ...


def _plain(a: int, b: int = 2, c: int = 3) -> None: ...


_CALLS: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = [
    (_plain, (), {}),
    (_plain, (1,), {}),
    (_plain, (1, 2, 3), {}),
    (_plain, (1, 2, 3, 4), {}),  # too many: bind_partial refuses, the raw call is recorded
    (_plain, (1,), {"c": 5, "b": 4}),  # given out of order: recorded in the signature's order
    (_plain, (1,), {"a": 9}),  # a name given twice
    (_plain, (), {"d": 1}),  # not a parameter
    (_plain, (), {"c": 1}),
    (_Box.put, (_Box(), "k"), {"value": 1}),  # self left out
    (_Box.put, (), {"self": _Box(), "key": "k"}),
    (_kw_only, (1,), {"b": 2}),
    (_kw_only, (1, 2), {}),
    (_pos_only, (1,), {"b": 2}),
    (_pos_only, (), {"a": 1}),
    (_variadic, (1, 2, 3), {"x": 4}),
]


@pytest.mark.parametrize(("fn", "args", "kwargs"), _CALLS)
def test_recorded_arguments_are_those_bind_partial_gives(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    from auditel.api.audited import _bind_plain, _plain_parameters

    expected = _reference_arguments(fn, args, kwargs)
    names = _plain_parameters(inspect.signature(fn))
    if names is not None and len(args) <= len(names):
        fast = _bind_plain(names, args, kwargs)
        if fast is not None:  # the fast path answered: the same mapping, in the same order
            assert list(fast.items()) == list(expected.items())
    else:
        assert fn in (_kw_only, _pos_only, _variadic) or len(args) > len(names or ())


@pytest.mark.parametrize(("fn", "args", "kwargs"), [c for c in _CALLS if "self" not in c[2]])
def test_captured_arguments_of_each_call_shape(
    audit: Audit, monkeypatch: pytest.MonkeyPatch, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    from auditel import runtime

    runtime._reset_for_tests()
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "SPAN_AND_EVENT")
    auditel.configure(outbox=audit.outbox)
    wrapped = auditel.tool("shape")(fn)
    try:
        wrapped(*args, **kwargs)
    except TypeError:
        pass  # a call Python itself refuses is still recorded (intent, then a failed outcome)
    intent, _outcome = _pair(audit, "shape")
    expected = _reference_arguments(fn, args, kwargs)
    captured = json.loads(intent["gen_ai.tool.call.arguments"])
    assert captured == json.loads(json.dumps(expected, default=lambda o: "<object>"))
