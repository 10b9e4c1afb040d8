"""Fixtures of the span-bridge tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fake_llm_server import FakeLLMServer


@pytest.fixture(scope="module")
def llm_server() -> Iterator[FakeLLMServer]:
    server = FakeLLMServer().start()
    try:
        yield server
    finally:
        server.stop()
