"""AUDITEL_ON_FULL=block at the cap: how long each emit waits when 8 threads emit at once.

The outbox is filled to its cap (no shipper, so nothing frees space), then T threads each emit N
records; every emit waits for room, up to AUDITEL_BLOCK_TIMEOUT_MS, and is then rejected
(``rejected.outbox_full``). The promise measured: each emit waits at most about the configured
time, whatever the number of threads (a waiting thread must not hold the lock others need).

Usage: python bench/bench_block.py [--threads 8] [--per-thread 3] [--timeout-ms 1000]
Run the code before a change with PYTHONPATH=<old checkout>/src.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--per-thread", type=int, default=3)
    ap.add_argument("--timeout-ms", type=int, default=1000)
    args = ap.parse_args()
    for key in list(os.environ):
        if key.startswith(("AUDITEL_", "OTEL_")):
            del os.environ[key]
    import auditel
    from auditel import runtime

    tmp = tempfile.mkdtemp(prefix="auditel-bench-block-")
    try:
        auditel.configure(outbox=os.path.join(tmp, "o.db"), max_outbox_mb=1, on_full="block",
                          block_timeout_ms=args.timeout_ms)
        filler = "x" * 60_000
        for _ in range(200):  # fill to the cap: the first rejected emit says it is reached
            if auditel.emit("auditel.custom", body=filler) is None:
                break
        waits: list[float] = []
        lock = threading.Lock()

        def worker() -> None:
            for _ in range(args.per_thread):
                t0 = time.perf_counter()
                auditel.emit("auditel.custom", attributes={"k": "v"})
                dt = time.perf_counter() - t0
                with lock:
                    waits.append(dt)

        threads = [threading.Thread(target=worker) for _ in range(args.threads)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        rejected = auditel.status()["rejected"].get("outbox_full", 0)
        src = os.path.dirname(auditel.__file__)
        print(f"\nAUDITEL_ON_FULL=block at the cap: {args.threads} threads x {args.per_thread} emits, "
              f"AUDITEL_BLOCK_TIMEOUT_MS={args.timeout_ms}, Python {sys.version.split()[0]}, code: {src}")
        print(f"{'emits':>6} {'median wait s':>14} {'p90 s':>8} {'max wait s':>11} {'wall s':>8} {'rejected':>9}")
        waits.sort()
        p90 = waits[int(0.9 * (len(waits) - 1))]
        print(f"{len(waits):>6} {statistics.median(waits):>14.2f} {p90:>8.2f} {max(waits):>11.2f} {wall:>8.2f} {rejected:>9}")
    finally:
        runtime._reset_for_tests()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
