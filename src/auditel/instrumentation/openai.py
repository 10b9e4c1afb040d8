"""Auto-instrumentation of the OpenAI SDK: chat completions and the Responses API.

Wrapped (sync and async): ``chat.completions.create`` / ``.parse`` and ``responses.create`` /
``.parse``. The ``.stream()`` helpers go through ``create`` and are covered; their stream
objects close the HTTP response directly, so their ``close`` is hooked to finish our stream too.
``with_raw_response`` / ``with_streaming_response`` keep working (see ``genai.RawResponseProxy``).
"""

from __future__ import annotations

from typing import Any

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
)

PROVIDER = "openai"

_CHAT_MODULE = "openai.resources.chat.completions.completions"
_RESPONSES_MODULE = "openai.resources.responses.responses"
_CHAT_STREAM_MODULE = "openai.lib.streaming.chat._completions"
_RESPONSES_STREAM_MODULE = "openai.lib.streaming.responses._responses"


# --- requests ------------------------------------------------------------------------------------
def _request_attributes(instance: Any, kwargs: dict[str, Any], max_tokens: Any) -> dict[str, Any]:
    """The request parameters of a chat completions or Responses call (the two APIs name most alike)."""
    attrs: dict[str, Any] = {}
    if given(max_tokens):
        attrs["gen_ai.request.max_tokens"] = max_tokens
    for key, attr in (
        ("temperature", "gen_ai.request.temperature"),
        ("top_p", "gen_ai.request.top_p"),
        ("frequency_penalty", "gen_ai.request.frequency_penalty"),
        ("presence_penalty", "gen_ai.request.presence_penalty"),
        ("seed", "gen_ai.request.seed"),
    ):
        value = kwargs.get(key)
        if given(value) and isinstance(value, (int, float)):
            attrs[attr] = value
    stop = kwargs.get("stop")
    if isinstance(stop, str):
        attrs["gen_ai.request.stop_sequences"] = [stop]
    elif isinstance(stop, (list, tuple)):
        attrs["gen_ai.request.stop_sequences"] = [str(s) for s in stop]
    n = kwargs.get("n")
    if isinstance(n, int) and n != 1:
        attrs["gen_ai.request.choice.count"] = n
    fmt = field_of(kwargs.get("response_format"), "type") or field_of(field_of(kwargs.get("text"), "format"), "type")
    if fmt in ("json_schema", "json_object"):
        attrs["gen_ai.output.type"] = "json"
    elif fmt == "text":
        attrs["gen_ai.output.type"] = "text"
    attrs.update(server_attributes(getattr(instance, "_client", None)))
    return attrs


def _chat_input_messages(messages: Any) -> list[dict[str, Any]] | None:
    items = listed(messages)
    if items is None:
        return None
    out: list[dict[str, Any]] = []
    for msg in items:
        role = field_of(msg, "role") or "user"
        if role == "tool":
            parts = [
                {
                    "type": "tool_call_response",
                    "id": field_of(msg, "tool_call_id"),
                    "response": field_of(msg, "content"),
                }
            ]
        else:
            parts = parts_of_content(field_of(msg, "content"))
            for call in iter_items(field_of(msg, "tool_calls")):
                fn = field_of(call, "function")
                parts.append(
                    tool_call_part(
                        field_of(call, "id"), field_of(fn, "name"), parse_json_arguments(field_of(fn, "arguments"))
                    )
                )
        out.append({"role": role, "parts": parts})
    return out


def describe_chat(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    max_tokens = kwargs.get("max_completion_tokens")
    if not given(max_tokens):
        max_tokens = kwargs.get("max_tokens")
    attrs = _request_attributes(instance, kwargs, max_tokens)
    return chat_request(PROVIDER, kwargs, attrs, _chat_input_messages(kwargs.get("messages")))


def _responses_input(value: Any) -> list[dict[str, Any]] | None:
    if isinstance(value, str):
        return [{"role": "user", "parts": [text_part(value)]}]
    items = listed(value)
    if items is None:
        return None
    out: list[dict[str, Any]] = []
    for item in items:
        kind = field_of(item, "type")
        if kind == "function_call_output":
            out.append(
                {
                    "role": "tool",
                    "parts": [
                        {
                            "type": "tool_call_response",
                            "id": field_of(item, "call_id"),
                            "response": field_of(item, "output"),
                        }
                    ],
                }
            )
        elif kind == "function_call":
            out.append(
                {
                    "role": "assistant",
                    "parts": [
                        tool_call_part(
                            field_of(item, "call_id"),
                            field_of(item, "name"),
                            parse_json_arguments(field_of(item, "arguments")),
                        )
                    ],
                }
            )
        else:
            out.append({"role": field_of(item, "role") or "user", "parts": parts_of_content(field_of(item, "content"))})
    return out


def describe_responses(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    instructions = kwargs.get("instructions")
    return chat_request(
        PROVIDER,
        kwargs,
        _request_attributes(instance, kwargs, kwargs.get("max_output_tokens")),
        _responses_input(kwargs.get("input")),
        [text_part(instructions)] if isinstance(instructions, str) else None,
    )


# --- chat completion responses -----------------------------------------------------------------------
def _chat_usage(facts: ResponseFacts, usage: Any) -> None:
    if usage is None:
        return
    facts.input_tokens = as_int(field_of(usage, "prompt_tokens"))
    facts.output_tokens = as_int(field_of(usage, "completion_tokens"))
    facts.cache_read_tokens = as_int(field_of(field_of(usage, "prompt_tokens_details"), "cached_tokens"))
    cache_write = as_int(field_of(field_of(usage, "prompt_tokens_details"), "cache_write_tokens"))
    if cache_write:
        facts.cache_creation_tokens = cache_write
    facts.reasoning_tokens = as_int(field_of(field_of(usage, "completion_tokens_details"), "reasoning_tokens"))


def chat_from_response(facts: ResponseFacts, response: Any) -> None:
    facts.response_id = field_of(response, "id")
    facts.response_model = field_of(response, "model")
    for choice in iter_items(field_of(response, "choices")):
        reason = field_of(choice, "finish_reason")
        if reason:
            facts.finish_reasons.append(str(reason))
        message = field_of(choice, "message")
        parts = parts_of_content(field_of(message, "content"))
        for call in iter_items(field_of(message, "tool_calls")):
            fn = field_of(call, "function")
            name, call_id, arguments = field_of(fn, "name"), field_of(call, "id"), field_of(fn, "arguments")
            facts.tool_calls.append({"name": name, "id": call_id, "arguments": arguments})
            parts.append(tool_call_part(call_id, name, parse_json_arguments(arguments)))
        facts.output_messages.append(
            {"role": field_of(message, "role") or "assistant", "parts": parts, "finish_reason": reason}
        )
    _chat_usage(facts, field_of(response, "usage"))


def chat_observe(facts: ResponseFacts, chunk: Any) -> None:
    """Accumulate one chunk (per-chunk work kept small: the parts are joined once, in ``_chat_build``)."""
    choices: dict[int, dict[str, Any]] | None = facts.scratch.get("choices")
    if choices is None:
        facts.build = _chat_build
        choices = facts.scratch["choices"] = {}
    if facts.response_id is None:
        facts.response_id = field_of(chunk, "id")
    if facts.response_model is None:
        facts.response_model = field_of(chunk, "model")
    finished = False
    for choice in iter_items(field_of(chunk, "choices")):
        index = field_of(choice, "index", 0)
        acc = choices.get(index)
        if acc is None:
            acc = choices[index] = {"text": [], "tools": {}, "reason": None, "role": "assistant"}
        delta = field_of(choice, "delta")
        if delta is not None:
            text = field_of(delta, "content")
            if text:
                acc["text"].append(text)
            calls = field_of(delta, "tool_calls")
            if calls:
                _observe_tool_calls(acc["tools"], calls)
        reason = field_of(choice, "finish_reason")
        if reason:
            acc["reason"] = str(reason)
            finished = True
    usage = field_of(chunk, "usage")
    if usage is not None:
        _chat_usage(facts, usage)
    if finished and all(acc["reason"] for acc in choices.values()):
        facts.complete = True


def _observe_tool_calls(tools: dict[int, dict[str, Any]], calls: Any) -> None:
    for call in iter_items(calls):
        slot = tools.setdefault(field_of(call, "index", 0), {"id": None, "name": None, "arguments": []})
        call_id = field_of(call, "id")
        if call_id:
            slot["id"] = call_id
        fn = field_of(call, "function")
        name = field_of(fn, "name")
        if name:
            slot["name"] = name
        arguments = field_of(fn, "arguments")
        if arguments:
            slot["arguments"].append(arguments)


def _chat_build(facts: ResponseFacts) -> None:
    facts.output_messages.clear()
    facts.tool_calls.clear()
    facts.finish_reasons.clear()
    for index in sorted(facts.scratch.get("choices", {})):
        acc = facts.scratch["choices"][index]
        parts: list[dict[str, Any]] = [text_part("".join(acc["text"]))] if acc["text"] else []
        for tool_index in sorted(acc["tools"]):
            slot = acc["tools"][tool_index]
            arguments = "".join(slot["arguments"])
            facts.tool_calls.append({"name": slot["name"], "id": slot["id"], "arguments": arguments})
            parts.append(tool_call_part(slot["id"], slot["name"], parse_json_arguments(arguments)))
        if acc["reason"]:
            facts.finish_reasons.append(acc["reason"])
        facts.output_messages.append({"role": acc["role"], "parts": parts, "finish_reason": acc["reason"]})


# --- Responses API ------------------------------------------------------------------------------------
def responses_from_response(facts: ResponseFacts, response: Any) -> None:
    facts.response_id = field_of(response, "id")
    facts.response_model = field_of(response, "model")
    status = field_of(response, "status")
    reason = field_of(field_of(response, "incomplete_details"), "reason")
    parts: list[dict[str, Any]] = []
    for item in iter_items(field_of(response, "output")):
        kind = field_of(item, "type")
        if kind == "message":
            parts.extend(parts_of_content(field_of(item, "content")))
        elif kind == "function_call":
            name, call_id, arguments = field_of(item, "name"), field_of(item, "call_id"), field_of(item, "arguments")
            facts.tool_calls.append({"name": name, "id": call_id, "arguments": arguments})
            parts.append(tool_call_part(call_id, name, parse_json_arguments(arguments)))
        elif kind == "reasoning":
            parts.append(
                {"type": "reasoning", "content": [field_of(s, "text") for s in iter_items(field_of(item, "summary"))]}
            )
        elif kind:
            parts.append({"type": str(kind)})
    if reason:
        finish = str(reason)
    elif status == "completed":
        finish = "tool_calls" if facts.tool_calls else "stop"
    else:
        finish = str(status) if status else ""
    facts.finish_reasons = [finish] if finish else []
    facts.output_messages = [{"role": "assistant", "parts": parts, "finish_reason": finish}]
    usage = field_of(response, "usage")
    if usage is not None:
        facts.input_tokens = as_int(field_of(usage, "input_tokens"))
        facts.output_tokens = as_int(field_of(usage, "output_tokens"))
        facts.cache_read_tokens = as_int(field_of(field_of(usage, "input_tokens_details"), "cached_tokens"))
        facts.reasoning_tokens = as_int(field_of(field_of(usage, "output_tokens_details"), "reasoning_tokens"))


_RESPONSE_DONE_EVENTS = ("response.completed", "response.incomplete", "response.failed")


def responses_observe(facts: ResponseFacts, event: Any) -> None:
    kind = field_of(event, "type")
    response = field_of(event, "response")
    if kind in _RESPONSE_DONE_EVENTS and response is not None:
        facts.tool_calls.clear()
        responses_from_response(facts, response)
        facts.complete = True
    elif response is not None:
        facts.response_id = facts.response_id or field_of(response, "id")
        facts.response_model = facts.response_model or field_of(response, "model")


# --- stream helpers: their close() bypasses the raw stream ------------------------------------------------
def _helper_close_sync(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    try:
        return wrapped(*args, **kwargs)
    finally:
        state = genai.stream_state_of(getattr(instance, "_raw_stream", None))
        if state is not None:
            state.closed()


async def _helper_close_async(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    try:
        return await wrapped(*args, **kwargs)
    finally:
        state = genai.stream_state_of(getattr(instance, "_raw_stream", None))
        if state is not None:
            state.closed()


class OpenAIInstrumentor(genai.GenAIInstrumentor):
    """auditel's OpenAI instrumentation (entry point ``auditel_openai``)."""

    requirement = "openai >= 1.0"

    def _apply(self, p: genai.Patches) -> None:
        chat_sync = genai.wrapper(describe_chat, chat_from_response, chat_observe, is_async=False)
        chat_async = genai.wrapper(describe_chat, chat_from_response, chat_observe, is_async=True)
        resp_sync = genai.wrapper(describe_responses, responses_from_response, responses_observe, is_async=False)
        resp_async = genai.wrapper(describe_responses, responses_from_response, responses_observe, is_async=True)
        for method in ("create", "parse"):
            p.wrap(_CHAT_MODULE, f"Completions.{method}", chat_sync)
            p.wrap(_CHAT_MODULE, f"AsyncCompletions.{method}", chat_async)
            p.wrap(_RESPONSES_MODULE, f"Responses.{method}", resp_sync)
            p.wrap(_RESPONSES_MODULE, f"AsyncResponses.{method}", resp_async)
        p.wrap(_CHAT_STREAM_MODULE, "ChatCompletionStream.close", _helper_close_sync)
        p.wrap(_CHAT_STREAM_MODULE, "AsyncChatCompletionStream.close", _helper_close_async)
        p.wrap(_RESPONSES_STREAM_MODULE, "ResponseStream.close", _helper_close_sync)
        p.wrap(_RESPONSES_STREAM_MODULE, "AsyncResponseStream.close", _helper_close_async)
