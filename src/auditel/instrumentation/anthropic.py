"""Auto-instrumentation of the Anthropic SDK: ``messages.create`` / ``.parse`` / ``.stream()``.

``messages.stream()`` builds its request itself (not through ``create``): the returned manager's
request is replaced by a traced one, so the span covers the HTTP call made on ``__enter__`` and the
stream the helper reads is our proxy (``MessageStream.close()`` closes it, which finishes the record).

Note: anthropic 2.x traces API calls itself by default (span ``anthropic.messages.create``, off with
``ANTHROPIC_OPEN_TELEMETRY=false``); that span becomes a child of ours.
"""

from __future__ import annotations

from typing import Any

from auditel.instrumentation import base as _base
from auditel.instrumentation import genai
from auditel.instrumentation.genai.shapes import (
    Request,
    ResponseFacts,
    as_int,
    chat_request,
    field_of,
    given,
    iter_items,
    listed,
    parse_json_arguments,
    parts_of_content,
    server_attributes,
    text_part,
    tool_call_part,
    usage_total,
)

PROVIDER = "anthropic"
_MODULE = "anthropic.resources.messages.messages"


def _input_messages(messages: Any) -> list[dict[str, Any]] | None:
    items = listed(messages)
    if items is None:
        return None
    return [{"role": field_of(m, "role") or "user", "parts": parts_of_content(field_of(m, "content"))} for m in items]


def describe_messages(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    attrs: dict[str, Any] = {}
    for key, attr in (
        ("max_tokens", "gen_ai.request.max_tokens"),
        ("temperature", "gen_ai.request.temperature"),
        ("top_p", "gen_ai.request.top_p"),
        ("top_k", "gen_ai.request.top_k"),
    ):
        value = kwargs.get(key)
        if given(value) and isinstance(value, (int, float)):
            attrs[attr] = value
    stop = kwargs.get("stop_sequences")
    if isinstance(stop, (list, tuple)):
        attrs["gen_ai.request.stop_sequences"] = [str(s) for s in stop]
    attrs.update(server_attributes(getattr(instance, "_client", None)))
    system = kwargs.get("system")
    if isinstance(system, str):
        system_parts: list[dict[str, Any]] | None = [text_part(system)]
    elif isinstance(system, (list, tuple)):
        system_parts = parts_of_content(list(system))
    else:
        system_parts = None
    return chat_request(PROVIDER, kwargs, attrs, _input_messages(kwargs.get("messages")), system_parts)


def _usage(facts: ResponseFacts, usage: Any) -> None:
    if usage is None:
        return
    fresh = as_int(field_of(usage, "input_tokens"))
    cache_read = as_int(field_of(usage, "cache_read_input_tokens"))
    cache_creation = as_int(field_of(usage, "cache_creation_input_tokens"))
    if fresh is not None or cache_read is not None or cache_creation is not None:
        # semconv: input_tokens counts every input token, cached ones included
        facts.input_tokens = usage_total(fresh, cache_read, cache_creation)
        facts.cache_read_tokens = cache_read if cache_read is not None else facts.cache_read_tokens
        facts.cache_creation_tokens = cache_creation if cache_creation is not None else facts.cache_creation_tokens
    output = as_int(field_of(usage, "output_tokens"))
    if output is not None:
        facts.output_tokens = output


def messages_from_response(facts: ResponseFacts, message: Any) -> None:
    facts.response_id = field_of(message, "id")
    facts.response_model = field_of(message, "model")
    reason = field_of(message, "stop_reason")
    facts.finish_reasons = [str(reason)] if reason else []
    content = list(iter_items(field_of(message, "content")))
    for block in content:
        if field_of(block, "type") == "tool_use":
            facts.tool_calls.append(
                {"name": field_of(block, "name"), "id": field_of(block, "id"), "arguments": field_of(block, "input")}
            )
    facts.output_messages = [{"role": "assistant", "parts": parts_of_content(content), "finish_reason": reason}]
    _usage(facts, field_of(message, "usage"))


def messages_observe(facts: ResponseFacts, event: Any) -> None:
    if facts.build is None:
        facts.build = _build
        facts.scratch["blocks"] = {}
    kind = field_of(event, "type")
    blocks: dict[int, dict[str, Any]] = facts.scratch["blocks"]
    if kind == "message_start":
        message = field_of(event, "message")
        facts.response_id = field_of(message, "id")
        facts.response_model = field_of(message, "model")
        _usage(facts, field_of(message, "usage"))
    elif kind == "content_block_start":
        block = field_of(event, "content_block")
        blocks[field_of(event, "index", 0)] = {
            "type": field_of(block, "type"),
            "id": field_of(block, "id"),
            "name": field_of(block, "name"),
            "text": [field_of(block, "text")] if field_of(block, "text") else [],
            "json": [],
        }
    elif kind == "content_block_delta":
        slot = blocks.setdefault(
            field_of(event, "index", 0), {"type": "text", "id": None, "name": None, "text": [], "json": []}
        )
        delta = field_of(event, "delta")
        dtype = field_of(delta, "type")
        if dtype == "text_delta":
            slot["text"].append(field_of(delta, "text") or "")
        elif dtype == "input_json_delta":
            slot["json"].append(field_of(delta, "partial_json") or "")
        elif dtype == "thinking_delta":
            slot["text"].append(field_of(delta, "thinking") or "")
    elif kind == "message_delta":
        reason = field_of(field_of(event, "delta"), "stop_reason")
        if reason:
            facts.finish_reasons = [str(reason)]
        _usage(facts, field_of(event, "usage"))
    elif kind == "message_stop":
        facts.complete = True


def _build(facts: ResponseFacts) -> None:
    parts: list[dict[str, Any]] = []
    facts.tool_calls.clear()
    for index in sorted(facts.scratch.get("blocks", {})):
        slot = facts.scratch["blocks"][index]
        if slot["type"] == "tool_use":
            raw = "".join(slot["json"])
            arguments = parse_json_arguments(raw) if raw else {}
            facts.tool_calls.append({"name": slot["name"], "id": slot["id"], "arguments": arguments})
            parts.append(tool_call_part(slot["id"], slot["name"], arguments))
        elif slot["type"] == "thinking":
            parts.append({"type": "reasoning", "content": "".join(slot["text"])})
        elif slot["type"] == "text":
            parts.append(text_part("".join(slot["text"])))
        else:
            parts.append({"type": str(slot["type"])})
    reason = facts.finish_reasons[0] if facts.finish_reasons else None
    facts.output_messages = [{"role": "assistant", "parts": parts, "finish_reason": reason}]


# --- messages.stream(): trace the request the manager makes on __enter__ -------------------------------
_SYNC_REQUEST_ATTR = "_MessageStreamManager__api_request"
_ASYNC_REQUEST_ATTR = "_AsyncMessageStreamManager__api_request"


def _stream_sync(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    manager = wrapped(*args, **kwargs)
    if not _STREAM_ACTIVE["on"]:
        return manager
    try:
        request = getattr(manager, _SYNC_REQUEST_ATTR)
        described = describe_messages(instance, (), dict(kwargs, stream=True))

        def traced_request() -> Any:
            return genai.call_sync(
                request, instance, (), {}, lambda *_: described, messages_from_response, messages_observe
            )

        setattr(manager, _SYNC_REQUEST_ATTR, traced_request)
    except Exception as exc:  # noqa: BLE001 - an SDK of another shape: leave the call untraced
        _base.count_error("anthropic_stream_helper", exc)
    return manager


def _stream_async(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    manager = wrapped(*args, **kwargs)
    if not _STREAM_ACTIVE["on"]:
        return manager
    try:
        pending = getattr(manager, _ASYNC_REQUEST_ATTR)
        described = describe_messages(instance, (), dict(kwargs, stream=True))

        def request() -> Any:
            return pending

        traced = genai.call_async(
            request, instance, (), {}, lambda *_: described, messages_from_response, messages_observe
        )
        setattr(manager, _ASYNC_REQUEST_ATTR, traced)
    except Exception as exc:  # noqa: BLE001
        _base.count_error("anthropic_stream_helper", exc)
    return manager


_STREAM_ACTIVE = {"on": True}


class AnthropicInstrumentor(genai.GenAIInstrumentor):
    """auditel's Anthropic instrumentation (entry point ``auditel_anthropic``)."""

    requirement = "anthropic >= 0.40"

    def _apply(self, p: genai.Patches) -> None:
        sync = genai.wrapper(describe_messages, messages_from_response, messages_observe, is_async=False)
        async_ = genai.wrapper(describe_messages, messages_from_response, messages_observe, is_async=True)
        for method in ("create", "parse"):
            p.wrap(_MODULE, f"Messages.{method}", sync)
            p.wrap(_MODULE, f"AsyncMessages.{method}", async_)
        _STREAM_ACTIVE["on"] = True
        p.wrap(_MODULE, "Messages.stream", _stream_sync)
        p.wrap(_MODULE, "AsyncMessages.stream", _stream_async)

    def _uninstrument(self, **kwargs: Any) -> None:
        _STREAM_ACTIVE["on"] = False
        super()._uninstrument(**kwargs)
