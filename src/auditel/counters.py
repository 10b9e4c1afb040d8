"""Internal failure and event counters, visible in ``status()``; each failure kind is reported once on stderr.

``CounterPersister`` stores them in the outbox now and then (from the worker), so that other
processes and ``auditel status`` see them too (``persisted_totals``).
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from typing import Any, Protocol


class Counters:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.errors: dict[str, int] = {}
        self.rejected: dict[str, int] = {}
        self.sanitized: dict[str, int] = {}
        self.redactions: dict[str, int] = {}
        self.filtered = 0
        self.recorded = 0
        self._reported: set[str] = set()
        self.last_error: str | None = None

    @staticmethod
    def _bump(target: dict[str, int], key: str, n: int = 1) -> None:
        target[key] = target.get(key, 0) + n

    def error(self, kind: str, exc: BaseException | str | None = None) -> None:
        """Count an internal failure; the first of each kind is printed on stderr, never raised."""
        with self._lock:
            self._bump(self.errors, kind)
            message = f"{kind}: {_describe(exc)}" if exc is not None else kind
            self.last_error = message
            first = kind not in self._reported
            self._reported.add(kind)
        if first:
            _stderr(f"auditel: internal failure ({message}); counted in auditel.status()['errors'], not raised")

    def reject(self, reason: str) -> None:
        with self._lock:
            self._bump(self.rejected, reason)
            first = ("reject:" + reason) not in self._reported
            self._reported.add("reject:" + reason)
        if first:
            _stderr(f"auditel: a record was not stored ({reason}); counted in auditel.status()['rejected']")

    def merge(self, target_name: str, counts: dict[str, int]) -> None:
        if not counts:
            return
        with self._lock:
            target = getattr(self, target_name)
            for k, v in counts.items():
                target[k] = target.get(k, 0) + v

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "errors": dict(self.errors),
                "rejected": dict(self.rejected),
                "sanitized": dict(self.sanitized),
                "redactions": dict(self.redactions),
                "filtered": self.filtered,
                "recorded": self.recorded,
                "last_error": self.last_error,
            }


def _describe(exc: BaseException | str) -> str:
    try:  # an exception raised by a hostile value may have a __str__ that raises too
        text = f"{type(exc).__name__}: {exc}" if isinstance(exc, BaseException) else str(exc)
    except Exception:  # noqa: BLE001 - a hostile value: never raise
        text = f"{type(exc).__name__}: <message unavailable>"
    return text[:300]


def _stderr(text: str) -> None:
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - a closed or broken stderr must not raise into the host
        pass


# The shipper's status keys worth keeping for other processes and the CLI (why records stay pending).
SHIP_KEYS = (
    "last_ship_error",
    "last_ship_error_kind",
    "consecutive_failures",
    "shipped_total",
    "dead_lettered_total",
    "possibly_delivered",
)
_SUMMED = ("errors", "rejected", "sanitized", "redactions")


class CounterStore(Protocol):
    def save_counters(self, stream_id: str, pid: int, data: dict[str, Any]) -> None: ...

    def load_counters(self) -> list[tuple[str, int | None, int, dict[str, Any]]]: ...


class CounterPersister:
    """Writes this process's counters (and the shipper's last error) into the outbox.

    Run by the worker every few seconds and once at shutdown, never on the caller's path; a write
    happens only when something changed. The outbox keeps one row per stream (process).
    """

    def __init__(
        self,
        counters: Counters,
        store: CounterStore,
        stream_id: Callable[[], str | None],
        extra: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self.counters = counters
        self.store = store
        self.stream_id = stream_id
        self.extra = extra
        self._saved: tuple[str, dict[str, Any]] | None = None

    def save(self) -> bool:
        stream_id = self.stream_id()
        if not stream_id:
            return False
        data = self.counters.snapshot()
        if self.extra is not None:
            data.update(self.extra())
        if self._saved == (stream_id, data):
            return False
        self.store.save_counters(stream_id, os.getpid(), data)
        self._saved = (stream_id, data)
        return True

    def task(self) -> float | None:
        self.save()
        return None


def persisted_totals(store: CounterStore) -> dict[str, Any]:
    """The counters every process stored in the outbox, added up, with the latest errors:
    ``errors``/``rejected``/``sanitized``/``redactions`` (summed per kind), ``recorded``,
    ``filtered``, ``last_error`` and the shipper's ``last_ship_error`` (the most recent): the keys
    of ``auditel.status()``."""
    out: dict[str, Any] = {key: {} for key in _SUMMED}
    out.update(recorded=0, filtered=0, last_error=None)
    for _stream, _pid, _time_ns, data in store.load_counters():  # oldest first: later rows win
        for key in _SUMMED:
            value = data.get(key)
            if isinstance(value, dict):
                for kind, n in value.items():
                    if isinstance(n, int):
                        out[key][kind] = out[key].get(kind, 0) + n
        for key in ("recorded", "filtered"):
            if isinstance(data.get(key), int):
                out[key] += data[key]
        if data.get("last_error"):
            out["last_error"] = data["last_error"]
        for key in SHIP_KEYS:
            if key in data and (data[key] is not None or key not in out):
                out[key] = data[key]
    return out


def ship_fields(shipper: Any) -> dict[str, Any]:
    """The ``SHIP_KEYS`` of a shipper's status (nothing without a shipper)."""
    if shipper is None:
        return {}
    status = shipper.status()
    return {key: status.get(key) for key in SHIP_KEYS}
