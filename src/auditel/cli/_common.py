"""Helpers shared by the CLI commands: settings, opening the outbox, printing records."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from auditel.cli.format import fmt_time, format_record  # noqa: F401  (moved to cli.format; re-exported for old callers)
from auditel.config import read
from auditel.config.settings import ConfigError, Settings
from auditel.store.outbox import Outbox, OutboxError


def settings_from(args: Any) -> Settings:
    """Every setting (for commands that write or ship); a bad one exits 2 naming it."""
    overrides = {"outbox": args.outbox} if getattr(args, "outbox", None) else {}
    try:
        return Settings.from_env(overrides=overrides)
    except ConfigError as exc:
        print(f"auditel: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def outbox_path(args: Any) -> Path:
    """Only the outbox path (``--outbox``, ``AUDITEL_OUTBOX`` or the default): all a read-only
    command needs, so a bad write-side setting (``AUDITEL_DURABILITY=banana``) cannot stop it."""
    try:
        return read.outbox_path(getattr(args, "outbox", None), label="--outbox")
    except ConfigError as exc:
        print(f"auditel: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def open_outbox(args: Any, *, must_exist: bool = True, writes: bool = False) -> tuple[Settings, Outbox]:
    """The settings and the opened outbox; a file that is no usable outbox exits 2 saying why.

    Read-only commands (the default) need only the outbox path: a bad write-side setting
    (``AUDITEL_DURABILITY=banana``) leaves them the defaults. Commands that change the outbox or
    ship (``writes=True``) exit 2 on any bad setting, naming it.
    """
    if writes:
        settings = settings_from(args)
        path = Path(settings.outbox)
    else:
        path = outbox_path(args)
        try:
            settings = Settings.from_env(overrides={"outbox": str(path)})
        except ConfigError:
            settings = Settings(outbox=path)
    if must_exist and not path.exists():
        print(f"auditel: no outbox at {path} (set AUDITEL_OUTBOX or --outbox)", file=sys.stderr)
        raise SystemExit(2)
    try:
        return settings, Outbox(path, durability=settings.durability)
    except (OutboxError, OSError) as exc:
        print(f"auditel: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True, default=str))
