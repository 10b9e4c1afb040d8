"""``auditel query``: filter the local trail by kind, attribute, time, outcome, session, trace or stream."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from auditel.api.read import KNOWN_KINDS, query
from auditel.cli._common import outbox_path
from auditel.cli.format import format_record, label_for, writer_labels
from auditel.cli.times import ACCEPTED, parse_time_arg
from auditel.store.trail import Trail, TrailMissing


def register(sub: Any) -> None:
    p = sub.add_parser("query", help="filter records (kind, attribute, time, outcome, session)")
    p.add_argument("--kind", action="append", default=[], help=f"event kind ({', '.join(KNOWN_KINDS)}); repeatable")
    p.add_argument("--event", action="append", default=[], help="full event name; repeatable")
    p.add_argument(
        "--where", action="append", default=[], metavar="KEY=VALUE", help="attribute equals value; repeatable"
    )
    p.add_argument("--outcome", help="success | failure | denied | unknown")
    p.add_argument("--session", help="session.id")
    p.add_argument("--trace", help="trace id (32 hex digits)")
    p.add_argument("--stream", help="audit.sequence.stream_id")
    p.add_argument("--since", help=ACCEPTED)
    p.add_argument("--until", help=ACCEPTED)
    p.add_argument("--limit", type=int, default=0, help="at most N records (the most recent)")
    p.add_argument("--json", action="store_true", help="one JSON record per line")
    p.add_argument("-v", "--verbose", action="store_true", help="every attribute and the body under each line")
    p.add_argument("--count", action="store_true", help="print only the number of matching records")
    p.set_defaults(func=run)


def fail(message: str) -> int:
    print(f"auditel query: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    unknown = [k for k in args.kind if k.removeprefix("auditel.") not in KNOWN_KINDS]
    if unknown:
        return fail(f"--kind {unknown[0]!r} is not a known kind; known kinds: {', '.join(KNOWN_KINDS)}")
    wheres = []
    for item in args.where:
        if "=" not in item:
            return fail(f"--where {item!r} is not valid: expected KEY=VALUE")
        key, _, value = item.partition("=")
        wheres.append((key, value))
    since = parse_time_arg(args.since, "--since", "query") if args.since else None
    until = parse_time_arg(args.until, "--until", "query") if args.until else None
    path = outbox_path(args)
    try:
        records = query(
            kind=args.kind or None,
            event=args.event or None,
            since=since,
            until=until,
            where=wheres,
            session=args.session,
            trace=args.trace,
            stream=args.stream,
            outcome=args.outcome,
            limit=args.limit or None,
            outbox=path,
        )
    except TrailMissing as exc:
        return fail(str(exc))
    except ValueError as exc:
        return fail(str(exc))
    if args.count:
        print(sum(1 for _ in records))
        return 0
    labels: dict[str, str] = {}
    if not args.json:
        with Trail(path) as trail:
            labels = writer_labels(trail.streams())
    shown = 0
    for rec in records:
        shown += 1
        if args.json:
            print(json.dumps(rec, ensure_ascii=False, sort_keys=True))
        else:
            print(format_record(rec, writer=label_for(rec, labels), verbose=args.verbose))
    if not shown:
        # stderr: stdout stays valid (empty) JSON lines for scripts
        print(f"auditel query: no records match (outbox {path})", file=sys.stderr)
    return 0
