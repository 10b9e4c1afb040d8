"""Test harness: a real OTLP collector (rotel) and an OTLP capture server behind it.

* ``RotelCollector``: starts the ``rotel-agent`` binary shipped by the ``rotel`` package on
  free loopback ports (OTLP/gRPC and OTLP/HTTP receivers) and exports everything it
  receives over OTLP/HTTP to a downstream endpoint (normally a ``CaptureServer``).
* ``CaptureServer``: a small OTLP/HTTP logs receiver that decodes and keeps what it is sent,
  so tests can assert on what arrived through the real collector. It can also inject faults
  (status codes, Retry-After, partial_success, slow answers, connection resets); that use is
  a test double for faults a real collector cannot produce on demand.

Nothing here listens beyond 127.0.0.1.
"""

from __future__ import annotations

import gzip
import http.server
import os
import socket
import socketserver
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def _any_value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_any_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _any_value(kv.value) for kv in v.kvlist_value.values}
    return getattr(v, kind)


@dataclass
class ReceivedRecord:
    """One log record as the capture server received it, flattened for assertions."""

    event_name: str
    attributes: dict[str, Any]
    body: Any
    resource: dict[str, Any]
    scope: str
    time_unix_nano: int
    severity_number: int
    trace_id: bytes
    span_id: bytes

    @property
    def record_id(self) -> str | None:
        return self.attributes.get("audit.record.id")


@dataclass
class Fault:
    """What the capture server does with one request (a test double for backend faults)."""

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None
    rejected_log_records: int = 0  # partial_success
    error_message: str = ""
    delay_s: float = 0.0
    reset: bool = False  # close the connection without answering
    accept: bool = True  # keep the records as received (even if answering an error)


class CaptureServer:
    """OTLP/HTTP logs receiver on 127.0.0.1 that keeps every record it accepts."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.records: list[ReceivedRecord] = []
        self.raw_requests: list[bytes] = []  # the (decompressed) bodies of accepted /v1/logs requests
        self.requests = 0
        self.request_headers: list[dict[str, str]] = []
        self._faults: list[Fault] = []
        self.fault_fn: Callable[[int], Fault | None] | None = None
        # reject (400, nothing kept) any request holding a record this returns True for
        self.reject_record: Callable[[ReceivedRecord], bool] | None = None
        self.reject_status = 400
        self.reject_body = b"record refused by test"
        self._lock = threading.Lock()
        self._server: socketserver.ThreadingTCPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def push_faults(self, *faults: Fault) -> None:
        """Answer the next requests with these faults, in order, then normally."""
        with self._lock:
            self._faults.extend(faults)

    def record_ids(self) -> list[str]:
        with self._lock:
            return [r.record_id for r in self.records if r.record_id]

    def id_counts(self) -> Counter[str]:
        return Counter(self.record_ids())

    def wait_for(self, n: int, timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(set(self.record_ids())) >= n:
                return True
            time.sleep(0.05)
        return False

    def _next_fault(self) -> Fault | None:
        with self._lock:
            self.requests += 1
            n = self.requests
            if self._faults:
                return self._faults.pop(0)
        return self.fault_fn(n) if self.fault_fn else None

    def _decode(self, data: bytes) -> list[ReceivedRecord]:
        req = ExportLogsServiceRequest()
        req.ParseFromString(data)
        out = []
        for rl in req.resource_logs:
            resource = {kv.key: _any_value(kv.value) for kv in rl.resource.attributes}
            for sl in rl.scope_logs:
                for lr in sl.log_records:
                    out.append(
                        ReceivedRecord(
                            event_name=lr.event_name,
                            attributes={kv.key: _any_value(kv.value) for kv in lr.attributes},
                            body=_any_value(lr.body) if lr.HasField("body") else None,
                            resource=resource,
                            scope=sl.scope.name,
                            time_unix_nano=lr.time_unix_nano,
                            severity_number=lr.severity_number,
                            trace_id=lr.trace_id,
                            span_id=lr.span_id,
                        )
                    )
        return out

    def start(self) -> "CaptureServer":
        capture = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", "0"))
                data = self.rfile.read(length)
                if self.headers.get("Content-Encoding") == "gzip":
                    data = gzip.decompress(data)
                fault = capture._next_fault() or Fault()
                with capture._lock:
                    capture.request_headers.append({k.lower(): v for k, v in self.headers.items()})
                if fault.delay_s:
                    time.sleep(fault.delay_s)
                if fault.reset:
                    try:
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                    except OSError:
                        pass
                    self.close_connection = True  # otherwise the handler waits for a next request
                    self.connection.close()
                    return
                if fault.accept and 200 <= fault.status < 300:
                    records = capture._decode(data) if self.path.endswith("/v1/logs") else []
                    if capture.reject_record is not None and any(capture.reject_record(r) for r in records):
                        fault = Fault(status=capture.reject_status, body=capture.reject_body, accept=False)
                        records = []
                    with capture._lock:
                        capture.records.extend(records)
                        if records:
                            capture.raw_requests.append(data)
                resp = ExportLogsServiceResponse()
                if fault.rejected_log_records:
                    resp.partial_success.rejected_log_records = fault.rejected_log_records
                    resp.partial_success.error_message = fault.error_message or "rejected by test"
                body = fault.body if fault.body is not None else (resp.SerializeToString() if fault.status < 300 else b"")
                self.send_response(fault.status)
                self.send_header("Content-Type", "application/x-protobuf")
                for k, v in fault.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True

        self._server = Server(("127.0.0.1", self.port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "CaptureServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def rotel_binary() -> Path:
    import rotel

    path = Path(rotel.__file__).parent / "rotel-agent"
    if not path.exists():
        raise FileNotFoundError(f"rotel-agent binary not found at {path}: pip install rotel")
    if not os.access(path, os.X_OK):
        os.chmod(path, 0o755)
    return path


class RotelCollector:
    """A real OTLP collector (rotel) on loopback, forwarding logs over OTLP/HTTP to ``export_to``."""

    def __init__(
        self,
        export_to: str,
        *,
        grpc_port: int | None = None,
        http_port: int | None = None,
        export_protocol: str = "http",
        log_path: Path | None = None,
        exporter: str = "otlp",
    ) -> None:
        self.grpc_port = grpc_port or free_port()
        self.http_port = http_port or free_port()
        self.export_to = export_to
        self.export_protocol = export_protocol
        self.log_path = log_path
        self.exporter = exporter
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def http_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    def start(self) -> "RotelCollector":
        args = [
            str(rotel_binary()),
            "start",
            "--otlp-grpc-endpoint",
            f"127.0.0.1:{self.grpc_port}",
            "--otlp-http-endpoint",
            f"127.0.0.1:{self.http_port}",
            "--logs-batch-timeout",
            "50ms",
        ]
        if self.exporter == "otlp":
            args += [
                "--exporter",
                "otlp",
                "--otlp-exporter-endpoint",
                self.export_to,
                "--otlp-exporter-protocol",
                self.export_protocol,
                "--otlp-exporter-retry-max-elapsed-time",
                "3600s",
            ]
        else:
            args += ["--exporter", self.exporter]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ROTEL_", "OTEL_"))}
        out = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL
        self._proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_port(self.http_port)
            wait_port(self.grpc_port)
        except TimeoutError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)

    def __enter__(self) -> "RotelCollector":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
