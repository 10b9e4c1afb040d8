"""The auditor's view: ``auditel ui`` (a local read-only web viewer) and ``auditel report`` (one
self-contained HTML file)."""
