"""Internal failure and event counters, visible in ``status()``; each failure kind is reported once on stderr."""

from __future__ import annotations

import sys
import threading
from typing import Any


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
    except Exception:
        text = f"{type(exc).__name__}: <message unavailable>"
    return text[:300]


def _stderr(text: str) -> None:
    try:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    except Exception:
        pass
