"""Stored records (canonical JSON text) → an OTLP ``ExportLogsServiceRequest``.

This is the shipper's hot loop, so it fills the official ``opentelemetry-proto`` messages in
place (``add()`` and field assignment: about 3× faster with the upb backend than building
messages with keyword constructors and appending them). Records are grouped by the resource of
their stream (``streams.resource``, as recorded at emit time) and by instrumentation scope
(absent in the stored record = auditel's own scope). Conversions back from the stored form:
nanosecond timestamps stored as decimal strings become integers, ``{"$bytes": "<b64>"}``
becomes ``bytes_value``, ``trace_id``/``span_id`` hex become bytes.

``encode_json`` produces the OTLP/JSON form of the same request (``http/json``).
"""

from __future__ import annotations

import base64
import json
import struct
import time
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from auditel.record import schema as S

try:  # orjson parses the stored JSON 3-5x faster when it is installed; the result is identical
    from orjson import loads as _loads
except ImportError:  # pragma: no cover - depends on the environment
    _loads = json.loads  # type: ignore[assignment]
_b64decode = base64.b64decode

# (rid, stream_id, data) as claimed from the outbox
StoredRow = tuple[int, str, str]
ScopeKey = tuple[str, str]


def _scope_version() -> str:
    from auditel._version import __version__

    return __version__


def set_any_value(target: Any, value: Any) -> None:
    """Fill an ``AnyValue`` message from a stored (JSON-safe) value."""
    t = type(value)
    if t is str:
        target.string_value = value
    elif t is bool:
        target.bool_value = value
    elif t is int:
        target.int_value = value
    elif t is float:
        target.double_value = value
    elif t is dict:
        if len(value) == 1 and type(value.get("$bytes")) is str:
            target.bytes_value = _b64decode(value["$bytes"])
            return
        target.kvlist_value.SetInParent()  # an empty map is still a map
        kvs = target.kvlist_value.values
        for key, item in value.items():
            kv = kvs.add()
            kv.key = key
            if item is not None:
                set_any_value(kv.value, item)
    elif t is list:
        target.array_value.SetInParent()  # an empty list is still a list
        arr = target.array_value.values
        for item in value:
            if item is None:
                arr.add()
            else:
                set_any_value(arr.add(), item)
    elif value is None:
        return
    else:  # not produced by safe_value; keep something readable rather than fail the batch
        target.string_value = str(value)


def _group(rows: Sequence[StoredRow]) -> dict[str, dict[ScopeKey, list[dict[str, Any]]]]:
    """stream_id → scope → parsed records, in claim order."""
    streams: dict[str, dict[ScopeKey, list[dict[str, Any]]]] = {}
    own: ScopeKey = (S.SCOPE_NAME, _scope_version())
    for _rid, stream_id, data in rows:
        record = _loads(data)
        scope = record.get("scope")
        key = own if scope is None else (str(scope.get("name", "")), str(scope.get("version", "")))
        by_scope = streams.get(stream_id)
        if by_scope is None:
            by_scope = streams[stream_id] = {}
        bucket = by_scope.get(key)
        if bucket is None:
            bucket = by_scope[key] = []
        bucket.append(record)
    return streams


def build_request(rows: Sequence[StoredRow], resources: Mapping[str, Mapping[str, Any]]) -> ExportLogsServiceRequest:
    request = ExportLogsServiceRequest()
    set_any = set_any_value
    for stream_id, by_scope in _group(rows).items():
        resource_logs = request.resource_logs.add()
        resource_attrs = resource_logs.resource.attributes
        for key, value in (resources.get(stream_id) or {}).items():
            kv = resource_attrs.add()
            kv.key = key
            if value is not None:
                set_any(kv.value, value)
        for (scope_name, scope_version), records in by_scope.items():
            scope_logs = resource_logs.scope_logs.add()
            scope_logs.scope.name = scope_name
            if scope_version:
                scope_logs.scope.version = scope_version
            log_records = scope_logs.log_records
            for record in records:
                lr = log_records.add()
                lr.time_unix_nano = nanos(record["time_unix_nano"])
                observed = record.get("observed_time_unix_nano")
                if observed is not None:
                    lr.observed_time_unix_nano = nanos(observed)
                lr.severity_number = record.get("severity_number") or 0
                text = record.get("severity_text")
                if text:
                    lr.severity_text = text
                lr.event_name = record.get("event_name") or ""
                if "body" in record and record["body"] is not None:
                    set_any(lr.body, record["body"])
                attrs = lr.attributes
                for key, value in record["attributes"].items():
                    kv = attrs.add()
                    kv.key = key
                    t = type(value)
                    if t is str:
                        kv.value.string_value = value
                    elif t is int:
                        kv.value.int_value = value
                    elif value is not None:
                        set_any(kv.value, value)
                trace_id = record.get("trace_id")
                if trace_id:
                    lr.trace_id = bytes.fromhex(trace_id)
                    span_id = record.get("span_id")
                    if span_id:
                        lr.span_id = bytes.fromhex(span_id)
                    lr.flags = int(record.get("trace_flags") or 0)
    return request


def encode_protobuf_messages(rows: Sequence[StoredRow], resources: Mapping[str, Mapping[str, Any]]) -> bytes:
    """The serialized request built through the official proto message classes (the reference form)."""
    return build_request(rows, resources).SerializeToString()


# --- direct wire encoding -------------------------------------------------------------------------
# The same ExportLogsServiceRequest written straight in the protobuf wire format, field numbers
# from opentelemetry-proto (logs/v1, common/v1). Most attribute pairs repeat from record to record
# (session, stream, action, tool, agent...), so each encoded KeyValue is cached by (key, value).
# tests/test_otlp_wire.py checks byte-for-byte equality with the message-class encoding.
_pack_d = struct.Struct("<d").pack
_pack_q = struct.Struct("<Q").pack
_pack_i = struct.Struct("<I").pack
_KV_CACHE_MAX = 4096  # distinct attribute keys kept in the cache
_CACHEABLE_MAX = 256  # strings longer than this are rarely repeated: not cached


_SMALL_VARINTS = [bytes((i,)) for i in range(128)]
# Encoding a batch is pure Python: it would keep the GIL for its whole switch interval (5 ms) each
# time another thread asks for it, stalling the sender threads' socket and SQLite work and the app's
# own threads. It gives the GIL away every 32 records instead (about 0.3 ms of work).
_YIELD_MASK = 31
_sleep = time.sleep


def _varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL_VARINTS[n]
    if n < 0x4000:  # sequence numbers, sizes, lengths: mostly two or three bytes
        return bytes((n & 0x7F | 0x80, n >> 7))
    if n < 0x200000:
        return bytes((n & 0x7F | 0x80, (n >> 7) & 0x7F | 0x80, n >> 14))
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _ld(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field."""
    return tag + _varint(len(payload)) + payload


def _any_value(value: Any) -> bytes:
    """An AnyValue message body."""
    t = type(value)
    if t is str:
        return _ld(b"\x0a", value.encode("utf-8"))
    if t is bool:
        return b"\x10\x01" if value else b"\x10\x00"
    if t is int:
        return b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)
    if t is float:
        return b"\x21" + _pack_d(value)
    if t is dict:
        if len(value) == 1 and type(value.get("$bytes")) is str:
            return _ld(b"\x3a", _b64decode(value["$bytes"]))
        return _ld(b"\x32", b"".join(_ld(b"\x0a", _key_value(k, v)) for k, v in value.items()))
    if t is list:
        return _ld(b"\x2a", b"".join(_ld(b"\x0a", b"" if v is None else _any_value(v)) for v in value))
    if value is None:
        return b""
    return _ld(b"\x0a", str(value).encode("utf-8"))


def _key_value(key: str, value: Any) -> bytes:
    """A KeyValue message body."""
    # proto3 leaves an empty (default) string field out of the wire form
    head = _ld(b"\x0a", key.encode("utf-8")) if key else b""
    return head + (b"" if value is None else _ld(b"\x12", _any_value(value)))


# Attributes whose value is new on every record: caching them would only churn the cache.
_UNIQUE_KEYS = frozenset(
    {
        S.A_RECORD_ID,
        S.A_SEQ,
        S.A_PREV_HASH,
        S.A_CORRELATION_ID,
        S.A_ARGS_DIGEST,
        S.A_RESULT_DIGEST,
        S.A_DURATION_MS,
        S.GEN_AI_TOOL_CALL_ID,
        S.GEN_AI_RESPONSE_ID,
    }
)
# Encoded ``attributes`` fields of pairs that repeat, by key then value: strings (looked up first,
# in ``_log_record``'s loop) and integers apart, so that True and 1 (equal as dict keys) never meet.
_STR_CACHE: dict[str, dict[str, bytes]] = {}
_INT_CACHE: dict[str, dict[int, bytes]] = {}
# For values that do not repeat: the field's bytes before the value's own bytes (tag, lengths, key),
# by (key, value type, length of the value's bytes). The value's bytes always come last.
_PREFIX: dict[tuple[str, type, int], bytes] = {}
_INT64_MASK = 0xFFFFFFFFFFFFFFFF


def _cached(cache: dict[str, dict[Any, bytes]], key: str, value: Any) -> bytes:
    per_key = cache.get(key)
    if per_key is None:
        if len(cache) >= _KV_CACHE_MAX:
            cache.clear()
        per_key = cache[key] = {}
    hit = per_key.get(value)
    if hit is None:
        if len(per_key) >= 1024:
            per_key.clear()
        hit = per_key[value] = _fresh_attribute(key, value)
    return hit


def _fresh_attribute(key: str, value: Any) -> bytes:
    """A complete ``attributes`` field, built around the value's bytes with a cached prefix."""
    t = type(value)
    if t is str:
        raw = value.encode("utf-8")
    elif t is int:
        raw = _varint(value & _INT64_MASK)
    elif t is float:
        raw = _pack_d(value)
    else:  # bool, list, map, bytes, None: rare enough to build in full
        return _ld(b"\x32", _key_value(key, value))
    shape = (key, t, len(raw))
    prefix = _PREFIX.get(shape)
    if prefix is None:
        full = _ld(b"\x32", _key_value(key, value))
        if len(_PREFIX) >= _KV_CACHE_MAX:
            _PREFIX.clear()
        prefix = _PREFIX[shape] = full[: len(full) - len(raw)]
    return prefix + raw


def _attribute(key: str, value: Any) -> bytes:
    """A complete ``attributes`` field (tag, length, KeyValue), cached for repeating pairs."""
    if key not in _UNIQUE_KEYS:
        t = type(value)
        if t is str and len(value) <= _CACHEABLE_MAX:
            return _cached(_STR_CACHE, key, value)
        if t is int:
            return _cached(_INT_CACHE, key, value)
    return _fresh_attribute(key, value)


# Fields that take few values (severity number and text, event name): (tag, value) → encoded field.
_FIELD_CACHE: dict[tuple[bytes, Any], bytes] = {}
# b"\x12" + varint(n): the head of a LogRecord field of n bytes, by n.
_RECORD_HEAD: dict[int, bytes] = {}


def _small_field(tag: bytes, value: Any) -> bytes:
    """A severity number (varint) or a short text field, cached: these repeat on every record."""
    key = (tag, value)
    hit = _FIELD_CACHE.get(key)
    if hit is None:
        if len(_FIELD_CACHE) >= _KV_CACHE_MAX:
            _FIELD_CACHE.clear()
        hit = _FIELD_CACHE[key] = tag + _varint(value) if type(value) is int else _ld(tag, value.encode("utf-8"))
    return hit


def _record_head(size: int) -> bytes:
    head = _RECORD_HEAD.get(size)
    if head is None:
        if len(_RECORD_HEAD) >= _KV_CACHE_MAX:
            _RECORD_HEAD.clear()
        head = _RECORD_HEAD[size] = b"\x12" + _varint(size)
    return head


def nanos(value: Any) -> int:
    """A stored nanosecond timestamp (decimal string or int) as an int; anything else raises
    ``ValueError`` (``"1.5e+18"``, ``"True"``, a bool, a negative or >64-bit value): the shipper then
    isolates the record as a dead letter instead of sending a time the backend would misread."""
    t = type(value)
    if t is str and value.isascii() and value.isdigit():
        n = int(value)
    elif t is int:
        n = value
    else:
        raise ValueError(f"timestamp {str(value)[:40]!r} is not a non-negative integer of nanoseconds")
    if n < 0 or n >= 1 << 64:
        raise ValueError(f"timestamp {n} is outside the unsigned 64-bit range of nanoseconds")
    return n


def _log_record(record: dict[str, Any]) -> bytes:
    time_ns = nanos(record["time_unix_nano"])
    parts = [b"\x09" + _pack_q(time_ns)] if time_ns else []
    sev = record.get("severity_number") or 0
    if sev:
        parts.append(_small_field(b"\x10", sev) if type(sev) is int else b"\x10" + _varint(sev))
    text = record.get("severity_text")
    if text:
        parts.append(_small_field(b"\x1a", text))
    body = record.get("body")
    if body is not None:
        parts.append(_ld(b"\x2a", _any_value(body)))
    append = parts.append
    str_cache = _STR_CACHE.get
    int_cache = _INT_CACHE.get
    prefix_of = _PREFIX.get
    for key, value in record["attributes"].items():
        t = type(value)
        if key in _UNIQUE_KEYS:  # ids, hashes, digests, sequence numbers: cached prefix + the value's bytes
            if t is str or t is int or t is float:
                raw = (
                    value.encode("utf-8") if t is str else _varint(value & _INT64_MASK) if t is int else _pack_d(value)
                )
                prefix = prefix_of((key, t, len(raw)))
                if prefix is not None:
                    append(prefix + raw)
                    continue
        elif t is str or t is int:  # pairs that repeat: the whole encoded field, cached
            cache = str_cache(key) if t is str else int_cache(key)
            if cache is not None:
                hit = cache.get(value)
                if hit is not None:
                    append(hit)
                    continue
        append(_attribute(key, value))
    trace_id = record.get("trace_id")
    if trace_id:
        flags = int(record.get("trace_flags") or 0)
        if flags:
            parts.append(b"\x45" + _pack_i(flags))
        parts.append(_ld(b"\x4a", bytes.fromhex(trace_id)))
        span_id = record.get("span_id")
        if span_id:
            parts.append(_ld(b"\x52", bytes.fromhex(span_id)))
    observed = record.get("observed_time_unix_nano")
    if observed is not None:
        observed = nanos(observed)
        if observed:
            parts.append(b"\x59" + _pack_q(observed))
    name = record.get("event_name")
    if name:
        parts.append(_small_field(b"\x62", name))
    return b"".join(parts)


def encode_protobuf(rows: Sequence[StoredRow], resources: Mapping[str, Mapping[str, Any]]) -> bytes:
    """The serialized ``ExportLogsServiceRequest`` for these stored rows (direct wire encoding).

    Each record is encoded as it is parsed, into its (stream, scope) group: resource and scope
    groups appear in order of first appearance, records in claim order within their group.
    """
    groups: dict[str, dict[ScopeKey, list[bytes]]] = {}
    own: ScopeKey = (S.SCOPE_NAME, _scope_version())
    last: tuple[str, Any] | None = None  # (stream id, stored scope) of the previous record
    bucket: list[bytes] = []
    for index, (_rid, stream_id, data) in enumerate(rows):
        if not index & _YIELD_MASK:
            _sleep(0)  # let the app's and the sender's threads have the GIL (see _YIELD_MASK)
        record = _loads(data)
        scope = record.get("scope")
        if last is None or last[0] != stream_id or last[1] != scope:
            key = own if scope is None else (str(scope.get("name", "")), str(scope.get("version", "")))
            by_scope = groups.get(stream_id)
            if by_scope is None:
                by_scope = groups[stream_id] = {}
            bucket = by_scope.get(key) or by_scope.setdefault(key, [])
            last = (stream_id, scope)
        encoded = _log_record(record)
        bucket.append(_record_head(len(encoded)))
        bucket.append(encoded)
    out = []
    for stream_id, by_scope in groups.items():
        resource = b"".join(_ld(b"\x0a", _key_value(k, v)) for k, v in (resources.get(stream_id) or {}).items())
        parts = [_ld(b"\x0a", resource)] if resource else []
        for (scope_name, scope_version), encoded_records in by_scope.items():
            scope_field = _ld(b"\x0a", scope_name.encode("utf-8")) if scope_name else b""
            if scope_version:
                scope_field += _ld(b"\x12", scope_version.encode("utf-8"))
            head = _ld(b"\x0a", scope_field) if scope_field else b""
            parts.append(_ld(b"\x12", head + b"".join(encoded_records)))
        out.append(_ld(b"\x0a", b"".join(parts)))
    return b"".join(out)


# --- OTLP/JSON --------------------------------------------------------------------------------------
def json_any_value(value: Any) -> dict[str, Any]:
    t = type(value)
    if t is str:
        return {"stringValue": value}
    if t is bool:
        return {"boolValue": value}
    if t is int:
        return {"intValue": str(value)}
    if t is float:
        return {"doubleValue": value}
    if t is dict:
        if len(value) == 1 and type(value.get("$bytes")) is str:
            return {"bytesValue": value["$bytes"]}
        return {"kvlistValue": {"values": _json_kvs(value)}}
    if t is list:
        return {"arrayValue": {"values": [json_any_value(v) for v in value]}}
    if value is None:
        return {}
    return {"stringValue": str(value)}


def _json_kvs(mapping: Mapping[str, Any]) -> list[dict[str, Any]]:
    # a null value is a key without "value": some receivers refuse an empty AnyValue object
    return [{"key": k} if v is None else {"key": k, "value": json_any_value(v)} for k, v in mapping.items()]


def encode_json(rows: Sequence[StoredRow], resources: Mapping[str, Mapping[str, Any]]) -> bytes:
    """The OTLP/JSON body (``http/json``): hex trace/span ids, 64-bit integers as strings."""
    resource_logs = []
    for stream_id, by_scope in _group(rows).items():
        scope_logs = []
        for (scope_name, scope_version), records in by_scope.items():
            out = []
            for record in records:
                lr: dict[str, Any] = {
                    "timeUnixNano": str(nanos(record["time_unix_nano"])),
                    "severityNumber": record.get("severity_number") or 0,
                    "eventName": record.get("event_name") or "",
                    "attributes": _json_kvs(record["attributes"]),
                }
                if record.get("observed_time_unix_nano") is not None:
                    lr["observedTimeUnixNano"] = str(nanos(record["observed_time_unix_nano"]))
                if record.get("severity_text"):
                    lr["severityText"] = record["severity_text"]
                if record.get("body") is not None:
                    lr["body"] = json_any_value(record["body"])
                if record.get("trace_id"):
                    lr["traceId"] = record["trace_id"]
                    if record.get("span_id"):
                        lr["spanId"] = record["span_id"]
                    lr["flags"] = int(record.get("trace_flags") or 0)
                out.append(lr)
            scope: dict[str, Any] = {"name": scope_name}
            if scope_version:
                scope["version"] = scope_version
            scope_logs.append({"scope": scope, "logRecords": out})
        resource_logs.append(
            {"resource": {"attributes": _json_kvs(resources.get(stream_id) or {})}, "scopeLogs": scope_logs}
        )
    return json.dumps({"resourceLogs": resource_logs}, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
