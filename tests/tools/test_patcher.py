"""Revocable wrapping: post-import hooks that fire after ``uninstrument()`` do nothing, applied
wrappers are removed, and a broken target never breaks the host's import."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Any

import pytest

import auditel
from auditel.instrumentation.patching import Patcher

from .conftest import Audit


def _module(tmp_path: Path, name: str) -> None:
    (tmp_path / f"{name}.py").write_text("class Thing:\n    def act(self, x):\n        return x * 2\n")


def _double(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    return ("wrapped", wrapped(*args, **kwargs))


def test_hook_applies_on_import_and_is_revocable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, audit: Audit) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    _module(tmp_path, "auditel_late_a")
    _module(tmp_path, "auditel_late_b")
    patcher = Patcher("test")
    patcher.patch("auditel_late_a", "Thing.act", _double)
    patcher.patch("auditel_late_b", "Thing.act", _double)
    mod_a = importlib.import_module("auditel_late_a")
    assert mod_a.Thing().act(2) == ("wrapped", 4)  # hook fired on import
    patcher.unpatch_all()
    assert mod_a.Thing().act(2) == 4  # applied wrapper removed
    mod_b = importlib.import_module("auditel_late_b")
    assert mod_b.Thing().act(2) == 4  # hook registered before uninstrument is now a no-op
    for name in ("auditel_late_a", "auditel_late_b"):
        sys.modules.pop(name, None)


def test_missing_target_is_counted_not_raised(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, audit: Audit) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    _module(tmp_path, "auditel_late_c")
    patcher = Patcher("test")
    patcher.patch("auditel_late_c", "Thing.no_such_method", _double)
    mod = importlib.import_module("auditel_late_c")  # the host's import still works
    assert mod.Thing().act(1) == 2
    assert auditel.status()["errors"]["test_patch"] == 1
    sys.modules.pop("auditel_late_c", None)


def test_instrument_all_skips_missing_and_uninstrument_all(audit: Audit) -> None:
    done = auditel.instrument("mcp", "langchain", "openai_agents")
    assert set(done) == {"auditel_mcp", "auditel_langchain", "auditel_openai_agents"}
    assert set(auditel.uninstrument()) >= set(done)
    from mcp.client.session import ClientSession

    assert not hasattr(ClientSession.__dict__["call_tool"], "__wrapped__")
