"""The integrity panel: ``auditel verify`` on the outbox, told in plain words, each problem tied to the
record (row) where it starts so the page can highlight it in the timeline."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from auditel.store.trail import Trail
from auditel.ui.model import session_key

# What each finding means for someone who is not an engineer.
PLAIN: dict[str, str] = {
    "hash_mismatch": (
        "This record was changed after it was written: its content no longer matches its fingerprint in the chain."
    ),
    "link": "The chain is broken here: this record does not point to the record before it.",
    "gap": "Records are missing here: the numbering jumps.",
    "out_of_order": "Records are stored out of order here.",
    "not_canonical": "This record was re-written in a different form after it was recorded.",
    "conflict": "Two different records claim the same place in the chain.",
    "after_end": "Records appear after the writer said it had finished.",
    "no_start": "The beginning of this writer's records is missing.",
    "start": "The first record of this writer is not a proper start record.",
    "bad_signature": "A signed checkpoint's signature does not verify: the checkpoint was forged or altered.",
    "checkpoint_chain": "The sequence of signed checkpoints is broken.",
    "head_mismatch": "A signed checkpoint does not match the records it vouches for: records were changed or removed.",
    "key": "A signing key problem: checkpoints cannot be trusted.",
    "untrusted_key": "Checkpoints are signed with a key that is not the expected one.",
    "pruned_conflict": "Records said to be deleted by retention do not match what remains.",
    "end_unknown": (
        "This writer has no end marker: it may still be running, or it stopped without closing (a crash or a cut)."
    ),
    "unanchored_tail": "The newest records are not yet covered by a signed checkpoint.",
    "pruned": "Older records were deleted by retention (recorded, so this is not tampering).",
    "key_not_pinned": (
        "Signatures were checked with the key each writer announced. To rule out someone re-signing a rewritten "
        "trail, check it against your own copy of the public key: auditel verify --public-key FILE."
    ),
    "redelivered": "Some records were stored twice, identically (delivery retried): not a problem.",
}


def _plain(code: str, message: str) -> str:
    return PLAIN.get(code, message)


def run_verify(path: str | Path) -> dict[str, Any]:
    """Verify the outbox and return the panel's dict (``ok``, sentences, per-stream facts, problems
    with the ``rid`` and session they start at)."""
    from auditel.integrity.verify import verify_path  # the verifier's public entry point

    started = time.time_ns()
    report = verify_path(path)
    data = report.as_dict()
    problems: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    key_ids: set[str] = set()
    with Trail(path) as trail:
        for s in data.get("streams", []):
            if s.get("key_id"):
                key_ids.add(str(s["key_id"]))
            for bucket, target in (("problems", problems), ("notes", notes)):
                for f in s.get(bucket, []):
                    item = {
                        "stream_id": s["stream_id"],
                        "code": f.get("code"),
                        "message": f.get("message"),
                        "plain": _plain(str(f.get("code")), str(f.get("message"))),
                        "seq": f.get("seq"),
                        "rid": None,
                    }
                    if f.get("seq") is not None:
                        item["rid"] = trail.rid_of(s["stream_id"], int(f["seq"]))
                        row = trail.row(item["rid"]) if item["rid"] is not None else None
                        if row is not None:
                            try:
                                item["session_key"] = session_key(json.loads(row[3]))
                            except (ValueError, AttributeError):
                                pass
                    target.append(item)
    for bucket, target in (("problems", problems), ("notes", notes)):
        for f in data.get(bucket, []):
            target.append(
                {
                    "stream_id": None,
                    "code": f.get("code"),
                    "message": f.get("message"),
                    "plain": _plain(str(f.get("code")), str(f.get("message"))),
                    "seq": None,
                    "rid": None,
                }
            )
    streams = data.get("streams", [])
    if report.ok:
        headline = (
            f"Intact: all {data['summary']['records']} records in {len(streams)} stream(s) are present and unaltered"
            + (", and signed checkpoints vouch for them." if any(s.get("checkpoints") for s in streams) else ".")
        )
    else:
        headline = f"Problems found: {len(problems)} problem(s). The trail was altered, cut or damaged where marked."
    return {
        "state": "done",
        "ok": report.ok,
        "headline": headline,
        "checked_ns": str(started),
        "streams": [
            {
                k: s.get(k)
                for k in (
                    "stream_id",
                    "records",
                    "first_seq",
                    "last_seq",
                    "checkpoints",
                    "anchored_through",
                    "key_id",
                    "end",
                    "ok",
                    "pruned_through",
                )
            }
            for s in streams
        ],
        "problems": problems,
        "notes": notes,
        "key_ids": sorted(key_ids),
        "text": report.render(),
    }


class IntegrityCache:
    """One verification at a time in a background thread; re-run when the outbox files change."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._result: dict[str, Any] | None = None
        self._fingerprint: tuple[Any, ...] | None = None
        self._running = False

    def fingerprint(self) -> tuple[Any, ...]:
        out: list[tuple[int, int] | None] = []
        for suffix in ("", "-wal"):
            try:
                st = (self.path.parent / (self.path.name + suffix)).stat()
                out.append((st.st_mtime_ns, st.st_size))
            except OSError:
                out.append(None)
        return tuple(out)

    def get(self) -> dict[str, Any]:
        fp = self.fingerprint()
        with self._lock:
            if (self._result is None or fp != self._fingerprint) and not self._running:
                self._running = True
                threading.Thread(target=self._run, args=(fp,), name="auditel-ui-verify", daemon=True).start()
            if self._result is None:
                return {"state": "running", "headline": "Checking the trail…"}
            out = dict(self._result)
            out["stale"] = self._running or fp != self._fingerprint
            return out

    def _run(self, fp: tuple[Any, ...]) -> None:
        try:
            result = run_verify(self.path)
        except Exception as exc:  # noqa: BLE001 - shown on the page, never kills the server
            result = {
                "state": "error",
                "ok": False,
                "headline": f"Could not verify: {type(exc).__name__}: {exc}",
                "problems": [],
                "notes": [],
                "streams": [],
                "key_ids": [],
            }
        with self._lock:
            self._result, self._fingerprint, self._running = result, fp, False

    def wait(self, timeout: float = 600.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            got = self.get()
            if got.get("state") != "running" and not got.get("stale"):
                return got
            if time.monotonic() > deadline:
                return got
            time.sleep(0.05)
