"""Local sinks for committed audit records: in memory (tests, notebooks), JSON lines, fan-out.

A sink is any callable taking the stored record dict; it runs after the record is committed
to the outbox, so a sink never decides whether a record is kept. Pass sinks to
``auditel.configure(sinks=[...])`` or ``auditel.subscribe(sink)``. Each also has the
``emit``/``flush`` pair of the collector protocol.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

from auditel.record.schema import event_kind


@runtime_checkable
class Sink(Protocol):
    def emit(self, record: dict[str, Any]) -> None: ...

    def flush(self) -> None: ...


class InMemorySink:
    """Thread-safe list of records with filtering, snapshot and clear."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] = []

    def emit(self, record: dict[str, Any]) -> None:
        with self._lock:
            self._records.append(record)

    __call__ = emit

    def flush(self) -> None:
        pass

    def records(self, kind: str | None = None, *, event_name: str | None = None) -> list[dict[str, Any]]:
        """A copy of the records, optionally only one kind (``tool_call``) or event name."""
        with self._lock:
            items = list(self._records)
        if kind is not None:
            items = [r for r in items if event_kind(r.get("event_name", "")) == kind]
        if event_name is not None:
            items = [r for r in items if r.get("event_name") == event_name]
        return items

    snapshot = records

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)


class JsonlSink:
    """Appends each record as one JSON line to a file (created 0600) or a text stream."""

    def __init__(self, target: str | os.PathLike[str] | IO[str]) -> None:
        self._lock = threading.Lock()
        if isinstance(target, (str, os.PathLike)):
            path = Path(target).expanduser()
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_APPEND | os.O_WRONLY, 0o600)
            self._stream: IO[str] = open(fd, "a", encoding="utf-8")
            self._owns = True
            self.path: Path | None = path
        else:
            self._stream = target
            self._owns = False
            self.path = None

    def emit(self, record: dict[str, Any]) -> None:
        line = json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
        with self._lock:
            self._stream.write(line)
            self._stream.flush()

    __call__ = emit

    def flush(self) -> None:
        with self._lock:
            self._stream.flush()

    def close(self) -> None:
        with self._lock:
            self._stream.flush()
            if self._owns:
                self._stream.close()


class FanoutSink:
    """Sends each record to every child; a failing child is counted and never stops the others."""

    def __init__(self, sinks: Iterable[Callable[[dict[str, Any]], None] | Sink] = ()) -> None:
        self._sinks: list[Any] = list(sinks)
        self.failures = 0

    def add(self, sink: Callable[[dict[str, Any]], None] | Sink) -> None:
        self._sinks.append(sink)

    def emit(self, record: dict[str, Any]) -> None:
        for sink in list(self._sinks):
            try:
                (sink.emit if hasattr(sink, "emit") else sink)(record)
            except Exception:  # noqa: BLE001
                self.failures += 1

    __call__ = emit

    def flush(self) -> None:
        for sink in list(self._sinks):
            try:
                flush = getattr(sink, "flush", None)
                if flush is not None:
                    flush()
            except Exception:  # noqa: BLE001
                self.failures += 1
