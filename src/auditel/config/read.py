"""Where readers (the read API, the viewer, the CLI) find the outbox: the one reader of its path.

Readers need only the outbox path: a bad write-side setting (``AUDITEL_DURABILITY=banana``) must
not stop anyone from reading or verifying what is already recorded (issue 12, item 11). A path
that cannot be an outbox (a directory, a URL, a NUL byte) is refused here, naming where it came
from, as ``configure()`` refuses it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from auditel.config.settings import Reader, default_outbox_path, parse_path


def outbox_path(
    explicit: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    *,
    label: str = "outbox",
) -> Path:
    """``explicit`` (named ``label`` in errors), else ``AUDITEL_OUTBOX``, else the per-user default.

    Raises ``ConfigError`` naming the setting, its value and what is accepted when it is no file path.
    """
    env = os.environ if env is None else env
    if explicit is not None and str(explicit).strip():
        raw = str(explicit)
    elif env.get("AUDITEL_OUTBOX", "").strip():
        raw, label = env["AUDITEL_OUTBOX"], "AUDITEL_OUTBOX"
    else:
        return default_outbox_path(env)
    reader = Reader(env)
    path = reader.parse(label, raw, parse_path, "a file path on a local filesystem")
    reader.check("invalid auditel configuration")
    return path
