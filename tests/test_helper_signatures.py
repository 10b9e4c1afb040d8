"""The recording helpers are their public signature plus one builder of ``auditel.record.events``.

``auditel.api.helpers`` hands a helper's arguments to its builder as given, so the builder must take
every public parameter, of the same kind, with the same default; and a call that does not fit the
public signature must still be refused (counted, nothing recorded) even where the builder would
accept it (``events.tool_call`` takes a ``reason`` that the public ``tool_call`` does not).
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

import auditel
from auditel.record import events as E
from conftest import user_records

HELPERS = [
    "tool_call", "tool_discovery", "model_call", "policy_decision", "file_access", "network_access",
    "session_start", "session_end", "heartbeat",
]


@pytest.mark.parametrize("name", HELPERS)
def test_the_builder_takes_every_public_parameter_with_its_default(name: str) -> None:
    public = inspect.signature(getattr(auditel, name)).parameters
    built = dict(inspect.signature(getattr(E, name)).parameters)
    assert next(iter(built)) == "rt"
    built.pop("rt")
    for param in public.values():
        assert param.name in built, (name, param.name)
        assert (built[param.name].kind, built[param.name].default) == (param.kind, param.default), (name, param.name)
    assert list(public) == list(built)[: len(public)], name  # same order: positional calls bind alike


@pytest.mark.parametrize("name", HELPERS)
def test_the_public_signature_and_help_are_shown(name: str) -> None:
    fn = getattr(auditel, name)
    assert fn.__name__ == name and fn.__doc__
    assert inspect.signature(fn).return_annotation == "str | None"
    assert getattr(fn, "__auditel_guarded__", False)


def test_a_call_that_does_not_fit_the_public_signature_is_refused(rt: Any, outbox_path: Path) -> None:
    assert auditel.tool_call("t", reason="the builder takes it, the public helper does not") is None  # type: ignore[call-arg]
    assert auditel.file_access() is None  # type: ignore[call-arg]
    assert auditel.tool_call("t", phase="intent") is not None
    errors = auditel.status()["errors"]
    assert errors.get("tool_call") == 1 and errors.get("file_access") == 1
    auditel.shutdown()
    assert [r["attributes"]["audit.phase"] for r in user_records(outbox_path)] == ["intent"]
