"""What a child process that auditel starts on the app's behalf inherits (MCP stdio servers).

The MCP SDK hands a stdio server only ``HOME``, ``PATH`` and a few more variables, so the
server never sees ``AUDITEL_*``/``OTEL_*`` and runs unaudited. While auditel instruments the
MCP client, the servers it starts get auditel's and OpenTelemetry's settings, the outbox in
force, and auditel's bootstrap directory first on ``PYTHONPATH`` (a Python server then starts
audited, as under ``auditel run``). ``AUDITEL_MCP_INHERIT_ENV=false`` switches this off; the
``env`` a caller gives ``StdioServerParameters`` still wins over anything added here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from auditel.config.settings import ConfigError, _parse_bool

INHERIT_VAR = "AUDITEL_MCP_INHERIT_ENV"
_PREFIXES = ("AUDITEL_", "OTEL_")


def inherit_enabled(env: Mapping[str, str] | None = None) -> bool:
    raw = (os.environ if env is None else env).get(INHERIT_VAR)
    if raw is None or not raw.strip():
        return True
    try:
        return _parse_bool(raw.strip())
    except ValueError:
        raise ConfigError(f"invalid auditel configuration:\n  {INHERIT_VAR}={raw!r}: expected true or false") from None


def audited_child_environment(outbox: Path | None, bootstrap_dir: str) -> dict[str, str]:
    """The variables to add to a child's environment so that it is audited like its parent."""
    out = {k: v for k, v in os.environ.items() if k.startswith(_PREFIXES)}
    if outbox is not None:
        out["AUDITEL_OUTBOX"] = str(outbox)
        out.setdefault("AUDITEL_ENABLED", "true")
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != bootstrap_dir]
    out["PYTHONPATH"] = os.pathsep.join([bootstrap_dir, *parts])
    return out
