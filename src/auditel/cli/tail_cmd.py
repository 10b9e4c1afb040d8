"""``auditel tail [-n N] [-f] [-v] [--json]``: recent records, readably; ``-f`` follows new ones."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Iterable
from typing import Any

from auditel.api.read import record_from_row
from auditel.cli._common import outbox_path
from auditel.cli.format import format_record, label_for, writer_labels
from auditel.store.trail import Trail, TrailMissing


def register(sub: Any) -> None:
    p = sub.add_parser("tail", help="print the most recent records (-f to follow)")
    p.add_argument("-n", type=int, default=20, help="how many records (default 20)")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new records")
    p.add_argument("-v", "--verbose", action="store_true", help="every attribute and the body under each line")
    p.add_argument("--json", action="store_true", help="one JSON record per line")
    p.add_argument("--interval", type=float, default=0.5, help=argparse.SUPPRESS)
    p.add_argument("--max-seconds", type=float, default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        trail = Trail(outbox_path(args))
    except TrailMissing as exc:
        print(f"auditel tail: {exc} (set AUDITEL_OUTBOX or --outbox)", file=sys.stderr)
        return 2
    labels = writer_labels(trail.streams())

    def show(rows: Iterable[tuple[int, int, str | None, str]]) -> int:
        rid = 0
        for row in rows:
            rid = row[0]
            rec = record_from_row(row)
            if args.json:
                print(json.dumps(rec, ensure_ascii=False, sort_keys=True), flush=True)
            else:
                if rec.get("event_name") == "auditel.stream.start":
                    labels.update(writer_labels(trail.streams()))  # a new writer joined
                print(format_record(rec, writer=label_for(rec, labels), verbose=args.verbose), flush=True)
        return rid

    with trail:
        last = list(itertools.islice(trail.iter_rows(newest_first=True), max(0, args.n)))
        last_rid = show(reversed(last)) or trail.max_rid()
        if not args.follow:
            return 0
        started = time.monotonic()
        while args.max_seconds is None or time.monotonic() - started < args.max_seconds:
            time.sleep(args.interval)
            got = show(trail.iter_rows(after_rid=last_rid))
            if got:
                last_rid = got
    return 0
