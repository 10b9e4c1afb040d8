"""Zero-code start: bad settings are refused clearly, ``auditel run --outbox``, and what is audited.

Issue 12 items 10 (a typo in ``AUDITEL_ENABLED`` must not turn auditing off silently), 12
(``auditel run --outbox X -- cmd`` as ``--help`` shows it) and 18 (``auditel run`` / ``auditel
status`` say which installed frameworks are audited and which are not). Real subprocesses, the
real ``opentelemetry-instrument``, the stand-in LLM server on loopback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fake_llm_server import FakeLLMServer
from genai_support import model_records

AGENT = Path(__file__).with_name("zero_code_agent.py")
BIN = Path(sys.executable).parent
PRINT_HI = [sys.executable, "-c", "print('program ran')"]


@pytest.fixture(scope="module")
def server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as srv:
        yield srv


def _env(tmp_path: Path, server: FakeLLMServer | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_", "TRACELOOP_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["AUDITEL_OUTBOX"] = str(tmp_path / "outbox.db")
    if server is not None:
        env["FAKE_LLM_BASE_URL"] = server.openai_base_url
    env.update(extra)
    return env


def _run(cmd: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def _names_variable_value_and_accepted(stderr: str) -> None:
    assert "AUDITEL_ENABLED='ture'" in stderr, stderr
    assert "expected one of true, false" in stderr, stderr


def test_auditel_run_refuses_a_typo_in_auditel_enabled(tmp_path: Path) -> None:
    proc = _run([str(BIN / "auditel"), "run", "--", *PRINT_HI], _env(tmp_path, AUDITEL_ENABLED="ture"))
    assert proc.returncode == 2
    _names_variable_value_and_accepted(proc.stderr)
    assert "program ran" not in proc.stdout  # never run unaudited when auditing was asked for
    assert not (tmp_path / "outbox.db").exists()


def test_auditel_run_refuses_any_bad_setting_before_starting(tmp_path: Path) -> None:
    proc = _run([str(BIN / "auditel"), "run", "--", *PRINT_HI], _env(tmp_path, AUDITEL_DURABILITY="banana"))
    assert proc.returncode == 2
    assert "AUDITEL_DURABILITY='banana'" in proc.stderr and "process, fsync" in proc.stderr
    assert "program ran" not in proc.stdout


def test_auditel_run_with_auditing_switched_off_explicitly_runs(tmp_path: Path) -> None:
    proc = _run([str(BIN / "auditel"), "run", "--", *PRINT_HI], _env(tmp_path, AUDITEL_ENABLED="false"))
    assert proc.returncode == 0 and "program ran" in proc.stdout
    assert not (tmp_path / "outbox.db").exists()


@pytest.mark.parametrize("named", [True, False], ids=["distro_named", "distro_found"])
def test_opentelemetry_instrument_reports_a_typo_in_auditel_enabled(tmp_path: Path, named: bool) -> None:
    extra = (
        {"OTEL_PYTHON_DISTRO": "auditel_distro", "OTEL_PYTHON_CONFIGURATOR": "auditel_configurator"} if named else {}
    )
    proc = _run([str(BIN / "opentelemetry-instrument"), *PRINT_HI], _env(tmp_path, AUDITEL_ENABLED="ture", **extra))
    assert proc.returncode == 0 and "program ran" in proc.stdout  # the host is never stopped from here
    _names_variable_value_and_accepted(proc.stderr)
    assert "WITHOUT auditing" in proc.stderr
    assert proc.stderr.count("AUDITEL_ENABLED='ture'") == 1  # once, not once per instrumentor


def test_auditel_run_outbox_after_run(server: FakeLLMServer, tmp_path: Path) -> None:
    outbox = tmp_path / "elsewhere" / "outbox.db"
    env = _env(tmp_path, server)
    del env["AUDITEL_OUTBOX"]
    env["XDG_DATA_HOME"] = str(tmp_path / "xdg")  # the default outbox, which must stay unused
    proc = _run([str(BIN / "auditel"), "run", "--outbox", str(outbox), "--", sys.executable, str(AGENT)], env)
    assert proc.returncode == 3, proc.stderr  # the agent's own exit code
    assert [r["attributes"]["gen_ai.request.model"] for r in model_records(outbox)] == ["gpt-tools", "gpt-4o"]
    assert not (tmp_path / "xdg").exists()


def _stand_in_framework(tmp_path: Path) -> Path:
    """An importable ``crewai`` package: stands in for an installed framework auditel does not
    instrument (installing the real CrewAI would pull hundreds of MB into the test set-up)."""
    site = tmp_path / "site"
    (site / "crewai").mkdir(parents=True)
    (site / "crewai" / "__init__.py").write_text("")
    return site


def _with_path(site: Path) -> str:
    return os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH", "")])])


def test_auditel_run_says_what_is_audited_and_what_is_not(tmp_path: Path) -> None:
    site = _stand_in_framework(tmp_path)
    code = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'pass'])"  # a grandchild stays quiet
    proc = _run(
        [str(BIN / "auditel"), "run", "--", sys.executable, "-c", code], _env(tmp_path, PYTHONPATH=_with_path(site))
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("auditel: auditing")]
    assert len(lines) == 1, proc.stderr
    assert "OpenAI SDK (auditel_openai)" in lines[0] and "MCP SDK (auditel_mcp)" in lines[0]
    assert "installed but NOT audited: CrewAI" in lines[0]


def test_status_lists_audited_and_not_audited_frameworks(tmp_path: Path) -> None:
    site = _stand_in_framework(tmp_path)
    env = _env(tmp_path, PYTHONPATH=_with_path(site))
    assert _run([str(BIN / "auditel"), "run", "--", sys.executable, "-c", "pass"], env).returncode == 0
    proc = _run([str(BIN / "auditel"), "status", "--json"], env)
    assert proc.returncode == 0, proc.stderr
    cov = json.loads(proc.stdout)["instrumentations"]
    assert cov["available"]["OpenAI SDK"] == "auditel_openai"
    assert cov["not_audited"] == ["CrewAI"]
    text = _run([str(BIN / "auditel"), "status"], env).stdout
    assert "NOT audited   CrewAI" in text and "OpenAI SDK (auditel_openai)" in text
    code = "import auditel, json; auditel.configure(); auditel.instrument('openai'); print(json.dumps(auditel.status()['instrumentations']))"
    cov = json.loads(_run([sys.executable, "-c", code], env).stdout.splitlines()[-1])
    assert cov["audited"] == {"OpenAI SDK": "auditel_openai"} and cov["not_audited"] == ["CrewAI"]
