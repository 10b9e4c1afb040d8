"""Secret key files beside the outbox, created race-free.

Several processes may configure auditel on the same outbox at once, and each may find no key yet.
A key file is therefore written to a private temporary name, synced, and published with
``os.link``, which never overwrites: exactly one writer wins, and every reader sees either no file or
the whole key, never a half-written one. Keys are read with ``read_key_file`` (the checks in
``auditel.store.files``: no links, regular files of this user, private).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from auditel.store.files import read_private_file


def read_key_file(path: Path, *, purpose: str) -> bytes | None:
    """A key file's bytes, or None when absent; a link, a non-regular file, a file of another user
    or one open to other users is refused with an ``OutboxError`` (a ``ConfigError``) naming it."""
    return read_private_file(path, purpose=purpose)


def publish_new_file(path: Path, data: bytes) -> bool:
    """Create ``path`` (mode 0600) holding ``data``; False when another writer published it first."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        return False
    finally:
        os.unlink(tmp)
    return True
