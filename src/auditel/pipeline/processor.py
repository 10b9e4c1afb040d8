"""``AuditProcessor``: the OTel ``LogRecordProcessor`` that makes an audit record durable.

For each log record it: filters (is it an audit event, is its kind enabled), stamps (record
id, stream, sequence, session, actor), makes the payload safe, redacts, chains (canonical
bytes -> SHA-256, previous hash), commits to the SQLite outbox, and only then returns;
afterwards it adds the record as an event on the active recording span and notifies
subscribers and the background worker. It never raises into the caller.
"""

from __future__ import annotations

import hashlib
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from opentelemetry.sdk._logs import LogRecordProcessor, ReadWriteLogRecord

from auditel.config.settings import Settings
from auditel.counters import Counters
from auditel.pipeline.bridge import add_span_event
from auditel.pipeline.capacity import CapacityPolicy, Rejected
from auditel.pipeline.streams import StreamState, start_body
from auditel.record import schema as S
from auditel.record.canonical import canonical, canonical_json
from auditel.record.ids import new_record_id
from auditel.record.safe_value import Reasons, safe_attributes, safe_value
from auditel.record.timestamps import MAX_NS, to_unix_nano
from auditel.redaction.redactor import Redactor
from auditel.store.outbox import Outbox

_tls = threading.local()

# Attributes whose values auditel generates itself: never scrubbed (they are ids, enums, numbers).
_STAMPED_KEYS = frozenset(
    {
        S.A_RECORD_ID,
        S.A_STREAM_ID,
        S.A_SEQ,
        S.A_PREV_HASH,
        S.A_SCHEMA_VERSION,
        S.A_SESSION_ID,
        S.A_OUTCOME,
        S.A_PHASE,
        S.A_DURATION_MS,
        S.A_ARGS_DIGEST,
        S.A_ARGS_SIZE,
        S.A_RESULT_DIGEST,
        S.A_RESULT_SIZE,
        S.A_CORRELATION_ID,
        S.A_POLICY_VERDICT,
        S.GEN_AI_OPERATION,
        S.GEN_AI_INPUT_TOKENS,
        S.GEN_AI_OUTPUT_TOKENS,
        # operator-configured identity: who acted and on whose behalf is the point of an audit record
        S.A_ACTOR_ID,
        S.A_ACTOR_TYPE,
        S.A_PRINCIPAL_ID,
        S.GEN_AI_AGENT_ID,
        S.GEN_AI_AGENT_NAME,
        S.A_ENVIRONMENT,
    }
)

# never replaced when an over-large record is shrunk (with every ``audit.sequence.*`` key)
_KEEP_WHOLE = frozenset({S.A_RECORD_ID, S.A_SCHEMA_VERSION})

Listener = Callable[[dict[str, Any]], None]


_SQLITE_FULL = 13  # sqlite3.SQLITE_FULL, named by the module from Python 3.11 on


class SanitizedLogRecord(ReadWriteLogRecord):
    """An SDK log record built by the auditel API from a payload it already made safe.

    Its attributes are a fresh plain dict from ``safe_attributes`` (JSON-safe values within
    ``AUDITEL_MAX_VALUE_BYTES``) that no one else holds. The stock ``ReadWriteLogRecord`` would wrap
    them in ``BoundedAttributes``, checking every value a second time and turning lists into tuples
    (about 4 us a record); this one keeps the dict, and ``AuditProcessor`` takes it without a copy.
    It is still an SDK record passed through ``Logger.emit`` to every processor of the provider.
    ``reasons``: what making the payload safe changed, counted when the record is committed.
    """

    def __init__(
        self, log_record: Any, *, resource: Any, instrumentation_scope: Any, limits: Any, reasons: Reasons
    ) -> None:
        super().__init__(
            log_record=log_record, resource=resource, instrumentation_scope=instrumentation_scope, limits=limits
        )
        self.reasons = reasons

    def __post_init__(self) -> None:
        pass


def take_result() -> str | None:
    """The record id committed by the last ``on_emit`` on this thread (None if not stored)."""
    rid = getattr(_tls, "result", None)
    _tls.result = None
    return rid


class AuditProcessor(LogRecordProcessor):
    def __init__(
        self,
        outbox: Outbox,
        settings: Settings,
        *,
        counters: Counters | None = None,
        redactor: Redactor | None = None,
        resource: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        write_back: bool = False,
        stream_start_extra: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.outbox = outbox
        self.settings = settings
        self.counters = counters or Counters()
        self.redactor = redactor or Redactor()
        self.resource = dict(resource or {})
        self.session_id = session_id
        self.write_back = write_back
        self._stream_start_extra = stream_start_extra
        self._listeners: tuple[Listener, ...] = ()
        self._wakers: tuple[Callable[[], None], ...] = ()
        self._lock = threading.Lock()
        self._closed = False
        self._events = settings.events
        self.capacity = CapacityPolicy(outbox, settings, self.counters, lambda: self._wakers)
        self._stamp = self._stamp_attributes()
        self._new_stream()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(
                before=self._before_fork, after_in_parent=self._after_fork_parent, after_in_child=self._after_fork_child
            )

    # --- wiring -------------------------------------------------------------
    def add_listener(self, fn: Listener) -> None:
        self._listeners = self._listeners + (fn,)

    def remove_listener(self, fn: Listener) -> None:
        self._listeners = tuple(x for x in self._listeners if x != fn)

    def add_waker(self, fn: Callable[[], None]) -> None:
        self._wakers = self._wakers + (fn,)

    @property
    def stream_id(self) -> str:
        return self._s.stream_id

    @property
    def sequence(self) -> int:
        return self._s.seq

    @property
    def head_hash(self) -> str | None:
        return self._s.head

    def head(self) -> tuple[str, int, str | None]:
        """A consistent ``(stream_id, last seq, its hash)`` snapshot (seq 0: nothing written yet)."""
        with self._lock:
            if self._s.forked():  # forked child before its first record: nothing written yet
                return self._s.stream_id, 0, None
            return self._s.stream_id, self._s.seq, self._s.head

    def _stamp_attributes(self) -> dict[str, Any]:
        st = self.settings
        out: dict[str, Any] = {}
        if self.session_id:
            out[S.A_SESSION_ID] = self.session_id
        if st.environment:
            out[S.A_ENVIRONMENT] = st.environment
        if st.agent_id:
            out[S.A_ACTOR_ID] = st.agent_id
            out[S.GEN_AI_AGENT_ID] = st.agent_id
        if st.agent_name:
            out[S.GEN_AI_AGENT_NAME] = st.agent_name
            out.setdefault(S.A_ACTOR_ID, st.agent_name)
        if st.agent_id or st.agent_name:
            out[S.A_ACTOR_TYPE] = "agent"
        if st.principal:
            out[S.A_PRINCIPAL_ID] = st.principal
        return out

    def set_identity(self, **attrs: Any) -> None:
        """Attributes stamped on every later record (agent identity, principal, session)."""
        stamp = dict(self._stamp)
        for k, v in attrs.items():
            if v is None:
                stamp.pop(k, None)
            else:
                stamp[k] = v
        self._stamp = stamp

    # --- streams and fork ---------------------------------------------------------
    def _new_stream(self) -> None:
        self._s = StreamState()
        self._pending_notify: list[dict[str, Any]] = []

    def _ensure_stream(self) -> None:
        """Called with the lock held: register the stream and write its start record once."""
        state = self._s
        if state.registered:
            return
        state.registered = True
        resource = dict(self.resource)
        resource["process.pid"] = state.pid
        self.outbox.register_stream(state.stream_id, resource, pid=state.pid, host=socket.gethostname())
        body = start_body(state, self.settings, self.redactor, resource, self.counters, self._stream_start_extra)
        start = self._commit_locked(S.EV_STREAM_START, {}, body, severity=9, sev_text="INFO", time_ns=time.time_ns())
        self._pending_notify.append(start)

    def start_stream(self) -> None:
        """Write this process's stream-start record now (otherwise it is written before the first record)."""
        with self._lock:
            if self._s.forked():
                self._new_stream()
            self._ensure_stream()
        if self._pending_notify:
            self._drain_pending()

    def _before_fork(self) -> None:
        self._lock.acquire()

    def _after_fork_parent(self) -> None:
        self._lock.release()

    def _after_fork_child(self) -> None:
        self._lock = threading.Lock()
        self._new_stream()

    # --- LogRecordProcessor -------------------------------------------------------
    def on_emit(self, log_record: Any) -> None:  # ReadWriteLogRecord
        if getattr(_tls, "busy", False):
            return  # re-entry from our own internals (e.g. a logging handler): never recurse
        _tls.busy = True
        _tls.result = None
        try:
            lr = log_record.log_record
            name = lr.event_name
            scope = log_record.instrumentation_scope
            attrs = lr.attributes
            ours = scope is not None and scope.name == S.SCOPE_NAME
            if not name:
                if not (ours or (attrs and S.A_ACTION in attrs)):
                    return
                name = S.EV_ACTION
            elif not (ours or name.startswith(S.EVENT_PREFIX) or (attrs and S.A_ACTION in attrs)):
                return
            if self._events is not None and name not in S.INTEGRITY_EVENTS:
                if S.event_kind(name) not in self._events:
                    self.counters.filtered += 1
                    return
            if self._closed:
                self.counters.reject("after_shutdown")
                return
            self._record(log_record, lr, name, scope)
        except Rejected as exc:
            self.counters.reject(str(exc))
        except sqlite3.OperationalError as exc:
            if getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL:
                self.counters.reject("disk_full")  # a record lost to a full disk is a rejection, with its reason
            else:
                self.counters.error("processor", exc)
        except Exception as exc:  # noqa: BLE001 - never raise into the host
            self.counters.error("processor", exc)
        finally:
            _tls.busy = False

    def _record(self, log_record: Any, lr: Any, name: str, scope: Any) -> None:
        if type(log_record) is SanitizedLogRecord:
            reasons = log_record.reasons
            attrs = lr.attributes  # made by safe_attributes for this record alone: no copy needed
            body = lr.body
        else:
            st = self.settings
            reasons = Reasons()
            attrs = safe_attributes(lr.attributes, max_value_bytes=st.max_value_bytes, reasons=reasons)
            body = (
                safe_value(lr.body, max_value_bytes=st.max_value_bytes, reasons=reasons)
                if lr.body is not None
                else None
            )
        if reasons:
            self.counters.merge("sanitized", reasons)

        record_id = attrs.get(S.A_RECORD_ID)
        if type(record_id) is not str or not (8 <= len(record_id) <= 64):
            record_id = new_record_id()
        for key, val in self._stamp.items():
            attrs.setdefault(key, val)
        attrs[S.A_RECORD_ID] = record_id
        attrs[S.A_SCHEMA_VERSION] = S.SCHEMA_VERSION
        for key in (S.A_STREAM_ID, S.A_SEQ, S.A_PREV_HASH):
            attrs.pop(key, None)  # only the chain may set these

        counts: dict[str, int] = {}
        attrs = self.redactor.redact_attributes(attrs, counts, skip=_STAMPED_KEYS)
        if body is not None:
            body = self.redactor.redact(body, counts)
        if counts:
            self.counters.merge("redactions", counts)

        sev = lr.severity_number.value if lr.severity_number is not None else 9
        time_ns = lr.timestamp
        observed = lr.observed_timestamp
        # only ever an int is stored (a float or "True" there would be unshippable); see record.timestamps
        if type(observed) is not int or not 0 < observed <= MAX_NS:
            observed = self._time_of(observed) or time.time_ns()
        if type(time_ns) is not int or not 0 < time_ns <= MAX_NS:
            time_ns = self._time_of(time_ns) or observed
        record: dict[str, Any] = {
            "event_name": name,
            "time_unix_nano": str(time_ns),
            "observed_time_unix_nano": str(observed),
            "severity_number": sev,
            "severity_text": lr.severity_text or "",
            "attributes": attrs,
        }
        if body is not None:
            record["body"] = body
        if lr.trace_id:
            record["trace_id"] = format(lr.trace_id, "032x")
            record["span_id"] = format(lr.span_id or 0, "016x")
            record["trace_flags"] = int(lr.trace_flags or 0)
        if scope is not None and scope.name != S.SCOPE_NAME:
            record["scope"] = {"name": scope.name, "version": scope.version or ""}

        self.capacity.admit()  # may wait (AUDITEL_ON_FULL=block) or raise Rejected: never under the stream lock
        stored = self._commit(record, name, time_ns, simple=not reasons.general)
        _tls.result = record_id
        self.counters.recorded += 1

        if self.write_back:
            lr.attributes = stored["attributes"]
            if "body" in stored:
                lr.body = stored["body"]
        if lr.trace_id:  # no trace id: no span is active (a recording span always has one)
            add_span_event(self.counters, name, stored, time_ns)
        if self._pending_notify:
            self._drain_pending()
        self._notify(stored)

    def _time_of(self, value: Any) -> int | None:
        """A timestamp that is not already int nanoseconds: converted, or refused (None, counted)."""
        if value is None or (type(value) is int and value == 0):
            return None  # not given (OTel's 0 means unknown)
        ns = to_unix_nano(value)
        if ns is None:
            self.counters.merge("sanitized", {"bad_timestamp": 1})
        return ns

    def _commit(self, record: dict[str, Any], name: str, time_ns: int, *, simple: bool = False) -> dict[str, Any]:
        with self._lock:
            if self._s.forked():  # forked without the at-fork hook (e.g. os.fork from C)
                self._new_stream()
            if self._s.ended:  # another thread wrote the end marker while we waited for the lock
                raise Rejected("after_shutdown")
            self._ensure_stream()
            return self._chain_and_append(record, name, time_ns, simple=simple)

    def _commit_locked(
        self, name: str, attrs: dict[str, Any], body: Any, *, severity: int, sev_text: str, time_ns: int
    ) -> dict[str, Any]:
        attrs = dict(attrs)
        for key, val in self._stamp.items():
            attrs.setdefault(key, val)
        attrs[S.A_RECORD_ID] = new_record_id()
        attrs[S.A_SCHEMA_VERSION] = S.SCHEMA_VERSION
        record: dict[str, Any] = {
            "event_name": name,
            "time_unix_nano": str(time_ns),
            "observed_time_unix_nano": str(time_ns),
            "severity_number": severity,
            "severity_text": sev_text,
            "attributes": attrs,
        }
        if body is not None:
            record["body"] = body
        return self._chain_and_append(record, name, time_ns)

    def _chain_and_append(
        self, record: dict[str, Any], name: str, time_ns: int, *, simple: bool = False
    ) -> dict[str, Any]:
        """Assign seq and prev_hash, hash the canonical text, commit. ``simple``: see ``Reasons.general``."""
        attrs = record["attributes"]
        state = self._s
        seq = state.seq + 1
        attrs[S.A_STREAM_ID] = state.stream_id
        attrs[S.A_SEQ] = seq
        if state.head is not None:
            attrs[S.A_PREV_HASH] = state.head
        data = canonical_json(record, simple=True) if simple else canonical(record)
        if len(data) > self.settings.max_record_bytes:
            data = self._shrink(record)
        digest = hashlib.sha256(data.encode("utf-8")).hexdigest()
        self.outbox.append(attrs[S.A_RECORD_ID], state.stream_id, seq, time_ns, name, data, digest)
        state.seq = seq
        state.head = digest
        record["hash"] = digest
        return record

    def _shrink(self, record: dict[str, Any]) -> str:
        """Keep an over-large record in a safe form: drop the body, then the largest attributes.

        Linear: each attribute is canonicalised once to learn its size, and the record's size is
        then updated by difference (in JCS a member's text adds exactly its own length), so the
        whole record is canonicalised at most three times whatever the number of attributes.
        """
        self.counters.merge("sanitized", {"record_too_large": 1})
        limit = self.settings.max_record_bytes
        if "body" in record:
            size = len(canonical_json(record["body"]) if not isinstance(record["body"], str) else record["body"])
            record["body"] = f"[omitted: body of {size} bytes exceeds AUDITEL_MAX_RECORD_BYTES]"
        data = canonical(record)
        if len(data) <= limit:
            return data
        attrs = record["attributes"]
        sizes = {
            k: len(canonical(v))
            for k, v in attrs.items()
            if k not in _KEEP_WHOLE and not k.startswith("audit.sequence")
        }
        total = len(data)
        replaced: list[str] = []
        for key in sorted(sizes, key=lambda k: -sizes[k]):
            note = f"[omitted: value of {sizes[key]} bytes exceeds AUDITEL_MAX_RECORD_BYTES]"
            attrs[key] = note
            replaced.append(key)
            total += len(note) + 2 - sizes[key]  # the note is ASCII without escapes: its JSON adds the quotes
            if total <= limit:
                break
        data = canonical(record)
        if len(data) > limit:  # so many attributes that even their names are too much: leave them out
            for key in replaced:
                del attrs[key]
            attrs["audit.record.omitted_attributes"] = len(replaced)
            data = canonical(record)
        return data

    # --- after commit ----------------------------------------------------------------
    def _drain_pending(self) -> None:
        pending, self._pending_notify = self._pending_notify, []
        for item in pending:
            self._notify(item)

    def _notify(self, stored: dict[str, Any]) -> None:
        for wake in self._wakers:
            try:
                wake()
            except Exception as exc:  # noqa: BLE001
                self.counters.error("wake", exc)
        for listener in self._listeners:
            try:
                listener(stored)
            except Exception as exc:  # noqa: BLE001 - a failing subscriber is isolated and counted
                self.counters.error("subscriber", exc)

    # --- lifecycle --------------------------------------------------------------------------
    def end_stream(self) -> None:
        """Write the stream-end marker (clean shutdown). Idempotent; later records are rejected."""
        with self._lock:
            if self._closed or self._s.ended or not self._s.registered or self._s.forked():
                return
            self._s.ended = True
            try:
                attrs = {S.A_SEQ_END: True}
                stored = self._commit_locked(
                    S.EV_STREAM_END, attrs, None, severity=9, sev_text="INFO", time_ns=time.time_ns()
                )
                self.outbox.end_stream(self._s.stream_id)
            except Exception as exc:  # noqa: BLE001
                self.counters.error("stream_end", exc)
                return
        self._notify(stored)

    def append_internal(self, name: str, attrs: dict[str, Any], body: Any) -> dict[str, Any] | None:
        """Commit a record produced by auditel itself (checkpoints, heartbeats) into the stream.

        After the end marker only ``auditel.checkpoint`` records are accepted: the final
        checkpoint must cover the end marker, so it is written after it.
        """
        with self._lock:
            if self._closed:
                return None
            if self._s.forked():
                self._new_stream()
            if self._s.ended and name != S.EV_CHECKPOINT:
                return None
            self._ensure_stream()
            stored = self._commit_locked(name, attrs, body, severity=9, sev_text="INFO", time_ns=time.time_ns())
        if self._pending_notify:
            self._drain_pending()
        self._notify(stored)
        return stored

    def shutdown(self) -> None:
        if self._closed:
            return
        self.end_stream()
        self._closed = True

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # every record is committed before on_emit returns
