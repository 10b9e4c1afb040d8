"""End to end through two real collector tiers: sender -> rotel (agent tier) -> rotel (gateway tier) -> backend.

The deployment in collector-config/ and docker-compose.yml is: auditel -> agent collector (OTLP/HTTP in,
OTLP/gRPC out) -> gateway collector (OTLP/gRPC in, OTLP/HTTP out to the log store). Docker and
otelcol-contrib are not available on the machines this suite runs on, so the two tiers here are two real
``rotel`` collectors (from PyPI, started by tests/otlp_harness.py on loopback ports) with the same
protocols per hop, and the log store is the harness's CaptureServer, which decodes what it receives.

* ``test_stock_sdk_records_cross_both_tiers_once`` checks the two-tier chain itself with the stock
  OpenTelemetry SDK exporter, so a broken harness is told apart from a broken shipper.
* ``test_auditel_records_cross_both_tiers_exactly_once`` is the product test: auditel ships its outbox
  (``OTEL_EXPORTER_OTLP_ENDPOINT`` set; ``auditel.flush(timeout)`` waits for the drain) and every
  stored record must arrive exactly once, unchanged.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any, Iterator

import pytest

import auditel
from otlp_harness import CaptureServer, RotelCollector

N_SDK_RECORDS = 300
N_AUDITEL_ACTIONS = 150


@pytest.fixture
def two_tier_chain(tmp_path: Path) -> Iterator[tuple[RotelCollector, RotelCollector, CaptureServer]]:
    """backend <- gateway tier (gRPC in, HTTP out) <- agent tier (HTTP/gRPC in, gRPC out)."""
    with CaptureServer() as backend:
        with RotelCollector(export_to=backend.endpoint, export_protocol="http", log_path=tmp_path / "gateway.log") as gateway:
            with RotelCollector(export_to=gateway.grpc_endpoint, export_protocol="grpc", log_path=tmp_path / "agent.log") as agent:
                yield agent, gateway, backend


def test_stock_sdk_records_cross_both_tiers_once(two_tier_chain: tuple[RotelCollector, RotelCollector, CaptureServer]) -> None:
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource

    agent, _gateway, backend = two_tier_chain
    provider = LoggerProvider(resource=Resource.create({"service.name": "harness-check"}))
    provider.add_log_record_processor(BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{agent.http_endpoint}/v1/logs")))
    logger = provider.get_logger("collector-chain-check")
    sent = {}
    for i in range(N_SDK_RECORDS):
        record_id = f"sdk-{i:05d}"
        attributes = {"audit.record.id": record_id, "audit.sequence.number": i + 1, "check.text": f"value {i}"}
        sent[record_id] = attributes
        logger.emit(event_name="harness.check", body={"n": i}, attributes=attributes)
    assert provider.force_flush(30_000)
    provider.shutdown()

    assert backend.wait_for(N_SDK_RECORDS, timeout=30), f"only {len(set(backend.record_ids()))} of {N_SDK_RECORDS} arrived"
    counts = backend.id_counts()
    assert set(counts) == set(sent)
    assert max(counts.values()) == 1, [rid for rid, n in counts.items() if n > 1][:5]
    for rec in backend.records:
        assert rec.attributes == sent[rec.record_id]
        assert rec.event_name == "harness.check"
        assert rec.body == {"n": int(rec.record_id.split("-")[1])}
        assert rec.resource["service.name"] == "harness-check"


def _stored_records(outbox: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(f"file:{outbox}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT data FROM records ORDER BY rid").fetchall()
    finally:
        conn.close()
    return [json.loads(data) for (data,) in rows]


def test_auditel_records_cross_both_tiers_exactly_once(
    two_tier_chain: tuple[RotelCollector, RotelCollector, CaptureServer],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    agent, _gateway, backend = two_tier_chain
    outbox = tmp_path / "audit" / "outbox.db"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", agent.http_endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "collector-e2e")
    rt = auditel.configure(outbox=str(outbox))
    assert rt is not None and rt.shipper is not None, "no shipper attached although OTEL_EXPORTER_OTLP_ENDPOINT is set"
    for i in range(N_AUDITEL_ACTIONS):
        auditel.tool_call("lookup", phase="intent", arguments={"i": i})
        auditel.tool_call("lookup", phase="outcome", result={"i": i})
    assert auditel.flush(60), "the shipper did not drain the outbox"

    stored = _stored_records(outbox)
    stored_ids = [rec["attributes"]["audit.record.id"] for rec in stored]
    assert len(stored_ids) >= 2 * N_AUDITEL_ACTIONS
    assert backend.wait_for(len(stored_ids), timeout=30), f"{len(set(backend.record_ids()))} of {len(stored_ids)} arrived"
    auditel.shutdown()

    counts = Counter(backend.record_ids())
    assert set(stored_ids) <= set(counts)
    duplicated = {rid: n for rid, n in counts.items() if n > 1}
    assert not duplicated, f"records arrived more than once: {list(duplicated.items())[:5]}"
    by_id = {rec.record_id: rec for rec in backend.records}
    for rec in stored:
        got = by_id[rec["attributes"]["audit.record.id"]]
        assert got.event_name == rec["event_name"]
        assert got.time_unix_nano == int(rec["time_unix_nano"])
        # Every field auditel chained must come out of both tiers unchanged (no rewriting processors).
        for key in ("audit.sequence.stream_id", "audit.sequence.number", "audit.sequence.previous_hash"):
            if key in rec["attributes"]:
                assert got.attributes.get(key) == rec["attributes"][key], key
