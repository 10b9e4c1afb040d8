"""Content policy: what of prompts, completions, tool arguments and results a record keeps.

Default (``NO_CONTENT``): only a keyed digest (HMAC-SHA256 with a per-deployment key) and the
size in bytes. A plain hash of a low-entropy value (an email, a yes/no answer) can be reversed
by guessing; a keyed digest cannot without the key, yet equal values still give equal digests
within one deployment, so an auditor can match them.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import orjson

from auditel.config.settings import ConfigError
from auditel.record.canonical import GENERAL, canonical, fast_canonical_bytes, fast_form
from auditel.record.safe_value import Reasons, safe_value
from auditel.store.key_files import publish_new_file, read_key_file

DIGEST_PREFIX = "hmac-sha256:"
DIGEST_KEY_NAME = "digest.key"
MIN_DIGEST_KEY_BYTES = 16


def load_or_create_digest_key(outbox_path: Path) -> bytes:
    """The per-deployment digest key, kept 0600 beside the outbox (created on first use).

    Safe when several processes start on one outbox at once: all of them end up with the same key.
    """
    key_path = outbox_path.parent / DIGEST_KEY_NAME
    for _ in range(3):
        data = read_key_file(key_path, purpose="the digest key")
        if data is None:
            # False: another process published its key first. Either way, read the key back.
            publish_new_file(key_path, os.urandom(32))
            continue
        if len(data) < MIN_DIGEST_KEY_BYTES:
            raise ConfigError(
                f"invalid auditel configuration:\n  {key_path} (the digest key) is not valid: expected at least"
                f" {MIN_DIGEST_KEY_BYTES} bytes, found {len(data)}; remove it to generate a new one, or set"
                " AUDITEL_DIGEST_KEY"
            )
        return data
    raise ConfigError(f"invalid auditel configuration:\n  {key_path}: could not create or read the digest key")


def content_bytes(value: Any) -> bytes:
    """Stable bytes of a value: the text itself for str/bytes, canonical JSON otherwise."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogatepass")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    fast = fast_form(value)
    if fast is not GENERAL:  # the usual message lists: no safe_value copy, one orjson call
        data = fast_canonical_bytes(fast)
        if data is not None:
            return data
    return canonical(safe_value(value, max_value_bytes=1 << 30, reasons=Reasons())).encode("utf-8")


def tool_arguments_form(arguments: Any) -> Any:
    """The one form tool-call arguments are digested and stored in, on every side.

    A model sends arguments as JSON text (OpenAI: ``'{"city": "Paris"}'``), a tool receives them
    decoded (LangChain, MCP) or as that text (OpenAI Agents). Text that decodes to a JSON object
    or array is decoded, so both sides digest the same canonical JSON and an auditor can show a
    tool ran with exactly what the model asked for; anything else is kept as it is.
    """
    if isinstance(arguments, (str, bytes, bytearray)):
        text = arguments.strip()
        if text[:1] in ("{", "[") or text[:1] in (b"{", b"["):
            try:
                decoded = orjson.loads(text)
            except orjson.JSONDecodeError:
                return arguments
            if isinstance(decoded, (dict, list)):
                return decoded
    return arguments


_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))
_SHA256_BLOCK = 64


class KeyedDigester:
    """Keyed digests under one key: ``digester(value)`` is (``hmac-sha256:<hex>``, size in bytes),
    the HMAC-SHA256 (RFC 2104) of ``content_bytes(value)``; anyone holding the key can recompute it
    with ``hmac.digest(key, content_bytes(value), "sha256")``.

    The key's pads are hashed once: each digest copies two prepared SHA-256 states instead of
    setting up a new HMAC (OpenSSL 3 looks the algorithm up again on every ``hmac.digest`` call,
    ~10 µs when the caller's caches are cold, as they are right after a model call). Safe to share
    between threads (hash objects lock themselves while copied).
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _SHA256_BLOCK:
            key = hashlib.sha256(key).digest()
        key = key.ljust(_SHA256_BLOCK, b"\0")
        self._inner = hashlib.sha256(key.translate(_IPAD))
        self._outer = hashlib.sha256(key.translate(_OPAD))

    def __call__(self, value: Any) -> tuple[str, int]:
        data = content_bytes(value)
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return DIGEST_PREFIX + outer.hexdigest(), len(data)
