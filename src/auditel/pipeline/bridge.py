"""The span-event bridge: a committed audit record also appears as an event on the active span.

Trace views then show where in the trace each audited action happened, and the event points at the
full record (record id, stream, sequence) without copying its content.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import trace

from auditel.counters import Counters
from auditel.record import schema as S

# What a span event repeats of its audit record (see add_span_event).
_BRIDGE_KEYS = (
    S.A_RECORD_ID,
    S.A_STREAM_ID,
    S.A_SEQ,
    S.A_ACTION,
    S.A_PHASE,
    S.A_OUTCOME,
    S.A_CORRELATION_ID,
    S.GEN_AI_TOOL_NAME,
    S.GEN_AI_TOOL_CALL_ID,
    S.GEN_AI_REQUEST_MODEL,
    S.A_POLICY_VERDICT,
    S.A_POLICY_ID,
    S.A_ERROR_TYPE,
)


def add_span_event(counters: Counters, name: str, stored: dict[str, Any], time_ns: int) -> None:
    """Add the record to the active recording span as an event that points at it.

    The event carries the keys that identify the record and say what happened (id, stream,
    sequence, action, phase, outcome, tool, verdict, error type), not every attribute: the full
    record is the log record, and copying ~30 attributes again costs the SDK as much as the
    commit. Content never rides along.
    """
    try:
        span = trace.get_current_span()
        if not span.is_recording():
            return
        attrs = stored["attributes"]
        flat = {key: attrs[key] for key in _BRIDGE_KEYS if key in attrs}
        span.add_event(name, attributes=flat, timestamp=time_ns)
    except Exception as exc:  # noqa: BLE001
        counters.error("span_event", exc)
