"""How ``tail``, ``query`` and ``demo`` print a record for people (``--json`` prints the record as is).

One line of essentials that fits in 120 columns: time, the writer (process id when the outbox knows
it, else the stream), the record's number in its stream, its kind and the facts that matter for that
kind. ``verbose`` adds every other attribute and the body on indented lines below, never cut.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Mapping
from typing import Any

WIDTH = 120

# Attributes every record carries or that the one-line form already shows: left out of -v's list.
_PLUMBING = {
    "audit.record.id",
    "audit.schema.version",
    "audit.sequence.number",
    "audit.sequence.stream_id",
    "audit.sequence.previous_hash",
}


def fmt_time(ns: Any) -> str:
    try:
        t = _dt.datetime.fromtimestamp(int(ns) / 1e9, tz=_dt.timezone.utc)
        return t.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"
    except (TypeError, ValueError, OverflowError, OSError):
        return "?"


def _ms(value: Any) -> str:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return ""
    return f"{v / 1000:.2f}s" if v >= 1000 else f"{v:.1f}ms"


def _essentials(kind: str, a: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    if kind == "tool_call":
        out += [str(a.get("gen_ai.tool.name") or a.get("audit.target.id") or "?"), str(a.get("audit.phase") or "")]
    elif kind == "model_call":
        out.append(str(a.get("gen_ai.request.model") or a.get("audit.target.id") or "?"))
        tokens = (a.get("gen_ai.usage.input_tokens"), a.get("gen_ai.usage.output_tokens"))
        if any(t is not None for t in tokens):
            out.append(
                f"tokens {tokens[0] if tokens[0] is not None else '?'}/{tokens[1] if tokens[1] is not None else '?'}"
            )
        names = a.get("audit.tool_calls.names")
        if isinstance(names, list) and names:
            out.append("asks " + ",".join(str(n) for n in names))
    elif kind == "policy_decision":
        out += [
            str(a.get("audit.policy.verdict") or "?"),
            str(a.get("gen_ai.tool.name") or a.get("audit.target.id") or ""),
        ]
        if a.get("audit.policy.id"):
            out.append(f"policy {a['audit.policy.id']}")
    else:
        action = a.get("audit.action")
        if action and action != kind:
            out.append(str(action))
        if a.get("http.request.method"):
            out.append(str(a["http.request.method"]))
        target = a.get("audit.target.id") or (a.get("gen_ai.agent.name") if kind in ("agent_run", "handoff") else None)
        if target:
            out.append(str(target))
        if a.get("http.response.status_code") is not None:
            out.append(str(a["http.response.status_code"]))
    if kind != "policy_decision" and a.get("audit.outcome"):
        out.append(
            str(a["audit.outcome"]).upper() if a["audit.outcome"] in ("failure", "denied") else str(a["audit.outcome"])
        )
    if a.get("audit.duration_ms") is not None:
        out.append(_ms(a["audit.duration_ms"]))
    if a.get("audit.reason"):
        out.append(f"— {a['audit.reason']}")
    elif a.get("error.type"):
        out.append(f"— {a['error.type']}")
    return [p for p in out if p]


def _fit(line: str, width: int) -> str:
    if len(line) <= width:
        return line
    cut = line[: width - 1]
    space = cut.rfind(" ")
    if space > width - 24:  # end at a word when one ends near the edge; a long URL is cut inside
        cut = cut[:space]
    return cut.rstrip() + "…"


def _value(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, sort_keys=True)


def format_record(
    record: Mapping[str, Any],
    *,
    writer: str | None = None,
    verbose: bool = False,
    width: int = WIDTH,
) -> str:
    """One line (plus, with ``verbose``, the rest on indented lines). ``writer``: who wrote it, e.g.
    ``pid 4242`` (from the outbox's streams table); the stream id's first 8 characters otherwise."""
    a = record.get("attributes") or {}
    if not isinstance(a, Mapping):
        a = {}
    kind = str(record.get("event_name", "?")).removeprefix("auditel.")
    stream = str(a.get("audit.sequence.stream_id") or "")
    who = writer or (f"s:{stream[:8]}" if stream else "-")
    head = f"{fmt_time(record.get('time_unix_nano'))}  {who:<10} #{a.get('audit.sequence.number', '?'):<4} {kind:<15} "
    line = _fit(head + "  ".join(_essentials(kind, a)), width)
    if not verbose:
        return line
    lines = [line]
    for key in sorted(a):
        if key not in _PLUMBING:
            lines.append(f"    {key} = {_value(a[key])}")
    for key in ("trace_id", "span_id"):
        if record.get(key):
            lines.append(f"    {key} = {record[key]}")
    lines.append(f"    stream = {stream}  record = {a.get('audit.record.id', '?')}")
    if "body" in record:
        lines.append(f"    body = {_value(record['body'])}")
    return "\n".join(lines)


def writer_labels(streams: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """stream id -> ``pid 4242`` (``pid 4242@host`` when several hosts share the outbox)."""
    hosts = {s.get("host") for s in streams.values()}
    out = {}
    for stream_id, info in streams.items():
        pid = info.get("pid")
        if pid is None:
            continue
        out[stream_id] = f"pid {pid}" + (f"@{info.get('host')}" if len(hosts) > 1 and info.get("host") else "")
    return out


def label_for(record: Mapping[str, Any], labels: Mapping[str, str]) -> str | None:
    attrs = record.get("attributes") or {}
    return labels.get(str(attrs.get("audit.sequence.stream_id"))) if isinstance(attrs, Mapping) else None
