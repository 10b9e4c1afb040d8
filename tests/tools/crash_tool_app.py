"""Runs an ``@auditel.tool`` function that blocks forever; the test kills this process with SIGKILL."""

from __future__ import annotations

import sys
import time

import auditel

auditel.configure(outbox=sys.argv[1])


@auditel.tool("long_job")
def long_job(target: str) -> str:
    with open(sys.argv[2], "w") as fh:
        fh.write("inside")
    time.sleep(120)
    return "never"


long_job("prod-db")
