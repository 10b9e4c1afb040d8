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

from auditel.config.settings import Reader, _positive_int

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
    reader = Reader(env)
    reader.take("every", "AUDITEL_CHECKPOINT_EVERY", _positive_int(1), "a whole number of records >= 1")
    reader.take("interval", "AUDITEL_CHECKPOINT_INTERVAL_S", _interval, "a number of seconds > 0")
    reader.check("invalid auditel configuration")
    return reader.values.get("every", DEFAULT_EVERY), reader.values.get("interval", DEFAULT_INTERVAL_S)


def _interval(raw: str) -> float:
    value = float(raw)
    if not (0 < value < 1e9):
        raise ValueError("")
    return value
