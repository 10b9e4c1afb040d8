"""``auditel export``: records (stored canonical text + hash) and checkpoints as JSON lines.

The file lets a third party verify offline with only the public key:
``auditel verify --from-export FILE --public-key KEY``. ``--checkpoints-only`` writes the
small file to keep off the host (or to compare with later: ``auditel verify --checkpoints FILE``).
The outbox is opened read-only and rows are copied as stored, not re-validated.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from pathlib import Path
from typing import IO, Any

from auditel.cli._common import outbox_path
from auditel.cli.times import parse_time_arg
from auditel.config.integrity import integrity_env
from auditel.config.settings import ConfigError
from auditel.integrity.checkpoints import KEY_FILE_NAME, load_signer
from auditel.integrity.export_format import EXPORT_FORMAT, dump_line, export_lines
from auditel.integrity.signing import Ed25519Signer, public_key_pem
from auditel.store.integrity_store import open_readonly

__all__ = ["EXPORT_FORMAT", "export_lines", "register", "run"]


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "export",
        help="write records and checkpoints as JSON lines for offline verification",
        description="Write the stored records (canonical text and hash) and the signed checkpoints as JSON lines.",
    )
    p.add_argument("--out", metavar="FILE", help="output file (default: standard output)")
    p.add_argument("--checkpoints-only", action="store_true", help="only the checkpoints (small; keep it off the host)")
    p.add_argument("--since", metavar="TIME", help="records at or after TIME (ISO 8601, or 30m / 2h / 7d ago)")
    p.add_argument("--until", metavar="TIME", help="records before TIME")
    p.add_argument("--event", metavar="NAME", action="append", help="only these event names (repeatable)")
    p.add_argument("--stream", metavar="ID", help="only this stream")
    p.add_argument(
        "--public-key-out", metavar="FILE", help="also write the public key of this host's signing key (PEM) to FILE"
    )
    p.set_defaults(func=run)


def open_private(path: str) -> IO[str]:
    """Open ``path`` for writing: a new file is created 0600 whatever the umask, as the outbox is (an
    export holds the same data). An existing file is truncated and keeps its mode (never chmod what we
    did not create); a pipe or ``/dev/fd/N`` works as before."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), 0o600)
    return os.fdopen(fd, "w", encoding="utf-8")


def _write_public_key(path: str, outbox: Path) -> None:
    env = integrity_env()
    if env.get("AUDITEL_HMAC_KEY", "").strip():
        raise ConfigError("AUDITEL_HMAC_KEY is set: HMAC checkpoints have no public key (share the key out of band)")
    configured = env.get("AUDITEL_SIGNING_KEY", "").strip() or env.get("AUDITEL_SIGNING_KEY_FILE", "").strip()
    if not configured and not (outbox.parent / KEY_FILE_NAME).exists():
        raise ConfigError(f"no signing key configured and none generated yet at {outbox.parent / KEY_FILE_NAME}")
    signer = load_signer(env, outbox)
    assert isinstance(signer, Ed25519Signer)
    Path(path).write_text(public_key_pem(signer.public))  # a public key: readable by design
    print(f"auditel: public key {signer.key_id} written to {path}", file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    outbox = outbox_path(args)
    since = parse_time_arg(args.since, "--since", "export") if args.since else None
    until = parse_time_arg(args.until, "--until", "export") if args.until else None
    if args.public_key_out:
        try:
            _write_public_key(args.public_key_out, outbox)
        except (ConfigError, OSError) as exc:
            print(f"auditel export: {exc}", file=sys.stderr)
            return 2
    if not outbox.is_file():
        print(f"auditel export: no outbox at {outbox} (set AUDITEL_OUTBOX or --outbox)", file=sys.stderr)
        return 2
    try:
        out: IO[str] = open_private(args.out) if args.out else sys.stdout
    except OSError as exc:
        print(f"auditel export: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    try:
        conn = open_readonly(outbox)
        count = 0
        for line in export_lines(
            conn,
            checkpoints_only=args.checkpoints_only,
            since_ns=since,
            until_ns=until,
            events=args.event,
            stream=args.stream,
        ):
            out.write(dump_line(line))
            count += 1
        conn.close()
    except sqlite3.Error as exc:
        print(f"auditel export: cannot read {outbox}: {exc}", file=sys.stderr)
        return 1
    finally:
        if args.out:
            out.close()
    if args.out:
        print(f"auditel: {count - 1} lines written to {args.out}", file=sys.stderr)
    return 0
