"""The recording helpers are their public signature plus one builder of ``auditel.record.events``.

``auditel.api.helpers`` hands a helper's arguments to the builder of its name as given, so the
builder must take exactly the public parameters, of the same kind, with the same defaults; and a call
that does not fit the public signature must still be refused (counted, nothing recorded), with
auditel on or off.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

import auditel
from auditel.api import guard
from auditel.counters import Counters
from auditel.record import events as E
from conftest import user_records

HELPERS = [
    "tool_call", "tool_discovery", "model_call", "policy_decision", "file_access", "network_access",
    "session_start", "session_end", "heartbeat",
]


@pytest.mark.parametrize("name", HELPERS)
def test_the_builder_takes_exactly_the_public_parameters(name: str) -> None:
    public = inspect.signature(getattr(auditel, name)).parameters
    built = dict(inspect.signature(getattr(E, name)).parameters)
    assert next(iter(built)) == "rt"
    built.pop("rt")
    assert list(built) == list(public), name  # same names, same order: positional calls bind alike
    for param in public.values():
        assert (built[param.name].kind, built[param.name].default) == (param.kind, param.default), (name, param.name)


def test_every_argument_reaches_the_record(rt: Any, outbox_path: Path) -> None:
    """Defaults come from the public signature; given values are passed whole (positional ones too)."""
    auditel.tool_discovery("srv", ["a", "b"], outcome="partial")
    auditel.file_access("/tmp/f", operation="write", size_bytes=7)
    auditel.session_end(reason="done")
    auditel.shutdown()
    discovery, access, end = (r["attributes"] for r in user_records(outbox_path))
    assert (discovery["audit.target.id"], discovery["audit.tools.names"], discovery["audit.outcome"]) == ("srv", ["a", "b"], "partial")
    assert (access["audit.action"], access["file.size"], access["audit.outcome"]) == ("file.write", 7, "success")
    assert (end["audit.outcome"], end["audit.reason"]) == ("success", "done")


@pytest.mark.parametrize("name", HELPERS)
def test_the_public_signature_and_help_are_shown(name: str) -> None:
    fn = getattr(auditel, name)
    assert fn.__name__ == name and fn.__doc__
    assert inspect.signature(fn).return_annotation == "str | None"
    assert getattr(fn, "__auditel_guarded__", False)


def test_a_call_that_does_not_fit_the_public_signature_is_refused(rt: Any, outbox_path: Path) -> None:
    assert auditel.tool_call("t", reason="not a tool_call parameter") is None  # type: ignore[call-arg]
    assert auditel.file_access() is None  # type: ignore[call-arg]
    assert auditel.tool_call("t", phase="intent") is not None
    errors = auditel.status()["errors"]
    assert errors.get("tool_call") == 1 and errors.get("file_access") == 1
    auditel.shutdown()
    assert [r["attributes"]["audit.phase"] for r in user_records(outbox_path)] == ["intent"]


def test_a_bad_call_is_counted_while_auditel_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    counters = Counters()  # the boundary's own counters are process-wide: count into fresh ones
    monkeypatch.setattr(guard, "boundary_counters", counters)
    assert auditel.status()["enabled"] is False
    assert auditel.model_call("m", tokens=3) is None  # type: ignore[call-arg]
    assert auditel.heartbeat() is None
    assert counters.snapshot()["errors"] == {"model_call": 1}
