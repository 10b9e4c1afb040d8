"""``auditel status [--json]``: the same keys as ``auditel.status()``, read from the outbox."""

from __future__ import annotations

import argparse
import sqlite3
from typing import Any

from auditel.cli._common import open_outbox, print_json
from auditel.counters import persisted_totals
from auditel.runtime import build_status
from auditel.store.shipping_queue import ShippingQueue


def register(sub: Any) -> None:
    p = sub.add_parser("status", help="outbox and delivery state (same keys as auditel.status())")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings, outbox = open_outbox(args)
    status = build_status(settings, outbox, None)
    status["shipper_running"] = _live_shippers(outbox) > 0
    try:
        status.update(persisted_totals(outbox))  # what every process stored (see auditel.counters)
    except sqlite3.Error as exc:
        status["last_error"] = f"counters: {type(exc).__name__}: {exc}"
    if args.json:
        print_json(status)
        return 0
    age = status["oldest_pending_age_s"]
    print(f"outbox        {status['outbox']} ({status['outbox_bytes']:,} bytes)")
    print(
        f"records       {status['records_total']:,} total, {status['pending']:,} pending, "
        f"{status['shipped']:,} shipped, {status['dead_lettered']:,} dead-lettered"
    )
    print(f"oldest pending {'-' if age is None else f'{age:,.1f} s'}")
    print(f"streams       {status['streams']}   checkpoints {status['checkpoints']}")
    print(f"durability    {status['durability']}   cap {status['max_outbox_mb']} MiB ({status['on_full']})")
    print(f"shipper       {'running (lease held)' if status['shipper_running'] else 'no live lease'}")
    cov = status.get("instrumentations") or {}
    auditable = {**cov.get("audited", {}), **cov.get("available", {})}
    audited = ", ".join(f"{k} ({v})" for k, v in auditable.items()) or "-"
    print(f"audited       {audited} (when instrumented: auditel run, auditel.instrument())")
    print(f"NOT audited   {', '.join(cov.get('not_audited', [])) or '-'} (installed, no auditel instrumentation)")
    if status.get("last_ship_error"):
        print(f"last delivery error  {status['last_ship_error']}")
    for key in ("errors", "rejected", "redactions"):
        if status.get(key):
            print(f"{key:<13} " + ", ".join(f"{k}={v:,}" for k, v in sorted(status[key].items())))
    if status.get("last_error"):
        print(f"last error    {status['last_error']}")
    return 0


def _live_shippers(outbox: Any) -> int:
    try:
        return ShippingQueue(outbox).live_shippers()
    except sqlite3.Error:
        return 0
