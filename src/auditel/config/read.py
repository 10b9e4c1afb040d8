"""Where readers (the read API, the viewer, read-only CLI commands) find the outbox.

Readers need only the outbox path: a bad write-side setting (``AUDITEL_DURABILITY=banana``) must
not stop anyone from reading or verifying what is already recorded (issue 12, item 11).
"""

from __future__ import annotations

import os
from pathlib import Path

from auditel.config.settings import default_outbox_path


def outbox_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """``explicit``, else ``AUDITEL_OUTBOX``, else the per-user default."""
    if explicit:
        return Path(explicit).expanduser()
    env = os.environ.get("AUDITEL_OUTBOX", "").strip()
    return Path(env).expanduser() if env else default_outbox_path()
