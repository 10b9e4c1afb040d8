"""``auditel tail [-n N] [-f] [--json]``: recent records, readably; ``-f`` follows new ones."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from auditel.cli._common import format_record, open_outbox


def register(sub: Any) -> None:
    p = sub.add_parser("tail", help="print the most recent records (-f to follow)")
    p.add_argument("-n", type=int, default=20, help="how many records (default 20)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    p.add_argument("--json", action="store_true", help="one JSON record per line")
    p.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)
    p.add_argument("--max-seconds", type=float, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _, outbox = open_outbox(args)
    last_rid = 0

    def show(records: Any) -> int:
        rid = 0
        for rec in records:
            rid = rec.pop("_rid")
            rec.pop("_state", None)
            rec["hash"] = rec.pop("_hash", None)
            print(json.dumps(rec, ensure_ascii=False, sort_keys=True) if args.json else format_record(rec), flush=True)
        return rid

    last_rid = show(outbox.iter_records(last=max(0, args.n))) or _max_rid(outbox)
    if not args.follow:
        return 0
    started = time.monotonic()
    while args.max_seconds is None or time.monotonic() - started < args.max_seconds:
        time.sleep(args.interval)
        got = show(outbox.iter_records(after_rid=last_rid))
        if got:
            last_rid = got
    return 0


def _max_rid(outbox: Any) -> int:
    row = outbox.connect().execute("SELECT coalesce(max(rid), 0) FROM records").fetchone()
    return int(row[0])
