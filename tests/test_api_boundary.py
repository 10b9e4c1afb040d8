"""Issue 12 item 1: "never raises" is a property of the API boundary.

Every public callable of ``auditel`` is driven with hostile values for every parameter; none may
raise, recording must still work afterwards, and ``verify`` must pass on the outbox.
"""

from __future__ import annotations

import inspect
import os
import math
import uuid
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import auditel
from auditel.integrity.verify import verify_path
from conftest import read_records, user_records
from hostile_values import (
    BadException,
    BadGetattr,
    BadItems,
    BadIter,
    BadStr,
    cyclic_dict,
    hostile,
)

# The recording helpers and runtime controls; ``configure`` raises ConfigError by design and
# ``shutdown`` ends the runtime: both are tested on their own below.
RECORDERS = [
    "emit", "tool_call", "tool_discovery", "model_call", "policy_decision", "file_access", "network_access",
    "session_start", "session_end", "heartbeat", "set_identity", "status", "flush", "subscribe", "unsubscribe",
    "instrument", "uninstrument",
]
VALID: dict[str, Any] = {
    "event_name": "auditel.custom", "tool_name": "t", "server": "s", "tools": ["a"], "model": "m", "verdict": "allow",
    "path": "/tmp/x", "url": "https://example.com/a", "callback": lambda record: None, "timeout": 0.5,
}


# Raise by design, on bad input only: configure (ConfigError) and the read API (ValueError naming the
# known kinds, TrailMissing); none of them is on the host's recording path.
RAISES_BY_DESIGN = {"configure", "query", "read_all"}


def test_public_surface_is_guarded() -> None:
    """Every callable in auditel.__all__ except those above (and the classes) passes through the guard."""
    for name in auditel.__all__:
        obj = getattr(auditel, name)
        if inspect.isclass(obj) or not callable(obj) or name in RAISES_BY_DESIGN:
            continue
        if name in ("tool", "audited"):
            continue  # decorators: their wrappers are tested below
        assert getattr(obj, "__auditel_guarded__", False), name
    assert set(RECORDERS) | {"tool", "audited", "shutdown"} | RAISES_BY_DESIGN >= {
        n for n in auditel.__all__ if callable(getattr(auditel, n)) and not inspect.isclass(getattr(auditel, n))
    }


def _call(fn: Callable[..., Any], data: st.DataObject) -> None:
    sig = inspect.signature(fn)
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    for p in sig.parameters.values():
        use_hostile = data.draw(st.booleans(), label=f"hostile {p.name}?")
        if p.kind is p.VAR_POSITIONAL:
            if use_hostile:
                args.extend(data.draw(st.lists(hostile, min_size=1, max_size=2), label=p.name))  # never "all"
            continue
        if p.kind is p.VAR_KEYWORD:
            continue
        if use_hostile:
            value = data.draw(hostile, label=p.name)
        elif p.default is not p.empty:
            continue
        else:
            value = VALID.get(p.name, "x")
        if p.kind is p.POSITIONAL_ONLY or (p.kind is p.POSITIONAL_OR_KEYWORD and p.default is p.empty):
            args.append(value)
        else:
            kwargs[p.name] = value
    fn(*args, **kwargs)  # must not raise


def _drive(data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(RECORDERS + ["tool", "audited", "scope"]), label="callable")
    if os.environ.get("BOUNDARY_TRACE"):
        print("drive", name, flush=True)
    if name in ("tool", "audited"):
        deco = getattr(auditel, name)
        kw = {k: data.draw(hostile, label=k) for k in ("attributes", "policy") if data.draw(st.booleans())}
        if data.draw(st.booleans(), label="hostile name"):
            name_value = data.draw(hostile, label="name")
            if not callable(name_value):  # a callable "name" is the function to decorate (bare form)
                kw["name"] = name_value
        sentinel = object()

        def body(*a: Any, **k: Any) -> Any:
            return sentinel

        wrapped = deco(**kw)(body) if "name" in kw or kw else deco(body)
        if not callable(wrapped):
            wrapped = body
        try:
            assert wrapped(data.draw(hostile, label="arg"), k=data.draw(hostile, label="kwarg")) is sentinel
        except auditel.ToolDenied:
            pass  # a hostile policy may deny: the one exception the decorator raises on purpose
        return
    if name == "scope":
        with auditel.audited("scoped", attributes=data.draw(hostile, label="attributes")) as scope:
            scope.set_attribute(data.draw(hostile, label="key"), data.draw(hostile, label="value"))
            scope.set_result(data.draw(hostile, label="result"))
            scope.set_outcome(data.draw(hostile, label="outcome"))
        return
    _call(getattr(auditel, name), data)


def test_every_public_callable_survives_hostile_values(outbox_path: Path) -> None:
    auditel.configure(outbox=str(outbox_path))

    @settings(max_examples=int(os.environ.get("BOUNDARY_EXAMPLES", "150")), deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.data())
    def run(data: st.DataObject) -> None:
        _drive(data)

    run()
    # recording still works afterwards, with an identity that is a valid value
    auditel.set_identity(agent_id="agent-after", session_id=None)
    rid = auditel.tool_call("after", phase="intent", arguments={"q": 1})
    assert isinstance(rid, str)
    auditel.shutdown()
    report = verify_path(outbox_path)
    assert report.ok, report.problems
    assert read_records(outbox_path)[-2]["event_name"] in ("auditel.stream.end", "auditel.checkpoint")


# --- the specific cases named in issue 12 item 1 -----------------------------------------------
@pytest.mark.parametrize(
    "call",
    [
        lambda: auditel.tool_discovery("srv", BadIter()),
        lambda: auditel.policy_decision(BadStr()),
        lambda: auditel.network_access(12345),
        lambda: auditel.network_access(BadStr()),
        lambda: auditel.file_access(BadStr()),
        lambda: auditel.tool_call("t", outcome=BadStr()),
        lambda: auditel.tool_call("t", error=cyclic_dict()),
        lambda: auditel.tool_call("t", error=BadException("x")),
        lambda: auditel.tool_call("t", attributes="not a mapping"),
        lambda: auditel.tool_call("t", attributes=BadItems()),
        lambda: auditel.model_call("m", tool_calls=[BadGetattr(), {"name": BadStr(), "arguments": cyclic_dict()}]),
        lambda: auditel.session_end(outcome=BadStr(), attributes=BadItems()),
    ],
)
def test_named_hostile_calls_keep_their_record(rt: Any, outbox_path: Path, call: Callable[[], Any]) -> None:
    rid = call()
    assert isinstance(rid, str), auditel.status()["errors"]
    assert rid in {r["attributes"]["audit.record.id"] for r in user_records(outbox_path)}


def test_configure_and_shutdown_with_hostile_values(outbox_path: Path) -> None:
    auditel.configure(outbox=str(outbox_path))
    auditel.shutdown(timeout=BadStr())  # type: ignore[arg-type]
    assert verify_path(outbox_path).ok
    auditel.shutdown(timeout=float("nan"))


def test_users_exception_still_propagates_unchanged(rt: Any) -> None:
    class Mine(Exception):
        pass

    err = Mine("boom")

    @auditel.tool(attributes=BadItems())  # type: ignore[arg-type]
    def tool(x: Any) -> None:
        raise err

    with pytest.raises(Mine) as caught:
        tool(BadStr())
    assert caught.value is err


# --- issue 12 item 2: identity values ---------------------------------------------------------------
def test_identity_uuid_and_int_become_strings_and_the_end_marker_is_written(outbox_path: Path) -> None:
    auditel.configure(outbox=str(outbox_path))
    sid = uuid.uuid4()
    auditel.set_identity(session_id=sid, agent_id=42)  # type: ignore[arg-type]
    auditel.tool_call("t")
    auditel.shutdown()
    records = read_records(outbox_path)
    tool = [r for r in records if r["event_name"] == "auditel.tool_call"][0]
    assert tool["attributes"]["session.id"] == str(sid)
    assert tool["attributes"]["gen_ai.agent.id"] == "42"
    assert any(r["event_name"] == "auditel.stream.end" for r in records)
    assert verify_path(outbox_path).ok


def test_unusable_identity_is_refused_and_counted(outbox_path: Path) -> None:
    auditel.configure(outbox=str(outbox_path))
    auditel.set_identity(agent_id="good")
    auditel.set_identity(agent_id=object(), principal=BadStr())  # type: ignore[arg-type]
    assert auditel.status()["rejected"].get("identity_refused") == 2
    assert isinstance(auditel.tool_call("t"), str)
    auditel.shutdown()
    records = read_records(outbox_path)
    tool = [r for r in records if r["event_name"] == "auditel.tool_call"][0]
    assert tool["attributes"]["gen_ai.agent.id"] == "good"
    assert records[-2]["event_name"] == "auditel.stream.end" or records[-1]["event_name"] == "auditel.stream.end"
    assert verify_path(outbox_path).ok


def test_nan_and_huge_values_in_identity_free_calls(rt: Any, outbox_path: Path) -> None:
    assert isinstance(auditel.emit("auditel.custom", attributes={"x": math.nan, "big": 10 ** 5000}), str)
