"""``auditel dead-letters``: list records a backend rejected, or ``--requeue`` them for another try."""

from __future__ import annotations

import argparse
from typing import Any

from auditel.cli._common import fmt_time, open_outbox, print_json
from auditel.store.shipping_queue import ShippingQueue


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "dead-letters",
        help="list records the backend rejected permanently (kept, never deleted); --requeue resends them",
        description=(
            "Records rejected by the OTLP backend (4xx/5xx other than retryable ones, partial_success with"
            " rejections) are kept in the outbox as dead letters. List them, or make them pending again."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print as JSON")
    parser.add_argument("--all", action="store_true", help="include dead letters that were already requeued")
    parser.add_argument("--requeue", action="store_true", help="set every dead-lettered record pending again")
    parser.add_argument(
        "--id", type=int, action="append", dest="ids", help="with --requeue: only this dead-letter id (repeatable)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _settings, outbox = open_outbox(args, writes=bool(args.requeue))
    queue = ShippingQueue(outbox)
    if args.requeue:
        count = queue.requeue(args.ids)
        if args.json:
            print_json({"requeued": count})
        else:
            print(f"requeued {count} records (they ship on the next sync or shipper run)")
        return 0
    letters = queue.dead_letters(include_requeued=args.all)
    if args.json:
        print_json([d.as_dict() for d in letters])
        return 0
    if not letters:
        print("no dead letters")
        return 0
    for d in letters:
        requeued = f"  requeued {fmt_time(d.requeued_ns)}" if d.requeued_ns else ""
        name = d.event_name or "?"
        print(f"{d.did:>6}  {fmt_time(d.time_ns)}  {d.record_id}  {name}  [{d.status or '-'}] {d.reason}{requeued}")
    print(f"{len(letters)} dead letters; resend with: auditel dead-letters --requeue")
    return 0
