"""Shared helpers of the span-bridge tests: records by kind, the stand-in model server, telemetry."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from conftest import user_records
from fake_llm_server import FakeLLMServer


def records(outbox: Path, kind: str | None = None) -> list[dict[str, Any]]:
    out = user_records(outbox)
    if kind is not None:
        out = [r for r in out if r["event_name"] == f"auditel.{kind}"]
    return out


def bridged(outbox: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """Records the span bridge wrote (they name their source scope)."""
    return [r for r in records(outbox, kind) if "audit.source" in r["attributes"]]


@pytest.fixture(scope="module")
def llm_server() -> Iterator[FakeLLMServer]:
    server = FakeLLMServer().start()
    try:
        yield server
    finally:
        server.stop()
