"""Stream state: one process's audit stream (its id, the last sequence number and hash, whether it
is registered in the outbox and whether its end marker is written), and the stream-start body.

A stream belongs to one process: a forked child starts a new one (``StreamState.forked``). The
processor holds a ``StreamState`` and changes it only under its stream lock.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Callable
from typing import Any

from auditel.config.settings import Settings
from auditel.counters import Counters
from auditel.record.canonical import canonical
from auditel.record.ids import new_stream_id
from auditel.record.safe_value import safe_value
from auditel.redaction.redactor import Redactor


class StreamState:
    __slots__ = ("pid", "stream_id", "seq", "head", "registered", "ended")

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.stream_id = new_stream_id()
        self.seq = 0  # the last sequence number written (0: nothing yet)
        self.head: str | None = None  # the hash of that record
        self.registered = False  # the stream row and the start record are written
        self.ended = False  # the end marker is written: only checkpoints may follow it

    def forked(self) -> bool:
        """True in a child forked after this stream began (it must start its own)."""
        return os.getpid() != self.pid


def start_body(
    state: StreamState,
    settings: Settings,
    redactor: Redactor,
    resource: dict[str, Any],
    counters: Counters,
    extra: Callable[[], dict[str, Any]] | None,
) -> dict[str, Any]:
    """The body of the stream-start record: what wrote this stream and under which settings (safe form)."""
    from auditel._version import __version__

    body: dict[str, Any] = {
        "auditel.version": __version__,
        "config.hash": hashlib.sha256(canonical(safe_value(settings.public_dict())).encode("utf-8")).hexdigest(),
        "redaction.policy_version": redactor.policy_version,
        "redaction.rules_hash": redactor.rules_hash,
        "resource": safe_value(resource),
        "host.name": socket.gethostname(),
        "process.pid": state.pid,
    }
    if extra is not None:
        try:
            body.update(extra())
        except Exception as exc:  # noqa: BLE001
            counters.error("stream_start_extra", exc)
    return safe_value(body)
