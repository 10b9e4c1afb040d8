"""How the shipper handles each kind of backend answer (delivery-anchors §10 table).

The backend here is the harness ``CaptureServer`` used directly with injected faults, and for
gRPC a small in-process grpcio server: both are *test doubles*, used because a real collector
cannot produce 429/503 with Retry-After, 400, 401, 301, partial_success, resets or slow answers
on demand. Every test checks that nothing is lost: each record is received or kept as a dead letter.
"""

from __future__ import annotations

import json
import time
from concurrent import futures
from pathlib import Path
from typing import Any, Iterator

import pytest

from auditel import runtime
from auditel.cli import main as cli_main
from auditel.config.otlp import exporter_from_env, tuning_from_env
from auditel.store.outbox import STATE_DEAD, STATE_PENDING, Outbox
from auditel.delivery.shipper import Shipper
from otlp_harness import CaptureServer, Fault
from shipping_support import FAST_SHIP_ENV, capture, emit_many, isolated, outbox_ids, pending_after_settling  # noqa: F401 - fixtures

SECRET = "sekret-token-0123456789"


def make_backlog(tmp_path: Path, n: int = 300) -> tuple[Path, list[str]]:
    path = tmp_path / "o.db"
    runtime.configure(outbox=path)
    emit_many(n)
    runtime.shutdown()
    return path, outbox_ids(path)


def make_shipper(path: Path, endpoint: str, **env: str) -> Shipper:
    variables = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, **env}
    tuning_env = {**FAST_SHIP_ENV, "AUDITEL_SHIP_BATCH_RECORDS": "100", **env}
    config = exporter_from_env(variables)
    assert config is not None
    return Shipper(Outbox(path), config, tuning_from_env(tuning_env))


def assert_nothing_lost(path: Path, capture: CaptureServer) -> None:
    stored = set(outbox_ids(path))
    received = set(capture.record_ids())
    dead = set(outbox_ids(path, STATE_DEAD))
    assert stored <= received | dead
    assert pending_after_settling(path) == []


def test_429_with_retry_after_backs_off_at_least_that_long_then_delivers(tmp_path: Path, capture: CaptureServer) -> None:
    path, ids = make_backlog(tmp_path)
    shipper = make_shipper(path, capture.endpoint)
    capture.push_faults(Fault(status=429, headers={"Retry-After": "1"}))
    assert shipper.ship_batch() == "failed"
    status = shipper.status()
    assert status["shipper_state"] == "backoff"
    assert status["backoff_s"] >= 1.0
    assert status["next_attempt_in_s"] > 0.5
    assert status["last_error"].startswith("HTTP 429")
    assert len(outbox_ids(path, STATE_PENDING)) == len(ids)  # nothing counted as shipped
    shipper.drain(15)
    assert all(count == 1 for count in capture.id_counts().values())
    assert_nothing_lost(path, capture)
    assert shipper.status()["retried"] == 1


def test_503_with_http_date_retry_after_and_an_excessive_one_is_capped(tmp_path: Path, capture: CaptureServer) -> None:
    import email.utils

    path, ids = make_backlog(tmp_path)
    shipper = make_shipper(path, capture.endpoint)
    when = email.utils.formatdate(time.time() + 3, usegmt=True)
    capture.push_faults(Fault(status=503, headers={"Retry-After": when}), Fault(status=503, headers={"Retry-After": "3600"}))
    assert shipper.ship_batch() == "failed"
    assert shipper.backoff_s >= 1.0
    assert shipper.ship_batch() == "failed"
    assert shipper.backoff_s == pytest.approx(3.0)  # AUDITEL_SHIP_RETRY_AFTER_MAX_S in the tests (default 900)
    shipper.next_attempt = 0.0
    shipper.drain(15)
    assert set(capture.record_ids()) == set(ids)
    assert_nothing_lost(path, capture)


def _poison(capture: CaptureServer, indexes: set[int], status: int = 400, body: bytes = b"bad record shape") -> None:
    """The server refuses every request holding one of these records (a test double for a strict backend)."""
    capture.reject_record = lambda r: r.attributes.get("test.index") in indexes
    capture.reject_status = status
    capture.reject_body = body


def test_400_dead_letters_only_the_refused_records_reported_once_and_requeue_delivers(
    tmp_path: Path, capture: CaptureServer, capfd: pytest.CaptureFixture[str]
) -> None:
    path, ids = make_backlog(tmp_path)
    shipper = make_shipper(path, capture.endpoint)
    _poison(capture, {7, 150})
    shipper.drain(15)
    dead = outbox_ids(path, STATE_DEAD)
    # the batch is bisected until the refused records stand alone: only they become dead letters
    assert len(dead) == 2
    assert shipper.status()["dead_lettered_total"] == 2
    assert set(capture.record_ids()) == set(ids) - set(dead)
    assert all(count == 1 for count in capture.id_counts().values())
    err = capfd.readouterr().err
    assert err.count("dead letters") == 1  # reported once on stderr
    assert_nothing_lost(path, capture)

    assert cli_main(["--outbox", str(path), "dead-letters", "--json"]) == 0
    listed = json.loads(capfd.readouterr().out)
    assert len(listed) == 2
    assert {d["status"] for d in listed} == {"HTTP 400"}
    assert {d["reason"] for d in listed} == {"bad record shape"}
    assert {d["record_id"] for d in listed} == set(dead)

    capture.reject_record = None  # the backend was fixed
    assert cli_main(["--outbox", str(path), "dead-letters", "--requeue"]) == 0
    assert "requeued 2" in capfd.readouterr().out
    assert outbox_ids(path, STATE_DEAD) == []
    shipper.drain(15)
    assert set(capture.record_ids()) == set(ids)
    assert cli_main(["--outbox", str(path), "dead-letters", "--json"]) == 0
    assert json.loads(capfd.readouterr().out) == []
    assert cli_main(["--outbox", str(path), "dead-letters", "--all", "--json"]) == 0
    assert len(json.loads(capfd.readouterr().out)) == 2  # history is kept


def test_401_pauses_and_retries_slowly_and_never_leaks_the_credentials(
    tmp_path: Path, capture: CaptureServer, capfd: pytest.CaptureFixture[str]
) -> None:
    path, ids = make_backlog(tmp_path)
    shipper = make_shipper(
        path, capture.endpoint, OTEL_EXPORTER_OTLP_HEADERS=f"authorization=Bearer%20{SECRET},x-tenant=acme"
    )
    capture.push_faults(Fault(status=401, body=f"invalid token Bearer {SECRET}".encode()))
    assert shipper.ship_batch() == "failed"
    status = shipper.status()
    assert status["shipper_state"] == "paused_auth"
    assert status["backoff_s"] >= 0.18  # AUDITEL_SHIP_SLOW_RETRY_S=0.2 in the tests (default 300)
    assert outbox_ids(path, STATE_DEAD) == []  # credentials get fixed: never dead-lettered
    assert capture.request_headers[0]["authorization"] == f"Bearer {SECRET}"  # URL-decoded on the wire
    assert capture.request_headers[0]["x-tenant"] == "acme"
    shipper.drain(15)
    assert set(capture.record_ids()) == set(ids)
    dumped = json.dumps(shipper.status()) + (shipper.last_error or "") + repr(shipper.config)
    assert SECRET not in dumped
    assert "[redacted]" in (shipper.last_error or "")
    assert SECRET not in capfd.readouterr().err
    for suffix in ("", "-wal"):
        file = Path(str(path) + suffix)
        if file.exists():
            assert SECRET.encode() not in file.read_bytes()


def test_301_is_a_configuration_error_never_a_success(tmp_path: Path, capture: CaptureServer) -> None:
    path, ids = make_backlog(tmp_path)
    shipper = make_shipper(path, capture.endpoint)
    capture.push_faults(Fault(status=301, headers={"Location": "https://elsewhere.example/v1/logs?key=abc123456"}))
    assert shipper.ship_batch() == "failed"
    status = shipper.status()
    assert status["shipper_state"] == "misconfigured"
    assert "redirect" in status["last_error"] and "abc123456" not in status["last_error"]
    assert status["shipped_total"] == 0
    assert len(outbox_ids(path, STATE_PENDING)) == len(ids)
    shipper.drain(15)
    assert set(capture.record_ids()) == set(ids)
    assert_nothing_lost(path, capture)


def test_404_is_a_configuration_error_not_a_dead_letter(tmp_path: Path, capture: CaptureServer) -> None:
    path, ids = make_backlog(tmp_path)
    shipper = make_shipper(path, capture.endpoint)
    capture.push_faults(Fault(status=404))
    assert shipper.ship_batch() == "failed"
    assert shipper.state == "misconfigured"
    assert outbox_ids(path, STATE_DEAD) == []
    shipper.drain(15)
    assert_nothing_lost(path, capture)


def test_partial_success_with_rejections_dead_letters_the_batch(tmp_path: Path, capture: CaptureServer) -> None:
    path, ids = make_backlog(tmp_path)
    shipper = make_shipper(path, capture.endpoint)
    capture.push_faults(Fault(rejected_log_records=3, error_message="3 records too old"))
    shipper.drain(15)
    dead = outbox_ids(path, STATE_DEAD)
    assert len(dead) == 100  # OTLP cannot say which 3: the whole batch is kept for review
    letters = shipper.queue.dead_letters()
    assert {d.reason for d in letters} == {"partial_success: 3 rejected: 3 records too old"}
    assert set(capture.record_ids()) == set(ids)  # the backend kept the rest
    assert_nothing_lost(path, capture)


def test_partial_success_with_zero_rejected_is_a_warning_and_a_success(tmp_path: Path, capture: CaptureServer) -> None:
    path, ids = make_backlog(tmp_path)
    shipper = make_shipper(path, capture.endpoint)
    capture.push_faults(Fault(error_message="deprecated field", rejected_log_records=0))
    shipper.drain(15)
    assert outbox_ids(path, STATE_DEAD) == []
    assert set(capture.record_ids()) == set(ids)


def test_connection_reset_mid_response_is_retried(tmp_path: Path, capture: CaptureServer) -> None:
    path, ids = make_backlog(tmp_path)
    shipper = make_shipper(path, capture.endpoint)
    capture.push_faults(Fault(reset=True), Fault(reset=True))
    shipper.drain(15)
    status = shipper.status()
    assert status["retried"] >= 1
    assert status["possibly_delivered"] >= 100
    assert set(capture.record_ids()) == set(ids)
    assert_nothing_lost(path, capture)


def test_slow_answer_beyond_the_timeout_is_retried_duplicates_at_most_one_batch(
    tmp_path: Path, capture: CaptureServer
) -> None:
    path, ids = make_backlog(tmp_path)
    shipper = make_shipper(path, capture.endpoint, OTEL_EXPORTER_OTLP_TIMEOUT="300")  # milliseconds
    assert shipper.config.timeout_s == pytest.approx(0.3)
    capture.push_faults(Fault(delay_s=1.0))  # answers 200 after 1 s: the records did arrive
    assert shipper.ship_batch() == "failed"
    assert shipper.last_error_kind == "transport"
    shipper.drain(15)
    time.sleep(0.8)
    counts = capture.id_counts()
    assert set(counts) == set(ids)
    assert sum(c - 1 for c in counts.values()) <= 100


def test_413_splits_the_batch(tmp_path: Path, capture: CaptureServer) -> None:
    path, ids = make_backlog(tmp_path)
    shipper = make_shipper(path, capture.endpoint)
    capture.push_faults(Fault(status=413))
    shipper.drain(15)
    assert outbox_ids(path, STATE_DEAD) == []
    assert all(count == 1 for count in capture.id_counts().values())
    assert set(capture.record_ids()) == set(ids)


def test_500_is_permanent_and_kept(tmp_path: Path, capture: CaptureServer) -> None:
    path, ids = make_backlog(tmp_path)
    shipper = make_shipper(path, capture.endpoint)
    _poison(capture, {42}, status=500, body=b"boom")
    shipper.drain(15)
    dead = outbox_ids(path, STATE_DEAD)
    assert len(dead) == 1 and set(capture.record_ids()) == set(ids) - set(dead)
    assert_nothing_lost(path, capture)


def test_a_refusal_that_goes_away_on_a_smaller_batch_dead_letters_nothing(tmp_path: Path, capture: CaptureServer) -> None:
    path, ids = make_backlog(tmp_path)
    shipper = make_shipper(path, capture.endpoint)
    capture.push_faults(Fault(status=400, body=b"once"))  # refused once, then accepted when resent in halves
    shipper.drain(15)
    assert outbox_ids(path, STATE_DEAD) == []
    assert set(capture.record_ids()) == set(ids)


# --- gRPC ------------------------------------------------------------------------------------------------
class GrpcFaultServer:
    """An in-process OTLP/gRPC logs service answering with queued status codes (a test double)."""

    def __init__(self) -> None:
        import grpc
        from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

        self.faults: list[tuple[Any, float | None]] = []
        self.received: list[str] = []
        server_self = self

        def export(request: Any, context: Any) -> Any:
            if server_self.faults:
                code, retry_delay = server_self.faults.pop(0)
                if retry_delay is not None:
                    from google.protobuf import any_pb2, duration_pb2
                    from google.rpc import error_details_pb2, status_pb2

                    info = error_details_pb2.RetryInfo(retry_delay=duration_pb2.Duration(seconds=int(retry_delay)))
                    detail = any_pb2.Any()
                    detail.Pack(info)
                    status = status_pb2.Status(code=code.value[0], message="slow down", details=[detail])
                    context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
                context.abort(code, f"fault {code.name}")
            for rl in request.resource_logs:
                for sl in rl.scope_logs:
                    for lr in sl.log_records:
                        for kv in lr.attributes:
                            if kv.key == "audit.record.id":
                                server_self.received.append(kv.value.string_value)
            return logs_service_pb2.ExportLogsServiceResponse()

        handler = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.logs.v1.LogsService",
            {
                "Export": grpc.unary_unary_rpc_method_handler(
                    export,
                    request_deserializer=logs_service_pb2.ExportLogsServiceRequest.FromString,
                    response_serializer=logs_service_pb2.ExportLogsServiceResponse.SerializeToString,
                )
            },
        )
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        self.server.add_generic_rpc_handlers((handler,))
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    def stop(self) -> None:
        self.server.stop(0)


@pytest.fixture
def grpc_faults() -> Iterator[GrpcFaultServer]:
    server = GrpcFaultServer()
    yield server
    server.stop()


def test_grpc_codes_are_classified(tmp_path: Path, grpc_faults: GrpcFaultServer) -> None:
    import grpc

    path, ids = make_backlog(tmp_path)
    shipper = make_shipper(path, f"http://127.0.0.1:{grpc_faults.port}", OTEL_EXPORTER_OTLP_PROTOCOL="grpc")
    grpc_faults.faults = [
        (grpc.StatusCode.UNAVAILABLE, 2.0),
        (grpc.StatusCode.UNAUTHENTICATED, None),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 1.0),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, None),
        (grpc.StatusCode.INVALID_ARGUMENT, None),
    ]
    assert shipper.ship_batch() == "failed"
    assert shipper.backoff_s >= 2.0  # RetryInfo honoured
    assert shipper.state == "backoff"
    assert shipper.ship_batch() == "failed"
    assert shipper.state == "paused_auth"
    assert shipper.ship_batch() == "failed"
    assert shipper.last_error_kind == "retry" and shipper.backoff_s >= 1.0  # RESOURCE_EXHAUSTED + RetryInfo
    # RESOURCE_EXHAUSTED without RetryInfo, then INVALID_ARGUMENT: permanent. A permanent refusal
    # bisects the batch, so these two faults are spent on halves that the server then accepts.
    assert shipper.ship_batch() == "done"
    assert grpc_faults.faults == []
    shipper.drain(15)
    assert outbox_ids(path, STATE_DEAD) == []
    assert set(grpc_faults.received) | set(outbox_ids(path, STATE_DEAD)) == set(ids)
    assert pending_after_settling(path) == []
