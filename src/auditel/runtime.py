"""The configured auditel of this process: settings, outbox, OTel logger and processor, worker.

``configure()`` builds it once (idempotent); every public API call goes through
``current()``, which returns ``None`` when auditel is disabled so that calls are cheap no-ops.
auditel runs its own ``LoggerProvider`` for audit records and never replaces a global
provider the application set; the ``AuditProcessor`` can also be added to the app's own
provider (``auditel.AuditProcessor``) to audit records emitted through it.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry._logs import LogRecord, NoOpLogger
from opentelemetry.sdk._logs import LoggerProvider, LogRecordLimits
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from auditel.config.instrumentation import zero_code_enabled
from auditel.config.otlp import shipping_configured
from auditel.config.settings import ConfigError, Settings
from auditel.counters import CounterPersister, Counters, ship_fields
from auditel.delivery.worker import Worker
from auditel.integrity.checkpoints import Checkpointer, install_checkpointer
from auditel.integrity.signing import Signer
from auditel.pipeline.processor import AuditProcessor, SanitizedLogRecord, take_result
from auditel.pipeline.sinks import JsonlSink
from auditel.record import schema as S
from auditel.record.content import KeyedDigester, load_or_create_digest_key
from auditel.record.ids import new_session_id
from auditel.record.safe_value import Reasons, safe_attributes, safe_value
from auditel.record.timestamps import to_unix_nano, valid_ns
from auditel.redaction.redactor import Redactor
from auditel.store.outbox import Outbox, OutboxError

if TYPE_CHECKING:
    from auditel.delivery.shipper import Shipper

_lock = threading.RLock()
_runtime: Runtime | None = None
_disabled_settings: Settings | None = None
_auto_tried = False

_UNLIMITED = LogRecordLimits(
    max_attributes=LogRecordLimits.UNSET,
    max_attribute_length=LogRecordLimits.UNSET,
    max_log_record_attributes=LogRecordLimits.UNSET,
    max_log_record_attribute_length=LogRecordLimits.UNSET,
)


def _package_version() -> str:
    from auditel._version import __version__

    return __version__


class Runtime:
    """Everything one configured auditel owns. Reach it with ``auditel.runtime.current()``."""

    def __init__(self, settings: Settings, *, sinks: Iterable[Callable[[dict[str, Any]], None]] = ()) -> None:
        self.settings = settings
        self.redactor = Redactor.from_env()  # AUDITEL_REDACT_*; raises ConfigError before any file is made
        self.counters = Counters()
        self.session_id = settings.session_id or new_session_id()
        try:
            self.outbox = Outbox(settings.outbox, durability=settings.durability, wal_autocheckpoint=False)
        except (OSError, OutboxError, Exception) as exc:  # sqlite3.Error and friends
            raise ConfigError(
                f"AUDITEL_OUTBOX={str(settings.outbox)!r} cannot be used: {type(exc).__name__}: {exc}"
                " (expected a writable file path on a local filesystem)"
            ) from exc
        self.digest_key = settings.digest_key or load_or_create_digest_key(self.outbox.path)
        self._digester = KeyedDigester(self.digest_key)
        attrs: dict[str, Any] = dict(settings.resource_attributes)
        attrs["service.name"] = settings.service_name
        if settings.environment:
            attrs[S.A_ENVIRONMENT] = settings.environment
        self.resource = Resource.create(attrs)
        self.processor = AuditProcessor(
            self.outbox,
            settings,
            counters=self.counters,
            redactor=self.redactor,
            resource=dict(self.resource.attributes),
            session_id=self.session_id,
            stream_start_extra=self._stream_start_extra,
        )
        self.provider = LoggerProvider(resource=self.resource, shutdown_on_exit=False, log_record_limits=_UNLIMITED)
        self.provider.add_log_record_processor(self.processor)
        self.logger = self._get_logger()
        self.scope = InstrumentationScope(S.SCOPE_NAME, _package_version())
        self.worker = Worker(self.counters)
        self.processor.add_waker(self.worker.wake)
        self.shipper: Shipper | None = None  # built below when an OTLP endpoint is configured
        self.sinks: list[Any] = []
        self._stream_start_hooks: list[Callable[[], dict[str, Any]]] = []
        self._shutdown_hooks: list[Callable[[float], None]] = []
        self._closed = False
        if settings.jsonl_path is not None:
            self.add_sink(JsonlSink(settings.jsonl_path))
        for sink in sinks:
            self.add_sink(sink)
        self.worker.add_task("space", self._space_task, 300.0)
        # counters and the last delivery error, kept in the outbox for other processes and the CLI
        self.counter_persister = CounterPersister(
            self.counters, self.outbox, lambda: self.processor.stream_id, lambda: ship_fields(self.shipper)
        )
        self.worker.add_task("counters", self.counter_persister.task, 5.0)
        # commits do not checkpoint the WAL (kept off the emit path); the worker does, as often as it grows
        self.worker.add_task("wal", self.outbox.wal_task, 1.0)
        if shipping_configured():  # the delivery stack (protobuf, http.client) only when it is used
            from auditel.delivery.shipper import shipper_from_env

            self.shipper = shipper_from_env(self.outbox, self.counters, self.worker)
        self.checkpointer: Checkpointer = install_checkpointer(self)
        self.signer: Signer = self.checkpointer.signer
        self.span_bridge: Any = None  # auditel.spans: GenAI spans of any instrumentation -> records
        from auditel.spans.attach import attach as attach_span_bridge  # here: spans imports the API, which imports us

        attach_span_bridge(self)  # AUDITEL_SPAN_BRIDGE (a bad value fails configure() by name)
        self.processor.start_stream()
        self.worker.start()

    # --- construction helpers ---------------------------------------------------------
    def _get_logger(self) -> Any:
        logger = self.provider.get_logger(S.SCOPE_NAME, _package_version())
        if isinstance(logger, NoOpLogger):
            # OTEL_SDK_DISABLED=true must not silently switch auditing off: AUDITEL_ENABLED does that.
            self.provider._disabled = False  # noqa: SLF001
            logger = self.provider.get_logger(S.SCOPE_NAME, _package_version())
        return logger

    def _stream_start_extra(self) -> dict[str, Any]:
        extra: dict[str, Any] = {"session.id": self.session_id}
        for hook in self._stream_start_hooks:
            extra.update(hook())
        return extra

    def add_stream_start_hook(self, fn: Callable[[], dict[str, Any]]) -> None:
        self._stream_start_hooks.append(fn)

    def add_shutdown_hook(self, fn: Callable[[float], None]) -> None:
        """``fn(deadline_monotonic)`` runs at shutdown before the stream-end marker."""
        self._shutdown_hooks.append(fn)

    def add_sink(self, sink: Any) -> None:
        fn = sink.emit if hasattr(sink, "emit") else sink
        self.sinks.append(sink)
        self.processor.add_listener(fn)

    def remove_sink(self, sink: Any) -> None:
        fn = sink.emit if hasattr(sink, "emit") else sink
        self.processor.remove_listener(fn)
        self.sinks = [s for s in self.sinks if s != sink]

    # --- recording ---------------------------------------------------------------------------
    def emit(
        self,
        event_name: str,
        attributes: Mapping[str, Any] | None = None,
        body: Any = None,
        severity: str | int | None = None,
        timestamp: Any = None,
    ) -> str | None:
        try:
            if not isinstance(event_name, str) or not event_name.strip():
                self.counters.reject("bad_event_name")
                return None
            reasons = Reasons()
            if timestamp is not None and not valid_ns(timestamp):
                timestamp = to_unix_nano(timestamp)  # seconds/ms/us/float converted; unusable refused
                if timestamp is None:
                    reasons.add("bad_timestamp")
            st = self.settings
            attrs = safe_attributes(attributes, max_value_bytes=st.max_value_bytes, reasons=reasons)
            safe_body = None if body is None else safe_value(body, max_value_bytes=st.max_value_bytes, reasons=reasons)
            sev_number = S.SEVERITIES["info"]
            if severity is not None:
                if isinstance(severity, str) and severity.lower() in S.SEVERITIES:
                    sev_number = S.SEVERITIES[severity.lower()]
                elif isinstance(severity, int) and 1 <= severity <= 24:
                    from opentelemetry._logs import SeverityNumber

                    sev_number = SeverityNumber(severity)
                else:
                    reasons.add("bad_severity")
            record = SanitizedLogRecord(
                log_record=LogRecord(
                    timestamp=timestamp,
                    severity_number=sev_number,
                    severity_text=S.SEVERITY_TEXT.get(sev_number, sev_number.name),
                    body=safe_body,
                    attributes=attrs,
                    event_name=event_name,
                ),
                resource=self.resource,
                instrumentation_scope=self.scope,
                limits=_UNLIMITED,
                reasons=reasons,
            )
            self.logger.emit(record)
            return take_result()
        except Exception as exc:  # noqa: BLE001 - never raise into the host
            self.counters.error("emit", exc)
            return None

    def digest(self, value: Any) -> tuple[str, int]:
        """Keyed digest (``hmac-sha256:<hex>``) and size in bytes of a value (see ``auditel.record.content``)."""
        return self._digester(value)

    # --- lifecycle ---------------------------------------------------------------------------
    def flush(self, timeout: float = 10.0) -> bool:
        """Records are durable at emit; this waits (bounded) for the shipper and syncs the WAL."""
        deadline = time.monotonic() + max(0.0, timeout)
        ok = True
        try:
            if self.settings.durability == "fsync":
                self.outbox.sync_barrier()
        except Exception as exc:  # noqa: BLE001
            self.counters.error("flush", exc)
            ok = False
        shipper = self.shipper
        if shipper is not None:
            try:
                ok = bool(shipper.flush(max(0.0, deadline - time.monotonic()))) and ok
            except Exception as exc:  # noqa: BLE001
                self.counters.error("flush", exc)
                ok = False
        for sink in self.sinks:
            flush = getattr(sink, "flush", None)
            if flush is not None:
                try:
                    flush()
                except Exception as exc:  # noqa: BLE001
                    self.counters.error("sink_flush", exc)
        return ok

    def shutdown(self, timeout: float = 5.0) -> None:
        if self._closed:
            return
        deadline = time.monotonic() + max(0.0, timeout)
        for hook in self._shutdown_hooks:
            try:
                hook(deadline)
            except Exception as exc:  # noqa: BLE001
                self.counters.error("shutdown_hook", exc)
        self.processor.shutdown()  # writes the stream-end marker
        self._closed = True
        if self.shipper is not None:
            try:
                self.shipper.flush(max(0.0, deadline - time.monotonic()))
            except Exception as exc:  # noqa: BLE001
                self.counters.error("shutdown_flush", exc)
        self.worker.stop(max(0.0, deadline - time.monotonic()))
        try:
            self.counter_persister.save()
        except Exception as exc:  # noqa: BLE001
            self.counters.error("counters_save", exc)
        for sink in self.sinks:
            close = getattr(sink, "close", None) or getattr(sink, "flush", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001
                    pass
        try:
            self.provider.shutdown()
        except Exception:  # noqa: BLE001
            pass

    def _space_task(self) -> float | None:
        st = self.settings
        if st.retention_days > 0:
            cutoff = time.time_ns() - int(st.retention_days * 86400 * 1e9)
            while self.outbox.prune(
                shipped_only=not st.retention_unshipped, before_ns=cutoff, reason="retention", limit=5000
            ):
                pass
        self.outbox.maintenance()
        return None

    def status(self) -> dict[str, Any]:
        return build_status(self.settings, self.outbox, self)


def build_status(settings: Settings, outbox: Outbox | None, runtime: Runtime | None) -> dict[str, Any]:
    """The status dict shared by ``auditel.status()`` and ``auditel status --json``."""
    out: dict[str, Any] = {
        "enabled": settings.enabled,
        "outbox": str(settings.outbox),
        "records_total": 0,
        "pending": 0,
        "shipped": 0,
        "dead_lettered": 0,
        "outbox_bytes": 0,
        "oldest_pending_age_s": None,
        "streams": 0,
        "checkpoints": 0,
        "session_id": runtime.session_id if runtime else None,
        "stream_id": runtime.processor.stream_id if runtime else None,
        "environment": settings.environment,
        "service_name": settings.service_name,
        "durability": settings.durability,
        "max_outbox_mb": settings.max_outbox_mb,
        "on_full": settings.on_full,
        "capture_content": settings.capture_content,
        "shipper_running": False,
        "exporter": None,
        "errors": {},
        "rejected": {},
        "sanitized": {},
        "redactions": {},
        "recorded": 0,
        "filtered": 0,
        "last_error": None,
        "span_bridge": None,  # the span bridge's counters (auditel.spans), per process
        "instrumentations": _instrumentation_coverage(),
    }
    if outbox is not None:
        try:
            stats = outbox.stats()
            out.update(
                records_total=stats.records_total,
                pending=stats.pending,
                shipped=stats.shipped,
                dead_lettered=stats.dead_lettered,
                outbox_bytes=stats.outbox_bytes,
                oldest_pending_age_s=stats.oldest_pending_age_s,
                streams=stats.streams,
                checkpoints=stats.checkpoints,
            )
        except Exception as exc:  # noqa: BLE001
            out["errors"] = {"status": 1}
            out["last_error"] = f"status: {type(exc).__name__}: {exc}"
    if runtime is not None:
        out.update(runtime.counters.snapshot())
        out["shipper_running"] = bool(runtime.worker.running and runtime.shipper is not None)
        bridge = runtime.span_bridge
        out["span_bridge"] = bridge.snapshot() if bridge is not None else None
        if runtime.shipper is not None:
            try:
                out.update(runtime.shipper.status())
            except Exception as exc:  # noqa: BLE001
                runtime.counters.error("status", exc)
    return out


def _instrumentation_coverage() -> dict[str, Any] | None:
    """Installed frameworks audited / auditable / not audited (``auditel.instrumentation.coverage``)."""
    try:
        from auditel.instrumentation import coverage

        return coverage()
    except Exception:  # noqa: BLE001 - status() never raises
        return None


# --- module-level access -----------------------------------------------------------------------
def peek() -> Runtime | None:
    """The configured runtime, if any, without configuring one."""
    return _runtime


def disabled_settings() -> Settings | None:
    """The settings of the last ``configure()`` that left auditel disabled (None otherwise)."""
    return _disabled_settings


def current() -> Runtime | None:
    """The configured runtime, configuring from the environment on first use if AUDITEL_ENABLED=true."""
    rt = _runtime
    if rt is not None or _auto_tried:
        return rt
    return _auto_configure()


def _auto_configure() -> Runtime | None:
    global _auto_tried
    with _lock:
        if _runtime is not None or _auto_tried:
            return _runtime
        _auto_tried = True
        try:
            if not zero_code_enabled():  # a typo (``ture``) raises: said below, never silent
                return None
            return configure()
        except Exception as exc:  # noqa: BLE001 - the automatic path never raises into the host
            # ...and never leaves a program that asked for auditing unaudited silently: one clear line
            detail = str(exc) if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
            _stderr_line(f"auditel: AUDITEL_ENABLED=true but auditing is NOT running: {' '.join(detail.split())}")
            return None


def configure(*, sinks: Iterable[Any] = (), **overrides: Any) -> Runtime | None:
    """Read the environment (and overrides), validate, and start auditel. Idempotent.

    Returns the runtime, or ``None`` when auditel is disabled. Raises ``ConfigError`` naming
    the variable, the value and what is accepted when a setting is invalid.
    """
    global _runtime, _disabled_settings, _auto_tried
    settings = Settings.from_env(overrides=overrides)
    with _lock:
        _auto_tried = True
        if not settings.enabled:
            old = _runtime
            _runtime = None
            _disabled_settings = settings
            if old is not None:
                old.shutdown()
            return None
        if _runtime is not None:
            if _runtime.settings == settings:
                for sink in sinks:
                    _runtime.add_sink(sink)
                return _runtime
            _runtime.shutdown()
            _runtime = None
        try:
            _runtime = Runtime(settings, sinks=sinks)
        except ConfigError:
            raise
        except Exception as exc:  # a full disk, an unreadable directory or key file...: name the path
            raise ConfigError(
                f"invalid auditel configuration:\n  AUDITEL_OUTBOX={str(settings.outbox)!r}: auditel could not start"
                f" there: {type(exc).__name__}: {exc}"
            ) from exc
        _disabled_settings = None
        return _runtime


def _stderr_line(text: str) -> None:
    import sys

    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except Exception:  # noqa: BLE001
        pass


def shutdown(timeout: float = 5.0) -> None:
    global _runtime
    with _lock:
        rt = _runtime
        _runtime = None
    if rt is not None:
        rt.shutdown(timeout)


def _reset_for_tests() -> None:
    """Shut down and forget the runtime so the next call configures afresh."""
    global _auto_tried, _disabled_settings
    shutdown(2.0)
    _auto_tried = False
    _disabled_settings = None


def _atexit() -> None:
    try:
        shutdown(5.0)
    except Exception:  # noqa: BLE001
        pass


atexit.register(_atexit)
