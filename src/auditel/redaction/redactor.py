"""Secret and PII scrubbing of every string kept in a record, before hashing or storing.

A match is replaced by ``[REDACTED:kind]``; counts per kind are kept for ``status()``.
Values under sensitive key names (``password``, ``api_key``, ``authorization`` ...) are
replaced whole, whether the key is a mapping key or appears inside a string
(``?token=...``, ``"password": "..."``, ``Authorization: ...``, ``--password=...``).

Every rule (``rules``) is one alternative of a single combined regular expression, so a string is
scanned once in C, and only with the rules the ``prefilter`` says it could match. Rules never nest
unbounded quantifiers and anchor on a literal or on a boundary look-behind, so a pathological
input costs linear time. A rule may keep a context prefix (``password=``) and replace only the
secret after it, and may validate a candidate (Luhn for cards, mod-97 for IBANs, base64
``user:pass`` for Basic auth) before replacing it.

Configuration (environment, read in ``auditel.config.redaction``):

* ``AUDITEL_REDACT_EXTRA``: opt-in detectors, comma-separated: ``phone``, ``ip`` (``ipv4``,
  ``ipv6``), ``iban``, ``ssn`` (or ``all``).
* ``AUDITEL_REDACT_DISABLE``: default kinds to turn off, comma-separated (e.g. ``email``).
* ``AUDITEL_REDACT_RULES``: a JSON file of custom rules and sensitive key names.

See ``docs/redaction.md``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from auditel.config.redaction import ENV_DISABLE, ENV_EXTRA, ENV_RULES, redaction_env
from auditel.config.settings import ConfigError
from auditel.redaction.custom import compile_custom_rule, load_rules_file  # noqa: F401 - re-exported
from auditel.redaction.prefilter import Prefilter
from auditel.redaction.rules import (  # noqa: F401 - re-exported: the names callers import from here
    BUILTIN_RULES,
    DEFAULT_SENSITIVE_KEYS,
    EXTRA_ALIASES,
    KEY_QUALIFIERS,
    MARKER_RE,
    OPT_IN_RULES,
    POLICY_VERSION,
    REDACTED_PREFIX,
    REPLACEMENT,
    SENSITIVE_LAST_WORDS,
    Rule,
    Validator,
    accepted_extra,
    assigned_value_ok,
    basic_ok,
    bearer_ok,
    card_ok,
    default_kinds,
    email_ok,
    iban_ok,
    ipv4_ok,
    ipv6_ok,
    key_words,
    luhn_ok,
    opt_in_kinds,
)

# Clean strings up to this length are remembered so repeated values (tool names, model
# names, paths) are not rescanned. Only strings with nothing to redact are kept.
_CLEAN_CACHE_MAX_LEN = 256
_CLEAN_CACHE_MAX_ENTRIES = 8192
# A string is rescanned after a replacement (a replacement can join text into a new match)
# at most this many times, so that redaction is idempotent.
_MAX_PASSES = 8
# Distinct rule subsets whose combined regex is kept compiled.
_SUBSET_CACHE_MAX = 512


class Redactor:
    """Scrubs strings, mapping keys and nested values. Thread-safe.

    ``rules``: the rule list (default: :data:`BUILTIN_RULES`). ``extra``: opt-in detector
    names (``phone``, ``ip``, ``iban``, ``ssn``). ``disable``: kinds to drop. ``custom``:
    more rules. ``sensitive_keys``: extra mapping-key names whose values are replaced whole.
    ``patterns``/``cards`` are the first version's arguments: (kind, regex) pairs replacing the
    built-in token rules, and whether to detect card numbers.
    """

    def __init__(
        self,
        patterns: Iterable[tuple[str, str]] | None = None,
        sensitive_keys: Iterable[str] | None = None,
        *,
        cards: bool = True,
        rules: Iterable[Rule] | None = None,
        extra: Iterable[str] = (),
        disable: Iterable[str] = (),
        custom: Iterable[Rule] = (),
    ) -> None:
        if rules is not None:
            base = list(rules)
        elif patterns is not None:
            base = [Rule(kind, pattern) for kind, pattern in patterns]
            base += [r for r in BUILTIN_RULES if r.kind in ("sensitive_key", "card_number")]
        else:
            base = list(BUILTIN_RULES)
        for name in extra:
            for opt in EXTRA_ALIASES.get(name, (name,)):
                if opt not in OPT_IN_RULES:
                    raise ValueError(f"unknown opt-in detector {name!r}: expected one of {', '.join(accepted_extra())}")
                base.extend(OPT_IN_RULES[opt])
        # Custom rules go first: an operator's rule wins over a generic one at the same position.
        all_rules = list(custom) + base
        disabled = set(disable)
        if not cards:
            disabled.add("card_number")
        self.rules: tuple[Rule, ...] = tuple(r for r in all_rules if r.kind not in disabled)
        self.kinds: tuple[str, ...] = tuple(dict.fromkeys(r.kind for r in self.rules))
        self._extra_keys = frozenset(_normalise_key(k) for k in (sensitive_keys or ()))
        self._keys_on = "sensitive_key" not in disabled
        self.policy_version = POLICY_VERSION
        self.rules_hash = _rules_hash(self.rules, self._extra_keys, self._keys_on)
        self._prefilter = Prefilter(self.rules)
        self._first_mask = sum(1 << i for i, r in enumerate(self.rules) if r.first)
        self._subsets: dict[int, tuple[re.Pattern[str], tuple[tuple[Rule, re.Pattern[str]], ...]]] = {}
        self._clean: dict[str, None] = {}
        self._key_cache: dict[str, bool] = {}
        self._clean_keys: dict[str, bool] = {}  # mapping keys with nothing to scrub -> sensitive?

    # --- construction from the environment -------------------------------------------------
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Redactor:
        """Build from ``AUDITEL_REDACT_EXTRA``, ``AUDITEL_REDACT_DISABLE`` and ``AUDITEL_REDACT_RULES``.

        Raises :class:`ConfigError` naming the variable, the value and what is accepted.
        """
        env = redaction_env() if env is None else env
        errors: list[str] = []
        extra = _parse_list(env, ENV_EXTRA, accepted_extra(), errors)
        disable = _parse_list(env, ENV_DISABLE, default_kinds() + ["sensitive_key"], errors)
        custom: list[Rule] = []
        keys: list[str] = []
        rules_path = env.get(ENV_RULES, "").strip()
        if rules_path:
            try:
                custom, keys = load_rules_file(rules_path)
            except ValueError as exc:
                errors.append(
                    f"{ENV_RULES}={rules_path!r} is not valid: expected a readable JSON file "
                    f'{{"rules": [{{"kind": "name", "pattern": "regex"}}], "sensitive_keys": [...]}} ({exc})'
                )
        if errors:
            raise ConfigError("invalid auditel configuration:\n  " + "\n  ".join(errors))
        return cls(sensitive_keys=keys, extra=extra, disable=disable, custom=custom)

    # --- keys --------------------------------------------------------------------------------
    def is_sensitive_key(self, key: str) -> bool:
        cached = self._key_cache.get(key)
        if cached is not None:
            return cached
        result = self._keys_on and self._classify_key(key)
        if len(self._key_cache) >= _CLEAN_CACHE_MAX_ENTRIES:
            self._key_cache.clear()
        self._key_cache[key] = result
        return result

    def _classify_key(self, key: str) -> bool:
        # Keys are classified after scrubbing; a marker is not part of the name.
        if REDACTED_PREFIX in key:
            key = MARKER_RE.sub(" ", key)
        if self._extra_keys and _normalise_key(key) in self._extra_keys:
            return True
        words = key_words(key)
        if not words:
            return False
        last = words[-1]
        if last in SENSITIVE_LAST_WORDS:
            return True
        if last == "key" and len(words) > 1 and words[-2] in KEY_QUALIFIERS:
            return True
        return False

    # --- strings ------------------------------------------------------------------------------
    def scrub(self, text: str, counts: dict[str, int]) -> str:
        """``text`` with every match replaced by ``[REDACTED:kind]``; counts added to ``counts``."""
        n = len(text)
        if n < self._prefilter.min_len:
            return text
        small = n <= _CLEAN_CACHE_MAX_LEN
        if small and text in self._clean:
            return text
        out = text
        total = 0
        for _ in range(_MAX_PASSES):
            mask = self._prefilter.candidates(out)
            if not mask:
                break
            if mask & self._first_mask:
                out, replaced = self._sub(mask & self._first_mask, out, counts)
                total += replaced
                if replaced:
                    mask = self._prefilter.candidates(out)
                mask &= ~self._first_mask
                if not mask:
                    break
            out, replaced = self._sub(mask, out, counts)
            if not replaced:
                break
            total += replaced
        if small and total == 0:
            if len(self._clean) >= _CLEAN_CACHE_MAX_ENTRIES:
                self._clean.clear()
            self._clean[text] = None
        return out

    def _subset(self, mask: int) -> tuple[re.Pattern[str], tuple[tuple[Rule, re.Pattern[str]], ...]]:
        """The combined regex of the rules in ``mask`` (compiled once per distinct set)."""
        hit = self._subsets.get(mask)
        if hit is not None:
            return hit
        pf = self._prefilter
        chosen = tuple((rule, pf.rule_re(i)) for i, rule in enumerate(self.rules) if mask >> i & 1)
        combined = re.compile("|".join(f"(?:{rule.pattern})" for rule, _ in chosen))
        if len(self._subsets) >= _SUBSET_CACHE_MAX:
            self._subsets.clear()
        self._subsets[mask] = (combined, chosen)
        return combined, chosen

    def _sub(self, mask: int, text: str, counts: dict[str, int]) -> tuple[str, int]:
        combined, chosen = self._subset(mask)
        replaced = 0

        def repl(m: re.Match[str]) -> str:
            nonlocal replaced
            string = m.string
            start = m.start()
            end = m.end()
            # The first rule (in order) matching here with the same extent is the alternative
            # the combined regex took; its own regex tells where the secret part is.
            for rule, rx in chosen:
                rm = rx.match(string, start)
                if rm is None or rm.end() != end:
                    continue
                secret = rm.group("s")
                if secret.startswith(REDACTED_PREFIX) or (rule.validate is not None and not rule.validate(secret)):
                    return m.group()
                counts[rule.kind] = counts.get(rule.kind, 0) + 1
                replaced += 1
                whole = m.group()
                return (
                    whole[: rm.start("s") - start] + REPLACEMENT.format(kind=rule.kind) + whole[rm.end("s") - start :]
                )
            return m.group()

        return combined.sub(repl, text), replaced

    # --- values -------------------------------------------------------------------------------
    def redact(self, value: Any, counts: dict[str, int], *, key: str | None = None) -> Any:
        """Return ``value`` with every string scrubbed (safe-form input: str, numbers, dicts, lists)."""
        if key is not None and self.is_sensitive_key(key) and _has_content(value):
            counts["sensitive_key"] = counts.get("sensitive_key", 0) + 1
            return REPLACEMENT.format(kind="sensitive_key")
        t = type(value)
        if t is str:
            return self.scrub(value, counts)
        if t is dict:
            out: dict[Any, Any] = {}
            for k, v in value.items():
                if type(k) is str:
                    new_key, sensitive = self._key(k, counts)
                    out[_unique_key(out, new_key)] = self._value(v, counts, sensitive)
                else:
                    out[k] = self.redact(v, counts)
            return out
        if t is list or t is tuple:
            return [self.redact(v, counts) for v in value]
        return value

    def _key(self, key: str, counts: dict[str, int]) -> tuple[str, bool]:
        """(scrubbed key, is its value sensitive); remembered for keys with nothing to scrub."""
        known = self._clean_keys.get(key)
        if known is not None:
            return key, known
        new_key = self.scrub(key, counts)
        sensitive = self.is_sensitive_key(new_key)
        if new_key == key and len(key) <= _CLEAN_CACHE_MAX_LEN:
            if len(self._clean_keys) >= _CLEAN_CACHE_MAX_ENTRIES:
                self._clean_keys.clear()
            self._clean_keys[key] = sensitive
        return new_key, sensitive

    def _value(self, value: Any, counts: dict[str, int], sensitive: bool) -> Any:
        if sensitive and _has_content(value):
            counts["sensitive_key"] = counts.get("sensitive_key", 0) + 1
            return REPLACEMENT.format(kind="sensitive_key")
        return self.redact(value, counts)

    def redact_attributes(
        self, attributes: Mapping[str, Any], counts: dict[str, int], *, skip: frozenset[str] = frozenset()
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        clean_keys = self._clean_keys
        clean = self._clean
        short = self._prefilter.min_len  # scrub returns a shorter text as it is, without caching it
        for k, v in attributes.items():
            if k in skip:
                out[k] = v
                continue
            # fast path (the common case): a key already known clean and not sensitive, with a
            # value that is a number, or a string too short for any rule or already known clean
            if clean_keys.get(k) is False and k not in out:
                tv = type(v)
                if tv is str:
                    if len(v) < short or v in clean:
                        out[k] = v
                        continue
                elif tv is int or tv is float or tv is bool or v is None:
                    out[k] = v
                    continue
            new_key, sensitive = self._key(k, counts)
            out[_unique_key(out, new_key)] = self._value(v, counts, sensitive)
        return out

    def describe(self) -> dict[str, Any]:
        """Policy version, rules hash and active kinds (for the stream-start record and docs)."""
        return {"policy_version": self.policy_version, "rules_hash": self.rules_hash, "kinds": list(self.kinds)}


def _unique_key(out: Mapping[str, Any], key: str) -> str:
    """Two keys redacted to the same text must not overwrite each other: number the later ones."""
    if key not in out:
        return key
    n = 2
    while f"{key}#{n}" in out:
        n += 1
    return f"{key}#{n}"


def _has_content(value: Any) -> bool:
    return value is not None and value is not True and value is not False and value not in ("", [], {})


def _normalise_key(key: str) -> str:
    return re.sub(r"[\s.\-]", "_", key.strip().lower())


def _rules_hash(rules: Iterable[Rule], extra_keys: frozenset[str], keys_on: bool) -> str:
    spec = {
        "policy_version": POLICY_VERSION,
        "rules": [[r.kind, r.keep, r.secret, r.validate.__name__ if r.validate else None] for r in rules],
        "sensitive_key_words": sorted(SENSITIVE_LAST_WORDS) if keys_on else [],
        "key_qualifiers": sorted(KEY_QUALIFIERS) if keys_on else [],
        "sensitive_keys": sorted(extra_keys),
    }
    text = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(text.encode("ascii")).hexdigest()


def _parse_list(env: Mapping[str, str], var: str, accepted: list[str], errors: list[str]) -> list[str]:
    raw = env.get(var, "")
    names = [part.strip().lower() for part in raw.split(",") if part.strip()]
    unknown = [n for n in names if n not in accepted]
    if unknown:
        errors.append(
            f"{var}={raw!r} is not valid: expected a comma-separated list of {', '.join(accepted)}"
            f" (unknown: {', '.join(unknown)})"
        )
        return []
    return names
