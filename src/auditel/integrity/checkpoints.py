"""Signed checkpoints over each stream's head, stored locally and shipped as records.

``install_checkpointer(runtime)`` (called by ``Runtime.__init__``) chooses a signer, records its key id (and
public key) in every stream-start record, and registers a worker task that writes a
checkpoint every ``AUDITEL_CHECKPOINT_EVERY`` records or ``AUDITEL_CHECKPOINT_INTERVAL_S``
seconds, also while idle (a heartbeat: only the time moves), and a final one at shutdown
that covers the stream-end marker. Each checkpoint is a signed statement (see ``signing``)
kept in the ``checkpoints`` table and committed as an ``auditel.checkpoint`` record, so the
shipper sends it off the host with the records it covers. Nothing here runs on the caller's
path.

Keys (environment):

* ``AUDITEL_HMAC_KEY``: HMAC-SHA256 with this key (hex or base64, >= 16 bytes); only holders
  of the key can verify, and they can also forge.
* ``AUDITEL_SIGNING_KEY``: an Ed25519 private key (PEM, or base64 of the 32-byte raw key), or
  ``AUDITEL_SIGNING_KEY_FILE``: a file holding one.
* none: ``signing.key`` beside the outbox (0600) is used, generated on first use with a
  notice on stderr.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from auditel.record import schema as S
from auditel.config.settings import ConfigError
from auditel.store.key_files import publish_new_file
from auditel.integrity.signing import (
    CHECKPOINT_FORMAT,
    Ed25519Signer,
    HmacSigner,
    KeyFormatError,
    Signer,
    load_ed25519_private,
    load_hmac_key,
    statement_bytes,
    statement_hash,
)

if TYPE_CHECKING:
    from auditel.runtime import Runtime

DEFAULT_EVERY = 1000
DEFAULT_INTERVAL_S = 60.0
KEY_FILE_NAME = "signing.key"

# Attributes of an ``auditel.checkpoint`` record (the signed statement is its body).
A_CP_TREE_SIZE = "audit.checkpoint.tree_size"
A_CP_HEAD_HASH = "audit.checkpoint.head_hash"
A_CP_KEY_ID = "audit.integrity.key_id"
A_CP_ALGORITHM = "audit.integrity.algorithm"


# --- configuration ------------------------------------------------------------------------------
def load_signer(env: Mapping[str, str], outbox_path: Path) -> Signer:
    """The signer the environment asks for; ``ConfigError`` naming the variable when a value is bad."""
    errors: list[str] = []
    hmac_raw = env.get("AUDITEL_HMAC_KEY", "").strip()
    key_raw = env.get("AUDITEL_SIGNING_KEY", "").strip()
    key_file = env.get("AUDITEL_SIGNING_KEY_FILE", "").strip()
    if hmac_raw and (key_raw or key_file):
        errors.append(
            "AUDITEL_HMAC_KEY and AUDITEL_SIGNING_KEY/AUDITEL_SIGNING_KEY_FILE are both set: "
            "expected only one (HMAC-SHA256 or Ed25519 checkpoints)"
        )
    if key_raw and key_file:
        errors.append("AUDITEL_SIGNING_KEY and AUDITEL_SIGNING_KEY_FILE are both set: expected only one")
    if errors:
        raise ConfigError("invalid auditel configuration:\n  " + "\n  ".join(errors))
    if hmac_raw:
        try:
            return HmacSigner(load_hmac_key(hmac_raw))
        except KeyFormatError as exc:
            raise _bad("AUDITEL_HMAC_KEY", hmac_raw, str(exc), secret=True) from exc
    if key_raw:
        try:
            return Ed25519Signer(load_ed25519_private(key_raw.encode("utf-8")))
        except KeyFormatError as exc:
            raise _bad("AUDITEL_SIGNING_KEY", key_raw, str(exc), secret=True) from exc
    if key_file:
        path = Path(key_file).expanduser()
        try:
            material = path.read_bytes()
        except OSError as exc:
            raise _bad(
                "AUDITEL_SIGNING_KEY_FILE", key_file, f"a readable file holding an Ed25519 private key ({exc.strerror})"
            ) from exc
        try:
            return Ed25519Signer(load_ed25519_private(material))
        except KeyFormatError as exc:
            raise _bad("AUDITEL_SIGNING_KEY_FILE", key_file, f"a file holding {exc}") from exc
    return Ed25519Signer(load_or_create_key_file(outbox_path.parent / KEY_FILE_NAME))


def load_intervals(env: Mapping[str, str]) -> tuple[int, float]:
    errors: list[str] = []
    every, interval = DEFAULT_EVERY, DEFAULT_INTERVAL_S
    raw = env.get("AUDITEL_CHECKPOINT_EVERY", "").strip()
    if raw:
        try:
            every = int(raw)
            if every < 1:
                raise ValueError
        except ValueError:
            errors.append(f"AUDITEL_CHECKPOINT_EVERY={raw!r} is not valid: expected a whole number of records >= 1")
    raw = env.get("AUDITEL_CHECKPOINT_INTERVAL_S", "").strip()
    if raw:
        try:
            interval = float(raw)
            if not (0 < interval < 1e9):
                raise ValueError
        except ValueError:
            errors.append(f"AUDITEL_CHECKPOINT_INTERVAL_S={raw!r} is not valid: expected a number of seconds > 0")
    if errors:
        raise ConfigError("invalid auditel configuration:\n  " + "\n  ".join(errors))
    return every, interval


def _bad(var: str, value: str, accepted: str, *, secret: bool = False) -> ConfigError:
    shown = f"<{len(value)} characters, hidden>" if secret else repr(value)
    return ConfigError(f"invalid auditel configuration:\n  {var}={shown} is not valid: expected {accepted}")


def load_or_create_key_file(path: Path) -> Ed25519PrivateKey:
    """Read ``signing.key``, or create it (0600, published atomically) and say so once on stderr."""
    for _ in range(3):
        try:
            return load_ed25519_private(path.read_bytes())
        except FileNotFoundError:
            pass
        except KeyFormatError as exc:
            raise ConfigError(
                f"invalid auditel configuration:\n  {path} (the generated signing key) is not valid: expected {exc};"
                " remove it to generate a new one, or set AUDITEL_SIGNING_KEY_FILE"
            ) from exc
        signer = Ed25519Signer(Ed25519PrivateKey.generate())
        if not publish_new_file(path, signer.private_pem()):
            continue  # a concurrent process published its key first: read that one
        sys.stderr.write(
            f"auditel: no checkpoint signing key was configured, so a new Ed25519 key was generated at {path} "
            f"(mode 0600, key id {signer.key_id}). Checkpoints are signed with it. Keep its public key off this "
            "host to verify later (`auditel export --public-key-out FILE`), or set AUDITEL_SIGNING_KEY_FILE "
            "to a key you manage. This notice is shown once.\n"
        )
        return load_ed25519_private(path.read_bytes())
    raise ConfigError(f"invalid auditel configuration:\n  {path}: could not create or read the signing key")


# --- writing checkpoints -----------------------------------------------------------------------------
def store_checkpoint(outbox: Any, statement: dict[str, Any], signature: str) -> str:
    """Insert one checkpoint row; returns its hash."""
    data = statement_bytes(statement).decode("utf-8")
    chash = statement_hash(statement)
    with outbox.write_transaction() as conn:  # queues with the app's commits on the write lock
        conn.execute(
            "INSERT INTO checkpoints(stream_id, tree_size, head_hash, time_ns, prev_checkpoint_hash, key_id,"
            " algorithm, signature, data, checkpoint_hash) VALUES (?,?,?,?,?,?,?,?,?,?)",
            (
                statement["stream_id"],
                statement["tree_size"],
                statement["head_hash"],
                int(statement["time"]),
                statement["previous_checkpoint_hash"],
                statement["key_id"],
                statement["algorithm"],
                signature,
                data,
                chash,
            ),
        )
    return chash


class Checkpointer:
    """Writes the checkpoints of this process's stream (one at a time, from the worker or at shutdown)."""

    def __init__(self, runtime: Any, signer: Signer, *, every: int, interval_s: float, origin: str) -> None:
        self.runtime = runtime
        self.signer = signer
        self.every = every
        self.interval_s = interval_s
        self.origin = origin
        self.written = 0
        self.task: Any = None  # the worker task running tick (set by install_checkpointer)
        self._lock = threading.Lock()
        self._reset(None)
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._after_fork_child)

    def _reset(self, stream_id: str | None) -> None:
        self._stream_id = stream_id
        self._previous: str | None = None
        self._last_tree_size = 0  # the sequence number the last signed checkpoint covers
        self._last_carrier_seq = 0  # the sequence number of that checkpoint's own record
        self._last_time = time.monotonic()
        self._due_seq = self.every  # on_commit asks for a checkpoint once the stream reaches this
        self._requested = False

    def _covered(self) -> int:
        """The sequence number through which records are covered by the last checkpoint, counting
        that checkpoint's own record (it lands after records emitted while it was signed, so its
        seq is not the coverage boundary: counting from it would skip those records)."""
        return self._last_tree_size + (1 if self._last_carrier_seq > self._last_tree_size else 0)

    def on_commit(self) -> None:
        """Processor waker, after every commit: one comparison; once N records are not covered by a
        checkpoint, the worker is asked (once) to run ``tick``. Between checkpoints nothing wakes it."""
        if not self._requested and self.runtime.processor.sequence >= self._due_seq and self.task is not None:
            self._requested = True
            self.runtime.worker.run_soon(self.task)

    def _after_fork_child(self) -> None:
        self._lock = threading.Lock()
        self._reset(None)

    def tick(self) -> float:
        """Worker task: checkpoint when N records or T seconds have passed; returns the next delay."""
        stream_id, seq, _ = self.runtime.processor.head()
        if seq == 0:
            return self.interval_s
        with self._lock:  # compare and reset under the lock: checkpoint() may be running on another thread
            if stream_id != self._stream_id:
                self._reset(stream_id)
            waited = time.monotonic() - self._last_time
            covered = self._covered()
            new_records = seq - covered  # records not covered by a signature
            self._due_seq = covered + self.every
            self._requested = False
        if new_records >= self.every or waited >= self.interval_s:
            self.checkpoint()
            return self.interval_s
        return max(0.05, self.interval_s - waited)

    def checkpoint(self) -> dict[str, Any] | None:
        """Sign the current head, store it and commit it as an ``auditel.checkpoint`` record."""
        processor = self.runtime.processor
        with self._lock:
            stream_id, seq, head = processor.head()
            if seq == 0 or head is None:
                return None
            if stream_id != self._stream_id:
                self._reset(stream_id)
            statement: dict[str, Any] = {
                "format": CHECKPOINT_FORMAT,
                "origin": self.origin,
                "stream_id": stream_id,
                "tree_size": seq,
                "head_hash": head,
                "time": str(time.time_ns()),
                "previous_checkpoint_hash": self._previous,
                "key_id": self.signer.key_id,
                "algorithm": self.signer.algorithm,
            }
            signature = self.signer.sign(statement_bytes(statement))
            chash = store_checkpoint(self.runtime.outbox, statement, signature)
            self._previous = chash
            self._last_time = time.monotonic()
            attrs = {
                A_CP_TREE_SIZE: seq,
                A_CP_HEAD_HASH: head,
                A_CP_KEY_ID: self.signer.key_id,
                A_CP_ALGORITHM: self.signer.algorithm,
            }
            stored = processor.append_internal(
                S.EV_CHECKPOINT, attrs, {"checkpoint": statement, "signature": signature}
            )
            self._last_tree_size = seq
            if stored is not None:
                self._last_carrier_seq = stored["attributes"][S.A_SEQ]
            self._due_seq = self._covered() + self.every
            self._requested = False
            self.written += 1
            return {"checkpoint": statement, "signature": signature, "hash": chash}

    def on_shutdown(self, deadline: float) -> None:
        """Write the end marker, then a final checkpoint that covers it."""
        self.runtime.processor.end_stream()
        self.checkpoint()


def install_checkpointer(runtime: Runtime) -> Checkpointer:
    """Build the checkpointer of ``runtime`` and register its hooks and worker task; the runtime
    keeps the result (``Runtime.checkpointer``). Called once by ``Runtime.__init__``."""
    env = os.environ
    every, interval = load_intervals(env)
    signer = load_signer(env, Path(runtime.outbox.path))
    origin = f"{runtime.settings.service_name}@{socket.gethostname()}"
    checkpointer = Checkpointer(runtime, signer, every=every, interval_s=interval, origin=origin)
    runtime.add_stream_start_hook(signer.public_info)
    runtime.add_shutdown_hook(checkpointer.on_shutdown)
    # Not woken by every commit: on_commit asks for a run when N records are due, the interval
    # covers the rest (T seconds, also while idle).
    checkpointer.task = runtime.worker.add_task("checkpoints", checkpointer.tick, interval)
    runtime.processor.add_waker(checkpointer.on_commit)
    return checkpointer
