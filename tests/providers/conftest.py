"""Fixtures for the provider instrumentation tests: stand-in servers, auditel with a fresh outbox,
fake AWS credentials and LiteLLM's offline cost map (nothing here reaches beyond 127.0.0.1)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.append(str(Path(__file__).parent))  # provider_server, as a top-level module like fake_llm_server

# before any test imports litellm: it would otherwise fetch its price list from the internet
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from provider_server import ProviderServer

import auditel
from auditel import runtime as auditel_runtime
from fake_llm_server import FakeLLMServer
from genai_support import model_records, model_spans, telemetry

CONTENT_VARS = ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT")
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "AKIATESTTESTTESTTEST",
    "AWS_SECRET_ACCESS_KEY": "test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/nonexistent",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
}


@pytest.fixture(scope="session")
def provider_server() -> Iterator[ProviderServer]:
    with ProviderServer() as srv:
        yield srv


@pytest.fixture(scope="session")
def llm_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)


class Audit:
    def __init__(self, outbox: Path, spans: Any, logs: Any) -> None:
        self.outbox, self.spans, self.logs = outbox, spans, logs

    def records(self, event: str = "auditel.model_call") -> list[dict[str, Any]]:
        if event == "auditel.model_call":
            return model_records(self.outbox)
        import json
        import sqlite3

        con = sqlite3.connect(f"file:{self.outbox}?mode=ro", uri=True)
        try:
            rows = con.execute("SELECT data FROM records WHERE event_name = ? ORDER BY rid", (event,)).fetchall()
        finally:
            con.close()
        return [json.loads(r[0]) for r in rows]

    def model_spans(self) -> list[Any]:
        return model_spans(self.spans)


def start_audit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, names: tuple[str, ...], content: str | None = None
) -> Audit:
    for var in CONTENT_VARS + ("AUDITEL_ENABLED",):
        monkeypatch.delenv(var, raising=False)
    if content is not None:
        monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", content)
    auditel.uninstrument()
    auditel_runtime._reset_for_tests()
    outbox = tmp_path / (content or "default") / "outbox.db"
    auditel.configure(outbox=str(outbox))
    auditel.instrument(*names)
    spans, logs = telemetry()
    spans.clear()
    logs.clear()
    return Audit(outbox, spans, logs)


@pytest.fixture
def audit_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    def make(*names: str, content: str | None = None) -> Audit:
        return start_audit(tmp_path, monkeypatch, names, content)

    yield make
    auditel.uninstrument()
    auditel_runtime._reset_for_tests()


def only(items: list[Any]) -> Any:
    assert len(items) == 1, items
    return items[0]
