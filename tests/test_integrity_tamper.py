"""The tamper corpus: real outbox files written by auditel, attacked with raw SQL, checked by `auditel verify`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from auditel import runtime as runtime_mod
from auditel.cli import main as cli_main

from integrity_helpers import (
    QUIET_ENV,
    build_outbox,
    clone,
    copy_outbox,
    records,
    rewrite_without_key,
    set_record,
    sql,
    write_key,
)
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One clean outbox (layout in integrity_helpers.build_outbox), an older copy, and exported checkpoints."""
    root = tmp_path_factory.mktemp("tamper")
    key, pub, _ = write_key(root)
    saved = {k: os.environ.get(k) for k in (*QUIET_ENV, "AUDITEL_SIGNING_KEY_FILE")}
    os.environ.update(QUIET_ENV, AUDITEL_SIGNING_KEY_FILE=str(key))
    runtime_mod._reset_for_tests()
    outbox = root / "data" / "outbox.db"
    old = root / "old.db"
    try:
        info = build_outbox(outbox, between=lambda k: copy_outbox(outbox, old) if k == 1 else None)
    finally:
        runtime_mod._reset_for_tests()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    exported = root / "checkpoints.jsonl"
    assert cli_main(["--outbox", str(outbox), "export", "--checkpoints-only", "--out", str(exported)]) == 0
    return {"outbox": outbox, "old": old, "pub": pub, "ext": exported, "root": root, **info}


def victim(corpus: dict[str, Any], tmp_path: Path) -> Path:
    return clone(corpus["outbox"], tmp_path / "victim.db")


def run_verify(capsys: pytest.CaptureFixture[str], path: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    code = cli_main(["verify", str(path), "--json", *extra])
    out = json.loads(capsys.readouterr().out)
    return code, out


def messages(report: dict[str, Any], kind: str = "problems") -> list[str]:
    out = [f["message"] for f in report[kind]]
    for s in report["streams"]:
        out += [f["message"] for f in s[kind]]
    return out


def has(report: dict[str, Any], prefix: str, kind: str = "problems") -> bool:
    return any(m.startswith(prefix) for m in messages(report, kind))


def test_layout_is_what_the_corpus_assumes(corpus: dict[str, Any]) -> None:
    rows = records(corpus["outbox"])
    events = [json.loads(r[3])["event_name"] for r in rows]
    assert [r[2] for r in rows] == list(range(1, 42))
    assert events[0] == "auditel.stream.start"
    assert [i + 1 for i, e in enumerate(events) if e == "auditel.checkpoint"] == [22, 33, 39, 41]
    assert events[39] == "auditel.stream.end"


def test_untouched_outbox_verifies(corpus: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    code, rep = run_verify(capsys, corpus["outbox"], "--public-key", str(corpus["pub"]), "--checkpoints", str(corpus["ext"]), "--strict")
    assert code == 0, messages(rep)
    assert rep["ok"] and rep["strict_ok"]
    (stream,) = rep["streams"]
    assert stream["end"] == "clean" and stream["anchored_through"] == 40 and stream["checkpoints"] == 4
    assert "stream ended cleanly" in messages(rep, "notes")
    assert not has(rep, "unanchored tail", "notes")


def test_human_output_and_exit_code(corpus: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = victim(corpus, tmp_path)
    sql(path, "UPDATE records SET data = replace(data, '\"i\":5,', '\"i\":6,') WHERE seq=7")
    assert cli_main(["verify", str(path)]) == 1
    out = capsys.readouterr().out
    assert "PROBLEM record 7: hash mismatch" in out and "FAILED" in out
    assert cli_main(["verify", str(corpus["outbox"])]) == 0
    assert "OK: everything present verifies" in capsys.readouterr().out


SQL_ATTACKS = {
    "edit one field": (["UPDATE records SET data = replace(data, '\"i\":5,', '\"i\":6,') WHERE seq=7"], ["record 7: hash mismatch"]),
    "delete a middle record": (["DELETE FROM records WHERE seq=10"], ["gap after seq 9"]),
    # without the start record, which names the key, an unpinned verifier cannot check the signatures either
    "delete the genesis": (
        ["DELETE FROM records WHERE seq<=2"],
        ["start missing: seq 1..2 absent"] + [f"checkpoint {k}: signed by unknown key" for k in (21, 32, 38, 40)],
    ),
    "swap two records": (
        ["UPDATE records SET seq = -1 WHERE seq = 5", "UPDATE records SET seq = 5 WHERE seq = 6", "UPDATE records SET seq = 6 WHERE seq = -1"],
        ["record 5: out of order (row 5 says seq 6, data says seq 5)", "record 6: out of order (row 6 says seq 5, data says seq 6)"],
    ),
}


@pytest.mark.parametrize("attack", list(SQL_ATTACKS))
def test_sql_attacks(attack: str, corpus: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    statements, expected = SQL_ATTACKS[attack]
    path = victim(corpus, tmp_path)
    sql(path, *statements)
    code, rep = run_verify(capsys, path)
    assert code == 1
    got = messages(rep)
    assert len(got) == len(expected) and all(m.startswith(e) for m, e in zip(got, expected)), got


def test_edit_and_recompute_its_hash(corpus: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = victim(corpus, tmp_path)
    conn_rows = {r[2]: r for r in records(path)}
    data = conn_rows[7][3].replace('"tool2"', '"tool0"')
    assert data != conn_rows[7][3]
    set_record(path, 7, data)
    code, rep = run_verify(capsys, path)
    assert code == 1
    assert messages(rep) == ["record 7: hash mismatch (record 8 links to a different hash)"]


def test_swap_contents_recomputing_numbers(corpus: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The attacker swaps what records 5 and 6 say and fixes their sequence numbers and hash columns."""
    import hashlib

    path = victim(corpus, tmp_path)
    rows = {r[2]: r for r in records(path)}
    d5, d6 = json.loads(rows[5][3]), json.loads(rows[6][3])
    d5["attributes"]["i"], d6["attributes"]["i"] = d6["attributes"]["i"], d5["attributes"]["i"]
    from auditel.record.canonical import canonical

    for seq, d in ((5, d5), (6, d6)):
        set_record(path, seq, canonical(d))
    code, rep = run_verify(capsys, path)
    assert code == 1
    assert messages(rep) == [
        "record 5: hash mismatch (record 6 links to a different hash)",
        "record 6: hash mismatch (record 7 links to a different hash)",
    ]


def test_insert_forged_record_in_the_middle(corpus: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Renumber the rows after 12 and insert a forged, correctly linked record as seq 13."""
    import hashlib

    from auditel.record.canonical import canonical

    path = victim(corpus, tmp_path)
    rows = {r[2]: r for r in records(path)}
    forged = json.loads(rows[13][3])
    forged["attributes"]["gen_ai.tool.name"] = "rm -rf /"
    forged["attributes"]["audit.record.id"] = "01FORGED000000000000000000"
    text = canonical(forged)
    sql(
        path,
        "UPDATE records SET seq = seq + 1000 WHERE seq > 12",
        "UPDATE records SET seq = seq - 999 WHERE seq > 1000",
        ("INSERT INTO records(record_id, stream_id, seq, time_ns, event_name, data, record_hash) VALUES (?,?,?,?,?,?,?)",
         ("01FORGED000000000000000000", rows[13][1], 13, 0, "auditel.action", text, hashlib.sha256(text.encode()).hexdigest())),
    )
    code, rep = run_verify(capsys, path)
    assert code == 1
    assert has(rep, "record 13: conflicting copy")
    assert has(rep, "record 14: out of order")


def test_insert_forged_record_after_the_end(corpus: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import hashlib

    from auditel.record.canonical import canonical

    path = victim(corpus, tmp_path)
    rows = {r[2]: r for r in records(path)}
    forged = json.loads(rows[30][3])
    forged["attributes"].update({"audit.sequence.number": 42, "audit.sequence.previous_hash": rows[41][4],
                                 "audit.record.id": "01FORGED000000000000000042"})
    text = canonical(forged)
    sql(path, ("INSERT INTO records(record_id, stream_id, seq, time_ns, event_name, data, record_hash) VALUES (?,?,?,?,?,?,?)",
               ("01FORGED000000000000000042", rows[30][1], 42, 0, "auditel.action", text, hashlib.sha256(text.encode()).hexdigest())))
    code, rep = run_verify(capsys, path)
    assert code == 1
    assert messages(rep) == ["record 42: after the stream-end marker (seq 40)"]
    assert has(rep, "unanchored tail: seq 42..42", "notes")


def test_truncate_tail_after_checkpoint_export(corpus: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = victim(corpus, tmp_path)
    sql(path, "DELETE FROM records WHERE seq > 30")
    code, rep = run_verify(capsys, path, "--checkpoints", str(corpus["ext"]))
    assert code == 1
    assert messages(rep) == ["truncated: seq 31..40 missing, but checkpoint 40 in this outbox covers them"]
    assert has(rep, "end unknown", "notes")


def test_truncate_tail_with_its_checkpoints(corpus: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The attacker also removes the local checkpoints: only the exported ones reveal the cut."""
    path = victim(corpus, tmp_path)
    sql(path, "DELETE FROM records WHERE seq > 30", "DELETE FROM checkpoints WHERE tree_size > 30")
    code, rep = run_verify(capsys, path)
    assert code == 0  # locally consistent: this is exactly what a chain alone cannot see
    assert has(rep, "unanchored tail: seq 23..30", "notes") and has(rep, "end unknown", "notes")
    code, rep = run_verify(capsys, path, "--checkpoints", str(corpus["ext"]))
    assert code == 1
    assert messages(rep) == [
        f"rolled back: the stream ends at seq 30, but checkpoint 40 from {corpus['ext']} covers seq 40 "
        "(an older copy of the outbox, or its tail cut together with its checkpoints)"
    ]


def test_rollback_to_older_copy(corpus: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = shutil.copyfile(corpus["old"], tmp_path / "restored.db")
    code, rep = run_verify(capsys, Path(path), "--public-key", str(corpus["pub"]))
    assert code == 0, messages(rep)  # the old copy is self-consistent
    code, rep = run_verify(capsys, Path(path), "--public-key", str(corpus["pub"]), "--checkpoints", str(corpus["ext"]))
    assert code == 1
    assert [m.split(",")[0] for m in messages(rep)] == ["rolled back: the stream ends at seq 33"]


def test_rewrite_whole_file_without_the_key(corpus: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = victim(corpus, tmp_path)

    def mutate(rec: dict[str, Any]) -> None:
        if rec["attributes"].get("i") == 3:
            rec["attributes"]["gen_ai.tool.name"] = "innocent"

    rewrite_without_key(path, mutate, Ed25519PrivateKey.generate())
    code, rep = run_verify(capsys, path)
    assert code == 0  # self-consistent with the attacker's own key: nothing pinned, nothing to compare
    assert has(rep, "signatures checked against the key recorded in each stream start (not pinned)", "notes")
    code, rep = run_verify(capsys, path, "--public-key", str(corpus["pub"]))
    assert code == 1
    assert has(rep, "stream start: key id") and has(rep, "checkpoint 21: signed by untrusted key")
    code, rep = run_verify(capsys, path, "--checkpoints", str(corpus["ext"]))
    assert code == 1
    assert has(rep, "checkpoint 21: signed by unknown key") and has(rep, "checkpoint 21: head hash mismatch")


def test_rewrite_keeping_the_old_checkpoints(corpus: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = victim(corpus, tmp_path)

    def mutate(rec: dict[str, Any]) -> None:
        if rec["attributes"].get("i") == 3:
            rec["attributes"]["gen_ai.tool.name"] = "innocent"

    rewrite_without_key(path, mutate, Ed25519PrivateKey.generate(), keep_checkpoints=True)
    code, rep = run_verify(capsys, path)
    assert code == 1
    assert has(rep, "checkpoint 21: head hash mismatch")


def test_checkpoint_statement_edited(corpus: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A checkpoint edited to point at a forged head keeps its old signature: bad signature."""
    path = victim(corpus, tmp_path)
    sql(path, "UPDATE checkpoints SET data = replace(data, '\"tree_size\":21', '\"tree_size\":20'), tree_size=20 WHERE tree_size=21")
    code, rep = run_verify(capsys, path)
    assert code == 1
    assert has(rep, "checkpoint 20: bad signature")


def test_crashed_writer_reports_end_unknown_not_tampering(corpus: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    key = corpus["root"] / "key.pem"
    outbox = tmp_path / "crash" / "outbox.db"
    script = textwrap.dedent(
        f"""
        import os, sys, auditel
        rt = auditel.configure(outbox={str(outbox)!r})
        for i in range(30):
            auditel.emit("auditel.action", attributes={{"audit.action": "X", "i": i}})
            if i == 19:
                rt.checkpointer.checkpoint()
        print("ready", flush=True)
        sys.stdin.readline()
        """
    )
    env = dict(os.environ, **QUIET_ENV, AUDITEL_SIGNING_KEY_FILE=str(key))
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGKILL)  # kill -9: no shutdown hook, no end marker
    finally:
        proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    code, rep = run_verify(capsys, outbox, "--public-key", str(corpus["pub"]))
    assert code == 0, messages(rep)
    assert messages(rep) == []
    (stream,) = rep["streams"]
    assert stream["end"] == "unknown" and stream["last_seq"] == 32
    assert has(rep, "end unknown", "notes") and has(rep, "unanchored tail: seq 23..32", "notes")
    assert cli_main(["verify", str(outbox), "--strict"]) == 1  # strict: an unanchored tail is not enough
    capsys.readouterr()


def test_multi_process_outbox_verifies_per_stream(corpus: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    outbox = tmp_path / "multi" / "outbox.db"
    script = textwrap.dedent(
        f"""
        import auditel
        auditel.configure(outbox={str(outbox)!r})
        for i in range(25):
            auditel.emit("auditel.action", attributes={{"audit.action": "X", "i": i}})
        auditel.shutdown()
        """
    )
    env = dict(os.environ, AUDITEL_CHECKPOINT_EVERY="10", AUDITEL_SIGNING_KEY_FILE=str(corpus["root"] / "key.pem"))
    procs = [subprocess.Popen([sys.executable, "-c", script], env=env) for _ in range(3)]
    for p in procs:
        assert p.wait(60) == 0
    code, rep = run_verify(capsys, outbox, "--public-key", str(corpus["pub"]), "--strict")
    assert code == 0, messages(rep)
    assert len(rep["streams"]) == 3
    assert all(s["end"] == "clean" and s["records"] >= 28 for s in rep["streams"])
    # tampering with one stream is reported for that stream only
    victim_stream = rep["streams"][1]["stream_id"]
    sql(outbox, ("DELETE FROM records WHERE stream_id=? AND seq=5", (victim_stream,)))
    code, rep = run_verify(capsys, outbox)
    assert code == 1
    bad = {s["stream_id"]: [f["message"] for f in s["problems"]] for s in rep["streams"]}
    assert bad.pop(victim_stream) == ["gap after seq 4"]
    assert all(v == [] for v in bad.values())


def test_verifier_does_not_modify_the_file(corpus: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import hashlib

    path = victim(corpus, tmp_path)
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir()}
    run_verify(capsys, path)
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in tmp_path.iterdir() if p.name in before}
    assert before == after


def test_third_party_verifies_an_export_offline_with_only_the_public_key(
    corpus: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`auditel export` on the host; elsewhere, only the export file and the public key."""
    monkeypatch.setenv("AUDITEL_SIGNING_KEY_FILE", str(corpus["root"] / "key.pem"))  # the host's configuration
    export, pub = tmp_path / "audit.jsonl", tmp_path / "pub.pem"
    assert cli_main(["--outbox", str(corpus["outbox"]), "export", "--out", str(export), "--public-key-out", str(pub)]) == 0
    capsys.readouterr()
    assert pub.read_text() == corpus["pub"].read_text()
    code, rep = run_verify(capsys, export, "--from-export", str(export), "--public-key", str(pub), "--strict")
    assert code == 0, messages(rep)
    (stream,) = rep["streams"]
    assert stream["end"] == "clean" and stream["anchored_through"] == 40 and stream["checkpoints"] == 4

    lines = export.read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    seq7 = next(i for i, r in enumerate(rows) if r.get("type") == "record" and r.get("seq") == 7)
    edited = dict(rows[seq7], data=rows[seq7]["data"].replace('"i":5,', '"i":6,'))
    assert edited["data"] != rows[seq7]["data"]
    tampered = tmp_path / "edited.jsonl"
    tampered.write_text("\n".join([*lines[:seq7], json.dumps(edited), *lines[seq7 + 1:]]) + "\n")
    code, rep = run_verify(capsys, tampered, "--from-export", str(tampered), "--public-key", str(pub))
    assert code == 1 and messages(rep) == ["record 7: hash mismatch"], messages(rep)

    dropped = tmp_path / "dropped.jsonl"
    dropped.write_text("\n".join([*lines[:seq7], *lines[seq7 + 1:]]) + "\n")
    code, rep = run_verify(capsys, dropped, "--from-export", str(dropped), "--public-key", str(pub))
    assert code == 1 and messages(rep) == ["gap after seq 6"], messages(rep)
