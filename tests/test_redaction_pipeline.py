"""Secrets corpus through the real pipeline: ``auditel.configure(outbox=...)`` with a real SQLite
outbox and a JSONL sink. No secret (nor its distinctive middle) may reach any byte on disk:
the database, its ``-wal`` and ``-shm``, or the JSONL file. Look-alikes must come back unchanged.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

import auditel
from auditel import runtime as rt_mod
from auditel.store.outbox import Outbox
from auditel.redaction.redactor import POLICY_VERSION, Redactor
from redaction_support import clean_env, leaks, outbox_files, placements
from secrets_corpus import benign_corpus, secret_corpus

SAMPLES = secret_corpus(seed=20240601)


@pytest.fixture
def audit_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    clean_env(monkeypatch)
    rt_mod._reset_for_tests()
    yield tmp_path
    rt_mod._reset_for_tests()


def test_corpus_has_at_least_30_formats() -> None:
    kinds = {s.kind for s in SAMPLES}
    assert len(kinds) >= 30, sorted(kinds)
    assert all(s.needles and all(len(n) >= 6 for n in s.needles) for s in SAMPLES)


def test_no_secret_reaches_outbox_wal_shm_or_jsonl(audit_dir: Path) -> None:
    jsonl = audit_dir / "records.jsonl"
    rt = auditel.configure(outbox=audit_dir / "outbox.db", jsonl_path=jsonl)
    assert rt is not None
    ids = []
    for i, sample in enumerate(SAMPLES):
        attributes, body = placements(i, sample)
        record_id = auditel.emit("auditel.custom", attributes=attributes, body=body)
        assert record_id is not None, sample.label
        ids.append(record_id)
    # content capture is off: tool arguments become digests, but names, ids, errors are kept
    for sample in SAMPLES[:10]:
        auditel.tool_call(f"fetch {sample.text}", phase="outcome", arguments={"token": sample.text}, outcome="success")
    assert auditel.flush()

    # While the process runs the WAL holds the newest pages: check every file now...
    files = outbox_files(audit_dir)
    assert {"outbox.db", "outbox.db-wal", "outbox.db-shm", "records.jsonl"} <= set(files), sorted(files)
    assert len(files["outbox.db-wal"]) > 0
    for name, blob in files.items():
        assert leaks(blob, SAMPLES) == [], f"secret bytes in {name}"

    # ...the stored records are there, and each kind was replaced by its marker.
    stored = list(auditel.query(event="auditel.custom", outbox=rt.outbox.path))
    assert [r["attributes"]["audit.record.id"] for r in stored] == ids
    text = "\n".join(json.dumps(r) for r in stored)
    for sample in SAMPLES:
        assert f"[REDACTED:{sample.kind}]" in text, sample.label
    redactions = auditel.status()["redactions"]
    assert {s.kind for s in SAMPLES} <= set(redactions)
    assert all(redactions[s.kind] >= 4 for s in SAMPLES)  # value, key, list item, body at least

    # ...and after shutdown (WAL checkpointed into the database).
    auditel.shutdown()
    for name, blob in outbox_files(audit_dir).items():
        assert leaks(blob, SAMPLES) == [], f"secret bytes in {name} after shutdown"
    lines = jsonl.read_text(encoding="utf-8").splitlines()
    assert len(lines) >= len(SAMPLES) + 10


def test_content_capture_on_still_scrubs_kept_content(audit_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "EVENT_ONLY")
    rt = auditel.configure(outbox=audit_dir / "outbox.db")
    assert rt is not None and rt.settings.content_in_records
    for sample in SAMPLES:
        auditel.tool_call(
            "http_get",
            phase="outcome",
            arguments={"url": "https://api.example.com/x", "headers": {"X-Note": sample.text}},
            result=f"echo: {sample.text}",
            outcome="success",
        )
    assert auditel.flush()
    stored = list(auditel.query(event="auditel.tool_call", outbox=rt.outbox.path))
    assert len(stored) == len(SAMPLES)
    # the content is kept (opted in) but scrubbed; the digest is keyed, not a plain hash
    first = stored[0]["attributes"]
    assert any(isinstance(v, str) and v.startswith("echo: ") for v in first.values())
    assert all(str(v).startswith("hmac-sha256:") for k, v in first.items() if k.endswith(".digest"))
    for name, blob in outbox_files(audit_dir).items():
        assert leaks(blob, SAMPLES) == [], f"secret bytes in {name}"


def test_look_alikes_are_stored_unchanged(audit_dir: Path) -> None:
    rt = auditel.configure(outbox=audit_dir / "outbox.db")
    assert rt is not None
    benign = benign_corpus(seed=7)
    for chunk_start in range(0, len(benign), 50):
        chunk = benign[chunk_start : chunk_start + 50]
        auditel.emit("auditel.custom", attributes={f"app.v{i}": s for i, s in enumerate(chunk)}, body={"all": chunk})
    assert auditel.flush()
    stored = list(auditel.query(event="auditel.custom", outbox=rt.outbox.path))
    kept = [v for r in stored for v in r["body"]["all"]]
    assert kept == benign
    assert auditel.status()["redactions"] == {}


def test_stream_start_records_policy_version_and_rules_hash(audit_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITEL_REDACT_EXTRA", "ip")
    rt = auditel.configure(outbox=audit_dir / "outbox.db")
    assert rt is not None
    auditel.emit("auditel.custom", attributes={"client": "203.0.113.9"})
    assert auditel.flush()
    start = next(auditel.query(event="auditel.stream.start", outbox=rt.outbox.path))
    assert start["body"]["redaction.policy_version"] == POLICY_VERSION
    assert start["body"]["redaction.rules_hash"] == Redactor(extra=["ip"]).rules_hash
    assert start["body"]["redaction.rules_hash"] != Redactor().rules_hash
    record = next(auditel.query(event="auditel.custom", outbox=rt.outbox.path))
    assert record["attributes"]["client"] == "[REDACTED:ipv4]"


def test_bad_redaction_config_fails_configure_before_creating_files(audit_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITEL_REDACT_EXTRA", "phone,passport")
    with pytest.raises(auditel.ConfigError) as info:
        auditel.configure(outbox=audit_dir / "sub" / "outbox.db")
    message = str(info.value)
    assert "AUDITEL_REDACT_EXTRA='phone,passport'" in message and "ipv4" in message and "passport" in message
    assert not (audit_dir / "sub").exists()


def test_stored_records_still_hash_chain(audit_dir: Path) -> None:
    """Redaction happens before hashing: the stored bytes are what the chain covers."""
    rt = auditel.configure(outbox=audit_dir / "outbox.db")
    assert rt is not None
    for i, sample in enumerate(SAMPLES[:5]):
        auditel.emit("auditel.custom", attributes=placements(i, sample)[0])
    assert auditel.flush()
    outbox = Outbox(audit_dir / "outbox.db")
    rows = outbox.connect().execute("SELECT data, record_hash FROM records ORDER BY rid").fetchall()
    import hashlib

    assert rows and all(hashlib.sha256(data.encode()).hexdigest() == h for data, h in rows)
    assert all("[REDACTED:" in data for data, _ in rows[1:])
