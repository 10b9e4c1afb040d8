"""The checkpoint log: every signed checkpoint also appended, as one JSON line, to a file beside the outbox
(``<outbox>.checkpoints.jsonl``, mode 0600).

Why: the checkpoints table lives in the same SQLite file as the records, so when the database loses
its newest transactions (its ``-wal`` file deleted while the process runs, a restored older copy) the
checkpoints that covered them vanish with them and what is left looks like a clean crash. The log is
a second, append-only witness: ``auditel verify`` reads it by default and reports records that a logged
checkpoint covers but the outbox lacks as a problem. It is not a security control (whoever can write
the outbox can write the log); checkpoints kept off the host (``--checkpoints``) are.

The lines have the export's checkpoint shape, so the file is also valid for ``--checkpoints FILE``.
It grows by one line per checkpoint that covers new records; past ``COMPACT_ABOVE`` it is compacted
to the newest checkpoint of each stream, which is all that finding lost records needs.
"""

from __future__ import annotations

import json
import os
import stat

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]
from pathlib import Path
from typing import Any

SUFFIX = ".checkpoints.jsonl"
# Above this size the log is compacted to the newest checkpoint of each stream (~600 bytes a stream).
COMPACT_ABOVE = 1 << 20


def log_path(outbox_path: str | Path) -> Path:
    path = Path(outbox_path)
    return path.with_name(path.name + SUFFIX)


def append(path: Path, statement: dict[str, Any], signature: str, *, compact_above: int = COMPACT_ABOVE) -> None:
    """Append one line; created 0600 whatever the umask, never through a symlink or into a non-file.
    Once the file is larger than ``compact_above`` bytes it is compacted (``compact``)."""
    line = (
        json.dumps(
            {
                "type": "checkpoint",
                "stream_id": statement["stream_id"],
                "checkpoint": statement,
                "signature": signature,
            },
            ensure_ascii=False,
            sort_keys=True,
            separators=(",", ":"),
        )
        + "\n"
    ).encode("utf-8")
    size = 0
    for _ in range(5):
        fd = os.open(path, _APPEND_FLAGS, 0o600)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(f"{path} is not a regular file")
            _lock(fd, shared=True)  # a compaction replaces the file under an exclusive lock
            if not _is_current(fd, path):
                continue  # replaced by a compaction since we opened it: append to the new file
            os.write(fd, line)  # one write on an O_APPEND file: lines of processes never interleave
            size = os.fstat(fd).st_size
            break
        finally:
            os.close(fd)  # also releases the lock
    if size > compact_above:
        compact(path)


def compact(path: Path) -> bool:
    """Keep only the newest checkpoint of each stream (all that finding lost records needs), replacing
    the file atomically under an exclusive lock; ``False`` when another process is compacting it."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return False
    try:
        if (
            not stat.S_ISREG(os.fstat(fd).st_mode)
            or not _lock(fd, shared=False, wait=False)
            or not _is_current(fd, path)
        ):
            return False
        newest: dict[str, tuple[int, bytes]] = {}
        with os.fdopen(os.dup(fd), "rb") as handle:
            for raw in handle:
                try:
                    cp = json.loads(raw)["checkpoint"]
                    key, size = str(cp["stream_id"]), int(cp["tree_size"])
                except (ValueError, KeyError, TypeError):
                    continue  # a torn or foreign line: nothing to keep
                if key not in newest or size >= newest[key][0]:
                    newest[key] = (size, raw if raw.endswith(b"\n") else raw + b"\n")
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.unlink(missing_ok=True)  # left by a compaction that crashed (we hold the lock: none runs now)
        out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            os.write(out, b"".join(line for _, line in newest.values()))
        finally:
            os.close(out)
        os.replace(tmp, path)
        return True
    finally:
        os.close(fd)


_APPEND_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def _is_current(fd: int, path: Path) -> bool:
    """Whether ``fd`` is still the file at ``path`` (not one a compaction replaced)."""
    try:
        current = os.stat(path, follow_symlinks=False)
    except OSError:
        return False
    opened = os.fstat(fd)
    return (current.st_dev, current.st_ino) == (opened.st_dev, opened.st_ino)


def _lock(fd: int, *, shared: bool, wait: bool = True) -> bool:
    if fcntl is None:  # pragma: no cover - no advisory locks (Windows): compaction may drop a racing line
        return True
    mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | (0 if wait else fcntl.LOCK_NB)
    try:
        fcntl.flock(fd, mode)
    except BlockingIOError:
        return False
    return True
