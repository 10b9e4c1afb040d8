"""Custom redaction rules and sensitive key names from a JSON file (``AUDITEL_REDACT_RULES``), validated
with a message saying what is wrong. See ``docs/redaction.md``."""

from __future__ import annotations

import json
import re
from typing import Any

from auditel.redaction.rules import Rule

_KIND_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def compile_custom_rule(kind: Any, pattern: Any, ignore_case: Any = False) -> Rule:
    """Validate one custom rule; raises ``ValueError`` saying what is wrong."""
    if not isinstance(kind, str) or not _KIND_RE.match(kind):
        raise ValueError(f"rule kind {kind!r} must match [a-z][a-z0-9_]{{0,63}}")
    if not isinstance(pattern, str) or not pattern:
        raise ValueError(f"rule {kind!r}: pattern must be a non-empty string")
    if not isinstance(ignore_case, bool):
        raise ValueError(f"rule {kind!r}: ignore_case must be true or false")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"rule {kind!r}: pattern {pattern!r} is not a valid regular expression: {exc}") from None
    if compiled.groups:
        raise ValueError(f"rule {kind!r}: pattern {pattern!r} has capturing groups; use (?:...) instead")
    if compiled.fullmatch("") is not None:
        raise ValueError(f"rule {kind!r}: pattern {pattern!r} matches the empty string")
    secret = f"(?i:{pattern})" if ignore_case else pattern
    return Rule(kind, secret, note="custom")


def load_rules_file(path: str) -> tuple[list[Rule], list[str]]:
    """Custom rules and sensitive key names from a JSON file (see ``docs/redaction.md``)."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except OSError as exc:
        raise ValueError(f"cannot read the file: {exc.strerror or exc}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"not valid JSON: {exc}") from None
    if isinstance(data, list):
        data = {"rules": data}
    if not isinstance(data, dict):
        raise ValueError("the top level must be an object or a list of rules")
    unknown = sorted(set(data) - {"rules", "sensitive_keys"})
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)}")
    raw_rules = data.get("rules", [])
    raw_keys = data.get("sensitive_keys", [])
    if not isinstance(raw_rules, list):
        raise ValueError('"rules" must be a list')
    if not isinstance(raw_keys, list) or not all(isinstance(k, str) and k.strip() for k in raw_keys):
        raise ValueError('"sensitive_keys" must be a list of non-empty strings')
    rules: list[Rule] = []
    for i, item in enumerate(raw_rules):
        if not isinstance(item, dict) or set(item) - {"kind", "pattern", "ignore_case"}:
            raise ValueError(f'rule #{i + 1} must be an object with "kind", "pattern" and optional "ignore_case"')
        rules.append(compile_custom_rule(item.get("kind"), item.get("pattern"), item.get("ignore_case", False)))
    return rules, list(raw_keys)
