"""Secret and PII scrubbing of every string kept in a record, before hashing or storing.

A match is replaced by ``[REDACTED:kind]``; counts per kind are kept for ``status()``.
Values under sensitive key names (``password``, ``api_key``, ``authorization`` ...) are
replaced whole.
"""

from __future__ import annotations

import re
from typing import Any, Iterable, Mapping

POLICY_VERSION = "1"

# (kind, pattern). Order matters only for overlapping matches: the first alternative wins.
DEFAULT_PATTERNS: list[tuple[str, str]] = [
    ("pem_private_key", r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"),
    ("anthropic_key", r"\bsk-ant-[A-Za-z0-9_\-]{20,}"),
    ("openai_key", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}"),
    ("aws_access_key", r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b"),
    ("github_token", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    ("jwt", r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"),
    ("bearer", r"\b(?i:bearer|basic)\s+[A-Za-z0-9_\-\.=+/~]{8,}"),
    ("url_credentials", r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),
    ("email", r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b"),
]

DEFAULT_SENSITIVE_KEYS = (
    "password",
    "passwd",
    "secret",
    "api_key",
    "apikey",
    "api-key",
    "authorization",
    "auth_token",
    "access_token",
    "refresh_token",
    "private_key",
    "client_secret",
    "cookie",
    "set-cookie",
    "x-api-key",
)

_CARD_RE = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


class Redactor:
    """Scrubs strings, mapping keys and nested values. Thread-safe (no mutable state but counts)."""

    def __init__(
        self,
        patterns: Iterable[tuple[str, str]] | None = None,
        sensitive_keys: Iterable[str] | None = None,
        *,
        cards: bool = True,
    ) -> None:
        pats = list(DEFAULT_PATTERNS if patterns is None else patterns)
        self._kinds = [kind for kind, _ in pats]
        self._regex = re.compile("|".join(f"(?P<g{i}>{p})" for i, (_, p) in enumerate(pats))) if pats else None
        self._sensitive = tuple(k.lower() for k in (DEFAULT_SENSITIVE_KEYS if sensitive_keys is None else sensitive_keys))
        self._cards = cards
        self.policy_version = POLICY_VERSION

    def is_sensitive_key(self, key: str) -> bool:
        low = key.lower()
        return any(s in low for s in self._sensitive)

    def scrub(self, text: str, counts: dict[str, int]) -> str:
        if len(text) < 6:
            return text
        if self._regex is not None:
            kinds = self._kinds

            def repl(m: re.Match[str]) -> str:
                kind = kinds[int(m.lastgroup[1:])]  # type: ignore[index]
                counts[kind] = counts.get(kind, 0) + 1
                return f"[REDACTED:{kind}]"

            text = self._regex.sub(repl, text)
        if self._cards and any(c.isdigit() for c in text):

            def card(m: re.Match[str]) -> str:
                digits = re.sub(r"[ -]", "", m.group(0))
                if 13 <= len(digits) <= 19 and _luhn_ok(digits):
                    counts["card_number"] = counts.get("card_number", 0) + 1
                    return "[REDACTED:card_number]"
                return m.group(0)

            text = _CARD_RE.sub(card, text)
        return text

    def redact(self, value: Any, counts: dict[str, int], *, key: str | None = None) -> Any:
        """Return ``value`` with every string scrubbed (safe-form input: str, numbers, dicts, lists)."""
        if key is not None and self.is_sensitive_key(key) and value not in (None, "", [], {}):
            counts["sensitive_key"] = counts.get("sensitive_key", 0) + 1
            return "[REDACTED:sensitive_key]"
        t = type(value)
        if t is str:
            return self.scrub(value, counts)
        if t is dict:
            out = {}
            for k, v in value.items():
                new_key = self.scrub(k, counts) if len(k) >= 6 else k
                out[new_key] = self.redact(v, counts, key=k)
            return out
        if t is list:
            return [self.redact(v, counts) for v in value]
        return value

    def redact_attributes(
        self, attributes: Mapping[str, Any], counts: dict[str, int], *, skip: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in attributes.items():
            if k in skip:
                out[k] = v
            else:
                out[self.scrub(k, counts) if len(k) >= 6 else k] = self.redact(v, counts, key=k)
        return out
