"""OTLP exporter configuration (standard variables) and the stored-record → OTLP encoding."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from google.protobuf.json_format import Parse
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from auditel.config.settings import ConfigError
from auditel.config.otlp import exporter_from_env, tuning_from_env
from auditel.delivery.encode import encode_json, encode_protobuf
from auditel.delivery.transport import classify_http, parse_retry_after


# --- configuration ----------------------------------------------------------------------------------
def test_no_endpoint_means_no_exporter() -> None:
    assert exporter_from_env({}) is None
    assert exporter_from_env({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}) is None


def test_general_endpoint_gets_v1_logs_and_the_logs_variable_is_used_as_is() -> None:
    cfg = exporter_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"})
    assert cfg is not None and cfg.endpoint == "http://collector:4318/v1/logs"
    assert cfg.protocol == "http/protobuf" and cfg.timeout_s == 10.0 and cfg.compression == "none"
    cfg = exporter_from_env(
        {
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://general:4318",
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "https://logs.example/custom/path",
            "OTEL_EXPORTER_OTLP_COMPRESSION": "none",
            "OTEL_EXPORTER_OTLP_LOGS_COMPRESSION": "gzip",
            "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
            "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": "http/json",
        }
    )
    assert cfg is not None
    assert cfg.endpoint == "https://logs.example/custom/path"
    assert cfg.compression == "gzip" and cfg.timeout_s == 2.5 and cfg.protocol == "http/json"


def test_grpc_endpoint_forms_and_insecure() -> None:
    cfg = exporter_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
                             "OTEL_EXPORTER_OTLP_INSECURE": "true"})
    assert cfg is not None and cfg.endpoint == "collector:4317" and cfg.insecure is True
    cfg = exporter_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert cfg is not None and cfg.endpoint == "http://collector:4317"


def test_timeout_reads_milliseconds_and_small_values_as_seconds() -> None:
    assert exporter_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:1", "OTEL_EXPORTER_OTLP_TIMEOUT": "10000"}).timeout_s == 10.0  # type: ignore[union-attr]
    assert exporter_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:1", "OTEL_EXPORTER_OTLP_TIMEOUT": "7"}).timeout_s == 7.0  # type: ignore[union-attr]


def test_headers_are_url_decoded_and_never_shown() -> None:
    cfg = exporter_from_env(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:1", "OTEL_EXPORTER_OTLP_HEADERS": "Authorization=Basic%20YWxhZGRpbg%3D%3D, x-b = 2"}
    )
    assert cfg is not None
    assert dict(cfg.headers) == {"authorization": "Basic YWxhZGRpbg==", "x-b": "2"}
    assert "YWxhZGRpbg" not in repr(cfg) + json.dumps(cfg.public())
    with pytest.raises(ConfigError) as info:
        exporter_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:1", "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "api-key=topsecret,broken"})
    text = str(info.value)
    assert "OTEL_EXPORTER_OTLP_LOGS_HEADERS" in text and "entry 2" in text and "topsecret" not in text


@pytest.mark.parametrize(
    "var,value,accepted",
    [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift", "http/protobuf, http/json, grpc"),
        ("OTEL_EXPORTER_OTLP_LOGS_COMPRESSION", "zstd", "gzip, none"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "-5", "milliseconds"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "maybe", "true or false"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/nonexistent/ca.pem", "PEM file"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318", "URL"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://collector:21", "URL"),
    ],
)
def test_bad_values_name_variable_value_and_what_is_accepted(var: str, value: str, accepted: str) -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://h:4318", var: value}
    with pytest.raises(ConfigError) as info:
        exporter_from_env(env)
    text = str(info.value)
    assert var in text and repr(value) in text and accepted in text


def test_mtls_pair_must_be_complete(tmp_path: Path) -> None:
    key = tmp_path / "k.pem"
    key.write_text("x")
    with pytest.raises(ConfigError, match="set together"):
        exporter_from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": "https://h:1", "OTEL_EXPORTER_OTLP_CLIENT_KEY": str(key)})


def test_endpoint_credentials_are_not_displayed() -> None:
    cfg = exporter_from_env({"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": "https://user:pa55word@h:443/v1/logs?api_key=zzz999"})
    assert cfg is not None
    assert cfg.display_endpoint == "https://h:443/v1/logs"
    assert "pa55word" in cfg.secrets() and "api_key=zzz999" in cfg.secrets()


def test_tuning_from_env_validates() -> None:
    tuning = tuning_from_env({"AUDITEL_SHIP_BACKOFF_MAX_S": "5", "AUDITEL_SHIP_BATCH_RECORDS": "100"})
    assert tuning.backoff_max_s == 5 and tuning.batch_records == 100 and tuning.backoff_min_s == 1.0
    with pytest.raises(ConfigError, match="AUDITEL_SHIP_BATCH_RECORDS='9999'.*1..512"):
        tuning_from_env({"AUDITEL_SHIP_BATCH_RECORDS": "9999"})
    with pytest.raises(ConfigError, match="min <= max"):
        tuning_from_env({"AUDITEL_SHIP_BACKOFF_MIN_S": "10", "AUDITEL_SHIP_BACKOFF_MAX_S": "1"})


# --- classification helpers ---------------------------------------------------------------------------
def test_retry_after_forms() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 10) == pytest.approx(10.0)
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


@pytest.mark.parametrize(
    "status,kind",
    [(200, "success"), (204, "success"), (301, "config"), (308, "config"), (400, "permanent"), (401, "auth"),
     (403, "auth"), (404, "config"), (413, "too_large"), (429, "retry"), (500, "permanent"), (502, "retry"),
     (503, "retry"), (504, "retry"), (501, "permanent")],
)
def test_http_status_classes(status: int, kind: str) -> None:
    assert classify_http(status, {}, b"", json_body=False).kind == kind


# --- encoding ----------------------------------------------------------------------------------------------
def _row(rid: int, stream: str, record: dict) -> tuple[int, str, str]:
    return (rid, stream, json.dumps(record, sort_keys=True, separators=(",", ":")))


RECORDS = [
    _row(1, "s1", {
        "event_name": "auditel.tool_call", "time_unix_nano": "1795384746153297556", "observed_time_unix_nano": "1795384746153297999",
        "severity_number": 9, "severity_text": "INFO",
        "attributes": {"audit.record.id": "A1", "n": 3, "f": 1.5, "ok": True, "tags": ["a", 2], "blob": {"$bytes": base64.b64encode(b"\x00\xff").decode()},
                       "nested": {"k": None, "v": [1.25]}},
        "body": {"text": "hi", "raw": {"$bytes": base64.b64encode(b"zz").decode()}},
        "trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331", "trace_flags": 1,
    }),
    _row(2, "s2", {"event_name": "auditel.custom", "time_unix_nano": "5", "observed_time_unix_nano": "6", "severity_number": 13,
                   "severity_text": "WARN", "attributes": {"audit.record.id": "A2"}, "scope": {"name": "app.lib", "version": "2.0"}}),
    _row(3, "s1", {"event_name": "auditel.custom", "time_unix_nano": "7", "observed_time_unix_nano": "7", "severity_number": 9,
                   "severity_text": "INFO", "attributes": {"audit.record.id": "A3"}}),
]
RESOURCES = {"s1": {"service.name": "svc-1", "process.pid": 42}, "s2": {"service.name": "svc-2"}}


def test_protobuf_groups_by_stream_resource_and_scope_and_restores_types() -> None:
    req = ExportLogsServiceRequest()
    req.ParseFromString(encode_protobuf(RECORDS, RESOURCES))
    assert len(req.resource_logs) == 2
    rl1, rl2 = req.resource_logs
    assert {kv.key: kv.value for kv in rl1.resource.attributes}["process.pid"].int_value == 42
    assert [lr.attributes[0].value.string_value for sl in rl1.scope_logs for lr in sl.log_records] == ["A1", "A3"]
    assert rl1.scope_logs[0].scope.name == "auditel"
    assert rl2.scope_logs[0].scope.name == "app.lib" and rl2.scope_logs[0].scope.version == "2.0"
    lr = rl1.scope_logs[0].log_records[0]
    assert lr.time_unix_nano == 1795384746153297556 and lr.observed_time_unix_nano == 1795384746153297999
    assert lr.event_name == "auditel.tool_call" and lr.severity_number == 9 and lr.severity_text == "INFO"
    assert lr.trace_id == bytes.fromhex("0af7651916cd43dd8448eb211c80319c") and lr.span_id == bytes.fromhex("b7ad6b7169203331")
    assert lr.flags == 1
    attrs = {kv.key: kv.value for kv in lr.attributes}
    assert attrs["n"].int_value == 3 and attrs["f"].double_value == 1.5 and attrs["ok"].bool_value is True
    assert attrs["blob"].bytes_value == b"\x00\xff"
    assert [v.string_value or v.int_value for v in attrs["tags"].array_value.values] == ["a", 2]
    nested = {kv.key: kv.value for kv in attrs["nested"].kvlist_value.values}
    assert nested["k"].WhichOneof("value") is None and nested["v"].array_value.values[0].double_value == 1.25
    body = {kv.key: kv.value for kv in lr.body.kvlist_value.values}
    assert body["raw"].bytes_value == b"zz" and body["text"].string_value == "hi"


def test_json_encoding_is_otlp_json() -> None:
    doc = json.loads(encode_json(RECORDS, RESOURCES))
    lr = doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
    assert lr["traceId"] == "0af7651916cd43dd8448eb211c80319c" and lr["spanId"] == "b7ad6b7169203331"
    assert lr["timeUnixNano"] == "1795384746153297556"
    attrs = {kv["key"]: kv["value"] for kv in lr["attributes"]}
    assert attrs["n"] == {"intValue": "3"} and attrs["blob"] == {"bytesValue": base64.b64encode(b"\x00\xff").decode()}
    # Apart from the hex ids (OTLP/JSON's one deviation from proto3 JSON), it parses as the proto.
    for rl in doc["resourceLogs"]:
        for sl in rl["scopeLogs"]:
            for rec in sl["logRecords"]:
                rec.pop("traceId", None)
                rec.pop("spanId", None)
    req = Parse(json.dumps(doc), ExportLogsServiceRequest())
    assert req.resource_logs[1].scope_logs[0].log_records[0].severity_number == 13
