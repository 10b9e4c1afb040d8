"""Key files beside the outbox: many processes or threads starting at once all end up with one key."""

from __future__ import annotations

import stat
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, TypeVar

import pytest

from auditel.integrity.checkpoints import load_or_create_key_file
from auditel.config.settings import ConfigError
from auditel.record.content import load_or_create_digest_key
from auditel.integrity.signing import Ed25519Signer

T = TypeVar("T")


def _race(n: int, fn: Callable[[], T]) -> list[T | BaseException]:
    """Run ``fn`` on ``n`` threads released together; each result or exception."""
    barrier = threading.Barrier(n)
    results: list[T | BaseException] = [None] * n  # type: ignore[list-item]

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.parametrize("round_", range(10))
def test_concurrent_first_use_gives_every_thread_the_same_digest_key(tmp_path: Path, round_: int) -> None:
    outbox = tmp_path / "outbox.db"
    results = _race(12, lambda: load_or_create_digest_key(outbox))
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    key_file = tmp_path / "digest.key"
    assert set(results) == {key_file.read_bytes()}
    assert len(key_file.read_bytes()) == 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["digest.key"]  # no temporary file left behind


def test_concurrent_first_use_gives_every_thread_the_same_signing_key(tmp_path: Path) -> None:
    path = tmp_path / "signing.key"
    results = _race(8, lambda: Ed25519Signer(load_or_create_key_file(path)).key_id)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert errors == []
    assert len(set(results)) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["signing.key"]


def test_processes_starting_together_share_one_digest_key(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.db"
    code = (
        "import sys, time; from pathlib import Path; from auditel.record.content import load_or_create_digest_key;"
        " t = float(sys.argv[2]);"
        " time.sleep(max(0.0, t - time.time()));"
        " sys.stdout.write(load_or_create_digest_key(Path(sys.argv[1])).hex())"
    )
    start = str(time.time() + 1.5)  # every child has imported auditel by then and starts at once
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(outbox), start], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(6)
    ]
    outs = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err.decode()
        outs.append(out.decode())
    assert set(outs) == {(tmp_path / "digest.key").read_bytes().hex()}


def test_truncated_digest_key_fails_with_a_clear_message(tmp_path: Path) -> None:
    (tmp_path / "digest.key").write_bytes(b"short")
    with pytest.raises(ConfigError) as info:
        load_or_create_digest_key(tmp_path / "outbox.db")
    message = str(info.value)
    assert "digest.key" in message and "at least 16 bytes, found 5" in message and "AUDITEL_DIGEST_KEY" in message


def test_existing_digest_key_is_kept(tmp_path: Path) -> None:
    (tmp_path / "digest.key").write_bytes(b"k" * 20)
    assert load_or_create_digest_key(tmp_path / "outbox.db") == b"k" * 20
