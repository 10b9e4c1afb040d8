"""WAL size under sustained emits: does the worker's checkpointing keep the ``-wal`` file bounded?

    python bench/bench_wal.py                  # 1 thread emitting flat out for 20 s
    python bench/bench_wal.py --seconds 10 --threads 4

auditel is configured on a fresh outbox (no exporter, so nothing is shipped and no record can be
pruned: the WAL alone must stay bounded). The emitting threads call ``auditel.tool_call`` as fast
as they can; a sampler thread reads the size of ``outbox.db-wal`` every 20 ms. The table shows the
largest and the final WAL size, the database file size, and the emit rate.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path


def _size(path: Path) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def run(seconds: float, threads: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="auditel-bench-wal-"))
    outbox = tmp / "outbox.db"
    for var in list(os.environ):
        if var.startswith(("AUDITEL_", "OTEL_")):
            del os.environ[var]
    import auditel

    auditel.configure(outbox=str(outbox), max_outbox_mb=0)
    wal = Path(str(outbox) + "-wal")
    stop = threading.Event()
    peak = [0]
    counts = [0] * threads

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], _size(wal))
            time.sleep(0.02)

    def emit(i: int) -> None:
        n = 0
        while not stop.is_set():
            auditel.tool_call("search_documents", arguments={"query": "q", "n": n}, outcome="success", duration_ms=1.0)
            n += 1
        counts[i] = n

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    workers = [threading.Thread(target=emit, args=(i,)) for i in range(threads)]
    start = time.monotonic()
    for w in workers:
        w.start()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - start
    sampler.join()
    final = _size(wal)
    db = _size(outbox)
    auditel.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "records": sum(counts),
        "rate": sum(counts) / elapsed,
        "wal_max": peak[0],
        "wal_final": final,
        "db": db,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    r = run(args.seconds, args.threads)
    mib = 1024 * 1024
    print("| threads | seconds | records | records/s | WAL max (MiB) | WAL final (MiB) | db (MiB) |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    print(
        f"| {args.threads} | {args.seconds:g} | {r['records']:,} | {r['rate']:,.0f} | {r['wal_max'] / mib:.1f} |"
        f" {r['wal_final'] / mib:.1f} | {r['db'] / mib:.1f} |"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
