"""Environment settings of the instrumentations and of the zero-code start.

* ``zero_code_enabled()``: ``AUDITEL_ENABLED`` as ``auditel run`` and ``opentelemetry-instrument``
  read it. Unset means "not asked for" (installing auditel never turns it on); a value that is not
  a boolean raises ``ConfigError`` with the same message ``configure()`` gives, so a typo can never
  turn auditing off silently.
* ``disabled_instrumentations()``: ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` (comma-separated
  entry-point names), as the OTel instrumentation tooling reads it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from auditel.config.settings import ConfigError, Settings

ENABLED_VAR = "AUDITEL_ENABLED"
DISABLED_VAR = "OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"


def zero_code_enabled(env: Mapping[str, str] | None = None) -> bool:
    """True when ``AUDITEL_ENABLED`` asks for auditing; raises ``ConfigError`` on a value that is not a boolean."""
    env = os.environ if env is None else env
    raw = env.get(ENABLED_VAR, "")
    if raw.strip() == "":
        return False
    return Settings.from_env({ENABLED_VAR: raw}).enabled  # one parser, one message for every path


def check_settings(env: Mapping[str, str]) -> None:
    """Validate every auditel setting in ``env`` (raises ``ConfigError``, as ``configure()`` would)."""
    Settings.from_env(env)


def disabled_instrumentations(env: Mapping[str, str] | None = None) -> set[str]:
    env = os.environ if env is None else env
    raw = env.get(DISABLED_VAR, "")
    return {part.strip() for part in raw.split(",") if part.strip()}


__all__ = ["ConfigError", "zero_code_enabled", "check_settings", "disabled_instrumentations", "ENABLED_VAR"]
