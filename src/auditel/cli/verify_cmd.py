"""``auditel verify``: check the outbox (or an export) offline; exit 0 only when everything verifies."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from auditel.cli._common import outbox_path
from auditel.config.integrity import env_value
from auditel.integrity.signing import KeyFormatError, VerifyKey, load_hmac_key
from auditel.integrity.verify import load_public_key_file, verify_path


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "verify",
        help="verify the hash chain, markers and signed checkpoints",
        description=(
            "Recompute every record hash and chain link, check sequence numbers, start/end markers and signed "
            "checkpoints. With --checkpoints (exported earlier or fetched from the backend) also detect truncation "
            "and rollback; the checkpoint log beside an outbox (<outbox>.checkpoints.jsonl) reveals records the "
            "outbox lost. Exit 0 only when everything verifies, 1 when a problem is found, 2 on a usage error."
        ),
    )
    p.add_argument("path", nargs="?", help="outbox file (default: --outbox / AUDITEL_OUTBOX)")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument(
        "--checkpoints", metavar="FILE", help="checkpoints held elsewhere (JSON lines from export or the backend)"
    )
    keys = p.add_mutually_exclusive_group()
    keys.add_argument("--public-key", metavar="FILE", help="trusted Ed25519 public key (PEM or base64 raw)")
    keys.add_argument("--hmac-key-env", metavar="VAR", help="name of the environment variable holding the HMAC key")
    p.add_argument("--stream", metavar="ID", help="verify only this stream")
    sources = p.add_mutually_exclusive_group()
    sources.add_argument("--from-export", metavar="FILE", help="verify an `auditel export` file instead of the outbox")
    sources.add_argument(
        "--from-archive",
        metavar="FILE",
        action="append",
        help="verify the backend's copy instead of the outbox: OTLP/JSON lines as a Collector's file exporter writes"
        " them (repeat for rotated files)",
    )
    p.add_argument("--strict", action="store_true", help="also fail on an unanchored tail or an unknown end")
    p.set_defaults(func=run)


class UsageError(Exception):
    """A bad command-line value (exit 2)."""


def _keys(args: argparse.Namespace) -> list[VerifyKey]:
    if args.public_key:
        try:
            return [load_public_key_file(args.public_key)]
        except OSError as exc:
            raise UsageError(f"--public-key {args.public_key}: cannot read ({exc.strerror})") from exc
        except KeyFormatError as exc:
            raise UsageError(f"--public-key {args.public_key} is not valid: expected {exc}") from exc
    if args.hmac_key_env:
        raw = env_value(args.hmac_key_env)
        if not raw.strip():
            raise UsageError(f"--hmac-key-env {args.hmac_key_env}: that environment variable is not set")
        try:
            return [VerifyKey.from_hmac(load_hmac_key(raw))]
        except KeyFormatError as exc:
            raise UsageError(
                f"{args.hmac_key_env}=<{len(raw)} characters, hidden> is not valid: expected {exc}"
            ) from exc
    return []


def run(args: argparse.Namespace) -> int:
    try:
        keys = _keys(args)
    except UsageError as exc:
        print(f"auditel verify: {exc}", file=sys.stderr)
        return 2
    if args.from_export:
        target, from_export = args.from_export, True
    else:
        target, from_export = (args.path or str(outbox_path(args))), False
    report = verify_path(
        target,
        from_export=from_export,
        from_archive=args.from_archive,
        checkpoints_file=args.checkpoints,
        keys=keys,
        stream=args.stream,
    )
    if args.json:
        out = report.as_dict()
        out["strict_ok"] = report.strict_ok()
        print(json.dumps(out, indent=2, ensure_ascii=False, sort_keys=True))
    else:
        print(report.render())
    ok = report.strict_ok() if args.strict else report.ok
    return 0 if ok else 1
