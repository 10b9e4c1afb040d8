"""Configuration: every invalid environment value fails configure() with one clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

import auditel
from auditel.config.settings import ConfigError, Settings

BAD_VALUES = [
    ("AUDITEL_ENABLED", "maybe", "true, false"),
    ("AUDITEL_DURABILITY", "fast", "process, fsync"),
    ("AUDITEL_MAX_OUTBOX_MB", "-5", "MiB >= 0"),
    ("AUDITEL_MAX_OUTBOX_MB", "lots", "MiB >= 0"),
    ("AUDITEL_ON_FULL", "explode", "block, reject, drop_oldest, grow"),
    ("AUDITEL_BLOCK_TIMEOUT_MS", "1.5s", "milliseconds"),
    ("AUDITEL_RETENTION_DAYS", "forever", "days >= 0"),
    ("AUDITEL_RETENTION_UNSHIPPED", "perhaps", "true or false"),
    ("AUDITEL_EVENTS", "tool_call,telepathy", "tool_call"),
    ("OTEL_RESOURCE_ATTRIBUTES", "novalue", "key=value"),
    ("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "EVERYTHING", "NO_CONTENT, SPAN_ONLY"),
    ("OTEL_INSTRUMENTATION_GENAI_EMIT_EVENT", "sometimes", "true or false"),
    ("AUDITEL_MAX_VALUE_BYTES", "10", ">= 256"),
    ("AUDITEL_MAX_RECORD_BYTES", "abc", ">= 4096"),
    ("AUDITEL_OUTBOX", "https://example.com/db", "file path"),
]


@pytest.mark.parametrize("var,value,accepted", BAD_VALUES)
def test_each_invalid_value_names_variable_value_and_accepted(
    monkeypatch: pytest.MonkeyPatch, var: str, value: str, accepted: str
) -> None:
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as info:
        auditel.configure()
    message = str(info.value)
    assert var in message
    assert repr(value) in message
    assert accepted in message


def test_outbox_that_is_a_directory_is_rejected(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AUDITEL_OUTBOX", str(tmp_path))
    with pytest.raises(ConfigError, match="AUDITEL_OUTBOX.*is a directory"):
        auditel.configure()


def test_secret_values_are_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITEL_DIGEST_KEY", "tooshort-secret")
    with pytest.raises(ConfigError) as info:
        auditel.configure()
    assert "AUDITEL_DIGEST_KEY" in str(info.value)
    assert "tooshort-secret" not in str(info.value)


def test_all_errors_reported_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITEL_DURABILITY", "fast")
    monkeypatch.setenv("AUDITEL_ON_FULL", "explode")
    with pytest.raises(ConfigError) as info:
        auditel.configure()
    assert "AUDITEL_DURABILITY" in str(info.value) and "AUDITEL_ON_FULL" in str(info.value)


def test_unknown_override_is_rejected() -> None:
    with pytest.raises(ConfigError, match="configure\\(colour=...\\) is not a known setting"):
        auditel.configure(colour="blue")


def test_good_values_parse(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {
        "AUDITEL_ENABLED": "yes",
        "AUDITEL_OUTBOX": str(tmp_path / "x" / "o.db"),
        "AUDITEL_DURABILITY": "FSYNC",
        "AUDITEL_MAX_OUTBOX_MB": "12.5",
        "AUDITEL_ON_FULL": "drop_oldest",
        "AUDITEL_RETENTION_DAYS": "30",
        "AUDITEL_EVENTS": "tool_call, model_call",
        "OTEL_SERVICE_NAME": "agent-7",
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=prod,team=ml%20ops",
        "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true",
    }
    s = Settings.from_env(env)
    assert s.enabled and s.durability == "fsync" and s.max_outbox_mb == 12.5
    assert s.on_full == "drop_oldest" and s.retention_days == 30
    assert s.events == frozenset({"tool_call", "model_call"})
    assert s.service_name == "agent-7"
    assert s.environment == "prod"
    assert s.resource_attributes["team"] == "ml ops"
    assert s.capture_content == "SPAN_AND_EVENT" and s.content_in_records and s.content_on_spans


def test_default_outbox_is_per_user(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = Settings.from_env({"XDG_DATA_HOME": str(tmp_path)})
    assert s.outbox == tmp_path / "auditel" / "outbox.db"


def test_overrides_win_over_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AUDITEL_DURABILITY", "fsync")
    rt = auditel.configure(outbox=str(tmp_path / "o.db"), durability="process")
    assert rt is not None and rt.settings.durability == "process"
