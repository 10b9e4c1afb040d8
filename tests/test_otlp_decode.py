"""Rebuilding stored records from OTLP/JSON (``auditel.integrity.otlp_decode``, used by ``verify --from-archive``).

The property: for any record in stored form (values made safe as the processor makes them, then
canonical JSON), encoding it for the wire and reading it back from OTLP/JSON gives the same canonical
bytes, whichever JSON spelling the backend wrote: auditel's own OTLP/JSON body (hex ids, numeric
severity: the Collector's spelling) or protobuf's ``json_format`` of the binary request (base64 ids,
severity enum names, default values left out).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf.json_format import MessageToDict
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from auditel.integrity import otlp_decode
from auditel.record.canonical import canonical
from auditel.delivery.encode import encode_json, encode_protobuf
from auditel.record.safe_value import safe_attributes, safe_value

values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**70), max_value=2**70),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=60),
        st.binary(max_size=20),
    ),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=4)),
    max_leaves=12,
)


def stored_text(attrs: dict[str, Any], body: Any, traced: bool, scope: str | None, severity: int, text: str) -> str:
    record: dict[str, Any] = {
        "event_name": "auditel.tool_call",
        "time_unix_nano": "1795384372698031192",
        "observed_time_unix_nano": "1795384372698031999",
        "severity_number": severity,
        "severity_text": text,
        "attributes": {**safe_attributes(attrs), "audit.sequence.number": 7},
    }
    body = safe_value(body) if body is not None else None
    if body is not None:
        record["body"] = body
    if traced:
        record.update(trace_id="0af7651916cd43dd8448eb211c80319c", span_id="00f067aa0ba902b7", trace_flags=1)
    if scope is not None:
        record["scope"] = {"name": scope, "version": ""}
    return canonical(record)


def rebuilt(request: dict[str, Any]) -> list[str]:
    return [canonical(otlp_decode.stored_record(lr, scope)) for _i, _res, scope, lr in otlp_decode.log_records(request)]


@settings(max_examples=200, deadline=None)
@given(
    attrs=st.dictionaries(st.text(min_size=1, max_size=12), values, max_size=6),
    body=values,
    traced=st.booleans(),
    scope=st.sampled_from([None, "app", ""]),
    severity=st.sampled_from([0, 1, 9, 13, 17, 24]),
    text=st.sampled_from(["", "INFO", "WARN"]),
)
def test_any_stored_record_is_rebuilt_exactly_from_either_json_spelling(
    attrs: dict[str, Any], body: Any, traced: bool, scope: str | None, severity: int, text: str
) -> None:
    stored = stored_text(attrs, body, traced, scope, severity, text)
    rows = [(1, "s", stored)]
    resources = {"s": {"service.name": "agent"}}
    assert rebuilt(json.loads(encode_json(rows, resources))) == [stored]
    request = ExportLogsServiceRequest()
    request.ParseFromString(encode_protobuf(rows, resources))
    assert rebuilt(MessageToDict(request)) == [stored]


@pytest.mark.parametrize(
    "log_record",
    [
        "x",
        {"attributes": "x"},
        {"attributes": [{"key": 1, "value": {}}]},
        {"attributes": [], "timeUnixNano": "12x"},
        {"attributes": [], "traceId": "not an id"},
        {"attributes": [], "traceId": "AAAA"},  # base64 of 3 bytes, not 16
        {"attributes": [], "body": {"boolValue": "yes"}},
        {"attributes": [], "body": {"fooValue": 1}},
        {"attributes": [], "severityNumber": "SEVERITY_NUMBER_LOUD"},
    ],
)
def test_malformed_log_records_raise_value_error(log_record: Any) -> None:
    with pytest.raises(ValueError):
        otlp_decode.stored_record(log_record, None)


def test_deep_nesting_is_refused_not_a_recursion_error() -> None:
    deep: dict[str, Any] = {"stringValue": "x"}
    for _ in range(200):
        deep = {"arrayValue": {"values": [deep]}}
    with pytest.raises(ValueError):
        otlp_decode.stored_record({"attributes": [], "body": deep}, None)
