"""A verifier fed hostile input reports problems and never crashes (real SQLite files, hypothesis)."""

from __future__ import annotations

import json
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from auditel.cli import main as cli_main
from auditel.store.outbox import Outbox
from auditel.integrity.verify import load_checkpoints_file, load_export, verify, verify_path

VALID = json.loads(
    (Path(__file__).parent / "vectors" / "records.json").read_text(encoding="utf-8")
)["vectors"][1]["canonical"]

sqlite_values = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=200),
    st.binary(max_size=200),
    st.sampled_from([VALID, VALID[:-1], VALID.replace("1", "2"), "[]", "null", '{"attributes": 5}', "9" * 5000,
                     '{"attributes":{"audit.sequence.stream_id":"s","audit.sequence.number":99999999999999999999},"event_name":"x"}',
                     "[" * 100000, b"\xff\xfe", '{"a":NaN}', '{"attributes":{},"attributes":{}}']),
)
record_rows = st.lists(st.tuples(sqlite_values, sqlite_values, sqlite_values, sqlite_values), max_size=12)
checkpoint_rows = st.lists(st.tuples(sqlite_values, sqlite_values, sqlite_values, sqlite_values), max_size=4)


def _loose_db(path: Path, records: list[tuple[Any, ...]], checkpoints: list[tuple[Any, ...]], pruned: list[tuple[Any, ...]]) -> None:
    """Tables with the right names but no types or constraints: any value can sit anywhere."""
    conn = sqlite3.connect(str(path))
    conn.executescript(
        "CREATE TABLE records(rid, stream_id, seq, data, record_hash);"
        "CREATE TABLE checkpoints(cid, stream_id, tree_size, head_hash, prev_checkpoint_hash, key_id, algorithm, signature, data);"
        "CREATE TABLE pruned(stream_id, through_seq, head_hash);"
        "CREATE TABLE streams(stream_id);"
    )
    conn.executemany("INSERT INTO records(stream_id, seq, data, record_hash) VALUES (?,?,?,?)", records)
    conn.executemany("INSERT INTO checkpoints(stream_id, tree_size, signature, data) VALUES (?,?,?,?)", checkpoints)
    conn.executemany("INSERT INTO pruned VALUES (?,?,?)", pruned)
    conn.commit()
    conn.close()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record_rows, checkpoint_rows, st.lists(st.tuples(sqlite_values, sqlite_values, sqlite_values), max_size=3))
def test_garbage_rows_never_crash(records: list[Any], checkpoints: list[Any], pruned: list[Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "garbage.db"
        _loose_db(path, records, checkpoints, pruned)
        report = verify_path(path)
        report.render()
        json.dumps(report.as_dict())
        if records or checkpoints:
            assert not report.strict_ok()


# OTLP/JSON request lines (the Collector's file exporter) with broken shapes and values
_OTLP_CP = b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"eventName":"auditel.checkpoint","body":%s}]}]}]}'
OTLP_JSON_GARBAGE = [b'{"resourceLogs":5}', b'{"resourceLogs":["x"]}', b'{"resourceLogs":[{"scopeLogs":[{"logRecords":[7]}]}]}',
                     *(_OTLP_CP % body for body in (
                         b'{"intValue":"x"}', b'{"intValue":1e400}', b'{"kvlistValue":5}', b'{"arrayValue":{"values":5}}',
                         b'{"kvlistValue":{"values":[{"key":[1]}]}}', b'{"bytesValue":"AA=="}', b'5',
                         b'{"kvlistValue":{"values":[{"key":"checkpoint","value":{"stringValue":"x"}}]}}',
                         b'{"kvlistValue":{"values":[{"key":"checkpoint","value":{"kvlistValue":{"values":[{"key":"tree_size","value":{"intValue":"-3"}}]}}}]}}',
                     ))]
# audit records in OTLP/JSON with broken values (verify --from-archive rebuilds them)
_OTLP_REC = (b'{"resourceLogs":[{"scopeLogs":[{"scope":%s,"logRecords":[{"eventName":"auditel.action","timeUnixNano":%s,'
             b'"traceId":%s,"attributes":[{"key":"audit.sequence.stream_id","value":{"stringValue":"s"}},'
             b'{"key":"audit.sequence.number","value":%s}],"body":%s}]}]}]}')
OTLP_RECORD_GARBAGE = [
    _OTLP_REC % fields for fields in (
        (b'{"name":"app"}', b'"1"', b'""', b'{"intValue":"1"}', b'{"doubleValue":"NaN"}'),
        (b'5', b'"1"', b'""', b'{"intValue":"2"}', b'{}'),
        (b'{}', b'"-1e9"', b'""', b'{"intValue":"3"}', b'{}'),
        (b'{}', b'"1"', b'"AAAAAAAAAAAAAAAAAAAAAA=="', b'{"stringValue":"4"}', b'{"kvlistValue":{"values":[{"value":{}}]}}'),
        (b'{}', b'"1"', b'"' + b"f" * 32 + b'"', b'{"intValue":"99999999999999999999"}', b'{"arrayValue":null}'),
        (b'null', b'1', b'"' + b"\\u0000" * 16 + b'"', b'{"intValue":6}', b'{"stringValue":"\\ud800"}'),
    )
]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode),
                          st.sampled_from([b'{"type":"record","data":5}', b'{"type":"checkpoint","checkpoint":{"tree_size":-1}}',
                                           b'{"type":"pruned","stream_id":1}', b"[1,2]", b'{"type":"record","data":"' + VALID.replace('"', '\\"').encode() + b'"}',
                                           b'{"type":"auditel.export","filters":"x"}', *OTLP_JSON_GARBAGE,
                                           *OTLP_RECORD_GARBAGE])), max_size=10))
def test_garbage_exports_archives_and_checkpoint_files_never_crash(lines: list[bytes]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "export.jsonl"
        path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines))
        for report in (verify_path(path, from_export=True, checkpoints_file=path),
                       verify_path(path, from_archive=[path, path], checkpoints_file=path)):
            report.render()
            json.dumps(report.as_dict())


def test_every_broken_audit_record_in_an_archive_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "archive.jsonl"
    path.write_bytes(b"\n".join(OTLP_RECORD_GARBAGE))
    report = verify_path(path, from_archive=[path])
    assert not report.ok
    json.dumps(report.as_dict())
    unreadable = [m for m in report.all_messages() if "not readable as an auditel record" in m or "canonical form" in m
                  or "not valid UTF-8" in m or "lacks a valid stream id" in m]
    assert len(unreadable) == len(OTLP_RECORD_GARBAGE), report.all_messages()


def test_every_broken_otlp_json_line_is_a_problem_not_a_crash(tmp_path: Path) -> None:
    path = tmp_path / "archive.jsonl"
    path.write_bytes(b"\n".join(OTLP_JSON_GARBAGE))
    problems: list[str] = []
    load_checkpoints_file(path, problems)
    assert len(problems) == len(OTLP_JSON_GARBAGE) - 2, problems  # the last two parse, then fail as checkpoints
    report = verify_path(path, from_export=True, checkpoints_file=path)
    assert not report.ok
    found = " ".join(report.all_messages())
    assert "checkpoints file line 11" in found and "checkpoints file line 12" in found
    json.dumps(report.as_dict())


def test_missing_tables_and_non_sqlite_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty.db"
    sqlite3.connect(str(empty)).close()
    report = verify_path(empty)
    assert not report.ok
    assert {"missing table records", "missing table checkpoints"} <= set(report.all_messages())
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    report = verify_path(junk)
    assert not report.ok and report.all_messages()[0].startswith("cannot read outbox")
    assert cli_main(["verify", str(junk)]) == 1
    assert cli_main(["verify", str(tmp_path / "absent.db")]) == 1
    capsys.readouterr()


def test_stored_sql_is_not_run(tmp_path: Path) -> None:
    """A view in place of `records` and a generated column are refused; triggers never fire on read."""
    path = tmp_path / "planted.db"
    Outbox(path)
    conn = sqlite3.connect(str(path))
    conn.executescript(
        "ALTER TABLE records RENAME TO real_records;"
        "CREATE VIEW records AS SELECT rid, stream_id, seq, data, record_hash FROM real_records;"
        "CREATE TABLE side_effect(x);"
        "CREATE TRIGGER t AFTER INSERT ON real_records BEGIN INSERT INTO side_effect VALUES (1); END;"
        "DROP TABLE pruned; CREATE TABLE pruned(stream_id, through_seq, head_hash AS (upper(stream_id)));"
    )
    conn.close()
    report = verify_path(path)
    msgs = report.all_messages()
    assert "records is a view, not a table: not read" in msgs
    assert "table pruned has generated column(s) head_hash: not read" in msgs
    assert not report.ok


def test_huge_and_wrongly_typed_values_are_problems_not_crashes(tmp_path: Path) -> None:
    path = tmp_path / "o.db"
    Outbox(path)
    conn = sqlite3.connect(str(path))
    rows = [
        ("r1", "s", 1, "x" * 2_000_000, "h"),  # long non-JSON
        ("r2", "s", 2, json.dumps({"attributes": {"audit.sequence.stream_id": "s", "audit.sequence.number": True}, "event_name": "e"}), None),
        ("r3", "s", 3, b"\x80\x81", "h"),  # bytes that are not UTF-8
        ("r4", "s", 4.5, VALID, 7),
        ("r5", "s", 5, "[" * 50000 + "]" * 50000, "h"),  # deep nesting
    ]
    conn.executemany("INSERT INTO records(record_id, stream_id, seq, time_ns, event_name, data, record_hash) VALUES (?,?,?,0,'e',?,?)",
                     [(a, b, c, d, e) for a, b, c, d, e in rows])
    conn.execute("INSERT INTO checkpoints(stream_id, tree_size, time_ns, data, signature) VALUES ('s', 99999999999, 0, '{}', x'00')")
    conn.execute("INSERT INTO pruned VALUES ('s', -5, NULL, 0, 'r', 0)")
    conn.commit()
    conn.close()
    report = verify_path(path)
    msgs = report.all_messages()
    assert not report.ok
    assert any("data is not JSON" in m for m in msgs)
    assert any("data is not valid UTF-8" in m for m in msgs)
    assert any("malformed checkpoint" in m for m in msgs)
    assert any("malformed pruned row" in m for m in msgs)


def test_empty_export_is_not_ok_only_when_lines_are_bad(tmp_path: Path) -> None:
    path = tmp_path / "e.jsonl"
    path.write_text('{"type":"auditel.export","format":1,"filters":{}}\n')
    assert verify(load_export(path)).ok
    path.write_text("not json\n")
    assert not verify(load_export(path)).ok
