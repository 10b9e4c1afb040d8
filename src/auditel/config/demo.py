"""The settings of ``auditel demo``: its own outbox, and no shipping unless asked.

The demo records a fictional session (``user:alice@example.com``); it must never land in the
user's real outbox nor reach their backend. So it writes to ``--outbox`` when given, else to its
own outbox in a directory of its own (its keys stay apart from the real ones), whatever
``AUDITEL_OUTBOX`` says, and ships only with ``--ship`` (to the ``OTEL_EXPORTER_OTLP_*`` endpoint).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from auditel.config.settings import default_outbox_path


def demo_outbox_path(env: Mapping[str, str] | None = None) -> Path:
    """``$XDG_DATA_HOME/auditel/demo/outbox.db`` (``~/.local/share/auditel/demo/outbox.db``)."""
    return default_outbox_path(env).parent / "demo" / "outbox.db"


def apply_demo_environment(*, outbox: Path, ship: bool) -> None:
    """Set this (demo) process's environment: the demo outbox, shipping off unless ``ship``."""
    os.environ["AUDITEL_OUTBOX"] = str(outbox)
    if not ship:
        os.environ["AUDITEL_SHIP_ENABLED"] = "false"


def demo_identity() -> tuple[str, str]:
    """The agent name and principal the demo records (``AUDITEL_AGENT_NAME``/``AUDITEL_PRINCIPAL``)."""
    return (
        os.environ.get("AUDITEL_AGENT_NAME") or "report-assistant",
        os.environ.get("AUDITEL_PRINCIPAL") or "user:alice@example.com",
    )
