"""``auditel status [--json]``: the same keys as ``auditel.status()``, read from the outbox."""

from __future__ import annotations

import argparse
from typing import Any

from auditel.runtime import build_status
from auditel.cli._common import open_outbox, print_json


def register(sub: Any) -> None:
    p = sub.add_parser("status", help="outbox and delivery state (same keys as auditel.status())")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings, outbox = open_outbox(args)
    status = build_status(settings, outbox, None)
    status["shipper_running"] = _live_shippers(outbox) > 0
    if args.json:
        print_json(status)
        return 0
    age = status["oldest_pending_age_s"]
    print(f"outbox        {status['outbox']} ({status['outbox_bytes']:,} bytes)")
    print(f"records       {status['records_total']:,} total, {status['pending']:,} pending, "
          f"{status['shipped']:,} shipped, {status['dead_lettered']:,} dead-lettered")
    print(f"oldest pending {'-' if age is None else f'{age:,.1f} s'}")
    print(f"streams       {status['streams']}   checkpoints {status['checkpoints']}")
    print(f"durability    {status['durability']}   cap {status['max_outbox_mb']} MiB ({status['on_full']})")
    print(f"shipper       {'running (lease held)' if status['shipper_running'] else 'no live lease'}")
    cov = status.get("instrumentations") or {}
    auditable = {**cov.get("audited", {}), **cov.get("available", {})}
    print(f"audited       {', '.join(f'{k} ({v})' for k, v in auditable.items()) or '-'} (when instrumented: auditel run, auditel.instrument())")
    print(f"NOT audited   {', '.join(cov.get('not_audited', [])) or '-'} (installed, no auditel instrumentation)")
    return 0


def _live_shippers(outbox: Any) -> int:
    import time

    try:
        row = outbox.connect().execute(
            "SELECT count(DISTINCT owner) FROM ship_leases WHERE until > ?", (time.time_ns(),)
        ).fetchone()
        return int(row[0] or 0)
    except Exception:  # noqa: BLE001
        return 0
