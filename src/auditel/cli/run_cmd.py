"""``auditel run [--outbox PATH] -- CMD ARGS``: run any Python command with auditel on, no code change.

The child gets ``AUDITEL_ENABLED=true`` (unless the variable is set), ``--outbox`` as
``AUDITEL_OUTBOX``, and auditel's bootstrap directory first on ``PYTHONPATH``, whose
``sitecustomize`` configures auditel and its instrumentations at interpreter start (in the
command and in every Python process it starts). The settings are checked here first: a bad one
(``AUDITEL_ENABLED=ture`` included) stops ``auditel run`` with exit code 2 and a message naming
the variable, the value and what is accepted, so the command never runs unaudited unnoticed.
The command then replaces this process (``exec``), so its exit code and signals pass through
unchanged; it says on stderr which installed frameworks are audited and which are not.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from typing import Any

import auditel._bootstrap as _bootstrap_pkg
from auditel.config.instrumentation import (
    ConfigError,
    check_settings,
    zero_code_enabled,
)

REPORT_VAR = "AUDITEL_RUN_REPORT"  # read (and removed) by the bootstrap of the command itself


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run a command with auditel and its instrumentations switched on",
        description="Run CMD with auditel enabled: auditel run [--outbox PATH] -- python agent.py",
    )
    # SUPPRESS: when not given here, the global ``auditel --outbox PATH run`` stays in force
    parser.add_argument("--outbox", default=argparse.SUPPRESS, help="outbox file for the command's records")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command and its arguments, after --")
    parser.set_defaults(func=run)


def child_environment(env: dict[str, str], outbox: str | None) -> dict[str, str]:
    out = dict(env)
    out.setdefault("AUDITEL_ENABLED", "true")
    if outbox:
        out["AUDITEL_OUTBOX"] = outbox
    out[REPORT_VAR] = "1"
    boot_dir = os.path.dirname(os.path.abspath(_bootstrap_pkg.__file__))
    parts = [p for p in out.get("PYTHONPATH", "").split(os.pathsep) if p and p != boot_dir]
    out["PYTHONPATH"] = os.pathsep.join([boot_dir, *parts])
    return out


def run(args: Any) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print("auditel run: give a command after --, e.g. auditel run -- python agent.py", file=sys.stderr)
        return 2
    executable = shutil.which(command[0])
    if executable is None:
        print(f"auditel run: command not found: {command[0]!r}", file=sys.stderr)
        return 127
    env = child_environment(dict(os.environ), getattr(args, "outbox", None))
    try:
        if zero_code_enabled(env):
            check_settings(env)
    except ConfigError as exc:
        print(
            f"auditel run: {exc}\n"
            "auditel run: not started (fix the setting, or set AUDITEL_ENABLED=false to run unaudited)",
            file=sys.stderr,
        )
        return 2
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(executable, [command[0], *command[1:]], env)
    return 0  # not reached
