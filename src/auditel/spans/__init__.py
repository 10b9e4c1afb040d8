"""The span bridge: turns GenAI spans from any instrumentation into auditel records.

``processor.AuditSpanProcessor`` is an OTel ``SpanProcessor``; ``attach`` adds it to the
application's TracerProvider; ``conventions`` recognises the attribute conventions; ``dedup``
keeps one record per action. See docs/frameworks.md.
"""
