"""The public read API: ``auditel.read_all()`` and ``auditel.query(...)``.

Records come back as plain dicts in the shape ``auditel query --json`` prints (the stored record
plus ``"hash"``), oldest first, lazily: a million-record outbox is read page by page, each page its
own short read-only transaction, so reading never blocks (or is blocked by) an app that is
recording into the same file. Nothing here writes to the outbox or creates it.

    import auditel
    denied = list(auditel.query(kind="policy_decision", where={"audit.policy.verdict": "deny"}))
    for rec in auditel.query(session="…", since="2h"):
        print(rec["event_name"], rec["attributes"].get("audit.outcome"))
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from auditel.cli.times import parse_time
from auditel.config.read import outbox_path
from auditel.config.settings import EVENT_KINDS
from auditel.record.schema import EVENT_PREFIX
from auditel.store.trail import Trail, TrailMissing

__all__ = ["KNOWN_KINDS", "TrailMissing", "query", "read_all", "record_from_row"]

# Kinds an app records plus the chain's own markers.
KNOWN_KINDS: tuple[str, ...] = tuple(EVENT_KINDS) + ("stream.start", "stream.end", "checkpoint")


def record_from_row(row: tuple[int, int, str | None, str]) -> dict[str, Any]:
    """A stored row as the ``query --json`` dict."""
    record: dict[str, Any] = json.loads(row[3])
    record["hash"] = row[2]
    return record


def _kinds(kind: str | Iterable[str] | None) -> list[str] | None:
    if kind is None:
        return None
    names = [kind] if isinstance(kind, str) else list(kind)
    out = []
    for name in names:
        short = str(name).removeprefix(EVENT_PREFIX)
        if short not in KNOWN_KINDS:
            raise ValueError(f"unknown kind {name!r}: known kinds are {', '.join(KNOWN_KINDS)}")
        out.append(EVENT_PREFIX + short)
    return out


def _time(value: Any, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise ValueError(f"{name}: {exc}") from None


def _matches(attrs: Mapping[str, Any], wanted: list[tuple[str, Any]]) -> bool:
    for key, value in wanted:
        if key not in attrs:
            return False
        have = attrs[key]
        # "5" matches 5 and 5 matches "5": callers (and the CLI's KEY=VALUE) rarely know the stored type
        if have != value and str(have) != str(value) and not (isinstance(value, str) and _coerce(value) == have):
            return False
    return True


def _coerce(text: str) -> Any:
    try:
        return json.loads(text)  # "true" matches True, "[1]" matches [1]
    except ValueError:
        return text


def query(
    *,
    kind: str | Iterable[str] | None = None,
    event: str | Iterable[str] | None = None,
    since: Any = None,
    until: Any = None,
    where: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
    session: str | None = None,
    trace: str | None = None,
    stream: str | None = None,
    outcome: str | None = None,
    limit: int | None = None,
    outbox: str | os.PathLike[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Records matching every filter given, oldest first, lazily.

    ``kind``: one kind or several (``"tool_call"``, ``"policy_decision"`` … see ``KNOWN_KINDS``; an
    unknown kind raises ``ValueError`` naming the known ones); ``event``: full event names;
    ``since``/``until``: ISO text, an age (``"15m"``, ``"2h"``, ``"7d"``), a ``datetime``, unix
    seconds (float) or unix nanoseconds (int); ``where``: attribute → value (all must match);
    ``session``: ``session.id``; ``trace``: the 32-hex trace id; ``stream``: a writer stream id;
    ``outcome``: ``audit.outcome``; ``limit``: at most that many, the most recent ones (still
    returned oldest first); ``outbox``: the file (default ``AUDITEL_OUTBOX`` or the per-user
    default). Raises ``FileNotFoundError`` (``TrailMissing``) when there is no outbox.
    """
    names = _kinds(kind) or []
    if event is not None:
        names += [event] if isinstance(event, str) else list(event)
    wanted = list(where.items()) if isinstance(where, Mapping) else list(where or [])
    if outcome is not None:
        wanted.append(("audit.outcome", outcome))
    since_ns, until_ns = _time(since, "since"), _time(until, "until")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise ValueError(f"limit: {limit!r} is not a count (expected an int >= 0)")
    path = outbox_path(outbox)
    if not path.is_file():  # said at the call, not at the first next()
        raise TrailMissing(f"no outbox at {path} (set AUDITEL_OUTBOX or pass outbox=)")
    Trail(path).close()  # a file that is no auditel outbox is refused at the call too (TrailUnusable)
    return _run(path, names or None, since_ns, until_ns, wanted, session, trace, stream, limit)


def _run(
    outbox: Any,
    names: list[str] | None,
    since_ns: int | None,
    until_ns: int | None,
    wanted: list[tuple[str, Any]],
    session: str | None,
    trace: str | None,
    stream: str | None,
    limit: int | None,
) -> Iterator[dict[str, Any]]:
    trail = Trail(outbox)
    with trail:
        rows = trail.iter_rows(
            event_names=names,
            stream_id=stream,
            since_ns=since_ns,
            until_ns=until_ns,
            session=session,
            trace=trace,
            newest_first=limit is not None,
        )
        if limit is None:
            for row in rows:
                rec = record_from_row(row)
                if _matches(rec.get("attributes") or {}, wanted):
                    yield rec
            return
        newest: list[dict[str, Any]] = []
        if limit:
            for row in rows:
                rec = record_from_row(row)
                if _matches(rec.get("attributes") or {}, wanted):
                    newest.append(rec)
                    if len(newest) >= limit:
                        break
        yield from reversed(newest)


def read_all(outbox: str | os.PathLike[str] | None = None) -> Iterator[dict[str, Any]]:
    """Every record in the outbox, oldest first, lazily (the same dicts as ``query``)."""
    return query(outbox=outbox)
