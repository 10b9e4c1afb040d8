"""Fixtures of the span-bridge tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import auditel
from fake_llm_server import FakeLLMServer
from genai_support import telemetry


@pytest.fixture(scope="module")
def llm_server() -> Iterator[FakeLLMServer]:
    server = FakeLLMServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def audit(outbox_path: Path) -> Iterator[Path]:
    """auditel configured on a fresh outbox, with an SDK TracerProvider; instrumentations removed after."""
    telemetry()
    rt = auditel.configure(outbox=str(outbox_path))
    assert rt is not None
    yield outbox_path
    auditel.uninstrument()
