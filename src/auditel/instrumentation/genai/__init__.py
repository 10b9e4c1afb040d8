"""Shared GenAI machinery for auditel's model-call instrumentations.

One ``Invocation`` per model call (``invocation``): it starts a GenAI-convention CLIENT span
(``{operation} {model}``) on auditel's tracer, collects the response facts (ids, finish reasons,
token usage, the tool calls the model asked for), and ``finish()`` ends it exactly once: span
attributes, the ``auditel.model_call`` audit record (written while the span is current, so the
record carries its trace and span ids and becomes a span event), and the optional
``gen_ai.client.inference.operation.details`` event.

Streams are wrapped in ``SyncStreamProxy`` / ``AsyncStreamProxy`` (``streams``); calls go through
``call_sync`` / ``call_async`` and ``wrapper`` (``calling``); request/response shapes and the
semconv message helpers live in ``shapes``. This package exports the machinery an instrumentation
builds on (below); the attribute names and the less common readers are imported from ``shapes``.

Content follows ``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`` (``Settings``):
messages go on spans only with ``SPAN_ONLY``/``SPAN_AND_EVENT``, into audit records and the
details event only with ``EVENT_ONLY``/``SPAN_AND_EVENT``; otherwise records keep keyed digests and
sizes. Nothing here raises into the host's call: every auditel-side failure is counted.
"""

from __future__ import annotations

from auditel.instrumentation.genai.calling import (
    OUTER_CALL_KEY,
    Describe,
    FromResponse,
    GenAIInstrumentor,
    Observe,
    RawResponseProxy,
    SpanScope,
    begin,
    call_async,
    call_sync,
    finish_from,
    suppressed,
    wrapper,
)
from auditel.instrumentation.genai.invocation import ContentPolicy, Invocation, content_policy, start
from auditel.instrumentation.genai.shapes import (
    Request,
    ResponseFacts,
    field_of,
    given,
    listed,
    parts_of_content,
    text_part,
    tool_call_part,
    usage_total,
)
from auditel.instrumentation.genai.streams import AsyncStreamProxy, StreamState, SyncStreamProxy, stream_state_of
from auditel.instrumentation.patching import Patcher, Patches

__all__ = [
    "AsyncStreamProxy",
    "ContentPolicy",
    "Describe",
    "FromResponse",
    "GenAIInstrumentor",
    "Invocation",
    "OUTER_CALL_KEY",
    "Observe",
    "Patcher",
    "Patches",
    "RawResponseProxy",
    "Request",
    "ResponseFacts",
    "SpanScope",
    "StreamState",
    "SyncStreamProxy",
    "begin",
    "call_async",
    "call_sync",
    "content_policy",
    "field_of",
    "finish_from",
    "given",
    "listed",
    "parts_of_content",
    "start",
    "stream_state_of",
    "suppressed",
    "text_part",
    "tool_call_part",
    "usage_total",
    "wrapper",
]
