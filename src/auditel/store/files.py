"""The checks auditel makes before it trusts a file or a directory (the ones OpenSSH makes).

* The directory holding the outbox and its keys must be a directory owned by this user or root,
  and nobody else may write into it (group/world-writable is accepted only with the sticky bit,
  as in ``/tmp``, where others cannot rename or delete our entries). Otherwise another user could
  swap the outbox or a key for their own between two of our calls.
* auditel's files there (``outbox.db``, its ``-wal``/``-shm``/``-journal``, ``digest.key``,
  ``signing.key``) are never followed through a symbolic link, must be regular files (no device
  node, fifo or directory) owned by this user. A file that fails is refused with an error naming
  it and saying why; nothing is changed on it.
* Only regular files owned by this user are ever tightened to 0600 (through a descriptor opened
  without following links): auditel never changes the mode of anything it did not create.

With the directory trusted, a check on a name cannot be raced by someone else: only this user (or
root) can replace what the name points to.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from auditel.store.schema import OutboxError

O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # opening a fifo must not wait for a writer
SIDE_SUFFIXES = ("-wal", "-shm", "-journal")


def _euid() -> int:
    return os.geteuid() if hasattr(os, "geteuid") else -1


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISFIFO, "a fifo"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def check_directory(directory: Path, *, purpose: str = "the outbox directory") -> None:
    """Refuse a directory this user cannot trust (see the module docstring)."""
    try:
        st = os.stat(directory)
    except OSError as exc:
        raise OutboxError(f"{directory} ({purpose}) cannot be used: {exc.strerror or exc}") from exc
    if not stat.S_ISDIR(st.st_mode):
        raise OutboxError(f"{directory} ({purpose}) is {_kind(st.st_mode)}, not a directory")
    if not hasattr(os, "geteuid"):
        return  # no POSIX owners and modes (Windows): nothing to check
    euid = _euid()
    if st.st_uid not in (euid, 0):
        raise OutboxError(
            f"{directory} ({purpose}) is owned by uid {st.st_uid}, not by this user (uid {euid}) or root:"
            " its owner could replace the outbox or its keys; use a directory you own"
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022 and not mode & stat.S_ISVTX:
        raise OutboxError(
            f"{directory} ({purpose}) is writable by other users (mode {mode:04o}) and has no sticky bit:"
            " they could replace the outbox or its keys; chmod go-w it (auditel creates its directory 0700)"
        )


def check_file(path: Path, st: os.stat_result, *, purpose: str) -> None:
    """Refuse a link, a non-regular file or a file of another user (``st`` from ``os.lstat``)."""
    if not stat.S_ISREG(st.st_mode):
        link = stat.S_ISLNK(st.st_mode)
        extra = "; auditel does not follow links for its files: point it at the real file" if link else ""
        raise OutboxError(f"{path} ({purpose}) is {_kind(st.st_mode)}, not a regular file{extra}")
    euid = _euid()
    if hasattr(os, "geteuid") and st.st_uid != euid:
        raise OutboxError(f"{path} ({purpose}) is owned by uid {st.st_uid}, not by this user (uid {euid})")


def _tighten(path: Path, st: os.stat_result) -> None:
    """0600 for a regular file of ours that is open to others, changed through a no-follow descriptor."""
    if not stat.S_IMODE(st.st_mode) & 0o077:
        return
    try:
        fd = os.open(path, os.O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
    except OSError:
        return
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) == (st.st_dev, st.st_ino) and stat.S_ISREG(now.st_mode):
            os.fchmod(fd, 0o600)
    except OSError:
        pass
    finally:
        os.close(fd)


def prepare_outbox(path: Path) -> None:
    """Make ``path`` safe for SQLite to open: a trusted directory (created 0700 when missing), the
    database a regular 0600 file of ours (created empty when missing), no linked side files."""
    parent = path.parent
    try:
        os.lstat(parent)
        existed = True
    except FileNotFoundError:
        existed = False
    except OSError as exc:
        raise OutboxError(f"{parent} (the outbox directory) cannot be used: {exc.strerror or exc}") from exc
    if not existed:
        try:
            os.makedirs(parent, mode=0o700, exist_ok=True)
            os.chmod(parent, 0o700)  # ours: just created (makedirs applies the umask)
        except OSError as exc:
            raise OutboxError(f"{parent} (the outbox directory) cannot be created: {exc.strerror or exc}") from exc
    check_directory(parent)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        os.close(fd)
    except FileExistsError:
        st = os.lstat(path)
        check_file(path, st, purpose="the outbox")
        _tighten(path, st)
    except OSError as exc:
        raise OutboxError(f"{path} (the outbox) cannot be created: {exc.strerror or exc}") from exc
    for suffix in SIDE_SUFFIXES:
        side = Path(str(path) + suffix)
        try:
            st = os.lstat(side)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise OutboxError(f"{side} cannot be checked: {exc.strerror or exc}") from exc
        check_file(side, st, purpose=f"the outbox's {suffix[1:]} file")
        _tighten(side, st)


def read_private_file(path: Path, *, purpose: str) -> bytes | None:
    """The bytes of a secret file (a key), or None when there is none.

    Opened without following a link; refused (``OutboxError``, a ``ConfigError``, naming the file
    and why) when it is a link, not a regular file, owned by another user, writable by other users,
    or unreadable. Never changed (auditel creates its keys 0600).
    """
    try:
        fd = os.open(path, os.O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OutboxError(
                f"{path} ({purpose}) is a symbolic link; auditel does not follow links for key files"
            ) from exc
        raise OutboxError(f"{path} ({purpose}) cannot be read: {exc.strerror or exc}") from exc
    try:
        st = os.fstat(fd)
        check_file(path, st, purpose=purpose)
        mode = stat.S_IMODE(st.st_mode)
        if hasattr(os, "geteuid") and mode & 0o022:
            raise OutboxError(
                f"{path} ({purpose}) is writable by other users (mode {mode:04o}): they could have replaced the"
                " key; check it and chmod 600 it"
            )
        chunks = []
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise OutboxError(f"{path} ({purpose}) cannot be read: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
