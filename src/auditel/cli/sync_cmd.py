"""``auditel sync``: drain the outbox to the configured OTLP endpoint once, in the foreground."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from auditel.cli._common import open_outbox, print_json
from auditel.config.otlp import exporter_from_env, tuning_from_env
from auditel.config.settings import ConfigError
from auditel.delivery.shipper import Shipper
from auditel.delivery.transport import make_transport


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "sync",
        help="ship every pending record to the OTLP endpoint now (exit 1 if anything stays undelivered)",
        description=(
            "Drain the outbox once in the foreground to OTEL_EXPORTER_OTLP_[LOGS_]ENDPOINT, retrying"
            " transient failures until --timeout. Exit status: 0 all delivered, 1 records still pending"
            " or dead-lettered, 2 configuration error."
        ),
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds (default 300)")
    parser.add_argument("--endpoint", help="OTLP endpoint URL (default: from OTEL_EXPORTER_OTLP_[LOGS_]ENDPOINT)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(func=run)


class ProgressBar:
    """A one-line progress bar on stderr (redrawn in place on a terminal, a final line otherwise)."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.total = max(total, 0)
        self.enabled = enabled
        self.tty = enabled and sys.stderr.isatty()
        self.started = time.monotonic()
        self._last_draw = 0.0

    def line(self, done: int, note: str = "") -> str:
        width = 30
        frac = 1.0 if self.total == 0 else min(1.0, done / self.total)
        filled = int(frac * width)
        elapsed = time.monotonic() - self.started
        rate = done / elapsed if elapsed > 0 else 0.0
        bar = "#" * filled + "." * (width - filled)
        text = f"[{bar}] {done}/{self.total} records  {elapsed:5.1f} s  {rate:,.0f}/s"
        return text + (f"  {note}" if note else "")

    def update(self, done: int, note: str = "") -> None:
        now = time.monotonic()
        if not self.tty or now - self._last_draw < 0.1:
            return
        self._last_draw = now
        sys.stderr.write("\r" + self.line(done, note)[:160].ljust(100))
        sys.stderr.flush()

    def finish(self, done: int, note: str = "") -> None:
        if not self.enabled:
            return
        sys.stderr.write(("\r" if self.tty else "") + self.line(done, note)[:200].ljust(100) + "\n")
        sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    _settings, outbox = open_outbox(args)
    try:
        tuning = tuning_from_env()
        config = exporter_from_env(endpoint=args.endpoint)
    except ConfigError as exc:
        print(f"auditel: {exc}", file=sys.stderr)
        return 2
    if config is None:
        print(
            "auditel: no OTLP endpoint: set OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_LOGS_ENDPOINT)"
            " or pass --endpoint",
            file=sys.stderr,
        )
        return 2
    try:
        # build the transport now: a missing grpcio is a configuration error (exit 2), not a retry
        # loop, and its import is part of the command's start-up rather than of the first batch
        transport = make_transport(config)
    except ConfigError as exc:
        print(f"auditel: {exc}", file=sys.stderr)
        return 2
    shipper = Shipper(outbox, config, tuning, transport_factory=lambda _config: transport)
    total = shipper.queue.pending()
    bar = ProgressBar(total, enabled=not args.quiet)

    def progress() -> None:
        note = "" if shipper.state in ("shipping", "idle") else f"{shipper.state}: {shipper.last_error or ''}"
        bar.update(shipper.shipped_total + shipper.dead_lettered_total, note)

    try:
        shipper.drain(args.timeout, progress)
    finally:
        shipper.close()
    pending = shipper.queue.pending()
    dead = len(shipper.queue.dead_letters())
    bar.finish(shipper.shipped_total + shipper.dead_lettered_total, f"pending {pending}, dead letters {dead}")
    result = {
        "endpoint": config.display_endpoint,
        "protocol": config.protocol,
        "shipped": shipper.shipped_total,
        "dead_lettered": shipper.dead_lettered_total,
        "pending": pending,
        "dead_letters": dead,
        "retried": shipper.retried,
        "last_error": shipper.last_error,
    }
    if args.json:
        print_json(result)
    if pending or dead:
        if not args.quiet:
            why = f" (last error: {shipper.last_error})" if shipper.last_error else ""
            print(f"auditel: {pending} records still pending, {dead} dead letters{why}", file=sys.stderr)
        return 1
    return 0
