"""Send one encoded OTLP logs request and classify the answer (delivery-anchors §10).

``HttpTransport`` uses the standard library's ``http.client`` with one kept-alive connection per
sending thread (measured: as fast as ``urllib3`` here, and no dependency). ``GrpcTransport`` uses ``grpcio``,
imported only when ``grpc`` is the configured protocol (``pip install 'auditel[grpc]'``).

Every answer becomes an :class:`Outcome` whose ``kind`` the shipper acts on:

==============  =====================================================  ======================================
kind            caused by                                              shipper does
==============  =====================================================  ======================================
``success``     2xx / OK (a ``partial_success`` with 0 rejected is a   mark shipped
                warning)
``partial``     ``partial_success.rejected_log_records > 0``            dead-letter the batch (never retried)
``retry``       429, 502, 503, 504; gRPC CANCELLED, DEADLINE_EXCEEDED,  back off (full jitter), honour
                ABORTED, OUT_OF_RANGE, UNAVAILABLE, DATA_LOSS,          Retry-After / RetryInfo, forever
                RESOURCE_EXHAUSTED with RetryInfo
``transport``   connection refused/reset, timeout, TLS failure          back off; possibly delivered
``auth``        401, 403; gRPC UNAUTHENTICATED, PERMISSION_DENIED       pause, retry slowly
``config``      3xx (never followed, never success), 404, 405, 415;     pause, retry slowly
                gRPC UNIMPLEMENTED
``too_large``   413                                                    split the batch; one record → dead letter
``permanent``   other 4xx/5xx; other gRPC codes                         dead-letter the batch
==============  =====================================================  ======================================

Messages never contain header values or URL credentials (``scrub``).
"""

from __future__ import annotations

import email.utils
import gzip
import http.client
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse

from auditel.config.otlp import ExporterConfig
from auditel.delivery.retry import Kind

RETRY_HTTP = frozenset({429, 502, 503, 504})
AUTH_HTTP = frozenset({401, 403})
CONFIG_HTTP = frozenset({404, 405, 415})
_GRPC_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
_GRPC_RETRY = frozenset({"CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE", "DATA_LOSS"})
_GRPC_AUTH = frozenset({"UNAUTHENTICATED", "PERMISSION_DENIED"})
_GRPC_NOT_SENT = re.compile(
    r"failed to connect|connection refused|handshake|DNS resolution failed|name resolution", re.IGNORECASE
)
_BODY_SNIPPET = 300
# An OTLP answer is an ExportLogsServiceResponse (a count and a message) or a short error: a body
# larger than this is never read (a hostile or broken endpoint must not take the app's memory).
MAX_RESPONSE_BYTES = 4 * 1024 * 1024


@dataclass
class Outcome:
    kind: Kind
    status: str  # e.g. "HTTP 503", "gRPC UNAVAILABLE", "ConnectionRefusedError"
    message: str = ""
    retry_after_s: float | None = None
    rejected: int = 0
    warning: str | None = None
    # transport failures only: False when nothing can have reached the backend (connection refused,
    # TLS handshake or name resolution failed): such a batch is not counted as possibly delivered
    maybe_delivered: bool = True
    timed_out: bool = False  # the request was cut off at its deadline (a hung or trickling endpoint)

    def __post_init__(self) -> None:
        self.kind = Kind(self.kind)

    @property
    def ok(self) -> bool:
        return self.kind is Kind.SUCCESS

    def describe(self) -> str:
        text = self.status
        if self.message:
            text += f": {self.message}"
        return text


class Transport(Protocol):
    def send(self, payload: bytes, timeout_s: float | None = None) -> Outcome:
        """Send one request; ``timeout_s`` bounds the whole request (default: the configured timeout)."""
        ...

    def close(self) -> None: ...


def scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[redacted]")
    return text


def scrub_outcome(outcome: Outcome, secrets: Sequence[str]) -> Outcome:
    outcome.message = scrub(outcome.message, secrets)
    if outcome.warning:
        outcome.warning = scrub(outcome.warning, secrets)
    return outcome


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP-date); None if absent or bad."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _partial_from_proto(body: bytes) -> tuple[int, str]:
    if not body:
        return 0, ""
    response = ExportLogsServiceResponse()
    try:
        response.ParseFromString(body)
    except Exception:  # noqa: BLE001 - an unreadable 2xx body is still a 2xx
        return 0, ""
    if not response.HasField("partial_success"):
        return 0, ""
    return int(response.partial_success.rejected_log_records), response.partial_success.error_message


def _partial_from_json(body: bytes) -> tuple[int, str]:
    try:
        data = json.loads(body or b"{}")
        partial = data.get("partialSuccess") or data.get("partial_success") or {}
        rejected = partial.get("rejectedLogRecords", partial.get("rejected_log_records", 0))
        message = partial.get("errorMessage", partial.get("error_message", ""))
        return int(rejected or 0), str(message or "")
    except (ValueError, AttributeError, TypeError):
        return 0, ""


def classify_http(status: int, headers: Any, body: bytes, *, json_body: bool) -> Outcome:
    """Classify an HTTP answer. ``headers`` is an ``http.client.HTTPMessage`` or a mapping."""
    label = f"HTTP {status}"
    if 200 <= status < 300:
        rejected, message = (_partial_from_json if json_body else _partial_from_proto)(body)
        if rejected > 0:
            return Outcome(
                Kind.PARTIAL,
                label,
                f"partial_success: {rejected} rejected: {message}"[:_BODY_SNIPPET],
                rejected=rejected,
            )
        return Outcome(
            Kind.SUCCESS, label, warning=(f"partial_success warning: {message}"[:_BODY_SNIPPET] if message else None)
        )
    snippet = body[:_BODY_SNIPPET].decode("utf-8", "replace").strip() if body else ""
    if 300 <= status < 400:
        location = headers.get("Location") if headers is not None else None
        where = f" to {_display_location(location)}" if location else ""
        return Outcome(Kind.CONFIG, label, f"redirect{where} is not followed: set the final OTLP endpoint")
    if status in RETRY_HTTP:
        retry_after = parse_retry_after(headers.get("Retry-After") if headers is not None else None)
        return Outcome(Kind.RETRY, label, snippet, retry_after_s=retry_after)
    if status in AUTH_HTTP:
        return Outcome(Kind.AUTH, label, snippet or "credentials rejected: check OTEL_EXPORTER_OTLP_HEADERS")
    if status in CONFIG_HTTP:
        return Outcome(Kind.CONFIG, label, snippet or "wrong endpoint path or protocol")
    if status == 413:
        return Outcome(Kind.TOO_LARGE, label, snippet)
    return Outcome(Kind.PERMANENT, label, snippet)


def _display_location(location: str) -> str:
    from auditel.config.otlp import display_url

    return display_url(location)


def transport_outcome(exc: BaseException, *, maybe_delivered: bool = True) -> Outcome:
    """A failure with no usable answer: retried; the batch may have been delivered unless the
    failure came before any byte of the request left (``maybe_delivered=False``)."""
    name = type(exc).__name__
    text = str(exc)[:_BODY_SNIPPET]
    return Outcome(Kind.TRANSPORT, name, text, maybe_delivered=maybe_delivered)


def timeout_outcome(timeout_s: float) -> Outcome:
    return Outcome(
        Kind.TRANSPORT, "RequestTimeout", f"no complete answer within {timeout_s:g} s: request cut off", timed_out=True
    )


class _Watchdog:
    """Cuts a request off at its deadline, however the endpoint behaves.

    A socket timeout bounds each read, not the request: an endpoint answering one byte every
    few seconds (slowloris) would hold a sender for ever. One daemon thread per transport keeps the
    deadlines of the requests in progress and shuts down the socket of any request still running at
    its deadline; the blocked read or write then fails at once. Arming and disarming cost one lock
    each per request (no thread or timer per request).
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._armed: dict[int, tuple[float, socket.socket]] = {}
        self._fired: set[int] = set()
        self._next_token = 0
        self._thread: threading.Thread | None = None

    def arm(self, sock: socket.socket, deadline: float) -> int:
        with self._cond:
            self._next_token += 1
            token = self._next_token
            self._armed[token] = (deadline, sock)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="auditel-ship-watchdog", daemon=True)
                self._thread.start()
            self._cond.notify()
        return token

    def disarm(self, token: int) -> bool:
        """End the watch; True when the deadline had passed and the socket was shut down."""
        with self._cond:
            self._armed.pop(token, None)
            if token in self._fired:
                self._fired.discard(token)
                return True
            return False

    def _run(self) -> None:
        with self._cond:
            while True:
                if not self._armed:
                    self._cond.wait(30.0)
                    if not self._armed:
                        self._thread = None  # idle: end; the next arm starts a new thread
                        return
                    continue
                now = time.monotonic()
                due = [token for token, (deadline, _sock) in self._armed.items() if deadline <= now]
                for token in due:
                    _deadline, sock = self._armed.pop(token)
                    self._fired.add(token)
                    try:
                        # the plain socket's shutdown, also for TLS: the reading thread owns the SSL object
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)
                    except OSError:
                        pass
                if self._armed:
                    self._cond.wait(max(0.0, min(d for d, _s in self._armed.values()) - time.monotonic()))


class HttpTransport:
    """OTLP/HTTP (protobuf or JSON) over one kept-alive ``http.client`` connection."""

    def __init__(self, config: ExporterConfig) -> None:
        self.config = config
        parts = urlsplit(config.endpoint)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (443 if self._https else 80)
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._json = config.protocol == "http/json"
        self._secrets = config.secrets()
        self._headers = {
            "Content-Type": "application/json" if self._json else "application/x-protobuf",
            "User-Agent": _user_agent(),
        }
        if config.compression == "gzip":
            self._headers["Content-Encoding"] = "gzip"
        if parts.username:
            import base64

            token = f"{parts.username}:{parts.password or ''}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(token).decode()
            self._secrets.append(self._headers["Authorization"])
        for key, value in config.headers.items():
            self._headers[key] = value
        self._ssl = self._ssl_context() if self._https else None
        # One connection per sending thread (the shipper may have several batches in flight).
        # ``close`` bumps the generation, so a thread never reuses a connection closed under it.
        self._local = threading.local()
        self._conns: set[http.client.HTTPConnection] = set()
        self._conns_lock = threading.Lock()
        self._generation = 0
        self._watchdog = _Watchdog()

    def _ssl_context(self) -> ssl.SSLContext:
        cfg = self.config
        ctx = ssl.create_default_context(cafile=str(cfg.certificate) if cfg.certificate else None)
        if cfg.client_certificate and cfg.client_key:
            ctx.load_cert_chain(str(cfg.client_certificate), str(cfg.client_key))
        return ctx

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's kept-alive connection and whether it was used before."""
        held = getattr(self._local, "held", None)
        if held is not None and held[0] == self._generation:
            return held[1], True
        timeout = self.config.timeout_s
        if self._https:
            conn: http.client.HTTPConnection = http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=self._ssl
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        with self._conns_lock:
            self._conns.add(conn)
            self._local.held = (self._generation, conn)
        return conn, False

    def _drop_connection(self) -> None:
        """Close this thread's connection (after an error, or when the server will close it)."""
        held = getattr(self._local, "held", None)
        self._local.held = None
        if held is not None:
            with self._conns_lock:
                self._conns.discard(held[1])
            _close_quietly(held[1])

    def send(self, payload: bytes, timeout_s: float | None = None) -> Outcome:
        """POST one request; connect, send and the whole answer together take at most ``timeout_s``
        (the configured timeout by default), and at most ``MAX_RESPONSE_BYTES`` of the body is read."""
        body = gzip.compress(payload, compresslevel=6) if self.config.compression == "gzip" else payload
        budget = self.config.timeout_s if timeout_s is None else max(0.0, timeout_s)
        deadline = time.monotonic() + budget
        for _ in range(2):  # a stale kept-alive connection gets one immediate fresh try
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return timeout_outcome(budget)
            conn, reused = self._connection()
            if conn.sock is None:
                conn.timeout = remaining
                try:
                    # TCP connect is one operation, and CPython bounds a TLS handshake as a whole by
                    # the socket timeout (a deadline across its reads): both end by ``remaining``
                    conn.connect()
                except Exception as exc:  # noqa: BLE001 - refused, unreachable, TLS handshake: nothing was sent
                    self._drop_connection()
                    if isinstance(exc, TimeoutError):
                        outcome = timeout_outcome(budget)
                        outcome.maybe_delivered = False
                        return outcome
                    return self._scrubbed(transport_outcome(exc, maybe_delivered=False))
            sock = conn.sock
            sock.settimeout(max(0.001, deadline - time.monotonic()))
            token = self._watchdog.arm(sock, deadline)
            try:
                conn.request("POST", self._path, body=body, headers=self._headers)
                response = conn.getresponse()
                data = response.read(MAX_RESPONSE_BYTES + 1)
            except Exception as exc:  # noqa: BLE001 - never raised into the shipper
                cut = self._watchdog.disarm(token)
                self._drop_connection()
                if cut or isinstance(exc, TimeoutError):
                    return timeout_outcome(budget)
                if reused and isinstance(exc, (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)):
                    continue
                return self._scrubbed(transport_outcome(exc))
            if self._watchdog.disarm(token):  # the answer completed just as it was cut off: the socket is gone
                self._drop_connection()
            elif response.will_close or len(data) > MAX_RESPONSE_BYTES:
                self._drop_connection()  # an unread rest of an oversized body never reaches a next request
            outcome = classify_http(response.status, response.headers, data[:MAX_RESPONSE_BYTES], json_body=self._json)
            if len(data) > MAX_RESPONSE_BYTES:
                note = f"response body over {MAX_RESPONSE_BYTES} bytes: the rest was not read"
                outcome.warning = f"{outcome.warning}; {note}" if outcome.warning else note
            return self._scrubbed(outcome)
        return Outcome(
            Kind.TRANSPORT, "ConnectionError", "connection closed twice"
        )  # pragma: no cover - loop exits above

    def _scrubbed(self, outcome: Outcome) -> Outcome:
        return scrub_outcome(outcome, self._secrets)

    def close(self) -> None:
        """Close every thread's connection; a later ``send`` opens a new one."""
        with self._conns_lock:
            self._generation += 1
            conns, self._conns = self._conns, set()
        for conn in conns:
            _close_quietly(conn)


def _close_quietly(conn: http.client.HTTPConnection) -> None:
    try:
        conn.close()
    except OSError:
        pass


class GrpcTransport:
    """OTLP/gRPC via ``grpcio`` (optional extra ``auditel[grpc]``)."""

    def __init__(self, config: ExporterConfig) -> None:
        try:
            import grpc
        except ImportError as exc:  # pragma: no cover - depends on the environment
            from auditel.config.settings import ConfigError

            raise ConfigError(
                f"OTEL_EXPORTER_OTLP_[LOGS_]PROTOCOL='grpc' needs grpcio: pip install 'auditel[grpc]' ({exc})"
            ) from exc
        self._grpc = grpc
        self.config = config
        self._secrets = config.secrets()
        endpoint = config.endpoint
        if "://" in endpoint:
            parts = urlsplit(endpoint)
            secure = parts.scheme == "https"
            target = f"{parts.hostname}:{parts.port or (443 if secure else 80)}"
        else:
            target = endpoint
            secure = not bool(config.insecure)
        self._target = target
        self._secure = secure
        self._metadata = tuple((k.lower(), v) for k, v in config.headers.items()) + (("user-agent", _user_agent()),)
        self._compression = grpc.Compression.Gzip if config.compression == "gzip" else None
        self._channel: Any = None
        self._call: Any = None
        self._channel_lock = threading.Lock()  # several sending threads share one channel

    def _stub(self) -> Any:
        call = self._call
        if call is not None:
            return call
        with self._channel_lock:
            if self._call is not None:
                return self._call
            grpc = self._grpc
            options = [
                ("grpc.max_send_message_length", 64 * 1024 * 1024),
                ("grpc.max_receive_message_length", MAX_RESPONSE_BYTES),
                ("grpc.primary_user_agent", _user_agent()),
            ]
            if self._secure:
                cfg = self.config
                creds = grpc.ssl_channel_credentials(
                    root_certificates=cfg.certificate.read_bytes() if cfg.certificate else None,
                    private_key=cfg.client_key.read_bytes() if cfg.client_key else None,
                    certificate_chain=cfg.client_certificate.read_bytes() if cfg.client_certificate else None,
                )
                self._channel = grpc.secure_channel(self._target, creds, options=options)
            else:
                self._channel = grpc.insecure_channel(self._target, options=options)
            self._call = self._channel.unary_unary(
                _GRPC_METHOD,
                request_serializer=None,  # the payload is already serialized
                response_deserializer=ExportLogsServiceResponse.FromString,
            )
            return self._call

    def send(self, payload: bytes, timeout_s: float | None = None) -> Outcome:
        """One Export call; gRPC's deadline bounds the whole call (connect, send, answer)."""
        grpc = self._grpc
        budget = self.config.timeout_s if timeout_s is None else max(0.0, timeout_s)
        if budget <= 0:
            return timeout_outcome(budget)
        try:
            response = self._stub()(payload, timeout=budget, metadata=self._metadata, compression=self._compression)
        except grpc.RpcError as exc:
            return self._classify_error(exc)
        except Exception as exc:  # noqa: BLE001 - channel trouble, never raised into the worker
            self.close()
            return self._scrub(transport_outcome(exc))
        if response.HasField("partial_success"):
            rejected = int(response.partial_success.rejected_log_records)
            message = response.partial_success.error_message
            if rejected > 0:
                return self._scrub(
                    Outcome(
                        Kind.PARTIAL, "gRPC OK", f"partial_success: {rejected} rejected: {message}", rejected=rejected
                    )
                )
            if message:
                return self._scrub(Outcome(Kind.SUCCESS, "gRPC OK", warning=f"partial_success warning: {message}"))
        return Outcome(Kind.SUCCESS, "gRPC OK")

    def _classify_error(self, exc: Any) -> Outcome:
        code = exc.code() if hasattr(exc, "code") else None
        name = getattr(code, "name", "UNKNOWN")
        details = ""
        try:
            details = (exc.details() or "")[:_BODY_SNIPPET]
        except Exception:  # noqa: BLE001
            pass
        retry_after = _grpc_retry_delay(exc)
        label = f"gRPC {name}"
        if name in _GRPC_RETRY:
            kind = Kind.TRANSPORT if name in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED") else Kind.RETRY
            outcome = Outcome(kind, label, details, retry_after_s=retry_after)
            outcome.timed_out = name == "DEADLINE_EXCEEDED"
            # grpcio says so when no connection could be made (refused, TLS handshake, name
            # resolution): the request never left, so it is not possibly delivered
            outcome.maybe_delivered = not (name == "UNAVAILABLE" and _GRPC_NOT_SENT.search(details or ""))
        elif name == "RESOURCE_EXHAUSTED":
            outcome = (
                Outcome(Kind.RETRY, label, details, retry_after_s=retry_after)
                if retry_after is not None
                else Outcome(Kind.PERMANENT, label, details)
            )
        elif name in _GRPC_AUTH:
            outcome = Outcome(Kind.AUTH, label, details or "credentials rejected: check OTEL_EXPORTER_OTLP_HEADERS")
        elif name == "UNIMPLEMENTED":
            outcome = Outcome(
                Kind.CONFIG, label, details or "no OTLP logs service at this endpoint (wrong port or protocol?)"
            )
        else:
            outcome = Outcome(Kind.PERMANENT, label, details)
        return self._scrub(outcome)

    def _scrub(self, outcome: Outcome) -> Outcome:
        return scrub_outcome(outcome, self._secrets)

    def close(self) -> None:
        with self._channel_lock:
            channel, self._channel, self._call = self._channel, None, None
        if channel is not None:
            try:
                channel.close()
            except Exception:  # noqa: BLE001
                pass


def _grpc_retry_delay(exc: Any) -> float | None:
    """``RetryInfo.retry_delay`` from the ``grpc-status-details-bin`` trailer, in seconds."""
    try:
        trailers = exc.trailing_metadata() or ()
    except Exception:  # noqa: BLE001
        return None
    for key, value in trailers:
        if key != "grpc-status-details-bin":
            continue
        try:
            from google.rpc import error_details_pb2, status_pb2
        except ImportError:  # pragma: no cover
            return None
        status = status_pb2.Status()
        try:
            status.ParseFromString(value)
        except Exception:  # noqa: BLE001
            return None
        for detail in status.details:
            if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                detail.Unpack(info)
                return info.retry_delay.seconds + info.retry_delay.nanos / 1e9
    return None


def make_transport(config: ExporterConfig) -> Transport:
    return GrpcTransport(config) if config.protocol == "grpc" else HttpTransport(config)


def _user_agent() -> str:
    from auditel._version import __version__

    return f"auditel/{__version__}"


__all__ = [
    "Outcome",
    "Transport",
    "HttpTransport",
    "GrpcTransport",
    "classify_http",
    "parse_retry_after",
    "make_transport",
    "scrub",
]
