"""The ``auditel`` command line. Each sub-command lives in its own module with ``register(subparsers)``."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Sub-command modules; each defines register(subparsers) which adds its parser and sets func.
COMMAND_MODULES = [
    "auditel.cli.status_cmd",
    "auditel.cli.tail_cmd",
    "auditel.cli.query_cmd",
    "auditel.cli.purge_cmd",
    "auditel.cli.demo_cmd",
    "auditel.cli.sync_cmd",
    "auditel.cli.dead_letters_cmd",
    "auditel.cli.verify_cmd",
    "auditel.cli.export_cmd",
    "auditel.cli.run_cmd",
    "auditel.cli.ui_cmd",
    "auditel.cli.report_cmd",
]


def _command_of(argv: Sequence[str]) -> str | None:
    """The sub-command named in ``argv`` (after the global ``--outbox``), or ``None``."""
    i = 0
    while i < len(argv):
        token = argv[i]
        if token == "--outbox":
            i += 2
            continue
        if token.startswith("--outbox="):
            i += 1
            continue
        return None if token.startswith("-") else token
    return None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or (``only``) one with that sub-command alone: ``auditel run`` imports just
    ``run_cmd``, so the process that only checks the settings and execs the command stays light."""
    from auditel._version import __version__

    parser = argparse.ArgumentParser(
        prog="auditel", description="Look at, query, verify and ship the local audit trail."
    )
    parser.add_argument("--version", action="version", version=f"auditel {__version__}")
    parser.add_argument("--outbox", help="outbox file (default: AUDITEL_OUTBOX or the per-user default)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        if only is not None and name != only:
            continue
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:
                continue  # not built yet in this tree
            raise
        module.register(sub)
    return parser


_LIGHT_COMMANDS = {"run": "auditel.cli.run_cmd"}


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(_LIGHT_COMMANDS.get(_command_of(argv) or ""))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
