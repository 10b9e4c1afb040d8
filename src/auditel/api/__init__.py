"""The public recording API: the helpers (`auditel.tool_call`, ...), `@auditel.tool` / `auditel.audited`,
the tool/agent run machinery the instrumentations share, the read API and the boundary guard."""
