"""``auditel run`` never blocks a MeterProvider or LoggerProvider the application sets (principle 1).

With no OTel exporter configured, the zero-code start used to run the SDK's configurator anyway,
which sets a global MeterProvider (no readers) and LoggerProvider; the app's own providers set
later were then refused ("Overriding of current MeterProvider is not allowed") and its metrics
went nowhere. Real ``auditel run`` subprocesses, real SDK providers, a real outbox file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

APP = Path(__file__).with_name("app_own_meter_provider.py")
BIN = Path(sys.executable).parent


def _run(tmp_path: Path, **extra: str) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_"))}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["XDG_DATA_HOME"] = str(tmp_path)
    env.update(extra)
    cmd = [str(BIN / "auditel"), "--outbox", str(tmp_path / "o.db"), "run", "--", sys.executable, str(APP)]
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Overriding of current" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_app_meter_and_logger_providers_win_with_no_exporter_configured(tmp_path: Path) -> None:
    out = _run(tmp_path)
    assert out == {"meter_provider_is_ours": True, "logger_provider_is_ours": True, "points": [3]}


def test_sdk_configured_when_an_exporter_is_named(tmp_path: Path) -> None:
    """Naming an exporter still gets the SDK's own set-up, as ``opentelemetry-instrument`` gives:
    the app's span reaches the console exporter named by OTEL_TRACES_EXPORTER."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_"))}
    env.update(PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", XDG_DATA_HOME=str(tmp_path))
    env["OTEL_TRACES_EXPORTER"] = "console"
    code = "from opentelemetry import trace; trace.get_tracer('app').start_span('app-span-marker').end()"
    cmd = [str(BIN / "auditel"), "--outbox", str(tmp_path / "o.db"), "run", "--", sys.executable, "-c", code]
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert '"name": "app-span-marker"' in proc.stdout, proc.stdout + proc.stderr
