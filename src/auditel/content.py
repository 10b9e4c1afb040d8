"""Content policy: what of prompts, completions, tool arguments and results a record keeps.

Default (``NO_CONTENT``): only a keyed digest (HMAC-SHA256 with a per-deployment key) and the
size in bytes. A plain hash of a low-entropy value (an email, a yes/no answer) can be reversed
by guessing; a keyed digest cannot without the key, yet equal values still give equal digests
within one deployment, so an auditor can match them.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path
from typing import Any

from .canonical import canonical, fast_canonical_bytes, needs_general_path
from .safe_value import Reasons, safe_value

DIGEST_PREFIX = "hmac-sha256:"


def load_or_create_digest_key(outbox_path: Path) -> bytes:
    """The per-deployment digest key, kept 0600 beside the outbox (created on first use)."""
    key_path = outbox_path.parent / "digest.key"
    try:
        data = key_path.read_bytes()
        if len(data) >= 16:
            return data
    except FileNotFoundError:
        pass
    key = os.urandom(32)
    fd = os.open(key_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.write(fd, key)
    finally:
        os.close(fd)
    return key


def content_bytes(value: Any) -> bytes:
    """Stable bytes of a value: the text itself for str/bytes, canonical JSON otherwise."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if not needs_general_path(value):  # the usual message lists: no safe_value copy, one orjson call
        data = fast_canonical_bytes(value)
        if data is not None:
            return data
    return canonical(safe_value(value, max_value_bytes=1 << 30, reasons=Reasons())).encode("utf-8")


def keyed_digest(key: bytes, value: Any) -> tuple[str, int]:
    """(``hmac-sha256:<hex>``, size in bytes) of a value."""
    data = content_bytes(value)
    return DIGEST_PREFIX + hmac.new(key, data, hashlib.sha256).hexdigest(), len(data)
