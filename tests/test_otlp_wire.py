"""The shipper's direct protobuf encoding is byte-for-byte the official message-class encoding."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from auditel.delivery.encode import encode_protobuf, encode_protobuf_messages

values = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(2**63), max_value=2**63 - 1),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(max_size=300),
        st.binary(max_size=20).map(lambda b: {"$bytes": __import__("base64").b64encode(b).decode()}),
    ),
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(st.text(max_size=6), children, max_size=4)),
    max_leaves=12,
)
attributes = st.dictionaries(st.text(min_size=1, max_size=20), values, max_size=8)


def _record(attrs: dict[str, Any], body: Any, seq: int, traced: bool, scope: bool) -> str:
    rec: dict[str, Any] = {
        "event_name": "auditel.tool_call",
        "time_unix_nano": str(1795384372698031192 + seq),
        "observed_time_unix_nano": str(1795384372698031999 + seq),
        "severity_number": 9,
        "severity_text": "INFO",
        "attributes": {"audit.sequence.number": seq, "session.id": "s1", **attrs},
    }
    if body is not None:
        rec["body"] = body
    if traced:
        rec.update(trace_id="0af7651916cd43dd8448eb211c80319c", span_id="b7ad6b7169203331", trace_flags=1)
    if scope:
        rec["scope"] = {"name": "app", "version": "2.0"}
    return json.dumps(rec)


@settings(max_examples=200, deadline=None)
@given(
    batch=st.lists(st.tuples(attributes, values, st.booleans(), st.booleans(), st.sampled_from(["s-a", "s-b"])), min_size=1, max_size=6),
)
def test_direct_encoding_equals_message_encoding(batch: list[tuple[Any, ...]]) -> None:
    rows = [(i, stream, _record(attrs, body, i, traced, scope)) for i, (attrs, body, traced, scope, stream) in enumerate(batch)]
    resources = {"s-a": {"service.name": "agent", "process.pid": 42}, "s-b": {"service.name": "other", "k": [1, "x"]}}
    direct = encode_protobuf(rows, resources)
    reference = encode_protobuf_messages(rows, resources)
    assert direct == reference
    parsed = ExportLogsServiceRequest()
    parsed.ParseFromString(direct)
    assert sum(len(sl.log_records) for rl in parsed.resource_logs for sl in rl.scope_logs) == len(rows)


def test_repeated_pairs_are_cached_without_changing_bytes() -> None:
    rows = [(i, "s", _record({"audit.action": "tool.call", "n": i}, None, i, False, False)) for i in range(50)]
    first = encode_protobuf(rows, {"s": {"service.name": "x"}})
    assert first == encode_protobuf(rows, {"s": {"service.name": "x"}}) == encode_protobuf_messages(rows, {"s": {"service.name": "x"}})
