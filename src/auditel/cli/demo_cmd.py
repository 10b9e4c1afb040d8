"""``auditel demo``: record a realistic agent session under audit and print it.

It writes to its own outbox (``~/.local/share/auditel/demo/outbox.db``, or ``--outbox``), never to
``AUDITEL_OUTBOX``, and ships nothing unless ``--ship`` is given (see ``auditel.config.demo``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser(
        "demo",
        help="record a scripted agent session (model, tools, a policy denial, a file) into a demo outbox and print it",
        description=(
            "Records a fictional agent session into the demo's own outbox (~/.local/share/auditel/demo/outbox.db,"
            " or --outbox), never into AUDITEL_OUTBOX, and ships nothing unless --ship is given."
        ),
    )
    p.add_argument(
        "--ship",
        action="store_true",
        help="also ship the demo records to the OTEL_EXPORTER_OTLP_* endpoint (off by default: the session is made up)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from auditel.config.demo import apply_demo_environment, demo_outbox_path
    from auditel.config.settings import ConfigError

    outbox = Path(args.outbox).expanduser() if args.outbox else demo_outbox_path()
    apply_demo_environment(outbox=outbox, ship=bool(getattr(args, "ship", False)))
    from auditel.demo import run_demo

    try:
        return run_demo(sys.stdout)
    except ConfigError as exc:
        print(f"auditel: {exc}", file=sys.stderr)
        return 2
