"""Secrets corpus through a real OTLP collector (rotel): nothing secret leaves the host.

auditel ships its outbox when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (``auditel.delivery.shipper``,
issue 3); ``auditel.flush()`` waits for the shipper. The collector forwards to a capture
server, and every field of every received record (attributes, body, resource) is checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

import auditel
from auditel import runtime as rt_mod
from otlp_harness import CaptureServer, RotelCollector
from redaction_support import clean_env, leaks, placements
from secrets_corpus import secret_corpus

SAMPLES = secret_corpus(seed=777)


@pytest.fixture
def collector(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[CaptureServer, RotelCollector]]:
    clean_env(monkeypatch)
    rt_mod._reset_for_tests()
    with CaptureServer() as capture, RotelCollector(export_to=capture.endpoint) as rotel:
        yield capture, rotel
    rt_mod._reset_for_tests()


def test_collector_receives_no_secret(collector: tuple[CaptureServer, RotelCollector], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    capture, rotel = collector
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rotel.http_endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    rt = auditel.configure(outbox=tmp_path / "outbox.db")
    assert rt is not None
    assert rt.shipper is not None, "auditel.delivery.shipper did not attach a shipper for OTEL_EXPORTER_OTLP_ENDPOINT"
    ids = set()
    for i, sample in enumerate(SAMPLES):
        attributes, body = placements(i, sample)
        record_id = auditel.emit("auditel.custom", attributes=attributes, body=body)
        assert record_id is not None
        ids.add(record_id)
    assert auditel.flush(30.0)
    assert capture.wait_for(len(ids), timeout=30.0), f"received {len(set(capture.record_ids()))} of {len(ids)}"
    received = [r for r in capture.records if r.record_id in ids]
    assert {r.record_id for r in received} == ids
    for record in capture.records:  # includes stream start and any auditel-internal record
        blob = json.dumps(
            {"attributes": record.attributes, "body": record.body, "resource": record.resource, "event": record.event_name},
            default=repr,
            ensure_ascii=False,
        ).encode("utf-8")
        assert leaks(blob, SAMPLES) == [], f"secret in a record received by the collector: {record.event_name}"
    text = json.dumps([r.body for r in received], ensure_ascii=False)
    assert all(f"[REDACTED:{s.kind}]" in text for s in SAMPLES)
