"""``auditel query``: filter the local trail by kind, attribute, time, outcome, session or stream."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import re
from typing import Any

from auditel.config.settings import EVENT_KINDS
from auditel.record.schema import EVENT_PREFIX
from auditel.cli._common import format_record, open_outbox


def register(sub: Any) -> None:
    p = sub.add_parser("query", help="filter records (kind, attribute, time, outcome, session)")
    p.add_argument("--kind", action="append", default=[], help=f"event kind ({', '.join(EVENT_KINDS)}); repeatable")
    p.add_argument("--event", action="append", default=[], help="full event name; repeatable")
    p.add_argument("--where", action="append", default=[], metavar="KEY=VALUE", help="attribute equals value; repeatable")
    p.add_argument("--outcome", help="success | failure | denied | unknown")
    p.add_argument("--session", help="session.id")
    p.add_argument("--stream", help="audit.sequence.stream_id")
    p.add_argument("--since", help="ISO time or relative like 15m, 2h, 3d")
    p.add_argument("--until", help="ISO time or relative like 15m, 2h, 3d")
    p.add_argument("--limit", type=int, default=0, help="at most N records (the most recent)")
    p.add_argument("--json", action="store_true", help="one JSON record per line")
    p.add_argument("--count", action="store_true", help="print only the number of matching records")
    p.set_defaults(func=run)


def parse_time(text: str) -> int:
    """ISO-8601 or a relative age (``90s``, ``15m``, ``2h``, ``3d``) -> unix ns."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    now = _dt.datetime.now(_dt.timezone.utc)
    if m:
        seconds = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        return int((now.timestamp() - seconds) * 1e9)
    try:
        t = _dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise SystemExit(f"auditel query: --since/--until {text!r} is not valid: expected ISO time or 15m/2h/3d") from exc
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return int(t.timestamp() * 1e9)


def _coerce(value: str) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return value


def run(args: argparse.Namespace) -> int:
    _, outbox = open_outbox(args)
    names = list(args.event) + [EVENT_PREFIX + k for k in args.kind]
    wheres = []
    for item in args.where:
        if "=" not in item:
            raise SystemExit(f"auditel query: --where {item!r} is not valid: expected KEY=VALUE")
        key, _, value = item.partition("=")
        wheres.append((key, value, _coerce(value)))
    if args.outcome:
        wheres.append(("audit.outcome", args.outcome, args.outcome))
    if args.session:
        wheres.append(("session.id", args.session, args.session))
    records = outbox.iter_records(
        event_names=names or None,
        stream_id=args.stream,
        since_ns=parse_time(args.since) if args.since else None,
        until_ns=parse_time(args.until) if args.until else None,
    )
    matched = []
    for rec in records:
        attrs = rec.get("attributes", {})
        if all(key in attrs and (attrs[key] == coerced or str(attrs[key]) == raw) for key, raw, coerced in wheres):
            matched.append(rec)
    if args.limit:
        matched = matched[-args.limit :]
    if args.count:
        print(len(matched))
        return 0
    for rec in matched:
        rec.pop("_rid", None)
        rec.pop("_state", None)
        rec["hash"] = rec.pop("_hash", None)
        print(json.dumps(rec, ensure_ascii=False, sort_keys=True) if args.json else format_record(rec))
    return 0
