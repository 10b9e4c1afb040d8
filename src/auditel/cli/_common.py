"""Helpers shared by the CLI commands: settings, opening the outbox, printing records."""

from __future__ import annotations

import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Any

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


def fmt_time(ns: Any) -> str:
    try:
        t = _dt.datetime.fromtimestamp(int(ns) / 1e9, tz=_dt.timezone.utc)
        return t.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"
    except (TypeError, ValueError, OverflowError, OSError):
        return "?"


_SHOWN_FIRST = (
    "audit.action",
    "audit.phase",
    "audit.outcome",
    "gen_ai.tool.name",
    "gen_ai.request.model",
    "audit.policy.verdict",
    "audit.target.id",
)
_HIDDEN = {
    "audit.record.id",
    "audit.schema.version",
    "audit.sequence.stream_id",
    "audit.sequence.previous_hash",
    "session.id",
}


def format_record(record: dict[str, Any]) -> str:
    """One readable line: time, seq, event, the main facts, then the other attributes."""
    attrs = record.get("attributes", {})
    parts = [
        fmt_time(record.get("time_unix_nano")),
        f"#{attrs.get('audit.sequence.number', '?')}",
        record.get("event_name", "?").removeprefix("auditel."),
    ]
    for key in _SHOWN_FIRST:
        if key in attrs:
            parts.append(f"{key.split('.')[-1] if key != 'audit.action' else 'action'}={attrs[key]}")
    rest = {k: v for k, v in attrs.items() if k not in _HIDDEN and k not in _SHOWN_FIRST and k != "audit.sequence.number"}
    if rest:
        parts.append(" ".join(f"{k}={json.dumps(v, ensure_ascii=False) if not isinstance(v, str) else v}" for k, v in sorted(rest.items())))
    if "body" in record:
        body = record["body"]
        text = body if isinstance(body, str) else json.dumps(body, ensure_ascii=False, sort_keys=True)
        parts.append(f"body={text[:200]}")
    return "  ".join(str(p) for p in parts)


def print_json(obj: Any) -> None:
    print(json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=True, default=str))
