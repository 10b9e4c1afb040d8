"""``auditel purge``: delete old local records — shipped ones only, unless told otherwise."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from auditel.cli._common import open_outbox


def register(sub: Any) -> None:
    p = sub.add_parser("purge", help="delete shipped records older than --older-than (never unshipped ones by default)")
    p.add_argument("--older-than", required=True, help="age like 30d, 12h; records older than this are purged")
    p.add_argument(
        "--include-unshipped",
        action="store_true",
        help="also delete records never delivered to a backend (they are then gone for good)",
    )
    p.add_argument("--yes", action="store_true", help="needed with --include-unshipped")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from auditel.cli.times import parse_time_arg as parse_time

    if args.include_unshipped and not args.yes:
        print(
            "auditel purge: --include-unshipped deletes undelivered audit records; add --yes to confirm",
            file=sys.stderr,
        )
        return 2
    _, outbox = open_outbox(args, writes=True)
    cutoff = parse_time(args.older_than, "--older-than", "purge")
    if cutoff > time.time_ns():
        print("auditel purge: --older-than must be an age such as 30d", file=sys.stderr)
        return 2
    total = 0
    while True:
        n = outbox.prune(shipped_only=not args.include_unshipped, before_ns=cutoff, reason="purge", limit=5000)
        total += n
        if not n:
            break
    outbox.maintenance()
    print(f"purged {total} records")
    return 0
