"""Integrity configuration: the checkpoint signing key and the checkpoint cadence.

* ``AUDITEL_HMAC_KEY``: HMAC-SHA256 with this key (hex or base64, >= 16 bytes).
* ``AUDITEL_SIGNING_KEY``: an Ed25519 private key (PEM, or base64 of the 32-byte raw key), or
  ``AUDITEL_SIGNING_KEY_FILE``: a file holding one. None of them: ``signing.key`` beside the outbox.
* ``AUDITEL_CHECKPOINT_EVERY`` (records, default 1000) and ``AUDITEL_CHECKPOINT_INTERVAL_S``
  (seconds, default 60).

The keys are parsed by ``auditel.integrity.checkpoints.load_signer`` (it needs the crypto library);
this module only reads the environment and validates the cadence.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from auditel.config.settings import ConfigError

DEFAULT_EVERY = 1000
DEFAULT_INTERVAL_S = 60.0
SIGNING_VARIABLES = ("AUDITEL_HMAC_KEY", "AUDITEL_SIGNING_KEY", "AUDITEL_SIGNING_KEY_FILE")
CADENCE_VARIABLES = ("AUDITEL_CHECKPOINT_EVERY", "AUDITEL_CHECKPOINT_INTERVAL_S")


def integrity_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The integrity variables that are set (from ``os.environ`` unless ``env`` is given)."""
    source = os.environ if env is None else env
    return {name: source[name] for name in SIGNING_VARIABLES + CADENCE_VARIABLES if name in source}


def env_value(name: str) -> str:
    """One environment variable (``""`` when unset): for ``--hmac-key-env VAR``, named by the user."""
    return os.environ.get(name, "")


def load_intervals(env: Mapping[str, str]) -> tuple[int, float]:
    """``(every, interval_s)``; ``ConfigError`` naming the variable when a value is bad."""
    errors: list[str] = []
    every, interval = DEFAULT_EVERY, DEFAULT_INTERVAL_S
    raw = env.get("AUDITEL_CHECKPOINT_EVERY", "").strip()
    if raw:
        try:
            every = int(raw)
            if every < 1:
                raise ValueError
        except ValueError:
            errors.append(f"AUDITEL_CHECKPOINT_EVERY={raw!r} is not valid: expected a whole number of records >= 1")
    raw = env.get("AUDITEL_CHECKPOINT_INTERVAL_S", "").strip()
    if raw:
        try:
            interval = float(raw)
            if not (0 < interval < 1e9):
                raise ValueError
        except ValueError:
            errors.append(f"AUDITEL_CHECKPOINT_INTERVAL_S={raw!r} is not valid: expected a number of seconds > 0")
    if errors:
        raise ConfigError("invalid auditel configuration:\n  " + "\n  ".join(errors))
    return every, interval
