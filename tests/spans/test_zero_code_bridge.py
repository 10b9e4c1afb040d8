"""Zero-code start (environment variables only) with the span bridge, and an app's own TracerProvider.

Each test runs an app with no auditel code in a subprocess (``auditel run`` or
``opentelemetry-instrument`` with auditel's distro) against the local stand-in model server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import user_records
from fake_llm_server import REPLY_TEXT, FakeLLMServer
from genai_support import outbox_bytes

APP = Path(__file__).with_name("app_own_provider.py")
PLAIN = Path(__file__).parent.parent / "zero_code_agent.py"
BIN = Path(sys.executable).parent

pytest.importorskip("pydantic_ai")


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


def _env(server: FakeLLMServer, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_", "TRACELOOP_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["FAKE_LLM_BASE_URL"] = server.openai_base_url
    env.update(extra)
    return env


def _auditel_run(outbox: Path, script: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    cmd = [str(BIN / "auditel"), "--outbox", str(outbox), "run", "--", sys.executable, str(script)]
    return subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=180)


def _instrument(outbox: Path, script: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = dict(
        env,
        AUDITEL_ENABLED="true",
        AUDITEL_OUTBOX=str(outbox),
        OTEL_PYTHON_DISTRO="auditel_distro",
        OTEL_PYTHON_CONFIGURATOR="auditel_configurator",
    )
    return subprocess.run(
        [str(BIN / "opentelemetry-instrument"), sys.executable, str(script)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def _app_output(proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert proc.returncode == 3, proc.stderr
    assert "Overriding of current TracerProvider is not allowed" not in proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["output"] == REPLY_TEXT
    return out


def _by_kind(outbox: Path, kind: str) -> list[dict[str, Any]]:
    return [r for r in user_records(outbox) if r["event_name"] == f"auditel.{kind}"]


@pytest.mark.parametrize("launcher", ["auditel_run", "opentelemetry_instrument"])
@pytest.mark.parametrize("traces_exporter", [None, "console"])
def test_app_sets_its_own_provider(
    server: FakeLLMServer, tmp_path: Path, launcher: str, traces_exporter: str | None
) -> None:
    outbox = tmp_path / "outbox.db"
    extra = {"OTEL_TRACES_EXPORTER": traces_exporter} if traces_exporter else {}
    env = _env(server, **extra)
    proc = (_auditel_run if launcher == "auditel_run" else _instrument)(outbox, APP, env)
    out = _app_output(proc)
    names = [s["name"] for s in out["spans"]]
    # the app's exporter receives its own spans and the framework's
    assert "app-root" in names and "invoke_agent zero_agent" in names and "execute_tool get_weather" in names
    (root,) = [s for s in out["spans"] if s["name"] == "app-root"]
    app_spans = {s["span_id"]: s for s in out["spans"]}
    # auditel's records (from Pydantic AI's spans via the bridge, and auditel's own OpenAI wrapper) carry
    # the trace context of the app's spans
    records = _by_kind(outbox, "model_call") + _by_kind(outbox, "tool_call") + _by_kind(outbox, "agent_run")
    assert len(_by_kind(outbox, "model_call")) == 2
    assert len(_by_kind(outbox, "tool_call")) == 2 and len(_by_kind(outbox, "agent_run")) == 2
    for rec in records:
        assert rec["trace_id"] == root["trace_id"]
        assert rec["span_id"] in app_spans
    assert b"PROMPT-MARKER-zero" not in outbox_bytes(outbox)


def test_pydantic_ai_zero_code_env_only(server: FakeLLMServer, tmp_path: Path) -> None:
    """No provider set by the app: zero-code's provider serves, the bridge maps Pydantic AI's spans."""
    outbox = tmp_path / "outbox.db"
    proc = _auditel_run(outbox, APP, _env(server, APP_SETS_PROVIDER="0"))
    out = _app_output(proc)
    assert out["provider"] == "AdoptingTracerProvider"
    tools = _by_kind(outbox, "tool_call")
    assert [t["attributes"]["audit.phase"] for t in tools] == ["intent", "outcome"]
    assert tools[0]["attributes"]["audit.source"] == "pydantic-ai"
    assert [a["attributes"]["audit.phase"] for a in _by_kind(outbox, "agent_run")] == ["intent", "outcome"]
    assert len(_by_kind(outbox, "model_call")) == 2
    assert all(len(r.get("trace_id", "")) == 32 for r in tools)


def test_missing_otlp_exporter_is_named_and_trace_context_kept(server: FakeLLMServer, tmp_path: Path) -> None:
    """OTEL_TRACES_EXPORTER=otlp (gRPC by default) without opentelemetry-exporter-otlp-proto-grpc installed."""
    import importlib.util

    if importlib.util.find_spec("opentelemetry.exporter.otlp.proto.grpc") is not None:
        pytest.skip("the gRPC OTLP exporter is installed here; this test needs it absent")
    outbox = tmp_path / "outbox.db"
    proc = _auditel_run(outbox, PLAIN, _env(server, OTEL_TRACES_EXPORTER="otlp"))
    assert proc.returncode == 3, proc.stderr
    assert "opentelemetry-exporter-otlp-proto-grpc" in proc.stderr
    assert "OTEL_TRACES_EXPORTER='otlp'" in proc.stderr
    records = _by_kind(outbox, "model_call")
    assert len(records) == 2
    assert all(len(r.get("trace_id", "")) == 32 for r in records)  # not None: the spans still had a provider
