"""Zero-code start: ``opentelemetry-instrument`` and ``auditel run`` with environment variables only.

Each test runs ``tests/zero_code_agent.py`` (no auditel code in it) in a subprocess against the
local fake LLM server and reads the outbox the child wrote.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from fake_llm_server import REPLY_TEXT, FakeLLMServer
from genai_support import model_records, outbox_bytes

AGENT = Path(__file__).with_name("zero_code_agent.py")
BIN = Path(sys.executable).parent


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


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def _assert_agent_ran(proc: subprocess.CompletedProcess[str]) -> None:
    assert proc.returncode == 3, proc.stderr  # the agent's own exit code
    assert "tool get_weather" in proc.stdout and f"streamed {REPLY_TEXT}" in proc.stdout, proc.stderr


def _assert_records(outbox: Path) -> None:
    records = model_records(outbox)
    assert [r["attributes"]["gen_ai.request.model"] for r in records] == ["gpt-tools", "gpt-4o"]
    assert [r["attributes"]["audit.outcome"] for r in records] == ["success", "success"]
    assert records[0]["attributes"]["audit.tool_calls.names"] == ["get_weather"]
    assert all(len(r.get("trace_id", "")) == 32 for r in records)  # written inside a recording span
    assert b"PROMPT-MARKER-zero" not in outbox_bytes(outbox)


def test_opentelemetry_instrument_with_env_only(server: FakeLLMServer, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.db"
    env = _env(server, AUDITEL_ENABLED="true", AUDITEL_OUTBOX=str(outbox), OTEL_PYTHON_DISTRO="auditel_distro", OTEL_PYTHON_CONFIGURATOR="auditel_configurator")
    proc = _run([str(BIN / "opentelemetry-instrument"), sys.executable, str(AGENT)], env)
    _assert_agent_ran(proc)
    assert "tracer_provider AdoptingTracerProvider" in proc.stdout  # set by our configurator: none was set
    _assert_records(outbox)


def test_opentelemetry_instrument_without_naming_the_distro(server: FakeLLMServer, tmp_path: Path) -> None:
    # Other vendors' instrumentors (OpenLLMetry, the official genai-openai) are installed and load too.
    outbox = tmp_path / "outbox.db"
    proc = _run([str(BIN / "opentelemetry-instrument"), sys.executable, str(AGENT)], _env(server, AUDITEL_ENABLED="true", AUDITEL_OUTBOX=str(outbox)))
    _assert_agent_ran(proc)
    _assert_records(outbox)


def test_opentelemetry_instrument_when_auditel_not_enabled_does_nothing(server: FakeLLMServer, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.db"
    env = _env(server, AUDITEL_OUTBOX=str(outbox), OTEL_PYTHON_DISTRO="auditel_distro", OTEL_PYTHON_CONFIGURATOR="auditel_configurator")
    proc = _run([str(BIN / "opentelemetry-instrument"), sys.executable, str(AGENT)], env)
    _assert_agent_ran(proc)
    assert "tracer_provider ProxyTracerProvider" in proc.stdout  # no provider forced on the app
    assert not outbox.exists()


def test_auditel_run_passes_exit_code_and_records(server: FakeLLMServer, tmp_path: Path) -> None:
    outbox = tmp_path / "run" / "outbox.db"
    proc = _run([str(BIN / "auditel"), "--outbox", str(outbox), "run", "--", sys.executable, str(AGENT)], _env(server))
    _assert_agent_ran(proc)
    assert "tracer_provider AdoptingTracerProvider" in proc.stdout
    _assert_records(outbox)


def test_auditel_run_reports_missing_command(tmp_path: Path, server: FakeLLMServer) -> None:
    proc = _run([str(BIN / "auditel"), "run", "--", "no-such-command-xyz"], _env(server))
    assert proc.returncode == 127 and "command not found" in proc.stderr
    proc = _run([str(BIN / "auditel"), "run"], _env(server))
    assert proc.returncode == 2
