"""Run at interpreter start in every Python process started by ``auditel run``.

Configures auditel from the environment, sets up OTel tracing only if nothing set it, and
arms auditel's instrumentations (``auditel.zero_code.bootstrap``); then runs the
``sitecustomize`` that this one shadows, if there is one. Never stops the program on failure.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys

REPORT_VAR = "AUDITEL_RUN_REPORT"  # set by ``auditel run`` (cli/run_cmd.py) for its command only, not grandchildren


# Values that certainly mean "off": then auditel is not even imported (start-up cost). Anything
# else, typos included, goes to auditel's own parser, which reports what it cannot accept.
_OFF = ("", "0", "false", "no", "off")


def _bootstrap() -> None:
    report = os.environ.pop(REPORT_VAR, "") == "1"
    if os.environ.get("AUDITEL_ENABLED", "").strip().lower() in _OFF:
        return
    try:
        from auditel import runtime
        from auditel.zero_code import bootstrap, coverage_line

        bootstrap()
        if report and runtime.current() is not None:
            sys.stderr.write(coverage_line() + "\n")
    except Exception as exc:  # noqa: BLE001
        sys.stderr.write(f"auditel: start-up failed, the program runs without auditing: {type(exc).__name__}: {exc}\n")


def _chain() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001
        sys.stderr.write(f"auditel: the shadowed sitecustomize failed: {type(exc).__name__}: {exc}\n")


_bootstrap()
_chain()
