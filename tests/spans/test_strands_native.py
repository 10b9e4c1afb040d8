"""Strands Agents with its native OTel (GenAI conventions) -> durable auditel records, via the span bridge.

The real strands-agents (with its OpenAI-compatible model provider) cannot live in this test
environment (it pins mcp < 2.2; the MCP tests here need mcp >= 2.3), so ``scripts/setup.sh test``
builds it a virtualenv of its own, ``.venv-frameworks/strands``, with auditel installed from this
checkout. Each test runs ``strands_agent.py`` with that interpreter in a subprocess: an agent that
calls one tool and answers, its model pointed at the local stand-in OpenAI server of this process
(127.0.0.1; no other network). The test then reads the real SQLite outbox with auditel's read API
and runs ``auditel verify`` on it.

Strands starts its spans bare and sets their attributes right after, with content in span events
(test_late_attributes.py reproduces those shapes span by span).
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

import auditel
from auditel.cli import main as cli_main
from auditel.record.content import KeyedDigester
from fake_llm_server import REPLY_TEXT, TOOL_ARGUMENTS, TOOL_CALL_ID, TOOL_NAME, FakeLLMServer
from genai_support import outbox_bytes

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-frameworks" / "strands"
PYTHON = VENV / "bin" / "python"
APP = Path(__file__).with_name("strands_agent.py")
SCOPE = "strands.telemetry.tracer"
DIGEST_KEY = bytes(range(32))
TOOL_RESULT_BLOCKS = [{"text": "RESULT-MARKER-sunny-21C"}]
MARKERS = (b"USER-MARKER", b"PROMPT-MARKER", b"ARGS-MARKER", b"RESULT-MARKER", b"COMPLETION-MARKER", b"TOOL-BROKE")


def _require_venv() -> None:
    """Fails (never skips): a missing framework environment must not pass for a tested framework."""
    if not PYTHON.is_file():
        pytest.fail(
            f"the Strands Agents test environment is missing ({VENV}): run `bash scripts/setup.sh test`"
            " (it builds .venv-frameworks/strands with scripts/setup-frameworks.sh)",
            pytrace=False,
        )


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


def _env(server: FakeLLMServer, mode: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_", "STRANDS_"))}
    env.pop("PYTHONPATH", None)  # the framework environment's own packages only
    env.update(
        FAKE_LLM_BASE_URL=server.openai_base_url,
        STRANDS_APP_MODE=mode,
        AUDITEL_DIGEST_KEY=DIGEST_KEY.hex(),  # so this test can recompute the digests
        AUDITEL_DURABILITY="process",
    )
    env.update(extra)
    return env


def _run(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    _require_venv()
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 3, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"  # the app's own code
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _in_code(server: FakeLLMServer, outbox: Path, mode: str, **extra: str) -> dict[str, Any]:
    return _run([str(PYTHON), str(APP)], _env(server, mode, APP_OUTBOX=str(outbox), **extra))


@pytest.fixture(scope="module")
def reference(server: FakeLLMServer) -> dict[str, Any]:
    """The agent's answer with no auditel at all."""
    out = _run([str(PYTHON), str(APP)], _env(server, "plain"))
    assert out["output"] == REPLY_TEXT
    return out


def _records(outbox: Path, kind: str) -> list[dict[str, Any]]:
    return list(auditel.query(kind=kind, outbox=outbox))


def _phases(recs: list[dict[str, Any]]) -> list[str]:
    return [r["attributes"]["audit.phase"] for r in recs]


def _verify(outbox: Path) -> None:
    assert cli_main(["verify", str(outbox)]) == 0


def _assert_tool_and_agent(outbox: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    digest = KeyedDigester(DIGEST_KEY)
    tools = _records(outbox, "tool_call")
    assert _phases(tools) == ["intent", "outcome"]
    intent, outcome = tools
    for rec in tools:
        assert rec["attributes"]["gen_ai.tool.name"] == TOOL_NAME
        assert rec["attributes"]["audit.source"] == SCOPE
    assert intent["attributes"]["audit.correlation.id"] == outcome["attributes"]["audit.correlation.id"]
    assert intent["span_id"] == outcome["span_id"] and intent["trace_id"] == outcome["trace_id"]
    # Strands sets the call id and the arguments after starting its span: they are on the outcome;
    # the arguments digest is of the canonical form auditel's own tool_call records digest
    assert outcome["attributes"]["gen_ai.tool.call.id"] == TOOL_CALL_ID
    assert outcome["attributes"]["audit.arguments.digest"] == digest(TOOL_ARGUMENTS)[0]

    agents = _records(outbox, "agent_run")
    assert _phases(agents) == ["intent", "outcome"]
    assert {a["attributes"]["gen_ai.agent.name"] for a in agents} == {"weather_agent"}
    assert agents[1]["attributes"]["audit.outcome"] == "success"
    # one trace: the agent run encloses the tool call (and the model calls)
    assert agents[0]["trace_id"] == intent["trace_id"]
    return intent, outcome


@pytest.mark.parametrize(
    ("mode", "semconv"),
    [
        ("code-telemetry-first", ""),  # Strands' default: the older conventions, content in span events
        ("code-auditel-first", ""),
        # the current conventions: gen_ai.tool.call.arguments/result attributes, messages on the span
        ("code-telemetry-first", "gen_ai_latest_experimental,gen_ai_span_attributes_only"),
    ],
)
def test_strands_agent_tool_and_model_calls_are_recorded(
    server: FakeLLMServer, reference: dict[str, Any], tmp_path: Path, mode: str, semconv: str
) -> None:
    outbox = tmp_path / "outbox.db"
    out = _in_code(server, outbox, mode, OTEL_SEMCONV_STABILITY_OPT_IN=semconv)
    assert out["output"] == reference["output"] == REPLY_TEXT  # the framework's answer is unchanged
    assert out["stop_reason"] == reference["stop_reason"]

    models = _records(outbox, "model_call")
    assert len(models) == 2  # asks for the tool, then answers
    for rec in models:
        attrs = rec["attributes"]
        assert attrs["gen_ai.request.model"] == "agent-tools-once"
        assert attrs["audit.source"] == SCOPE
        assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
        assert attrs["audit.input.digest"].startswith("hmac-sha256:")
        assert attrs["audit.output.digest"].startswith("hmac-sha256:")
    assert models[0]["attributes"]["gen_ai.response.finish_reasons"] == ["tool_use"]
    _, outcome = _assert_tool_and_agent(outbox)
    assert outcome["attributes"]["audit.outcome"] == "success"
    # Strands' tool result form (its content blocks), the same under both conventions
    assert outcome["attributes"]["audit.result.digest"] == KeyedDigester(DIGEST_KEY)(TOOL_RESULT_BLOCKS)[0]

    # every record carries the trace and span id of the Strands span it came from
    spans = {s["span_id"]: s for s in out["spans"]}
    for rec in models + _records(outbox, "tool_call") + _records(outbox, "agent_run"):
        assert spans[rec["span_id"]]["trace_id"] == rec["trace_id"]
        assert spans[rec["span_id"]]["scope"] == SCOPE
    assert spans[outcome["span_id"]]["name"] == f"execute_tool {TOOL_NAME}"

    # private by default: Strands put prompts, arguments and results in its span events; none is stored
    stored = outbox_bytes(outbox)
    for marker in MARKERS:
        assert marker not in stored, marker
    _verify(outbox)


def test_strands_tool_failure_is_recorded(server: FakeLLMServer, tmp_path: Path) -> None:
    """Strands turns a tool's exception into an error result for the model; the outcome says failure."""
    outbox = tmp_path / "outbox.db"
    out = _in_code(server, outbox, "code-telemetry-first", STRANDS_APP_TOOL_FAILS="1")
    assert out["output"] == REPLY_TEXT
    _, outcome = _assert_tool_and_agent(outbox)
    assert outcome["attributes"]["audit.outcome"] == "failure"
    assert "TOOL-BROKE" not in json.dumps(outcome)  # the error type, never its message
    assert b"TOOL-BROKE" not in outbox_bytes(outbox)
    _verify(outbox)


def test_auditel_tool_inside_strands_tool_is_one_action(server: FakeLLMServer, tmp_path: Path) -> None:
    """The Strands tool function is also an ``@auditel.tool``: one intent (Strands' span, committed
    first) and one outcome (auditel's own), one correlation id, the model's call id (dedup rule 4)."""
    outbox = tmp_path / "outbox.db"
    out = _in_code(server, outbox, "code-telemetry-first", STRANDS_APP_AUDITEL_TOOL="1")
    assert out["output"] == REPLY_TEXT
    digest = KeyedDigester(DIGEST_KEY)
    tools = _records(outbox, "tool_call")
    assert _phases(tools) == ["intent", "outcome"]
    intent, outcome = tools
    assert intent["attributes"]["audit.source"] == SCOPE and "audit.source" not in outcome["attributes"]
    assert intent["attributes"]["audit.correlation.id"] == outcome["attributes"]["audit.correlation.id"]
    assert outcome["attributes"]["gen_ai.tool.call.id"] == TOOL_CALL_ID
    assert outcome["attributes"]["audit.arguments.digest"] == digest(TOOL_ARGUMENTS)[0]
    assert outcome["attributes"]["audit.result.digest"] == digest("RESULT-MARKER-sunny-21C")[0]  # as returned
    for marker in MARKERS:
        assert marker not in outbox_bytes(outbox), marker
    _verify(outbox)


def test_strands_content_capture_opt_in(server: FakeLLMServer, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.db"
    _in_code(server, outbox, "code-telemetry-first", OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT="true")
    stored = outbox_bytes(outbox)
    assert b"ARGS-MARKER" in stored and b"RESULT-MARKER" in stored and b"USER-MARKER" in stored


@pytest.mark.parametrize("launcher", ["auditel_run", "opentelemetry_instrument"])
def test_strands_zero_code(server: FakeLLMServer, reference: dict[str, Any], tmp_path: Path, launcher: str) -> None:
    """Environment variables only: no auditel code in the app.

    ``auditel run``: the app sets no provider, Strands uses zero-code's. ``opentelemetry-instrument``
    with ``AUDITEL_ENABLED=true``: the app calls ``StrandsTelemetry()``, whose provider takes over and
    gets the bridge. auditel's own OpenAI instrumentation is on in both: with Strands' ``chat`` span
    around it, one ``model_call`` per call (auditel's own).
    """
    outbox = tmp_path / "outbox.db"
    bin_dir = VENV / "bin"
    if launcher == "auditel_run":
        env = _env(server, "zero-code")
        cmd = [str(bin_dir / "auditel"), "--outbox", str(outbox), "run", "--", str(PYTHON), str(APP)]
    else:
        env = _env(
            server,
            "zero-code",
            STRANDS_APP_TELEMETRY="1",
            AUDITEL_ENABLED="true",
            AUDITEL_OUTBOX=str(outbox),
            OTEL_PYTHON_DISTRO="auditel_distro",
            OTEL_PYTHON_CONFIGURATOR="auditel_configurator",
        )
        cmd = [str(bin_dir / "opentelemetry-instrument"), str(PYTHON), str(APP)]
    out = _run(cmd, env)
    assert out["output"] == reference["output"]
    assert out["provider"] == "AdoptingTracerProvider"

    models = _records(outbox, "model_call")
    assert len(models) == 2, [m["attributes"].get("audit.source") for m in models]  # one per call
    assert all("audit.source" not in m["attributes"] for m in models)  # auditel's own OpenAI records
    assert all(m["attributes"]["gen_ai.request.model"] == "agent-tools-once" for m in models)
    intent, _ = _assert_tool_and_agent(outbox)
    assert {m["trace_id"] for m in models} == {intent["trace_id"]}
    if launcher == "opentelemetry_instrument":  # the app's own exporter received the spans
        assert f"execute_tool {TOOL_NAME}" in {s["name"] for s in out["spans"]}
    stored = outbox_bytes(outbox)
    for marker in MARKERS:
        assert marker not in stored, marker
    _verify(outbox)


def test_framework_environment_is_separate() -> None:
    """The reason for the second environment, checked: it holds strands-agents, this one must not."""
    _require_venv()
    proc = subprocess.run(
        [str(PYTHON), "-c", "import importlib.metadata as m, auditel; print(m.version('strands-agents'))"],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.stdout.strip()
    assert sys.prefix != str(VENV)
