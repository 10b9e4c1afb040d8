"""The shipper against hostile records and hostile endpoints (issue 13, items 1, 4, 5 and 13).

* Records the shipper cannot encode are written straight into a real outbox with SQL (the way a
  corrupt file, an older bug or another writer leaves them) and shipped through the real rotel
  collector: they become dead letters with a reason, and every other record is delivered.
* The hostile endpoints (slowloris, a huge body, refused connections, bad TLS) are small
  fault-injecting servers on 127.0.0.1 written here: a *test double*, used because no real
  collector can be made to trickle one byte every few seconds or stream gigabytes on demand.
"""

# ruff: noqa: F811 - pytest fixtures imported from shipping_support are parameters of the tests

from __future__ import annotations

import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from auditel import runtime
from auditel.config.otlp import exporter_from_env, tuning_from_env
from auditel.delivery.shipper import Shipper
from auditel.store.outbox import STATE_DEAD, STATE_PENDING, Outbox
from auditel.store.shipping_queue import ShippingQueue
from otlp_harness import CaptureServer, RotelCollector
from shipping_support import (  # noqa: F401 - fixtures
    FAST_SHIP_ENV,
    capture,
    child_env,
    collector,
    emit_many,
    isolated,
    outbox_ids,
)

BAD_TIMES = ['"1.5e+18"', '"True"', "true", '"-5"', "-5", '"12abc"']


def make_backlog(tmp_path: Path, n: int = 60) -> tuple[Path, list[str]]:
    path = tmp_path / "o.db"
    runtime.configure(outbox=path)
    emit_many(n)
    runtime.shutdown()
    return path, outbox_ids(path)


def corrupt_times(path: Path, ids: list[str], bad: list[str]) -> list[str]:
    """Store ``time_unix_nano`` as each of ``bad`` (JSON text) in the records ``ids[3], ids[6], …``:
    what a float/bool timestamp or a hostile writer leaves in the outbox."""
    conn = sqlite3.connect(str(path))
    spoiled = []
    try:
        for k, value in enumerate(bad):
            record_id = ids[3 + 3 * k]
            conn.execute(
                "UPDATE records SET data=json_set(data, '$.time_unix_nano', json(?)) WHERE record_id=?",
                (value, record_id),
            )
            spoiled.append(record_id)
        conn.commit()
    finally:
        conn.close()
    return spoiled


def run_sync(
    outbox: Path, endpoint: str, *args: str, timeout: float = 90, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from auditel.cli import main; sys.exit(main())", "sync", "--quiet", *args],
        env=child_env(outbox, OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def make_shipper(path: Path, endpoint: str, **env: str) -> Shipper:
    config = exporter_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, **env})
    assert config is not None
    return Shipper(Outbox(path), config, tuning_from_env({**FAST_SHIP_ENV, "AUDITEL_SHIP_BATCH_RECORDS": "20", **env}))


# --- item 1: one record that cannot be encoded never blocks the rest -------------------------------------------
@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_unencodable_records_become_dead_letters_and_the_rest_is_delivered(
    tmp_path: Path, capture: CaptureServer, collector: RotelCollector, protocol: str
) -> None:
    path, ids = make_backlog(tmp_path)
    spoiled = corrupt_times(path, ids, BAD_TIMES)
    endpoint = collector.grpc_endpoint if protocol == "grpc" else collector.http_endpoint
    done = run_sync(
        path, endpoint, "--timeout", "20", OTEL_EXPORTER_OTLP_PROTOCOL=protocol, AUDITEL_SHIP_BATCH_RECORDS="16"
    )
    assert outbox_ids(path, STATE_PENDING) == [], done.stderr
    assert sorted(outbox_ids(path, STATE_DEAD)) == sorted(spoiled)
    healthy = set(ids) - set(spoiled)
    assert capture.wait_for(len(healthy), 20)
    assert set(capture.record_ids()) == healthy
    letters = ShippingQueue(Outbox(path)).dead_letters()
    assert {d.record_id for d in letters} == set(spoiled)
    assert all("cannot encode" in (d.status or "") and d.reason for d in letters)
    assert "cannot be encoded" in done.stderr
    assert done.returncode == 1  # dead letters remain: the command says so


def test_an_unencodable_record_does_not_stall_the_worker(
    tmp_path: Path, capture: CaptureServer, collector: RotelCollector, monkeypatch: pytest.MonkeyPatch
) -> None:
    import auditel

    path, ids = make_backlog(tmp_path, 20)
    spoiled = corrupt_times(path, ids, ['"1.5e+18"'])
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", collector.http_endpoint)
    runtime.configure(outbox=path)
    later = emit_many(10, "later")
    assert auditel.flush(20)
    assert capture.wait_for(len(ids) - 1 + len(later), 20)
    assert set(capture.record_ids()) >= (set(ids) - set(spoiled)) | set(later)
    status = auditel.status()
    assert status["dead_lettered_total"] == 1
    assert status["pending"] == 0


# --- hostile endpoints (test doubles: see the module docstring) --------------------------------------------------
class HostileServer:
    """A raw TCP server on 127.0.0.1 that reads one HTTP request per connection and then answers as
    ``mode`` says: ``"slowloris"`` trickles a status line one byte every ``gap_s`` for ever;
    ``"huge"`` answers 200 with a 3 GB Content-Length and streams zeros (up to ``limit`` bytes, then
    stalls). ``sent`` counts the body bytes the kernel took from it (what the client could read)."""

    def __init__(self, mode: str, *, gap_s: float = 0.5, limit: int = 96 * 1024 * 1024) -> None:
        self.mode = mode
        self.gap_s = gap_s
        self.limit = limit
        self.sent = 0
        self.requests = 0
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _read_request(self, conn: socket.socket) -> bool:
        if self.mode == "tls-trickle":
            self.requests += 1
            return bool(conn.recv(65536))  # the ClientHello
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            body += chunk
        self.requests += 1
        return True

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(60)
        try:
            if not self._read_request(conn):
                return
            if self.mode == "tls-trickle":
                # after the ClientHello: a TLS handshake record of 16 KiB announcing a ServerHello,
                # then one byte at a time: every read succeeds and the handshake never completes
                conn.sendall(b"\x16\x03\x03\x40\x00" + b"\x02\x00\x3f\xf0")  # + a ServerHello of 16,368 bytes
                for _ in range(100000):
                    if self._stop.wait(self.gap_s):
                        return
                    conn.sendall(b"\x00")
            elif self.mode == "slowloris":
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100000:
                    if self._stop.wait(self.gap_s):
                        return
                    conn.sendall(bytes([byte]))
            else:
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 3000000000\r\n\r\n"
                )
                chunk = b"\0" * 65536
                while self.sent < self.limit and not self._stop.is_set():
                    conn.sendall(chunk)
                    self.sent += len(chunk)
                self._stop.wait(30)  # stall with the connection open
        except OSError:
            pass  # the client hung up: what we want
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()


@pytest.fixture
def slowloris() -> Iterator[HostileServer]:
    server = HostileServer("slowloris")
    yield server
    server.stop()


def ship_in_thread(shipper: Shipper) -> str:
    """``ship_batch`` on a helper thread; the test fails (instead of hanging) if it never returns."""
    result: list[str] = []
    thread = threading.Thread(target=lambda: result.append(shipper.ship_batch()), daemon=True)
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), "the request was never cut off"
    return result[0]


def test_a_slowloris_endpoint_is_cut_off_at_the_timeout_and_counted(tmp_path: Path, slowloris: HostileServer) -> None:
    path, _ids = make_backlog(tmp_path, 10)
    shipper = make_shipper(path, slowloris.endpoint, OTEL_EXPORTER_OTLP_TIMEOUT="1000")
    try:
        assert ship_in_thread(shipper) == "failed"
    finally:
        shipper.close()
    status = shipper.status()
    assert status["request_timeouts"] == 1
    assert "RequestTimeout" in status["last_ship_error"]
    assert status["possibly_delivered"] == len(_ids)  # the request was sent: it may have been processed
    assert outbox_ids(path, STATE_PENDING) == _ids  # nothing lost, retried later


def test_the_worker_reports_a_slowloris_endpoint_in_status(
    tmp_path: Path, slowloris: HostileServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import auditel

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", slowloris.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1000")
    runtime.configure(outbox=tmp_path / "o.db")
    emit_many(5)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not auditel.status().get("request_timeouts"):
        time.sleep(0.1)
    status = auditel.status()
    assert status["request_timeouts"] >= 1
    assert "RequestTimeout" in (status["last_ship_error"] or "")
    assert status["pending"] >= 5


def test_sync_timeout_bounds_the_command_against_a_slowloris_endpoint(tmp_path: Path, slowloris: HostileServer) -> None:
    path, ids = make_backlog(tmp_path, 10)
    started = time.monotonic()
    # the per-request timeout (30 s) is longer than --timeout: the command's bound must win
    done = run_sync(
        path, slowloris.endpoint, "--timeout", "3", "--json", timeout=120, OTEL_EXPORTER_OTLP_TIMEOUT="30000"
    )
    elapsed = time.monotonic() - started
    print(f"sync --timeout 3 against slowloris returned after {elapsed:.1f} s")
    assert done.returncode == 1
    assert f'"pending": {len(ids)}' in done.stdout
    assert slowloris.requests >= 1
    assert sorted(outbox_ids(path, STATE_PENDING)) == sorted(ids)


MAX_RESPONSE_BYTES = 4 * 1024 * 1024  # what an OTLP answer can sensibly be (transport.MAX_RESPONSE_BYTES)


def test_a_huge_response_body_is_not_read_beyond_the_limit(tmp_path: Path) -> None:
    server = HostileServer("huge")
    path, ids = make_backlog(tmp_path, 10)
    shipper = make_shipper(path, server.endpoint, OTEL_EXPORTER_OTLP_TIMEOUT="5000")
    try:
        assert ship_in_thread(shipper) == "done"  # a 200 is an acceptance, whatever follows it
        time.sleep(0.5)  # let the server notice the hang-up
    finally:
        shipper.close()
        server.stop()
    # what the server could push = what we read + the two loopback socket buffers (a few MiB);
    # reading the body to its end would have taken all 96 MiB offered
    assert server.sent < MAX_RESPONSE_BYTES + 32 * 1024 * 1024, server.sent
    assert outbox_ids(path, STATE_PENDING) == []
    assert "not read" in (shipper.status()["last_ship_warning"] or "")


# --- item 13: nothing sent is never "possibly delivered" ------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_connection_refused_is_not_possibly_delivered(tmp_path: Path, protocol: str) -> None:
    path, _ids = make_backlog(tmp_path, 10)
    shipper = make_shipper(path, f"http://127.0.0.1:{_closed_port()}", OTEL_EXPORTER_OTLP_PROTOCOL=protocol)
    try:
        assert ship_in_thread(shipper) == "failed"
    finally:
        shipper.close()
    status = shipper.status()
    assert status["last_ship_error_kind"] == "transport"
    assert status["possibly_delivered"] == 0


def test_a_tls_handshake_failure_is_not_possibly_delivered(tmp_path: Path, capture: CaptureServer) -> None:
    path, _ids = make_backlog(tmp_path, 10)
    # https:// to a plain-HTTP server: the TLS handshake fails before any request byte is sent
    shipper = make_shipper(path, f"https://127.0.0.1:{capture.port}")
    try:
        assert ship_in_thread(shipper) == "failed"
    finally:
        shipper.close()
    status = shipper.status()
    assert "SSL" in status["last_ship_error"]
    assert status["possibly_delivered"] == 0
    assert capture.records == []


def test_grpc_deadline_bounds_a_hung_call_and_is_counted(tmp_path: Path) -> None:
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

    release = threading.Event()

    def export(request: Any, context: Any) -> Any:
        release.wait(60)  # a hung backend
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
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    path, _ids = make_backlog(tmp_path, 10)
    shipper = make_shipper(
        path, f"http://127.0.0.1:{port}", OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTEL_EXPORTER_OTLP_TIMEOUT="1000"
    )
    try:
        assert ship_in_thread(shipper) == "failed"
    finally:
        release.set()
        shipper.close()
        server.stop(0)
    status = shipper.status()
    assert status["request_timeouts"] == 1
    assert "DEADLINE_EXCEEDED" in status["last_ship_error"]
    assert status["possibly_delivered"] == len(_ids)


def test_sync_without_grpcio_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """grpcio is installed here, so its absence is simulated (``sys.modules['grpc'] = None`` makes the
    import fail): ``sync`` must exit 2 naming the fix, not retry until its timeout."""
    from auditel.cli import main as cli_main

    path, _ids = make_backlog(tmp_path, 3)
    monkeypatch.setitem(sys.modules, "grpc", None)
    monkeypatch.setenv("AUDITEL_OUTBOX", str(path))
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    code = cli_main(["sync", "--quiet", "--timeout", "2", "--endpoint", "http://127.0.0.1:4317"])
    assert code == 2
    assert "pip install 'auditel[grpc]'" in capsys.readouterr().err


def test_a_tls_handshake_trickled_byte_by_byte_is_cut_off_at_the_timeout(tmp_path: Path) -> None:
    """CPython bounds a TLS handshake as a whole by the socket timeout; this guards that, and that
    the cut-off is counted as a request timeout in which nothing was sent."""
    server = HostileServer("tls-trickle")
    path, _ids = make_backlog(tmp_path, 10)
    shipper = make_shipper(path, f"https://127.0.0.1:{server.port}", OTEL_EXPORTER_OTLP_TIMEOUT="1000")
    try:
        assert ship_in_thread(shipper) == "failed"
    finally:
        shipper.close()
        server.stop()
    status = shipper.status()
    assert status["request_timeouts"] == 1
    assert "RequestTimeout" in status["last_ship_error"]
    assert status["possibly_delivered"] == 0  # the handshake never completed: nothing was sent
