"""What the viewer and the report show, as plain JSON-able dicts: sessions, timelines, integrity, delivery.

Everything is read through ``store.trail`` (read-only). The sessions list comes from an in-memory
index built in one pass over the outbox (SQLite extracts the few attributes it needs; no record is
decoded in Python) and brought up to date incrementally by ``rid`` — records are only ever appended
at higher rids, so a refresh reads only what is new. Filtering and paging the list is then a scan of
the index, and a session's timeline reads only that session's ``rid`` range.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from auditel.api.read import record_from_row
from auditel.record.schema import EVENT_PREFIX
from auditel.store.trail import Trail

# A model call is one request to a provider: the agent's other actions happen between model calls, not
# inside one, so a model call never contains other rows (concurrent work overlapping it in time is
# not its child).
LEAF_KINDS = {"model_call", "policy_decision", "file_access", "network_access", "heartbeat"}

DENY_VERDICTS = {"deny", "denied", "block", "blocked", "reject", "rejected"}


def session_key(record: dict[str, Any]) -> str:
    a = record.get("attributes") or {}
    sid, trace = a.get("session.id"), record.get("trace_id")
    return str(sid) if sid else (f"trace:{trace}" if trace else f"stream:{a.get('audit.sequence.stream_id')}")


def _kind(event_name: str) -> str:
    return event_name[len(EVENT_PREFIX) :] if event_name.startswith(EVENT_PREFIX) else event_name


@dataclass
class Session:
    key: str  # session.id, else "trace:<id>", else "stream:<id>"
    session_id: str | None
    start_ns: int
    end_ns: int
    first_rid: int
    last_rid: int
    agent: str | None = None
    records: int = 0
    model_calls: int = 0
    tool_calls: int = 0
    denials: int = 0
    failures: int = 0
    kinds: set[str] = field(default_factory=set)
    tools: set[str] = field(default_factory=set)
    models: set[str] = field(default_factory=set)
    outcomes: set[str] = field(default_factory=set)
    verdicts: set[str] = field(default_factory=set)
    streams: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "session_id": self.session_id,
            "start_ns": str(self.start_ns),
            "end_ns": str(self.end_ns),
            "duration_ms": (self.end_ns - self.start_ns) / 1e6,
            "agent": self.agent,
            "records": self.records,
            "model_calls": self.model_calls,
            "tool_calls": self.tool_calls,
            "denials": self.denials,
            "failures": self.failures,
            "kinds": sorted(self.kinds),
            "tools": sorted(self.tools),
            "models": sorted(self.models),
            "outcomes": sorted(self.outcomes),
            "verdicts": sorted(self.verdicts),
            "streams": sorted(self.streams),
        }


FILTERS = ("kind", "tool", "model", "outcome", "verdict")


class SessionIndex:
    """Per-session summaries of one outbox, built from the newest records back and kept up to date.

    ``refresh`` reads what is new (a rid range above ``high``) and, the first time, the newest
    ``first_chunk`` records, so the first page of the newest sessions is ready at once even on a
    huge trail; ``index_older`` reads one more chunk below ``low`` (the viewer runs it in the
    background until ``complete``). Summaries merge by min/max, so the order of reading does not matter.
    """

    def __init__(self, path: str | Path, *, first_chunk: int = 10000) -> None:
        self.path = Path(path)
        self.sessions: dict[str, Session] = {}
        self.high = 0  # every record with rid <= high ...
        self.low = 1  # ... and >= low is indexed
        self.floor = 0  # the smallest rid in the outbox when last looked
        self.first_chunk = first_chunk
        self._lock = threading.Lock()

    @property
    def complete(self) -> bool:
        return self.low <= max(self.floor, 1)

    def progress(self) -> dict[str, Any]:
        span = max(1, self.high - self.floor + 1)
        done = self.high - self.low + 1
        return {
            "complete": self.complete,
            "indexed_fraction": 1.0 if self.complete else max(0.0, min(1.0, done / span)),
        }

    def refresh(self) -> None:
        with self._lock, Trail(self.path) as trail:
            top, floor = trail.max_rid(), trail.min_rid()
            # Records this index counted are gone: the newest (their rids will be reused) or, after a
            # purge or retention, the oldest ones (floor above what was indexed). Start over.
            if top < self.high or (self.high and floor > self.low):
                self.sessions.clear()
                self.high, self.low = 0, 1
            self.floor = floor
            if self.high == 0:
                self.high, self.low = top, top + 1
                if not self.complete:
                    self._add_older(trail.summary_rows(below=self.low, limit=self.first_chunk), self.first_chunk)
            while True:
                rows = trail.summary_rows(above=self.high)
                for row in rows:
                    self._add(row)
                    self.high = row[0]
                if len(rows) < 20000:
                    break

    def index_older(self, chunk: int = 5000) -> bool:
        """Index one more chunk of older records; False once everything is indexed. The records are
        read before the lock is taken (only one indexer moves ``low``), so pages are served meanwhile."""
        with Trail(self.path) as trail:
            floor = trail.min_rid()
            low = self.low
            rows = [] if low <= max(floor, 1) else trail.summary_rows(below=low, limit=chunk)
        with self._lock:
            if self.low != low:  # the index was reset or moved meanwhile: read again next time
                return not self.complete
            self.floor = floor
            return self._add_older(rows, chunk)

    def index_all(self) -> None:
        self.refresh()
        while self.index_older(20000):
            pass

    def _add_older(self, rows: list[tuple[Any, ...]], chunk: int) -> bool:
        """Index ``rows`` read below ``low`` (newest first); fewer than ``chunk`` of them means none older
        is left. False once everything is indexed."""
        for row in rows:
            self._add(row)
            self.low = row[0]
        if len(rows) < chunk:
            self.low = min(self.low, max(self.floor, 1))
        return not self.complete

    def _add(self, row: tuple[Any, ...]) -> None:
        rid, t, event_name, stream, _state, sid, trace, agent, outcome, verdict, tool, model, phase, _action, _dur = row
        key = str(sid) if sid else (f"trace:{trace}" if trace else f"stream:{stream}")
        s = self.sessions.get(key)
        if s is None:
            s = self.sessions[key] = Session(key, str(sid) if sid else None, t, t, rid, rid)
        s.start_ns, s.end_ns = min(s.start_ns, t), max(s.end_ns, t)
        s.first_rid, s.last_rid = min(s.first_rid, rid), max(s.last_rid, rid)
        s.records += 1
        kind = _kind(event_name)
        s.kinds.add(kind)
        s.streams.add(stream)
        if agent and (not s.agent or rid == s.first_rid):
            s.agent = str(agent)
        if kind == "model_call":
            s.model_calls += 1
        elif kind == "tool_call" and phase != "intent":
            s.tool_calls += 1  # one per call: the outcome (or a single-record call)
        if kind == "policy_decision" and str(verdict).lower() in DENY_VERDICTS:
            s.denials += 1
        if outcome == "failure":
            s.failures += 1
        for bucket, value in ((s.tools, tool), (s.models, model), (s.outcomes, outcome), (s.verdicts, verdict)):
            if value is not None and value != "":
                bucket.add(str(value))

    def facets(self) -> dict[str, list[str]]:
        out: dict[str, set[str]] = {"kind": set(), "tool": set(), "model": set(), "outcome": set(), "verdict": set()}
        with self._lock:
            for s in self.sessions.values():
                self.facet_into(out, s)
        return {k: sorted(v) for k, v in out.items()}

    @staticmethod
    def facet_into(out: dict[str, set[str]], s: Session) -> None:
        out["kind"] |= s.kinds
        out["tool"] |= s.tools
        out["model"] |= s.models
        out["outcome"] |= s.outcomes
        out["verdict"] |= s.verdicts

    def select(
        self,
        *,
        since_ns: int | None = None,
        until_ns: int | None = None,
        text: str = "",
        offset: int = 0,
        limit: int = 50,
        **wanted: str | None,
    ) -> dict[str, Any]:
        """One page of sessions (most recent first) matching every filter given."""
        needle = text.strip().lower()
        with self._lock:  # the background indexer updates sessions meanwhile
            return self._select(needle, since_ns, until_ns, offset, limit, wanted)

    def _select(
        self, needle: str, since_ns: int | None, until_ns: int | None, offset: int, limit: int, wanted: dict[str, Any]
    ) -> dict[str, Any]:
        found = []
        for s in self.sessions.values():
            if since_ns is not None and s.end_ns < since_ns:
                continue
            if until_ns is not None and s.start_ns >= until_ns:
                continue
            if wanted.get("kind") and wanted["kind"] not in s.kinds:
                continue
            if wanted.get("tool") and wanted["tool"] not in s.tools:
                continue
            if wanted.get("model") and wanted["model"] not in s.models:
                continue
            if wanted.get("outcome") and wanted["outcome"] not in s.outcomes:
                continue
            if wanted.get("verdict") and wanted["verdict"] not in s.verdicts:
                continue
            if needle and not any(needle in str(v).lower() for v in (s.key, s.agent, *s.tools, *s.models)):
                continue
            found.append(s)
        found.sort(key=lambda s: s.start_ns, reverse=True)
        page = found[offset : offset + limit]
        return {
            "total": len(found),
            "offset": offset,
            "limit": limit,
            "sessions": [s.as_dict() for s in page],
            "index": self.progress(),
        }

    def get(self, key: str) -> tuple[Session, dict[str, Any]] | None:
        """A session and its summary as it is now (the indexer may still add to it)."""
        with self._lock:
            s = self.sessions.get(key)
            return None if s is None else (s, s.as_dict())


# --- one session's timeline ----------------------------------------------------------------------
def session_records(path: str | Path, session: Session, *, limit: int = 5000) -> tuple[list[dict[str, Any]], bool]:
    """The session's records (with ``_rid``), oldest first; at most ``limit`` (then ``True``)."""
    out: list[dict[str, Any]] = []
    key = session.key
    filters: dict[str, Any] = {}
    if session.session_id:
        filters["session"] = session.session_id
    elif key.startswith("trace:"):
        filters["trace"] = key[len("trace:") :]
    else:
        filters["stream_id"] = key[len("stream:") :]
    with Trail(path) as trail:
        for row in trail.iter_rows(after_rid=session.first_rid - 1, before_rid=session.last_rid + 1, **filters):
            rec = record_from_row(row)
            rec["_rid"] = row[0]
            rec["_state"] = row[1]
            out.append(rec)
            if len(out) >= limit:
                return out, True
    return out, False


def _status(recs: Iterable[dict[str, Any]]) -> str:
    status = "ok"
    for rec in recs:
        a = rec.get("attributes") or {}
        if a.get("audit.outcome") == "denied" or str(a.get("audit.policy.verdict", "")).lower() in DENY_VERDICTS:
            return "denied"
        if a.get("audit.outcome") == "failure":
            status = "failure"
    return status


def _label(kind: str, a: dict[str, Any]) -> str:
    if kind == "tool_call":
        return f"tool {a.get('gen_ai.tool.name') or a.get('audit.target.id') or '?'}"
    if kind == "model_call":
        return f"model {a.get('gen_ai.request.model') or a.get('audit.target.id') or '?'}"
    if kind == "policy_decision":
        subject = a.get("gen_ai.tool.name") or a.get("audit.target.id") or ""
        return f"policy {a.get('audit.policy.verdict', '?')}" + (f": {subject}" if subject else "")
    action = a.get("audit.action")
    target = a.get("audit.target.id")
    return " ".join(str(p) for p in (action or kind, target) if p)


def build_timeline(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows to draw: a tool call's intent and outcome form one row (its policy decision nests in it); records with
    a duration cover [time - duration, time]; a row nests under the innermost row of the same
    stream whose span of time contains it (model calls and other single facts are never containers)."""
    rows: list[dict[str, Any]] = []
    by_corr: dict[str, dict[str, Any]] = {}
    for rec in records:
        a = rec.get("attributes") or {}
        kind = _kind(str(rec.get("event_name", "")))
        t = int(rec.get("time_unix_nano") or 0)
        corr = a.get("audit.correlation.id")
        if not corr and kind == "tool_call" and a.get("gen_ai.tool.call.id"):
            corr = f"call:{a.get('audit.sequence.stream_id')}:{a['gen_ai.tool.call.id']}"
        if corr and kind == "tool_call" and corr in by_corr:
            row = by_corr[corr]
            row["records"].append(rec)
            row["end_ns"] = max(row["end_ns"], t)
            if kind == "tool_call":
                row["outcome"] = a.get("audit.outcome") or row["outcome"]
                if a.get("audit.duration_ms") is not None:
                    row["duration_ms"] = a["audit.duration_ms"]
            continue
        dur = a.get("audit.duration_ms")
        start = t - int(float(dur) * 1e6) if isinstance(dur, (int, float)) and kind != "tool_call" else t
        row = {
            "kind": kind,
            "label": _label(kind, a),
            "start_ns": start,
            "end_ns": t,
            "duration_ms": dur,
            "outcome": a.get("audit.outcome"),
            "stream": a.get("audit.sequence.stream_id"),
            "span_id": rec.get("span_id"),
            "records": [rec],
        }
        if corr and kind == "tool_call":
            by_corr[corr] = row  # its outcome joins this row; policy decisions nest inside it by time
        rows.append(row)
    # nesting: sort by start, longer first; a stack of open intervals per stream
    rows.sort(key=lambda r: (r["start_ns"], -(r["end_ns"] - r["start_ns"]), r["records"][0]["_rid"]))
    stacks: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        stack = stacks.setdefault(row["stream"], [])
        while stack and not (
            stack[-1]["start_ns"] <= row["start_ns"]
            and row["end_ns"] <= stack[-1]["end_ns"]
            and stack[-1]["end_ns"] > stack[-1]["start_ns"]
        ):
            stack.pop()
        row["depth"] = len(stack)
        if row["end_ns"] > row["start_ns"] and row["kind"] not in LEAF_KINDS:
            stack.append(row)
    out = []
    for i, row in enumerate(rows):
        recs = row.pop("records")
        row.pop("span_id", None)
        row["id"] = i
        row["status"] = _status(recs)
        row["rids"] = [r["_rid"] for r in recs]
        row["start_ns"], row["end_ns"] = str(row["start_ns"]), str(row["end_ns"])
        if row["kind"] == "tool_call" and len(recs) > 1:
            row["label"] += " → " + str(row.get("outcome") or "no outcome recorded")
        out.append(row)
    return out


def plain_record(rec: dict[str, Any]) -> dict[str, Any]:
    """A record for the page: its fields, ``rid`` and shipping state; times as strings (JS numbers
    cannot hold nanoseconds)."""
    out = {k: v for k, v in rec.items() if not k.startswith("_")}
    out["rid"] = rec.get("_rid")
    out["shipping"] = {0: "pending", 1: "shipped", 2: "dead-lettered"}.get(rec.get("_state", -1), "?")
    for k in ("time_unix_nano", "observed_time_unix_nano"):
        if k in out:
            out[k] = str(out[k])
    return out


def timeline_payload(path: str | Path, index: SessionIndex, key: str, *, limit: int = 5000) -> dict[str, Any] | None:
    got = index.get(key)
    if got is None:
        return None
    session, summary = got
    records, truncated = session_records(path, session, limit=limit)
    rows = build_timeline(records)
    return {
        "session": summary,
        "rows": rows,
        "records": {str(r["_rid"]): plain_record(r) for r in records},
        "truncated": truncated,
    }


# --- delivery --------------------------------------------------------------------------------------
def delivery_payload(path: str | Path) -> dict[str, Any]:
    with Trail(path) as trail:
        d = trail.delivery()
        meta = trail.meta()
    now = time.time_ns()
    last_error = meta.get("last_error") or meta.get("last_delivery_error")
    if not last_error and d.last_dead_letter:
        dl = d.last_dead_letter
        last_error = (
            f"record {dl['record_id']} rejected"
            + (f" ({dl['status']})" if dl.get("status") else "")
            + f": {dl['reason']}"
        )
    return {
        "records_total": d.records_total,
        "pending": d.pending,
        "shipped": d.shipped,
        "dead_lettered": d.dead_lettered,
        "oldest_pending_age_s": None if d.oldest_pending_ns is None else max(0.0, (now - d.oldest_pending_ns) / 1e9),
        "last_error": last_error,
        "outbox": str(path),
        "outbox_bytes": sum(os.path.getsize(str(path) + s) for s in ("", "-wal") if os.path.exists(str(path) + s)),
    }
