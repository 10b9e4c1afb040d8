"""Real outbox files for the integrity tests: written by auditel itself, then attacked with raw SQL."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any, Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import auditel
from auditel import runtime as runtime_mod
from auditel.record.canonical import canonical
from auditel.integrity.signing import Ed25519Signer, public_key_pem, statement_bytes, statement_hash

# No checkpoint by count or time during a test: the tests place them where they want them.
QUIET_ENV = {"AUDITEL_CHECKPOINT_EVERY": "1000000", "AUDITEL_CHECKPOINT_INTERVAL_S": "1000000"}


def write_key(directory: Path, name: str = "key.pem") -> tuple[Path, Path, Ed25519PrivateKey]:
    """A private key file (0600) and its public key file."""
    private = Ed25519PrivateKey.generate()
    key_path = directory / name
    key_path.write_bytes(
        private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    key_path.chmod(0o600)
    pub_path = directory / (name + ".pub")
    pub_path.write_text(public_key_pem(private.public_key()))
    return key_path, pub_path, private


def emit_actions(n: int, start: int = 0) -> None:
    for i in range(start, start + n):
        auditel.emit("auditel.action", attributes={"audit.action": "EXECUTE", "i": i, "gen_ai.tool.name": f"tool{i % 3}"})


def build_outbox(
    path: Path, layout: tuple[int, ...] = (20, 10, 5), *, end: bool = True, between: Callable[[int], None] | None = None
) -> dict[str, Any]:
    """Emit ``layout[k]`` records then a checkpoint, for each k; then shut down (end marker + final checkpoint).

    With the default layout: start=1, records 2..21, checkpoint 21 (record 22), records 23..32,
    checkpoint 32 (record 33), records 34..38, checkpoint 38 (record 39), end marker 40,
    final checkpoint 40 (record 41).
    """
    rt = auditel.configure(outbox=str(path))
    assert rt is not None
    written = 0
    for k, n in enumerate(layout):
        emit_actions(n, written)
        written += n
        rt.checkpointer.checkpoint()
        if between is not None:
            between(k)
    info = {"stream_id": rt.processor.stream_id}
    if end:
        runtime_mod.shutdown(5.0)
    return info


def records(path: Path) -> list[tuple[int, str, int, str, str]]:
    conn = sqlite3.connect(str(path))
    try:
        return conn.execute("SELECT rid, stream_id, seq, data, record_hash FROM records ORDER BY stream_id, seq").fetchall()
    finally:
        conn.close()


def sql(path: Path, *statements: tuple[str, tuple[Any, ...]] | str) -> None:
    conn = sqlite3.connect(str(path), isolation_level=None)
    try:
        for st in statements:
            if isinstance(st, str):
                conn.execute(st)
            else:
                conn.execute(*st)
    finally:
        conn.close()


def set_record(path: Path, seq: int, data: str) -> None:
    """Replace a record's stored text and recompute its hash column (the attacker's cheap fix-up)."""
    sql(path, ("UPDATE records SET data=?, record_hash=? WHERE seq=?", (data, sha(data), seq)))


def copy_outbox(src: Path, dst: Path) -> Path:
    """A consistent copy of a (possibly live, WAL) outbox, as a backup tool would make."""
    s = sqlite3.connect(str(src))
    d = sqlite3.connect(str(dst))
    try:
        s.backup(d)
    finally:
        d.close()
        s.close()
    return dst


def clone(src: Path, dst: Path) -> Path:
    s = sqlite3.connect(str(src))
    s.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    s.close()
    shutil.copyfile(src, dst)
    return dst


def sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def rewrite_without_key(path: Path, mutate: Callable[[dict[str, Any]], None], attacker: Ed25519PrivateKey,
                        *, keep_checkpoints: bool = False) -> None:
    """What an attacker without the signing key can do: edit, then recompute every hash, link and
    checkpoint consistently, signing with a key of their own (or keeping the old checkpoints)."""
    signer = Ed25519Signer(attacker)
    conn = sqlite3.connect(str(path), isolation_level=None)
    rows = conn.execute("SELECT rid, data FROM records ORDER BY stream_id, seq").fetchall()
    conn.execute("BEGIN")
    prev: str | None = None
    heads: dict[int, str] = {}
    prev_cp: str | None = None
    for rid, data in rows:
        rec = json.loads(data)
        attrs = rec["attributes"]
        if prev is not None:
            attrs["audit.sequence.previous_hash"] = prev
        mutate(rec)
        if rec["event_name"] == "auditel.stream.start" and not keep_checkpoints:
            rec["body"].update(signer.public_info())
        if rec["event_name"] == "auditel.checkpoint" and not keep_checkpoints:
            st = dict(rec["body"]["checkpoint"], head_hash=heads[rec["body"]["checkpoint"]["tree_size"]],
                      key_id=signer.key_id, previous_checkpoint_hash=prev_cp)
            rec["body"] = {"checkpoint": st, "signature": signer.sign(statement_bytes(st))}
            prev_cp = statement_hash(st)
        text = canonical(rec)
        prev = sha(text)
        heads[attrs["audit.sequence.number"]] = prev
        conn.execute("UPDATE records SET data=?, record_hash=? WHERE rid=?", (text, prev, rid))
    if not keep_checkpoints:
        conn.execute("DELETE FROM checkpoints")
        for (data,) in conn.execute("SELECT data FROM records WHERE event_name='auditel.checkpoint' ORDER BY seq").fetchall():
            body = json.loads(data)["body"]
            st = body["checkpoint"]
            conn.execute(
                "INSERT INTO checkpoints(stream_id, tree_size, head_hash, time_ns, prev_checkpoint_hash, key_id, algorithm,"
                " signature, data, checkpoint_hash) VALUES (?,?,?,?,?,?,?,?,?,?)",
                (st["stream_id"], st["tree_size"], st["head_hash"], int(st["time"]), st["previous_checkpoint_hash"],
                 st["key_id"], st["algorithm"], body["signature"], canonical(st), statement_hash(st)),
            )
    conn.execute("COMMIT")
    conn.close()
