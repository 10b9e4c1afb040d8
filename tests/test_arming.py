"""``auditel run`` arms the instrumentations: nothing of a framework, nor auditel's code for it, nor
wrapt, is imported until the application imports the framework; then it is instrumented at once.
Real subprocesses under ``auditel run``, the real OpenAI SDK against the local stand-in server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from fake_llm_server import FakeLLMServer

BIN = Path(sys.executable).parent

PROBE = """
import json, sys
heavy = ["openai", "anthropic", "langchain_core", "agents", "mcp", "wrapt", "auditel.instrumentation.openai",
         "auditel.instrumentation.genai", "opentelemetry.instrumentation", "opentelemetry.sdk.metrics",
         "auditel.delivery.shipper", "google.protobuf"]
before = sorted(m for m in heavy if m in sys.modules)
import auditel
print(json.dumps({"before": before, "audited": sorted(auditel.status()["instrumentations"]["audited"].values())}))
"""

CALL = """
import json, os
import auditel.instrumentation as inst
armed_before = sorted(inst._armed)
import openai
client = openai.OpenAI(base_url=os.environ["FAKE_LLM_BASE_URL"], api_key="t")
reply = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
import auditel
auditel.flush()
rows = list(auditel.query(kind="model_call"))
print(json.dumps({"armed_before": armed_before, "model_calls": len(rows), "reply": reply.choices[0].message.content}))
"""


def _run(tmp_path: Path, code: str, **extra: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["XDG_DATA_HOME"] = str(tmp_path)
    env.update(extra)
    cmd = [str(BIN / "auditel"), "--outbox", str(tmp_path / "o.db"), "run", "--", sys.executable, "-c", code]
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_start_imports_no_framework_no_instrumentation_code(tmp_path: Path) -> None:
    out = _run(tmp_path, PROBE)
    assert out["before"] == []
    # armed instrumentations still count as audited (they switch on with their framework)
    assert "auditel_openai" in out["audited"] and "auditel_mcp" in out["audited"]


def test_framework_imported_later_is_instrumented(tmp_path: Path) -> None:
    with FakeLLMServer() as server:
        out = _run(tmp_path, CALL, FAKE_LLM_BASE_URL=server.openai_base_url)
    assert "auditel_openai" in out["armed_before"]
    assert out["model_calls"] == 1
    assert out["reply"]


def test_disabled_instrumentation_is_not_armed(tmp_path: Path) -> None:
    with FakeLLMServer() as server:
        out = _run(
            tmp_path,
            CALL,
            FAKE_LLM_BASE_URL=server.openai_base_url,
            OTEL_PYTHON_DISABLED_INSTRUMENTATIONS="auditel_openai",
        )
    assert "auditel_openai" not in out["armed_before"]
    assert out["model_calls"] == 0
