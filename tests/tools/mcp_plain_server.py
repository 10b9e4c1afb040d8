"""An MCP stdio server that knows nothing of auditel (like ``mcp-server-time``): no import, no
configuration. Audited only if the client that starts it passes auditel's settings on."""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer

server = MCPServer("plain")


@server.tool()
def echo(text: str) -> str:
    """Echo the text back."""
    return text


if __name__ == "__main__":
    server.run("stdio")
