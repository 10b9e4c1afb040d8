"""``auditel ui``: a small read-only web server (standard library only) over one outbox.

It serves the page (``static/``) and a JSON API the page calls; every value reaches the browser as
JSON and is put into the page with ``textContent`` (never as HTML), and the Content-Security-Policy
forbids inline scripts, so text recorded by models and tool callers cannot run. It binds to
127.0.0.1 unless told otherwise and answers only requests addressed to the host it serves
(a DNS-rebinding page on another site cannot read the trail through the user's browser).
"""

from __future__ import annotations

import json
import threading
import time
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from auditel.cli.times import parse_time
from auditel.ui.integrity import IntegrityCache
from auditel.ui.model import FILTERS, SessionIndex, delivery_payload, timeline_payload

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/app.css": ("app.css", "text/css; charset=utf-8"),
}


def static_text(name: str) -> str:
    return resources.files("auditel.ui").joinpath("static").joinpath(name).read_text(encoding="utf-8")


class Viewer:
    """The state behind one server: the outbox path, the session index, the integrity cache."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.index = SessionIndex(self.path)
        self.integrity = IntegrityCache(self.path)
        self._refresh_lock = threading.Lock()
        self.index_error: str | None = None

    def refresh(self) -> None:
        with self._refresh_lock:
            self.index.refresh()

    def start_indexing(self) -> None:
        """Index older records in the background, a chunk at a time (pages are served meanwhile)."""

        def run() -> None:
            try:
                while self.index.index_older():
                    time.sleep(0.005)  # between chunks: page requests get the GIL and the index's lock
            except Exception as exc:  # noqa: BLE001 - the list then says the index is incomplete
                self.index_error = f"{type(exc).__name__}: {exc}"

        threading.Thread(target=run, name="auditel-ui-index", daemon=True).start()

    def api(self, route: str, query: dict[str, str]) -> Any:
        if route == "/api/sessions":
            self.refresh()
            since = parse_time(query["since"]) if query.get("since") else None
            until = parse_time(query["until"]) if query.get("until") else None
            return self.index.select(
                since_ns=since,
                until_ns=until,
                text=query.get("q", ""),
                offset=max(0, int(query.get("offset", 0) or 0)),
                limit=min(500, max(1, int(query.get("limit", 50) or 50))),
                **{k: query.get(k) or None for k in FILTERS},
            ) | {"facets": self.index.facets()}
        if route == "/api/session":
            self.refresh()
            return timeline_payload(self.path, self.index, query.get("key", ""))
        if route == "/api/integrity":
            return self.integrity.get()
        if route == "/api/delivery":
            return delivery_payload(self.path)
        if route == "/api/info":
            return {"mode": "live", "outbox": str(self.path)}
        raise KeyError(route)


def make_handler(viewer: Viewer, allowed_hosts: set[str] | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "auditel-ui"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet: the trail is the log
            pass

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Content-Security-Policy", CSP)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Referrer-Policy", "no-referrer")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, obj: Any) -> None:
            self._send(
                status, json.dumps(obj, ensure_ascii=False, default=str).encode(), "application/json; charset=utf-8"
            )

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if allowed_hosts is not None and self.headers.get("Host", "") not in allowed_hosts:
                self._send(HTTPStatus.MISDIRECTED_REQUEST, b"unknown host\n", "text/plain; charset=utf-8")
                return
            url = urllib.parse.urlsplit(self.path)
            if url.path in STATIC:
                name, ctype = STATIC[url.path]
                self._send(HTTPStatus.OK, static_text(name).encode(), ctype)
                return
            query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
            try:
                result = viewer.api(url.path, query)
            except KeyError:
                self._json(HTTPStatus.NOT_FOUND, {"error": "no such page"})
                return
            except ValueError as exc:
                self._json(HTTPStatus.BAD_REQUEST, {"error": str(exc)})
                return
            except Exception as exc:  # noqa: BLE001 - one failed request never stops the server
                self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": f"{type(exc).__name__}: {exc}"})
                return
            if result is None:
                self._json(HTTPStatus.NOT_FOUND, {"error": "no such session"})
                return
            self._json(HTTPStatus.OK, result)

    return Handler


def serve(path: str | Path, *, host: str = "127.0.0.1", port: int = 8787) -> ThreadingHTTPServer:
    """A server bound and ready (not yet serving: call ``serve_forever``)."""
    viewer = Viewer(path)
    viewer.refresh()
    viewer.start_indexing()
    viewer.integrity.get()  # start verifying in the background now
    server = ThreadingHTTPServer((host, port), make_handler(viewer, set()))
    server.daemon_threads = True
    bound_port = server.server_address[1]
    allowed: set[str] | None
    if host in ("0.0.0.0", "::", ""):
        allowed = None  # listening on every address was asked for: any Host name may reach it
    else:
        names = {host, "localhost", "127.0.0.1", "[::1]"} if host in ("127.0.0.1", "localhost", "::1") else {host}
        allowed = {f"{n}:{bound_port}" for n in names}
    server.RequestHandlerClass = make_handler(viewer, allowed)
    return server


def url_of(server: ThreadingHTTPServer) -> str:
    host, port = str(server.server_address[0]), server.server_address[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"
