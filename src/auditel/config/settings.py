"""Settings read from the environment (and ``configure()`` overrides), validated once.

Every bad value is reported in a single :class:`ConfigError` whose message names
the variable, the value given and what is accepted.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

__all__ = ["ConfigError", "Settings", "CONTENT_MODES", "EVENT_KINDS", "default_outbox_path"]


class ConfigError(ValueError):
    """Raised by ``configure()`` when a setting is invalid."""


class Reader:
    """Reads a group of settings, keeping every bad value's error so that all are reported at once.

    Each error names where the value came from (the variable, ``configure(name=...)``, ``--outbox``),
    the value (hidden when it is a secret) and what is accepted: the one message shape of every
    configuration error. ``overrides`` (from ``configure()``) win over ``env``; a non-string
    override is taken as given (checked by the caller).
    """

    def __init__(self, env: Mapping[str, str], overrides: Mapping[str, Any] | None = None) -> None:
        self.env = env
        self.overrides = overrides or {}
        self.values: dict[str, Any] = {}
        self.errors: list[str] = []

    def take(self, name: str, var: str, parse: Callable[[str], Any], accepted: str, *, secret: bool = False) -> None:
        """``values[name]``: the override, else ``var`` when set and not blank, through ``parse``."""
        if name in self.overrides:
            raw = self.overrides[name]
            label = f"configure({name}=...)"
            if not isinstance(raw, str):
                self.values[name] = raw
                return
        elif self.env.get(var, "").strip() != "":
            raw, label = self.env[var], var
        else:
            return
        try:
            self.values[name] = parse(raw.strip())
        except (ValueError, TypeError) as exc:
            self.invalid(label, raw, accepted, exc, secret=secret)

    def parse(self, label: str, raw: str, parse: Callable[[str], Any], accepted: str, *, secret: bool = False) -> Any:
        """``parse(raw.strip())``, or ``None`` with the error kept."""
        try:
            return parse(raw.strip())
        except (ValueError, TypeError) as exc:
            self.invalid(label, raw, accepted, exc, secret=secret)
            return None

    def invalid(
        self, label: str, raw: str, accepted: str, exc: BaseException | None = None, *, secret: bool = False
    ) -> None:
        detail = f" ({exc})" if exc is not None and str(exc) else ""
        shown = f"<{len(raw)} characters, hidden>" if secret else repr(raw)
        self.errors.append(f"{label}={shown} is not valid: expected {accepted}{detail}")

    def check(self, title: str) -> None:
        """Raise one ``ConfigError`` listing every error, under ``title``."""
        if self.errors:
            raise ConfigError(f"{title}:\n  " + "\n  ".join(self.errors))


# Event kinds that AUDITEL_EVENTS may name. Integrity records (stream start/end,
# checkpoints) are always recorded: an allow-list must not be able to hide tampering.
EVENT_KINDS = (
    "tool_call",
    "tool_discovery",
    "model_call",
    "policy_decision",
    "file_access",
    "network_access",
    "session_start",
    "session_end",
    "heartbeat",
    "action",
    "agent_run",
    "handoff",
    "custom",
)

# OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT values -> (on spans, on events/records)
CONTENT_MODES: dict[str, tuple[bool, bool]] = {
    "NO_CONTENT": (False, False),
    "SPAN_ONLY": (True, False),
    "EVENT_ONLY": (False, True),
    "SPAN_AND_EVENT": (True, True),
    # legacy boolean spelling used by the older GenAI instrumentations
    "TRUE": (True, True),
    "FALSE": (False, False),
}

DURABILITY_MODES = ("process", "fsync")
ON_FULL_MODES = ("block", "reject", "drop_oldest", "grow")

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def default_outbox_path(env: Mapping[str, str] | None = None) -> Path:
    """Per-user default: ``$XDG_DATA_HOME/auditel/outbox.db`` (``~/.local/share/...``)."""
    env = os.environ if env is None else env
    base = env.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(base) / "auditel" / "outbox.db"


@dataclass(frozen=True)
class Settings:
    enabled: bool = True
    outbox: Path = field(default_factory=default_outbox_path)
    durability: str = "process"
    max_outbox_mb: float = 1024.0  # 0 = no cap
    on_full: str = "block"
    block_timeout_ms: int = 2000
    retention_days: float = 0.0  # 0 = keep forever
    retention_unshipped: bool = False
    events: frozenset[str] | None = None  # None = every kind
    service_name: str = "unknown_service"
    resource_attributes: Mapping[str, str] = field(default_factory=dict)
    environment: str | None = None
    session_id: str | None = None
    agent_id: str | None = None
    agent_name: str | None = None
    principal: str | None = None
    jsonl_path: Path | None = None
    capture_content: str = "NO_CONTENT"
    emit_events: bool | None = None  # None: emitted when content goes into records (EVENT_ONLY, SPAN_AND_EVENT)
    max_value_bytes: int = 64 * 1024
    max_record_bytes: int = 1024 * 1024
    digest_key: bytes | None = None

    # --- derived helpers -------------------------------------------------
    @property
    def content_on_spans(self) -> bool:
        return CONTENT_MODES[self.capture_content][0]

    @property
    def content_in_records(self) -> bool:
        return CONTENT_MODES[self.capture_content][1]

    @property
    def emit_details_event(self) -> bool:
        """Emit ``gen_ai.client.inference.operation.details``: as set, else per the content mode."""
        return self.content_in_records if self.emit_events is None else bool(self.emit_events)

    @property
    def max_outbox_bytes(self) -> int:
        return int(self.max_outbox_mb * 1024 * 1024)

    def public_dict(self) -> dict[str, Any]:
        """Settings without secrets, for status output and the config hash."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "digest_key":
                value = None if value is None else "set"
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, frozenset):
                value = sorted(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = value
        return out

    # --- parsing -----------------------------------------------------------
    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
        env = os.environ if env is None else env
        overrides = dict(overrides or {})
        known = {f.name for f in fields(cls)}
        reader = Reader(env, {name: value for name, value in overrides.items() if name in known})
        errors, values, take = reader.errors, reader.values, reader.take
        for name in overrides:
            if name not in known:
                errors.append(
                    f"configure({name}=...) is not a known setting: expected one of {', '.join(sorted(known))}"
                )

        take("enabled", "AUDITEL_ENABLED", _parse_bool, "one of true, false, 1, 0, yes, no, on, off")
        take("outbox", "AUDITEL_OUTBOX", parse_path, "a file path on a local filesystem")
        take("durability", "AUDITEL_DURABILITY", _choice(DURABILITY_MODES), "one of process, fsync")
        take("max_outbox_mb", "AUDITEL_MAX_OUTBOX_MB", _non_negative_float, "a number of MiB >= 0 (0 = no cap)")
        take("on_full", "AUDITEL_ON_FULL", _choice(ON_FULL_MODES), "one of " + ", ".join(ON_FULL_MODES))
        take("block_timeout_ms", "AUDITEL_BLOCK_TIMEOUT_MS", _non_negative_int, "a whole number of milliseconds >= 0")
        take(
            "retention_days", "AUDITEL_RETENTION_DAYS", _non_negative_float, "a number of days >= 0 (0 = keep forever)"
        )
        take(
            "retention_unshipped",
            "AUDITEL_RETENTION_UNSHIPPED",
            _parse_bool,
            "true or false (true also deletes records never shipped)",
        )
        take("events", "AUDITEL_EVENTS", _parse_events, "'*' or a comma-separated list of " + ", ".join(EVENT_KINDS))
        take("service_name", "OTEL_SERVICE_NAME", _non_empty, "a non-empty service name")
        take(
            "resource_attributes",
            "OTEL_RESOURCE_ATTRIBUTES",
            _parse_resource_attributes,
            "comma-separated key=value pairs",
        )
        take("environment", "AUDITEL_ENVIRONMENT", _non_empty, "a non-empty environment name")
        take("session_id", "AUDITEL_SESSION_ID", _non_empty, "a non-empty session id")
        take("agent_id", "AUDITEL_AGENT_ID", _non_empty, "a non-empty agent id")
        take("agent_name", "AUDITEL_AGENT_NAME", _non_empty, "a non-empty agent name")
        take("principal", "AUDITEL_PRINCIPAL", _non_empty, "a non-empty principal id (on whose behalf the agent acts)")
        take("jsonl_path", "AUDITEL_JSONL", parse_path, "a file path for the JSON-lines sink")
        take(
            "capture_content",
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
            _parse_content_mode,
            "one of NO_CONTENT, SPAN_ONLY, EVENT_ONLY, SPAN_AND_EVENT, true, false",
        )
        take("emit_events", "OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT", _parse_bool, "true or false")
        take("max_value_bytes", "AUDITEL_MAX_VALUE_BYTES", _positive_int(256), "a whole number of bytes >= 256")
        take("max_record_bytes", "AUDITEL_MAX_RECORD_BYTES", _positive_int(4096), "a whole number of bytes >= 4096")
        take(
            "digest_key", "AUDITEL_DIGEST_KEY", _parse_key, "a key of at least 16 bytes, as hex or base64", secret=True
        )

        # Cross-field validation of override types.
        if "durability" in values and values["durability"] not in DURABILITY_MODES:
            errors.append(f"durability={values['durability']!r} is not valid: expected one of process, fsync")
        if "on_full" in values and values["on_full"] not in ON_FULL_MODES:
            errors.append(f"on_full={values['on_full']!r} is not valid: expected one of {', '.join(ON_FULL_MODES)}")
        if "outbox" in values and not isinstance(values["outbox"], Path):
            values["outbox"] = Path(str(values["outbox"])).expanduser()
        if "jsonl_path" in values and values["jsonl_path"] is not None and not isinstance(values["jsonl_path"], Path):
            values["jsonl_path"] = Path(str(values["jsonl_path"])).expanduser()
        if "events" in values and values["events"] is not None and not isinstance(values["events"], frozenset):
            try:
                values["events"] = _parse_events(",".join(values["events"]))
            except ValueError as exc:
                errors.append(f"events={values['events']!r} is not valid: {exc}")

        # deployment.environment.name may come from OTEL_RESOURCE_ATTRIBUTES.
        res = dict(values.get("resource_attributes", {}))
        if "environment" not in values and res.get("deployment.environment.name"):
            values["environment"] = res["deployment.environment.name"]
        if "service_name" not in values and res.get("service.name"):
            values["service_name"] = res["service.name"]

        reader.check("invalid auditel configuration")
        if "outbox" not in values:
            values["outbox"] = default_outbox_path(env)
        return cls(**values)


def _parse_bool(raw: str) -> bool:
    low = raw.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError("")


def parse_path(raw: str) -> Path:
    if "\x00" in raw:
        raise ValueError("contains a NUL byte")
    if raw.startswith(("file:", "http:", "https:")):
        raise ValueError("give a plain path, not a URL")
    path = Path(raw).expanduser()
    try:
        is_dir = path.is_dir()
    except OSError:  # e.g. a directory on the way this user cannot enter: the outbox check says so
        is_dir = False
    if is_dir:
        raise ValueError("is a directory")
    return path


def _choice(options: tuple[str, ...]) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        low = raw.lower()
        if low not in options:
            raise ValueError("")
        return low

    return parse


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not (value >= 0) or value == float("inf"):
        raise ValueError("")
    return value


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("")
    return value


def _positive_int(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if value < minimum:
            raise ValueError("")
        return value

    return parse


def _non_empty(raw: str) -> str:
    if not raw:
        raise ValueError("")
    return raw


def _parse_events(raw: str) -> frozenset[str] | None:
    if raw.strip() == "*":
        return None
    kinds = {part.strip().lower() for part in raw.split(",") if part.strip()}
    if not kinds:
        raise ValueError("")
    unknown = sorted(k for k in kinds if k not in EVENT_KINDS)
    if unknown:
        raise ValueError("unknown kind " + ", ".join(unknown))
    return frozenset(kinds)


_KEY_RE = re.compile(r"^[A-Za-z0-9_.\-/]+$")


def _parse_resource_attributes(raw: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in raw.split(","):
        part = part.strip()
        if not part:
            continue
        if "=" not in part:
            raise ValueError(f"{part!r} has no '='")
        key, _, value = part.partition("=")
        key = key.strip()
        if not key or not _KEY_RE.match(key):
            raise ValueError(f"bad key {key!r}")
        from urllib.parse import unquote

        out[key] = unquote(value.strip())
    return out


def _parse_content_mode(raw: str) -> str:
    up = raw.strip().upper()
    if up not in CONTENT_MODES:
        raise ValueError("")
    if up == "TRUE":
        return "SPAN_AND_EVENT"
    if up == "FALSE":
        return "NO_CONTENT"
    return up


def _parse_key(raw: str) -> bytes:
    import base64
    import binascii

    text = raw.strip()
    key: bytes | None = None
    if re.fullmatch(r"[0-9a-fA-F]+", text) and len(text) % 2 == 0:
        key = bytes.fromhex(text)
    else:
        try:
            key = base64.b64decode(text + "=" * (-len(text) % 4), validate=False)
        except (binascii.Error, ValueError):
            key = None
    if not key or len(key) < 16:
        raise ValueError("key too short or not hex/base64")
    return key
