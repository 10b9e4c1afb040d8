"""The viewer and the read API on a large trail: open, filter, page.

    python bench/bench_viewer.py                    # 1,000,000 records
    python bench/bench_viewer.py --records 100000
    python bench/bench_viewer.py --keep /tmp/big.db # keep (and re-use) the generated outbox

The outbox: one real session recorded by ``auditel demo`` (22 records: model calls, tool calls with
policy decisions, a denial, file and network access, stream markers, a checkpoint), cloned with SQL
into N/22 sessions spread over 30 days, each with its own ``session.id``, stream, record ids and
times; every 50th session's tool call fails. (The clones are not re-chained: this measures reading,
``bench_integrity.py`` measures verification.)

Measured (wall time, median of ``--repeat`` rounds, one process, warm page cache):

* open: a new session index over the newest 10,000 records and the first page of the newest sessions
  (what ``auditel ui`` does before it prints its URL); then the rest of the trail is indexed in the
  background, newest to oldest, while pages are served (timed here as one step, and in total)
* refresh: bringing the index up to date when nothing is new (every later page load)
* sessions page: the first 50 sessions, unfiltered / filtered by tool / by verdict+time range
* timeline: one session's records read by its rid range and laid out
* HTTP: ``GET /api/sessions?tool=…`` and ``GET /api/session?key=…`` through ``auditel ui``'s server
* query: ``auditel.query(kind="policy_decision", where={"audit.policy.verdict": "deny"}, limit=50)``
  (newest first, stops at 50), ``auditel.query(session=…)`` (one session, a full scan in SQL),
  and the first 50 records of ``auditel.read_all()``.

The latest figures (1,000,000 records) are in docs/viewer.md, "Large trails".
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

import auditel
from auditel.store.outbox import Outbox
from auditel.ui.model import SessionIndex, build_timeline, session_records
from auditel.ui.server import serve

INSERT = "INSERT INTO records(record_id, stream_id, seq, time_ns, event_name, data, record_hash) VALUES (?,?,?,?,?,?,?)"


def generate(path: Path, records: int) -> None:
    demo_dir = Path(tempfile.mkdtemp(prefix="auditel-bench-demo-"))
    demo = demo_dir / "outbox.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AUDITEL_", "OTEL_"))}
    env |= {"AUDITEL_OUTBOX": str(demo), "XDG_DATA_HOME": str(demo_dir)}
    subprocess.run([sys.executable, "-m", "auditel.cli", "demo"], env=env, check=True, capture_output=True)
    src = sqlite3.connect(demo)
    template = src.execute(
        "SELECT record_id, stream_id, seq, time_ns, event_name, data, record_hash FROM records ORDER BY rid"
    ).fetchall()
    src.close()
    if path.exists():
        path.unlink()
    Outbox(path).close()  # the schema, by the real migrations
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    per = len(template)
    sessions = max(1, records // per)
    t_first = template[0][3]
    span_ns = 30 * 86400 * 10**9
    conn.execute("BEGIN")
    batch: list[tuple[Any, ...]] = []
    for i in range(sessions):
        sid, stream = uuid.uuid4().hex, uuid.uuid4().hex
        base = time.time_ns() - span_ns + i * (span_ns // sessions)
        for record_id, _stream, seq, t, ev, data, rhash in template:
            text = data.replace(template[0][1], stream)
            obj = json.loads(text)
            obj["attributes"]["session.id"] = sid
            obj["attributes"]["audit.record.id"] = f"{record_id[:16]}{i:010d}"
            when = base + (t - t_first)
            obj["time_unix_nano"] = obj["observed_time_unix_nano"] = str(when)
            if (
                i % 50 == 0
                and obj["attributes"].get("gen_ai.tool.name") == "read_file"
                and obj["attributes"].get("audit.phase") == "outcome"
            ):
                obj["attributes"]["audit.outcome"] = "failure"
            batch.append(
                (
                    obj["attributes"]["audit.record.id"],
                    stream,
                    seq,
                    when,
                    ev,
                    json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False),
                    rhash,
                )
            )
        if len(batch) >= 20000:
            conn.executemany(
                INSERT,
                batch,
            )
            batch.clear()
    if batch:
        conn.executemany(
            INSERT,
            batch,
        )
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", help="outbox file to create once and re-use")
    args = ap.parse_args()
    path = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="auditel-bench-viewer-")) / "outbox.db"
    if not path.exists():
        t0 = time.perf_counter()
        generate(path, args.records)
        print(f"generated {path} in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    conn = sqlite3.connect(path)
    total = conn.execute("SELECT count(*) FROM records").fetchone()[0]
    conn.close()
    size_mb = path.stat().st_size / 2**20
    rows: list[tuple[str, float]] = []

    def fresh_index() -> SessionIndex:
        index = SessionIndex(path)
        index.refresh()
        return index

    def open_and_first_page() -> Any:
        index = fresh_index()
        return index, index.select(limit=50)

    t_open, (index, first) = timed(open_and_first_page, args.repeat)
    rows.append((f"open + first page of the newest sessions ({len(first['sessions'])} shown)", t_open))
    t, _ = timed(lambda: index.index_older(20000), 1)
    rows.append(("index 20,000 older records (one background step)", t))
    t, _ = timed(index.index_all, 1)
    rows.append(("index the rest of the trail (in the background; the page is usable meanwhile)", t))
    t, _ = timed(index.refresh, args.repeat)
    rows.append(("refresh the index, nothing new (each later page load)", t))
    t, page = timed(lambda: index.select(limit=50), args.repeat)
    rows.append((f"sessions page 1, unfiltered ({page['total']} sessions)", t))
    t, page = timed(lambda: index.select(limit=50, tool="send_email", offset=100), args.repeat)
    rows.append(("sessions page 3, filtered by tool", t))
    week = time.time_ns() - 7 * 86400 * 10**9
    t, page = timed(lambda: index.select(limit=50, verdict="deny", outcome="failure", since_ns=week), args.repeat)
    rows.append((f"sessions page 1, verdict + outcome + last 7 days ({page['total']} match)", t))
    some = index.sessions[sorted(index.sessions, key=lambda k: index.sessions[k].first_rid)[len(index.sessions) // 2]]
    t, _ = timed(lambda: build_timeline(session_records(path, some)[0]), args.repeat)
    rows.append(("timeline of one session (read by rid range + layout)", t))

    server = serve(path, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"

    def get(url: str) -> Any:
        with urllib.request.urlopen(base + url) as r:
            return json.loads(r.read())

    t, _ = timed(lambda: get("/api/sessions?tool=read_file&outcome=failure&offset=50"), args.repeat)
    rows.append(("HTTP GET /api/sessions?tool=…&outcome=…&offset=50", t))
    t, listed = timed(lambda: get("/api/sessions"), args.repeat)
    rows.append(("HTTP GET /api/sessions (first page, server just started)", t))
    newest = listed["sessions"][0]["key"]
    t, _ = timed(lambda: get(f"/api/session?key={newest}"), args.repeat)
    rows.append(("HTTP GET /api/session?key=… (a timeline)", t))
    server.shutdown()
    server.server_close()

    t, got = timed(
        lambda: list(
            auditel.query(kind="policy_decision", where={"audit.policy.verdict": "deny"}, limit=50, outbox=path)
        ),
        args.repeat,
    )
    rows.append((f"auditel.query(kind=policy_decision, verdict deny, limit=50) -> {len(got)}", t))
    t, got = timed(lambda: list(auditel.query(session=some.key, outbox=path)), args.repeat)
    rows.append((f"auditel.query(session=…) -> {len(got)} (full scan in SQL)", t))
    t, got = timed(lambda: list(islice(auditel.read_all(outbox=path), 50)), args.repeat)
    rows.append(("first 50 records of auditel.read_all()", t))

    print(
        f"\n{total:,} records, {len(index.sessions):,} sessions, {size_mb:,.0f} MB; "
        f"median of {args.repeat} (indexing steps: 1 run)\n"
    )
    print("| operation | time |")
    print("|---|---:|")
    for name, secs in rows:
        print(f"| {name} | {secs * 1000:,.1f} ms |")


if __name__ == "__main__":
    main()
