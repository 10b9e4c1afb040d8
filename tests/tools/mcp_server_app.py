"""A small MCP server used by the MCP tests, in-process and as a stdio subprocess.

Run as a script it serves over stdio (no arguments) or over streamable HTTP
(``http PORT``: ``http://127.0.0.1:PORT/mcp``), with auditel configured from the environment
(AUDITEL_ENABLED/AUDITEL_OUTBOX) and the MCP instrumentation on; when
AUDITEL_TEST_TRACE_FILE is set, every finished span is appended to it as one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time

from mcp.server.mcpserver import MCPServer


def build_server() -> MCPServer:
    server = MCPServer("calc")

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @server.tool()
    def explode(reason: str) -> str:
        """Always fails."""
        raise ValueError(f"exploded: {reason}")

    @server.tool()
    def hang(seconds: float) -> str:
        """Sleeps (used to kill the process mid-tool)."""
        marker = os.environ.get("AUDITEL_TEST_HANG_MARKER")
        if marker:
            with open(marker, "w") as fh:
                fh.write("inside")
        time.sleep(seconds)
        return "woke"

    return server


def _trace_to_file(path: str) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult

    class FileExporter(SpanExporter):
        def export(self, spans):  # type: ignore[no-untyped-def]
            with open(path, "a") as fh:
                for s in spans:
                    parent = s.parent
                    fh.write(json.dumps({
                        "name": s.name, "kind": s.kind.name,
                        "trace_id": format(s.context.trace_id, "032x"), "span_id": format(s.context.span_id, "016x"),
                        "parent_span_id": format(parent.span_id, "016x") if parent else None,
                        "attributes": dict(s.attributes or {}),
                    }) + "\n")
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(FileExporter()))
    trace.set_tracer_provider(provider)


if __name__ == "__main__":
    if os.environ.get("AUDITEL_TEST_TRACE_FILE"):
        _trace_to_file(os.environ["AUDITEL_TEST_TRACE_FILE"])
    import auditel

    auditel.configure()
    auditel.instrument("mcp")
    if sys.argv[1:2] == ["http"]:
        build_server().run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        build_server().run("stdio")
