"""OTLP/JSON back to stored records: the inverse of ``otlp_encode`` for a backend's copy.

A gateway Collector's file exporter writes each export request as one line of OTLP/JSON. From
such a line this module rebuilds, for every log record auditel sent, the record exactly as it
was stored in the outbox (the dict whose canonical JSON was hashed and chained), so that
``auditel verify --from-archive`` can recompute the chain from the backend's copy alone.

The mapping is exact because the stored form is regular (``processor._record``): string
timestamps, an integer severity, a severity text (``""`` when empty), the attributes, an optional
body, the trace context only when a span was active, and a scope only when it is not auditel's
own. Both JSON spellings in use are read: the Collector's (hex trace and span ids, severity as a
number) and protobuf's ``json_format`` (base64 ids, severity as an enum name). 64-bit integers
may be strings or numbers. A value that cannot be read raises ``ValueError``; the caller reports
it and goes on.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator
from typing import Any

from opentelemetry.proto.logs.v1.logs_pb2 import SeverityNumber

from auditel.record import schema as S

MAX_DEPTH = 64

_HEX = re.compile(r"[0-9a-fA-F]+")
_SEVERITY_NAMES: dict[str, int] = dict(SeverityNumber.items())  # "SEVERITY_NUMBER_INFO" -> 9


def any_value(value: Any, depth: int = 0) -> Any:
    """A plain (stored-form) value from an OTLP/JSON ``AnyValue``; ``{}`` (no value) is ``None``."""
    if not isinstance(value, dict) or depth > MAX_DEPTH:
        raise ValueError("not an AnyValue")
    if not value:
        return None
    if "stringValue" in value:
        return _str(value["stringValue"])
    if "intValue" in value:
        return _int(value["intValue"])
    if "boolValue" in value:
        if type(value["boolValue"]) is not bool:
            raise ValueError("boolValue is not a boolean")
        return value["boolValue"]
    if "doubleValue" in value:
        return _double(value["doubleValue"])
    if "bytesValue" in value:
        return {"$bytes": _str(value["bytesValue"])}
    if "arrayValue" in value:
        return [any_value(v, depth + 1) for v in _values(value["arrayValue"])]
    if "kvlistValue" in value:
        return key_values(_values(value["kvlistValue"]), depth + 1)
    raise ValueError("unsupported AnyValue")


def key_values(items: Any, depth: int = 0) -> dict[str, Any]:
    """A list of OTLP/JSON ``KeyValue`` as a dict (a key without a value is ``None``)."""
    if not isinstance(items, list):
        raise ValueError("not a list of key-values")
    out: dict[str, Any] = {}
    for kv in items:
        if not isinstance(kv, dict):
            raise ValueError("not a key-value")
        out[_str(kv.get("key", ""))] = any_value(kv.get("value", {}), depth)
    return out


def stored_record(log_record: Any, scope: Any) -> dict[str, Any]:
    """The stored record that ``otlp_encode`` turned into this OTLP/JSON ``LogRecord``."""
    if not isinstance(log_record, dict):
        raise ValueError("not a log record")
    lr = log_record
    record: dict[str, Any] = {
        "event_name": _str(lr.get("eventName", "")),
        "time_unix_nano": str(_int(lr.get("timeUnixNano", "0"))),
        "observed_time_unix_nano": str(_int(lr.get("observedTimeUnixNano", "0"))),
        "severity_number": _severity(lr.get("severityNumber", 0)),
        "severity_text": _str(lr.get("severityText", "")),
        "attributes": key_values(lr.get("attributes", [])),
    }
    body = any_value(lr.get("body", {}))
    if body is not None:
        record["body"] = body
    trace_id = _id(lr.get("traceId", ""), 16)
    if trace_id is not None:
        record["trace_id"] = trace_id
        record["span_id"] = _id(lr.get("spanId", ""), 8) or "0" * 16
        record["trace_flags"] = _int(lr.get("flags", 0))
    # auditel's own records always name their scope; no scope (or no name) is a logger named ""
    if scope is None:
        scope = {}
    if not isinstance(scope, dict):
        raise ValueError("scope is not an object")
    name = _str(scope.get("name", ""))
    if name != S.SCOPE_NAME:
        record["scope"] = {"name": name, "version": _str(scope.get("version", ""))}
    return record


def has_attribute(log_record: Any, keys: tuple[str, ...]) -> bool:
    """Whether an OTLP/JSON log record has an attribute named one of ``keys`` (read without decoding
    anything else: a foreign log record is skipped, never reported as malformed)."""
    attrs = log_record.get("attributes") if isinstance(log_record, dict) else None
    return isinstance(attrs, list) and any(isinstance(kv, dict) and kv.get("key") in keys for kv in attrs)


def log_records(request: Any) -> Iterator[tuple[int, Any, Any, Any]]:
    """(index, resource attributes, scope, log record) for each log record of an OTLP/JSON
    ``ExportLogsServiceRequest``; raises ``ValueError`` when its outline is malformed."""
    if not isinstance(request, dict) or not isinstance(request.get("resourceLogs"), list):
        raise ValueError("not an OTLP/JSON logs request")
    index = 0
    for resource_logs in request["resourceLogs"]:
        if not isinstance(resource_logs, dict):
            raise ValueError("malformed resourceLogs")
        resource = resource_logs.get("resource") or {}
        scope_logs_list = resource_logs.get("scopeLogs", [])
        if not isinstance(resource, dict) or not isinstance(scope_logs_list, list):
            raise ValueError("malformed resourceLogs")
        for scope_logs in scope_logs_list:
            if not isinstance(scope_logs, dict) or not isinstance(scope_logs.get("logRecords", []), list):
                raise ValueError("malformed scopeLogs")
            for lr in scope_logs.get("logRecords", []):
                index += 1
                yield index, resource.get("attributes", []), scope_logs.get("scope"), lr


# --- scalars -------------------------------------------------------------------------------------------
def _values(container: Any) -> list[Any]:
    if container is None:
        return []
    if not isinstance(container, dict) or not isinstance(container.get("values", []), list):
        raise ValueError("malformed array or kvlist")
    return container.get("values", [])


def _str(value: Any) -> str:
    if type(value) is not str:
        raise ValueError("not a string")
    return value


def _int(value: Any) -> int:
    if type(value) is int:
        return value
    if type(value) is str and re.fullmatch(r"-?[0-9]{1,20}", value):
        return int(value)
    raise ValueError("not a 64-bit integer")


def _double(value: Any) -> float:
    if type(value) in (int, float):
        return float(value)
    if value in ("NaN", "Infinity", "-Infinity"):
        return float(value)
    raise ValueError("not a double")


def _severity(value: Any) -> int:
    if type(value) is str and value in _SEVERITY_NAMES:
        return _SEVERITY_NAMES[value]
    return _int(value)


def _id(value: Any, size: int) -> str | None:
    """A trace or span id as lower-case hex (None when empty or all zero bytes are absent)."""
    text = _str(value)
    if not text:
        return None
    if len(text) == 2 * size and _HEX.fullmatch(text):
        return text.lower()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("id is neither hex nor base64") from exc
    if len(raw) != size:
        raise ValueError("id has the wrong length")
    return raw.hex()
