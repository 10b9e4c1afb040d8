"""Auto-instrumentation of the Google Gen AI SDK (``google-genai``: Gemini API and Vertex AI).

Wrapped per HTTP round trip, sync and async: ``Models._generate_content`` and
``Models._generate_content_stream`` (``AsyncModels`` alike). Every public path goes through them:
``models.generate_content`` / ``generate_content_stream``, ``client.aio`` twins, chats
(``send_message`` / ``send_message_stream``) and each round of automatic function calling (AFC),
so one model request gives one record. AFC runs Python tools through
``_extra_utils.invoke_function_from_dict_args`` (and its async twin): wrapped to record each tool's
intent and outcome (``ToolRun``). ``gen_ai.provider.name`` is ``gcp.vertex_ai`` for a Vertex AI
client, ``gcp.gemini`` otherwise.

The adapters below are pure functions (request -> ``Request``, response -> ``ResponseFacts``, one
streamed chunk -> accumulated facts) driven by ``genai``'s machinery.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from auditel.api.runs import ToolRun, recording_enabled
from auditel.instrumentation import base as _base
from auditel.instrumentation import genai
from auditel.instrumentation.genai.shapes import (
    Request,
    ResponseFacts,
    as_int,
    field_of,
    iter_items,
    text_part,
    tool_call_part,
    usage_total,
)

GEMINI = "gcp.gemini"
VERTEX = "gcp.vertex_ai"
_MODELS = "google.genai.models"
_EXTRA = "google.genai._extra_utils"

_CONFIG_ATTRS = (
    ("temperature", "gen_ai.request.temperature"),
    ("top_p", "gen_ai.request.top_p"),
    ("top_k", "gen_ai.request.top_k"),
    ("max_output_tokens", "gen_ai.request.max_tokens"),
    ("seed", "gen_ai.request.seed"),
    ("frequency_penalty", "gen_ai.request.frequency_penalty"),
    ("presence_penalty", "gen_ai.request.presence_penalty"),
)


# --- requests ------------------------------------------------------------------------------------
def _part(part: Any) -> dict[str, Any]:
    """One Gemini ``Part`` (model or dict) as a semconv message part."""
    if isinstance(part, str):
        return text_part(part)
    text = field_of(part, "text")
    if text is not None:
        return {"type": "reasoning", "content": text} if field_of(part, "thought") else text_part(text)
    call = field_of(part, "function_call")
    if call is not None:
        return tool_call_part(field_of(call, "id"), field_of(call, "name"), field_of(call, "args"))
    result = field_of(part, "function_response")
    if result is not None:
        return {"type": "tool_call_response", "id": field_of(result, "id"), "response": field_of(result, "response")}
    if field_of(part, "inline_data") is not None or field_of(part, "file_data") is not None:
        return {"type": "blob"}
    return {"type": "unknown"}


def _role(role: Any) -> str:
    return "assistant" if role == "model" else str(role or "user")


def input_messages(contents: Any) -> list[dict[str, Any]] | None:
    """``contents`` in any shape the SDK accepts (text, Part, Content, dicts, lists of them)."""
    if contents is None:
        return None
    items = list(contents) if isinstance(contents, (list, tuple)) else [contents]
    out: list[dict[str, Any]] = []
    loose: list[dict[str, Any]] = []  # bare texts/parts form one user message, as the SDK does
    for item in items:
        parts = field_of(item, "parts") if not isinstance(item, str) else None
        if parts is not None:
            if loose:
                out.append({"role": "user", "parts": loose})
                loose = []
            out.append({"role": _role(field_of(item, "role")), "parts": [_part(p) for p in iter_items(parts)]})
        else:
            loose.append(_part(item))
    if loose:
        out.append({"role": "user", "parts": loose})
    return out


def _system_parts(value: Any) -> list[dict[str, Any]] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return [text_part(value)]
    parts = field_of(value, "parts")
    items = parts if parts is not None else (value if isinstance(value, (list, tuple)) else [value])
    return [_part(p) for p in iter_items(list(items))]


def _server(api_client: Any) -> dict[str, Any]:
    try:
        base = field_of(getattr(api_client, "_http_options", None), "base_url")
        if not base:
            return {}
        url = urlsplit(str(base))
        return {"server.address": url.hostname, "server.port": url.port or (443 if url.scheme == "https" else 80)}
    except Exception:  # noqa: BLE001
        return {}


def provider_of(api_client: Any) -> str:
    return VERTEX if getattr(api_client, "vertexai", False) else GEMINI


def describe(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    api_client = getattr(instance, "_api_client", None)
    config = kwargs.get("config")
    attrs: dict[str, Any] = {}
    for key, attr in _CONFIG_ATTRS:
        value = field_of(config, key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attrs[attr] = value
    stop = field_of(config, "stop_sequences")
    if isinstance(stop, (list, tuple)):
        attrs["gen_ai.request.stop_sequences"] = [str(s) for s in stop]
    count = field_of(config, "candidate_count")
    if isinstance(count, int) and count != 1:
        attrs["gen_ai.request.choice.count"] = count
    mime = field_of(config, "response_mime_type")
    if mime == "application/json":
        attrs["gen_ai.output.type"] = "json"
    elif mime == "text/plain":
        attrs["gen_ai.output.type"] = "text"
    attrs.update(_server(api_client))
    model = kwargs.get("model")
    tools = field_of(config, "tools")
    return Request(
        provider=provider_of(api_client),
        operation="generate_content",
        model=str(model).removeprefix("models/") if model else None,
        attributes=attrs,
        input_messages=input_messages(kwargs.get("contents")),
        system_instructions=_system_parts(field_of(config, "system_instruction")),
        tool_definitions=[_tool_definition(t) for t in tools] if isinstance(tools, list) else None,
        streaming=False,
    )


def describe_stream(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    req = describe(instance, args, kwargs)
    req.streaming = True
    return req


def _tool_definition(tool: Any) -> Any:
    if callable(tool):  # a Python function the SDK turns into a declaration (AFC)
        return {"type": "function", "name": getattr(tool, "__name__", "function")}
    return tool


# --- responses -----------------------------------------------------------------------------------
def _finish_reason(value: Any) -> str | None:
    if value is None:
        return None
    return str(getattr(value, "value", value)).lower()


def _usage(facts: ResponseFacts, usage: Any) -> None:
    if usage is None:
        return
    prompt = as_int(field_of(usage, "prompt_token_count"))
    tool_prompt = as_int(field_of(usage, "tool_use_prompt_token_count"))
    candidates = as_int(field_of(usage, "candidates_token_count"))
    thoughts = as_int(field_of(usage, "thoughts_token_count"))
    if prompt is not None or tool_prompt is not None:
        facts.input_tokens = usage_total(prompt, tool_prompt)  # cached tokens are part of prompt
    if candidates is not None or thoughts is not None:
        facts.output_tokens = usage_total(candidates, thoughts)  # thinking counts as output
    cached = as_int(field_of(usage, "cached_content_token_count"))
    if cached is not None:
        facts.cache_read_tokens = cached
    if thoughts is not None:
        facts.reasoning_tokens = thoughts


def from_response(facts: ResponseFacts, response: Any) -> None:
    facts.response_id = field_of(response, "response_id")
    facts.response_model = field_of(response, "model_version")
    facts.finish_reasons = []
    facts.tool_calls = []
    facts.output_messages = []
    for candidate in iter_items(field_of(response, "candidates")):
        reason = _finish_reason(field_of(candidate, "finish_reason"))
        if reason:
            facts.finish_reasons.append(reason)
        content = field_of(candidate, "content")
        parts = [_part(p) for p in iter_items(field_of(content, "parts"))]
        for part in iter_items(field_of(content, "parts")):
            call = field_of(part, "function_call")
            if call is not None:
                facts.tool_calls.append(
                    {"name": field_of(call, "name"), "id": field_of(call, "id"), "arguments": field_of(call, "args")}
                )
        facts.output_messages.append({"role": "assistant", "parts": parts, "finish_reason": reason})
    blocked = field_of(field_of(response, "prompt_feedback"), "block_reason")
    if blocked is not None and not facts.finish_reasons:
        facts.finish_reasons = [_finish_reason(blocked) or "blocked"]
    _usage(facts, field_of(response, "usage_metadata"))


def observe(facts: ResponseFacts, chunk: Any) -> None:
    """Accumulate one streamed ``GenerateContentResponse`` (parts joined once, in ``_build``)."""
    cands: dict[int, dict[str, Any]] | None = facts.scratch.get("candidates")
    if cands is None:
        facts.build = _build
        cands = facts.scratch["candidates"] = {}
    facts.response_id = facts.response_id or field_of(chunk, "response_id")
    facts.response_model = facts.response_model or field_of(chunk, "model_version")
    for position, candidate in enumerate(iter_items(field_of(chunk, "candidates"))):
        index = field_of(candidate, "index", position)
        acc = cands.get(index)
        if acc is None:
            acc = cands[index] = {"parts": [], "reason": None}
        for part in iter_items(field_of(field_of(candidate, "content"), "parts")):
            acc["parts"].append(part)
        reason = _finish_reason(field_of(candidate, "finish_reason"))
        if reason:
            acc["reason"] = reason
            facts.complete = True
    _usage(facts, field_of(chunk, "usage_metadata"))


def _build(facts: ResponseFacts) -> None:
    facts.output_messages.clear()
    facts.tool_calls.clear()
    facts.finish_reasons.clear()
    for index in sorted(facts.scratch.get("candidates", {})):
        acc = facts.scratch["candidates"][index]
        parts: list[dict[str, Any]] = []
        for part in acc["parts"]:
            converted = _part(part)
            last = parts[-1] if parts else None
            # consecutive text (or thought) pieces of a stream are one part
            if last is not None and converted["type"] in ("text", "reasoning") and last["type"] == converted["type"]:
                last["content"] = f"{last['content'] or ''}{converted['content'] or ''}"
            else:
                parts.append(converted)
            call = field_of(part, "function_call")
            if call is not None:
                facts.tool_calls.append(
                    {"name": field_of(call, "name"), "id": field_of(call, "id"), "arguments": field_of(call, "args")}
                )
        if acc["reason"]:
            facts.finish_reasons.append(acc["reason"])
        facts.output_messages.append({"role": "assistant", "parts": parts, "finish_reason": acc["reason"]})


# --- wrappers --------------------------------------------------------------------------------------
def _proxy(cls: Any, stream: Any, inv: genai.Invocation) -> Any:
    try:
        return cls(stream, genai.StreamState(inv, observe))
    except Exception as exc:  # noqa: BLE001 - the caller gets its stream unrecorded, never our error
        _base.count_error("google_genai_stream", exc)
        inv.finish()
        return stream


def _active_flag() -> dict[str, bool]:
    return {"on": True}


def _stream_sync_wrapper() -> Callable[..., Any]:
    """``_generate_content_stream`` is a generator function: the request is made on first ``next``."""
    active = _active_flag()

    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        inv = genai.begin(describe_stream, instance, args, kwargs) if active["on"] else None
        if inv is None:
            return wrapped(*args, **kwargs)
        with genai.SpanScope(inv):
            result = wrapped(*args, **kwargs)
        return _proxy(genai.SyncStreamProxy, result, inv)

    wrapper.active = active  # type: ignore[attr-defined]
    return wrapper


def _stream_async_wrapper() -> Callable[..., Any]:
    """The async ``_generate_content_stream`` makes the request when awaited, then returns an async generator."""
    active = _active_flag()

    async def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        inv = genai.begin(describe_stream, instance, args, kwargs) if active["on"] else None
        if inv is None:
            return await wrapped(*args, **kwargs)
        with genai.SpanScope(inv):
            result = await wrapped(*args, **kwargs)
        return _proxy(genai.AsyncStreamProxy, result, inv)

    wrapper.active = active  # type: ignore[attr-defined]
    return wrapper


# --- automatic function calling: the SDK runs the Python tool ----------------------------------------
def _start_tool(args: tuple[Any, ...], kwargs: dict[str, Any]) -> ToolRun | None:
    try:
        call_args = args[0] if args else kwargs.get("args")
        function = args[1] if len(args) > 1 else kwargs.get("function_to_invoke")
        run = ToolRun(
            str(getattr(function, "__name__", "function")),
            arguments=call_args,
            tool_type="function",
            attributes={"audit.framework": "google-genai"},
        )
        run.start_span()
        return run.start()
    except Exception as exc:  # noqa: BLE001
        _base.count_error("google_genai_tool", exc)
        return None


def _tool_sync(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    run = _start_tool(args, kwargs) if recording_enabled() else None
    if run is None:
        return wrapped(*args, **kwargs)
    with run.running():
        result = wrapped(*args, **kwargs)
    run.finish(result=result)
    return result


async def _tool_async(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
    run = _start_tool(args, kwargs) if recording_enabled() else None
    if run is None:
        return await wrapped(*args, **kwargs)
    with run.running():
        result = await wrapped(*args, **kwargs)
    run.finish(result=result)
    return result


class GoogleGenAIInstrumentor(genai.GenAIInstrumentor):
    """auditel's Google Gen AI instrumentation (entry point ``auditel_google_genai``)."""

    requirement = "google-genai >= 1.0"

    def _apply(self, p: genai.Patcher) -> None:
        p.wrap(_MODELS, "Models._generate_content", genai.wrapper(describe, from_response, observe, is_async=False))
        p.wrap(_MODELS, "AsyncModels._generate_content", genai.wrapper(describe, from_response, observe, is_async=True))
        p.wrap(_MODELS, "Models._generate_content_stream", _stream_sync_wrapper())
        p.wrap(_MODELS, "AsyncModels._generate_content_stream", _stream_async_wrapper())
        p.wrap(_EXTRA, "invoke_function_from_dict_args", _tool_sync)
        p.wrap(_EXTRA, "invoke_function_from_dict_args_async", _tool_async)
