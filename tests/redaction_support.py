"""Shared pieces of the redaction tests: where corpus secrets are placed, and leak checks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterable

import pytest

from secrets_corpus import Sample

# Environment variables that would change what a configured auditel does in a test.
_ENV_PREFIXES = ("AUDITEL_", "OTEL_EXPORTER_OTLP", "OTEL_INSTRUMENTATION_GENAI", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_SERVICE_NAME")


def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(_ENV_PREFIXES):
            monkeypatch.delenv(name, raising=False)


def placements(i: int, sample: Sample) -> tuple[dict[str, Any], dict[str, Any]]:
    """(attributes, body) holding the sample as an attribute value, an attribute key, a nested
    body value, a body dict key, a list item, a URL query value (every sample, as written, not
    percent-encoded) and (when it fits in one) a URL path segment."""
    query_url = f"https://api.example.com/v1/search?note={sample.text}&page=2"
    attributes: dict[str, Any] = {
        "app.note": sample.text,
        f"app.key {sample.text}": "value",
        "app.list": ["first", sample.text],
        "http.request.header.referer": query_url,
    }
    body: dict[str, Any] = {
        "request": {"items": [{"text": sample.text}], "lookup": {sample.text: i}, "referer": query_url},
        "message": f"step {i} failed while using {sample.text} for the upstream call",
    }
    if sample.url_safe:
        url = f"https://api.example.com/v1/resources/{sample.text}/items?limit=10"
        attributes["url.full"] = url
        body["request"]["url"] = url
    return attributes, body


def needles(samples: Iterable[Sample]) -> list[tuple[str, str]]:
    return [(s.kind, n) for s in samples for n in s.needles]


def leaks(blob: bytes, samples: Iterable[Sample]) -> list[tuple[str, str]]:
    """The (kind, needle) pairs found in ``blob`` (raw bytes of a file or a message)."""
    return [(kind, n) for kind, n in needles(samples) if n.encode("utf-8") in blob]


def outbox_files(directory: Path) -> dict[str, bytes]:
    """Every file beside the outbox (the database, its -wal and -shm, sinks, keys)."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}
