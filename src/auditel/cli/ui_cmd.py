"""``auditel ui``: a local, read-only web viewer of the trail (loopback only unless told otherwise)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from auditel.cli._common import outbox_path


def register(sub: Any) -> None:
    p = sub.add_parser("ui", help="browse the trail in a local web page (read-only; the app keeps recording)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8787, help="port (default 8787; 0 picks a free one)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from auditel.store.trail import TrailMissing
    from auditel.ui.server import serve, url_of

    path = outbox_path(args)
    try:
        server = serve(path, host=args.host, port=args.port)
    except TrailMissing as exc:
        print(f"auditel ui: {exc} (set AUDITEL_OUTBOX or --outbox)", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"auditel ui: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"auditel ui: listening on {args.host}: other machines can read this trail", file=sys.stderr)
    print(f"auditel ui: {url_of(server)}  (read-only view of {path}; Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
