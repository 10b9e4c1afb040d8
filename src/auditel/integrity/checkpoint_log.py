"""The checkpoint log: every signed checkpoint also appended, as one JSON line, to a file beside the outbox
(``<outbox>.checkpoints.jsonl``, mode 0600).

Why: the checkpoints table lives in the same SQLite file as the records, so when the database loses
its newest transactions (its ``-wal`` file deleted while the process runs, a restored older copy) the
checkpoints that covered them vanish with them and what is left looks like a clean crash. The log is
a second, append-only witness: ``auditel verify`` reads it by default and reports records that a logged
checkpoint covers but the outbox lacks as a problem. It is not a security control (whoever can write
the outbox can write the log); checkpoints kept off the host (``--checkpoints``) are.

The lines have the export's checkpoint shape, so the file is also valid for ``--checkpoints FILE``.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

SUFFIX = ".checkpoints.jsonl"


def log_path(outbox_path: str | Path) -> Path:
    path = Path(outbox_path)
    return path.with_name(path.name + SUFFIX)


def append(path: Path, statement: dict[str, Any], signature: str) -> None:
    """Append one line; created 0600 whatever the umask, never through a symlink or into a non-file."""
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
    )
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, 0o600)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        os.write(fd, line.encode("utf-8"))  # one write on an O_APPEND file: lines of processes never interleave
    finally:
        os.close(fd)
