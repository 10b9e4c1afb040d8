"""The public recording API: the helpers (`auditel.tool_call`, ...), `@auditel.tool` / `auditel.audited`, and the tool/agent run machinery the instrumentations share."""
