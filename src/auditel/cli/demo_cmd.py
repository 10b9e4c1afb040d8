"""``auditel demo``: record a realistic agent session under audit and print it."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="record a scripted agent session (model, tools, a policy denial, a file) and print it")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.outbox:
        os.environ["AUDITEL_OUTBOX"] = args.outbox
    from auditel.config.settings import ConfigError
    from auditel.demo import run_demo

    try:
        return run_demo(sys.stdout)
    except ConfigError as exc:
        print(f"auditel: {exc}", file=sys.stderr)
        return 2
