"""``auditel report``: the viewer as one self-contained HTML file (no server, no network).

The page's own script and style are inlined and allowed by their SHA-256 in a Content-Security-Policy
that allows nothing else (no fetch, no external script, font or image), and the trail travels as a
JSON data block the script reads, so an auditor can open it from disk, offline, anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from auditel.ui.integrity import run_verify
from auditel.ui.model import SessionIndex, delivery_payload, timeline_payload
from auditel.ui.server import static_text


def _sha256(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def _json_for_html(obj: Any) -> str:
    # inside <script type="application/json">: no "</script>" or "<!--" can appear once < is escaped
    text = json.dumps(obj, ensure_ascii=False, default=str, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def build_report(
    path: str | Path, *, since_ns: int | None = None, session: str | None = None, scope: str = ""
) -> tuple[str, dict[str, Any]]:
    """The HTML text and the data it embeds."""
    index = SessionIndex(path)
    index.index_all()
    selected = [
        s
        for s in index.sessions.values()
        if (since_ns is None or s.end_ns >= since_ns)
        and (session is None or s.key == session or s.session_id == session)
    ]
    selected.sort(key=lambda s: s.start_ns, reverse=True)
    facets: dict[str, set[str]] = {"kind": set(), "tool": set(), "model": set(), "outcome": set(), "verdict": set()}
    timelines = {}
    for s in selected:
        timelines[s.key] = timeline_payload(path, index, s.key, limit=1_000_000)
        SessionIndex.facet_into(facets, s)
    integrity = run_verify(path)
    data = {
        "mode": "report",
        "generated_ns": str(time.time_ns()),
        "outbox": str(path),
        "scope": scope,
        "sessions": [s.as_dict() for s in selected],
        "facets": {k: sorted(v) for k, v in facets.items()},
        "timelines": timelines,
        "integrity": integrity,
        "delivery": delivery_payload(path),
    }
    css, js = static_text("app.css"), static_text("app.js")
    csp = (
        f"default-src 'none'; script-src {_sha256(js)}; style-src {_sha256(css)}; img-src data:; "
        "base-uri 'none'; form-action 'none'"
    )
    html = static_text("index.html")
    html = html.replace(
        '<meta charset="utf-8">',
        f'<meta charset="utf-8">\n<meta http-equiv="Content-Security-Policy" content="{csp}">',
        1,
    )
    html = html.replace('<link rel="stylesheet" href="/app.css">', f"<style>{css}</style>", 1)
    html = html.replace(
        '<script src="/app.js"></script>',
        f'<script type="application/json" id="auditel-data">{_json_for_html(data)}</script>\n<script>{js}</script>',
        1,
    )
    html = html.replace("<title>auditel: audit trail</title>", "<title>auditel: audit trail report</title>", 1)
    return html, data


def write_report(out: str | Path, html: str) -> None:
    """Written 0600, like the outbox: the report holds the same data."""
    path = Path(out)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(html)
    os.chmod(path, 0o600)
