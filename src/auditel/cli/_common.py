"""Helpers shared by the CLI commands: settings, opening the outbox, printing records."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from auditel.cli.format import fmt_time, format_record  # noqa: F401  (moved to cli.format; re-exported for old callers)
from auditel.config.settings import ConfigError, Settings
from auditel.store.outbox import Outbox


def settings_from(args: Any) -> Settings:
    overrides = {"outbox": args.outbox} if getattr(args, "outbox", None) else {}
    try:
        return Settings.from_env(overrides=overrides)
    except ConfigError as exc:
        print(f"auditel: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc


def open_outbox(args: Any, *, must_exist: bool = True) -> tuple[Settings, Outbox]:
    settings = settings_from(args)
    if must_exist and not Path(settings.outbox).exists():
        print(f"auditel: no outbox at {settings.outbox} (set AUDITEL_OUTBOX or --outbox)", file=sys.stderr)
        raise SystemExit(2)
    return settings, Outbox(settings.outbox, durability=settings.durability)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True, default=str))
