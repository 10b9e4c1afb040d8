"""The span-event bridge: a committed audit record also appears as an event on the active span.

Trace views then show where in the trace each audited action happened, and the event points at the
full record (record id, stream, sequence) without copying its content.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.trace import Event
from opentelemetry.sdk.trace import Span as SdkSpan

from auditel.counters import Counters
from auditel.record import schema as S
from auditel.subclass_memo import subclass_memo

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


_ABSENT = object()
_PLAIN = (str, int, bool)


def _span_attributes(span: Any) -> Any:
    """The span's own attributes as a plain dict when the SDK keeps one (its BoundedAttributes answers
    ``get`` through a caught KeyError per missing key), else its public mapping, else nothing."""
    bounded = getattr(span, "_attributes", None)
    d = getattr(bounded, "_dict", None)
    if type(d) is dict:
        return d
    held = getattr(span, "attributes", None)
    return held if isinstance(held, Mapping) else {}


# the SDK's span classes are ABCs, whose ``isinstance`` check costs more than the rest of this bridge's bookkeeping
_is_sdk_span = subclass_memo(SdkSpan, limit=64)


def add_span_event(counters: Counters, name: str, stored: dict[str, Any], time_ns: int) -> None:
    """Add the record to the active recording span as an event that points at it.

    The event carries the keys that identify the record and say what happened (id, stream,
    sequence, action, phase, outcome, tool, verdict, error type), not every attribute: the full
    record is the log record, and copying ~30 attributes again costs the SDK as much as the
    commit. A key the span already holds with the same value (auditel's own model-call span names
    its model, its tool span the tool, call id and correlation id) is not repeated: the SDK checks
    and copies every event attribute. Content never rides along.
    """
    try:
        span = trace.get_current_span()
        if not span.is_recording():
            return
        attrs = stored["attributes"]
        held = _span_attributes(span)
        flat = {}
        plain = True  # every value a str, int or bool: nothing for the SDK to check or cut
        for key in _BRIDGE_KEYS:
            value = attrs.get(key, _ABSENT)
            if value is not _ABSENT and held.get(key, _ABSENT) != value:
                flat[key] = value
                if type(value) not in _PLAIN:
                    plain = False
        add = getattr(span, "_add_event", None) if plain and _is_sdk_span(type(span)) else None
        limits = getattr(span, "_limits", None)
        if (
            add is not None
            and limits is not None
            and limits.max_attribute_length is None
            and (limits.max_event_attributes is None or len(flat) <= limits.max_event_attributes)
        ):
            # What Span.add_event does, minus its BoundedAttributes (a lock and a check per value,
            # ~10 µs an event): these values are short ids, names and numbers that its checks would
            # keep as they are, and no length or count limit applies; the attributes stay read-only.
            add(Event(name, MappingProxyType(flat), time_ns))
        else:
            span.add_event(name, attributes=flat, timestamp=time_ns)
    except Exception as exc:  # noqa: BLE001
        counters.error("span_event", exc)
