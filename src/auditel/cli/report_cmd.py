"""``auditel report --out trail.html``: one self-contained HTML file of the trail, for an auditor."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from auditel.cli._common import outbox_path
from auditel.cli.times import ACCEPTED, parse_time_arg


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="write the trail, its verification and key id as one offline HTML file")
    p.add_argument("--out", required=True, help="the HTML file to write (mode 0600)")
    p.add_argument("--since", help=f"only sessions active since then: {ACCEPTED}")
    p.add_argument("--session", help="only this session (session.id, or a key the viewer shows)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from auditel.store.trail import TrailMissing
    from auditel.ui.report import build_report, write_report

    since = parse_time_arg(args.since, "--since", "report") if args.since else None
    path = outbox_path(args)
    scope = " · ".join(
        p for p in (f"since {args.since}" if args.since else "", f"session {args.session}" if args.session else "") if p
    )
    try:
        html, data = build_report(path, since_ns=since, session=args.session, scope=scope)
    except TrailMissing as exc:
        print(f"auditel report: {exc} (set AUDITEL_OUTBOX or --outbox)", file=sys.stderr)
        return 2
    if args.session and not data["sessions"]:
        print(f"auditel report: no session {args.session!r} in {path}", file=sys.stderr)
        return 2
    try:
        write_report(args.out, html)
    except OSError as exc:
        print(f"auditel report: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    verdict = "intact" if data["integrity"].get("ok") else "PROBLEMS FOUND"
    print(f"auditel report: wrote {args.out}: {len(data['sessions'])} session(s), verification {verdict}")
    return 0
