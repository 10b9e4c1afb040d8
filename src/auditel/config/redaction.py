"""Redaction configuration (environment), parsed by ``auditel.redaction.redactor.Redactor.from_env``:

* ``AUDITEL_REDACT_EXTRA``: opt-in detectors, comma-separated: ``phone``, ``ip`` (``ipv4``,
  ``ipv6``), ``iban``, ``ssn`` (or ``all``).
* ``AUDITEL_REDACT_DISABLE``: default kinds to turn off, comma-separated (e.g. ``email``).
* ``AUDITEL_REDACT_RULES``: a JSON file of custom rules and sensitive key names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

ENV_EXTRA = "AUDITEL_REDACT_EXTRA"
ENV_DISABLE = "AUDITEL_REDACT_DISABLE"
ENV_RULES = "AUDITEL_REDACT_RULES"


def redaction_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The redaction variables that are set (from ``os.environ`` unless ``env`` is given)."""
    source = os.environ if env is None else env
    return {name: source[name] for name in (ENV_EXTRA, ENV_DISABLE, ENV_RULES) if name in source}
