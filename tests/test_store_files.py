"""File security of the outbox and its keys, and clear start-up errors (issue 13 items 6, 9, 10).

These tests run as root in CI containers: "another user" is uid 65534 (nobody), set with os.chown.
The full-disk case mounts a small tmpfs (root only; skipped with the reason when mounting is not
permitted).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import auditel
from auditel.config.settings import ConfigError
from auditel.store.outbox import Outbox, OutboxError

NOBODY = 65534


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _configure_fails(outbox: Path, *fragments: str) -> str:
    with pytest.raises(ConfigError) as info:
        auditel.configure(outbox=str(outbox))
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


@pytest.fixture
def box_dir(tmp_path: Path) -> Path:
    d = tmp_path / "audit"
    d.mkdir(mode=0o700)
    os.chmod(d, 0o700)
    return d


# --- the outbox file --------------------------------------------------------------------------
def test_outbox_at_a_character_device_is_refused_and_left_unchanged(box_dir: Path) -> None:
    """Old code chmodded the device to 0600 before failing."""
    dev = box_dir / "null"
    os.mknod(dev, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    os.chmod(dev, 0o666)
    _configure_fails(dev, str(dev), "character device")
    assert _mode(dev) == 0o666


def test_outbox_through_a_symlink_is_refused_and_the_target_left_unchanged(box_dir: Path) -> None:
    target = box_dir / "elsewhere.db"
    Outbox(target).close()
    os.chmod(target, 0o644)
    link = box_dir / "outbox.db"
    link.symlink_to(target)
    _configure_fails(link, str(link), "symbolic link")
    assert _mode(target) == 0o644


def test_planted_wal_symlink_is_refused_and_its_target_never_chmodded(box_dir: Path, tmp_path: Path) -> None:
    """A planted ``outbox.db-wal`` link made old code chmod (and SQLite write) its target."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    os.chmod(victim, 0o644)
    outbox = box_dir / "outbox.db"
    Outbox(outbox).close()
    for side in ("-wal", "-shm"):
        Path(str(outbox) + side).unlink(missing_ok=True)
    Path(str(outbox) + "-wal").symlink_to(victim)
    _configure_fails(outbox, "outbox.db-wal", "symbolic link")
    assert _mode(victim) == 0o644
    assert victim.read_text() == "precious\n"


def test_outbox_owned_by_another_user_is_refused(box_dir: Path) -> None:
    outbox = box_dir / "outbox.db"
    Outbox(outbox).close()
    os.chown(outbox, NOBODY, NOBODY)
    _configure_fails(outbox, str(outbox), f"owned by uid {NOBODY}")


def test_our_own_open_outbox_is_still_tightened_to_0600(box_dir: Path) -> None:
    outbox = box_dir / "outbox.db"
    Outbox(outbox).close()
    os.chmod(outbox, 0o644)
    Outbox(outbox).close()
    assert _mode(outbox) == 0o600


# --- the directory ------------------------------------------------------------------------------
def test_world_writable_directory_without_sticky_bit_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    _configure_fails(shared / "outbox.db", str(shared), "writable by other users", "0777")
    assert not (shared / "outbox.db").exists()
    assert _mode(shared) == 0o777  # not ours to change


def test_group_writable_directory_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "group"
    shared.mkdir()
    os.chmod(shared, 0o770)
    _configure_fails(shared / "outbox.db", str(shared), "writable by other users")


def test_sticky_world_writable_directory_is_accepted(tmp_path: Path) -> None:
    sticky = tmp_path / "sticky"
    sticky.mkdir()
    os.chmod(sticky, 0o1777)
    assert auditel.configure(outbox=str(sticky / "outbox.db")) is not None


def test_directory_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o755)
    os.chown(theirs, NOBODY, NOBODY)
    _configure_fails(theirs / "outbox.db", str(theirs), f"owned by uid {NOBODY}")


def test_a_new_directory_is_created_0700(tmp_path: Path) -> None:
    outbox = tmp_path / "new" / "sub" / "outbox.db"
    auditel.configure(outbox=str(outbox))
    assert _mode(outbox.parent) == 0o700
    assert _mode(outbox) == 0o600


# --- the key files -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["digest.key", "signing.key"])
def test_key_file_symlink_is_refused(box_dir: Path, tmp_path: Path, name: str) -> None:
    """Old code read both keys through links (an attacker's key signed the victim's checkpoints)."""
    auditel.configure(outbox=str(box_dir / "outbox.db"))
    auditel.shutdown()
    real = tmp_path / f"attacker-{name}"
    (box_dir / name).rename(real)
    (box_dir / name).symlink_to(real)
    _configure_fails(box_dir / "outbox.db", name, "symbolic link")


@pytest.mark.parametrize("name", ["digest.key", "signing.key"])
def test_key_file_owned_by_another_user_is_refused(box_dir: Path, name: str) -> None:
    auditel.configure(outbox=str(box_dir / "outbox.db"))
    auditel.shutdown()
    os.chown(box_dir / name, NOBODY, NOBODY)
    _configure_fails(box_dir / "outbox.db", name, f"owned by uid {NOBODY}")


def test_key_file_that_is_a_directory_gives_a_config_error(box_dir: Path) -> None:
    """Old code let IsADirectoryError through configure()."""
    (box_dir / "digest.key").mkdir()
    _configure_fails(box_dir / "outbox.db", "digest.key", "a directory")


def test_key_file_that_is_a_fifo_is_refused_without_hanging(box_dir: Path) -> None:
    os.mkfifo(box_dir / "digest.key")
    _configure_fails(box_dir / "outbox.db", "digest.key", "a fifo")


def test_key_file_writable_by_others_is_refused(box_dir: Path) -> None:
    (box_dir / "digest.key").write_bytes(os.urandom(32))
    os.chmod(box_dir / "digest.key", 0o666)
    _configure_fails(box_dir / "outbox.db", "digest.key", "writable by other users")


# --- start-up failures are ConfigErrors naming the path ------------------------------------------
def _interpreter() -> str:
    """This Python, or the system's of the same version when this one lives where uid 65534 cannot read."""
    system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
    return str(system) if system.exists() else sys.executable


def _run_as_nobody(code: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_interpreter(), "-c", code], env=env, capture_output=True, text=True, timeout=120, user=NOBODY, group=NOBODY
    )


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory uid 65534 can reach (pytest's tmp_path sits under a 0700 directory of root)."""
    d = Path(tempfile.mkdtemp(prefix="auditel-test-"))
    os.chmod(d, 0o755)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_unreadable_outbox_directory_and_key_give_config_errors(open_dir: Path) -> None:
    """As another user (uid 65534): an outbox directory it cannot enter, then a key it cannot read.
    Old code raised PermissionError from configure()."""
    base = open_dir / "u"
    base.mkdir()
    os.chmod(base, 0o755)
    os.chown(base, NOBODY, NOBODY)
    paths = [p for p in sys.path if p and "site-packages" in p or p.endswith("/src")]
    probe = "import sys; sys.path[:0] = " + repr(paths) + "\n"
    if _run_as_nobody(probe + "import auditel", dict(os.environ)).returncode != 0:
        pytest.skip("the interpreter or the checkout is not readable by uid 65534 here")
    locked = base / "locked"
    locked.mkdir(mode=0o700)  # owned by root: nobody cannot enter it
    code = probe + (
        "import auditel\n"
        "from auditel.config.settings import ConfigError\n"
        "try:\n    auditel.configure(outbox=sys.argv[1] if len(sys.argv) > 1 else OUTBOX)\n"
        "except ConfigError as e:\n    print('CONFIGERROR', e)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_"))}
    env["HOME"] = str(base)
    out = _run_as_nobody(code.replace("OUTBOX", repr(str(locked / "outbox.db"))), env)
    assert "CONFIGERROR" in out.stdout and str(locked) in out.stdout, out.stdout + out.stderr
    mine = base / "mine"
    mine.mkdir(mode=0o700)
    os.chown(mine, NOBODY, NOBODY)
    key = mine / "digest.key"
    key.write_bytes(os.urandom(32))
    os.chmod(key, 0o600)  # root's: nobody cannot read it
    out = _run_as_nobody(code.replace("OUTBOX", repr(str(mine / "outbox.db"))), env)
    assert "CONFIGERROR" in out.stdout and "digest.key" in out.stdout, out.stdout + out.stderr


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mnt)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_at_stream_registration_is_a_config_error_naming_the_outbox(small_fs: Path) -> None:
    """A real full filesystem (a 2 MiB tmpfs filled up). Old code let sqlite3.OperationalError through."""
    outbox = small_fs / "outbox.db"
    auditel.configure(outbox=str(outbox))
    auditel.shutdown()
    Outbox(outbox).checkpoint_wal(above_bytes=0)
    for side in ("-wal", "-shm"):
        Path(str(outbox) + side).unlink(missing_ok=True)
    fd = os.open(small_fs / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass  # ENOSPC: the filesystem is full
    finally:
        os.close(fd)
    with pytest.raises(ConfigError) as info:
        auditel.configure(outbox=str(outbox))
    assert str(outbox) in str(info.value)
    assert isinstance(info.value.__cause__, (OutboxError, OSError)) or "full" in str(info.value)
