"""Checkpoint signing: key configuration, cadence (count, time, idle), shutdown coverage, off the caller's path."""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import stat
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import auditel
from auditel import runtime as runtime_mod
from auditel.integrity.checkpoints import load_intervals, load_signer
from auditel.config.settings import ConfigError
from auditel.integrity.signing import ALG_HMAC, HmacSigner, ed25519_key_id
from auditel.integrity.verify import verify_path

from integrity_helpers import QUIET_ENV, emit_actions, write_key

KEY_VARS = ("AUDITEL_SIGNING_KEY", "AUDITEL_SIGNING_KEY_FILE", "AUDITEL_HMAC_KEY", "AUDITEL_CHECKPOINT_EVERY",
            "AUDITEL_CHECKPOINT_INTERVAL_S")


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in KEY_VARS:
        monkeypatch.delenv(var, raising=False)
    runtime_mod._reset_for_tests()
    yield
    runtime_mod._reset_for_tests()


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def wait_for(predicate: Any, timeout: float = 20.0) -> None:
    """Poll until the worker thread has done something (no timing assertion: only an upper bound)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the worker did not act in time"
        time.sleep(0.02)


# --- key configuration ------------------------------------------------------------------------------
def test_pem_raw_and_file_keys_give_the_same_key_id(tmp_path: Path) -> None:
    private = Ed25519PrivateKey.generate()
    pem = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    raw = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
    expected = ed25519_key_id(private.public_key())
    assert load_signer({"AUDITEL_SIGNING_KEY": pem.decode()}, tmp_path / "o.db").key_id == expected
    assert load_signer({"AUDITEL_SIGNING_KEY": base64.b64encode(raw).decode()}, tmp_path / "o.db").key_id == expected
    (tmp_path / "k.pem").write_bytes(pem)
    assert load_signer({"AUDITEL_SIGNING_KEY_FILE": str(tmp_path / "k.pem")}, tmp_path / "o.db").key_id == expected
    assert not (tmp_path / "signing.key").exists()


def test_hmac_key(tmp_path: Path) -> None:
    signer = load_signer({"AUDITEL_HMAC_KEY": "00112233445566778899aabbccddeeff"}, tmp_path / "o.db")
    assert isinstance(signer, HmacSigner) and signer.algorithm == ALG_HMAC
    assert signer.key_id.startswith("hmac-sha256:") and "00112233" not in signer.key_id
    other = load_signer({"AUDITEL_HMAC_KEY": "ffeeddccbbaa99887766554433221100"}, tmp_path / "o.db")
    assert other.key_id != signer.key_id


@pytest.mark.parametrize(
    "env, var, accepted",
    [
        ({"AUDITEL_SIGNING_KEY": "c2VjcmV0LXRvby1zaG9ydA=="}, "AUDITEL_SIGNING_KEY=<24 characters, hidden>", "PEM Ed25519 private key"),
        ({"AUDITEL_SIGNING_KEY": "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----"}, "AUDITEL_SIGNING_KEY=<", "PEM Ed25519 private key"),
        ({"AUDITEL_HMAC_KEY": "short-secret"}, "AUDITEL_HMAC_KEY=<12 characters, hidden>", "at least 16 bytes"),
        ({"AUDITEL_SIGNING_KEY_FILE": "/nonexistent/key.pem"}, "AUDITEL_SIGNING_KEY_FILE='/nonexistent/key.pem'", "readable file"),
        ({"AUDITEL_HMAC_KEY": "00112233445566778899aabbccddeeff", "AUDITEL_SIGNING_KEY_FILE": "/x"}, "AUDITEL_HMAC_KEY and AUDITEL_SIGNING_KEY", "only one"),
    ],
)
def test_bad_keys_name_the_variable_and_hide_secrets(tmp_path: Path, env: dict[str, str], var: str, accepted: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_signer(env, tmp_path / "o.db")
    text = str(info.value)
    assert var in text and accepted in text
    for secret in ("c2VjcmV0LXRvby1zaG9ydA", "short-secret", "nope"):
        assert secret not in text


def test_bad_intervals() -> None:
    with pytest.raises(ConfigError, match=r"AUDITEL_CHECKPOINT_EVERY='0' is not valid: expected a whole number of records >= 1"):
        load_intervals({"AUDITEL_CHECKPOINT_EVERY": "0"})
    with pytest.raises(ConfigError, match=r"AUDITEL_CHECKPOINT_INTERVAL_S='soon' is not valid"):
        load_intervals({"AUDITEL_CHECKPOINT_INTERVAL_S": "soon"})
    assert load_intervals({}) == (1000, 60.0)


def test_bad_key_fails_configure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITEL_HMAC_KEY", "tooshort")
    with pytest.raises(ConfigError, match="AUDITEL_HMAC_KEY"):
        auditel.configure(outbox=str(tmp_path / "o.db"))


def test_generated_key_is_0600_with_one_notice(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    old = os.umask(0o022)
    try:
        rt = auditel.configure(outbox=str(tmp_path / "d" / "outbox.db"))
    finally:
        os.umask(old)
    assert rt is not None
    key = tmp_path / "d" / "signing.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    err = capfd.readouterr().err
    assert err.count("a new Ed25519 key was generated") == 1 and str(key) in err and rt.signer.key_id in err
    runtime_mod._reset_for_tests()
    rt2 = auditel.configure(outbox=str(tmp_path / "d" / "outbox.db"))
    assert rt2 is not None and rt2.signer.key_id == rt.signer.key_id
    assert "generated" not in capfd.readouterr().err


def test_stream_start_records_key_id_and_public_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    key, pub, private = write_key(tmp_path)
    monkeypatch.setenv("AUDITEL_SIGNING_KEY_FILE", str(key))
    rt = auditel.configure(outbox=str(tmp_path / "o.db"))
    auditel.emit("auditel.action", attributes={"audit.action": "X"})
    body = json.loads(rows(tmp_path / "o.db", "SELECT data FROM records WHERE seq=1")[0][0])["body"]
    assert body["integrity.key_id"] == ed25519_key_id(private.public_key()) == rt.signer.key_id
    assert body["integrity.algorithm"] == "Ed25519"
    assert base64.b64decode(body["integrity.public_key"]) == private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)


# --- cadence --------------------------------------------------------------------------------------------
def test_every_n_records_and_final_checkpoint_covers_end_marker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITEL_CHECKPOINT_EVERY", "10")
    monkeypatch.setenv("AUDITEL_CHECKPOINT_INTERVAL_S", "1000000")
    outbox = tmp_path / "o.db"
    auditel.configure(outbox=str(outbox))
    for batch in range(3):  # each batch of 10 records is followed by one checkpoint from the worker
        emit_actions(10, batch * 10)
        # wait for the checkpoint's own record, not its row (written first): the next batch must not
        # land between the two, or the carrier's seq (which this test counts from) moves up
        carriers_sql = "SELECT count(*) FROM records WHERE event_name='auditel.checkpoint'"
        wait_for(lambda: rows(outbox, carriers_sql)[0][0] >= batch + 1)
    emit_actions(5, 30)  # fewer than N: only the final checkpoint covers these
    auditel.shutdown()
    sizes = [c[0] for c in rows(outbox, "SELECT tree_size FROM checkpoints ORDER BY cid")]
    carriers = [c[0] for c in rows(outbox, "SELECT seq FROM records WHERE event_name='auditel.checkpoint' ORDER BY seq")]
    end_seq = rows(outbox, "SELECT seq FROM records WHERE event_name='auditel.stream.end'")[0][0]
    # three count-triggered checkpoints (each after >= 10 records not counting the previous checkpoint's
    # own record; the worker may see the 10th record before the 11th) and the final one over the end marker
    assert len(sizes) == len(carriers) == 4
    assert all(size < carrier for size, carrier in zip(sizes, carriers))
    assert all(sizes[k] - ([0] + carriers)[k] >= 10 for k in range(3))
    assert sizes[-1] == end_seq == 40 and carriers[-1] == 41
    report = verify_path(outbox)
    assert report.ok and report.strict_ok(), report.all_messages()


def test_heartbeat_checkpoints_while_idle(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITEL_CHECKPOINT_INTERVAL_S", "0.1")
    outbox = tmp_path / "o.db"
    auditel.configure(outbox=str(outbox))
    auditel.emit("auditel.action", attributes={"audit.action": "X"})
    wait_for(lambda: rows(outbox, "SELECT count(*) FROM checkpoints")[0][0] >= 3)
    heads = rows(outbox, "SELECT tree_size, data FROM checkpoints ORDER BY cid")
    # nothing but the previous checkpoint's own record moved the head: heartbeats, chained
    assert [h[0] for h in heads[:3]] == [2, 3, 4]
    statements = [json.loads(h[1]) for h in heads]
    assert statements[0]["previous_checkpoint_hash"] is None
    assert all(s["previous_checkpoint_hash"] for s in statements[1:])
    auditel.shutdown()
    assert verify_path(outbox).strict_ok()


def test_signing_never_runs_on_the_callers_thread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDITEL_CHECKPOINT_EVERY", "5")
    rt = auditel.configure(outbox=str(tmp_path / "o.db"))
    assert rt is not None
    threads: list[str] = []
    real_sign = rt.signer.sign

    def spy(data: bytes) -> str:  # a spy, not a stub: the real signature is returned
        threads.append(threading.current_thread().name)
        return real_sign(data)

    monkeypatch.setattr(rt.signer, "sign", spy)
    # wake-ups are coalesced, so one burst may end in one checkpoint covering it all: use two bursts
    emit_actions(20)
    wait_for(lambda: len(threads) >= 1)
    emit_actions(20)
    wait_for(lambda: len(threads) >= 2)
    assert set(threads) == {"auditel-worker"}


def test_hmac_checkpoints_verify_only_with_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from auditel.cli import main as cli_main

    monkeypatch.setenv("AUDITEL_HMAC_KEY", "00112233445566778899aabbccddeeff")
    for k, v in QUIET_ENV.items():
        monkeypatch.setenv(k, v)
    outbox = tmp_path / "o.db"
    auditel.configure(outbox=str(outbox))
    emit_actions(5)
    auditel.shutdown()
    monkeypatch.setenv("MY_KEY", "00112233445566778899aabbccddeeff")
    assert cli_main(["verify", str(outbox), "--hmac-key-env", "MY_KEY", "--strict"]) == 0
    assert "OK" in capsys.readouterr().out
    assert cli_main(["verify", str(outbox)]) == 0  # without the key: reported, not verified
    assert "HMAC-SHA256 checkpoint signatures not checked" in capsys.readouterr().out
    monkeypatch.setenv("WRONG_KEY", "ffeeddccbbaa99887766554433221100")
    assert cli_main(["verify", str(outbox), "--hmac-key-env", "WRONG_KEY"]) == 1
    assert "signed by untrusted key" in capsys.readouterr().out
    assert cli_main(["verify", str(outbox), "--hmac-key-env", "UNSET_VAR_X"]) == 2


def test_fork_starts_a_new_stream_with_its_own_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in QUIET_ENV.items():
        monkeypatch.setenv(k, v)
    outbox = tmp_path / "o.db"
    rt = auditel.configure(outbox=str(outbox))
    assert rt is not None
    emit_actions(3)
    rt.checkpointer.checkpoint()
    pid = os.fork()
    if pid == 0:  # child: its own stream, its own chain of checkpoints
        code = 0
        try:
            emit_actions(4)
            runtime_mod.shutdown(5.0)
        except BaseException:  # noqa: BLE001
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    emit_actions(2)
    auditel.shutdown()
    report = verify_path(outbox)
    assert report.ok, report.all_messages()
    assert len(report.streams) == 2 and all(s.ended_cleanly for s in report.streams)
    assert all(s.anchored_through == s.last_seq - 1 for s in report.streams)


def test_records_emitted_while_a_checkpoint_is_signed_are_covered_by_the_next_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The carrier record lands after records emitted during signing: those still count as uncovered."""
    monkeypatch.setenv("AUDITEL_CHECKPOINT_EVERY", "5")
    monkeypatch.setenv("AUDITEL_CHECKPOINT_INTERVAL_S", "3600")
    rt = auditel.configure(outbox=str(tmp_path / "o.db"))
    assert rt is not None
    rt.worker.stop(2)  # drive the checkpointer by hand
    (task,) = [t for t in rt.worker._tasks if t.name == "checkpoints"]
    checkpointer = task.fn.__self__
    emit_actions(10)
    real_sign = rt.signer.sign

    def sign_while_the_app_keeps_emitting(data: bytes) -> str:
        emit_actions(8, start=100)  # the app emits between signing and the carrier record
        return real_sign(data)

    monkeypatch.setattr(rt.signer, "sign", sign_while_the_app_keeps_emitting)
    first = checkpointer.checkpoint()
    monkeypatch.setattr(rt.signer, "sign", real_sign)
    assert first is not None
    covered = first["checkpoint"]["tree_size"]
    _, head_seq, _ = rt.processor.head()
    assert head_seq == covered + 8 + 1  # 8 records signed over by nobody, then the carrier
    before = checkpointer.written
    checkpointer.tick()
    assert checkpointer.written == before + 1  # 8 uncovered records >= AUDITEL_CHECKPOINT_EVERY
    latest = rt.outbox.connect().execute("SELECT max(tree_size) FROM checkpoints").fetchone()[0]
    assert latest >= covered + 8
