"""What a model call is made of: the GenAI attribute names, the request and response facts, and
the semconv message shapes (``text_part``, ``tool_call_part``, ``parts_of_content``...), plus the
readers that take them out of SDK objects and plain dicts alike (``field_of``, ``given``...)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from auditel.subclass_memo import subclass_memo

EVENT_DETAILS = "gen_ai.client.inference.operation.details"

# semconv attribute names used here (the schema module has the core ones)
REQ_MODEL = "gen_ai.request.model"
OPERATION = "gen_ai.operation.name"
PROVIDER = "gen_ai.provider.name"
RESP_ID = "gen_ai.response.id"
RESP_MODEL = "gen_ai.response.model"
FINISH = "gen_ai.response.finish_reasons"
IN_TOKENS = "gen_ai.usage.input_tokens"
OUT_TOKENS = "gen_ai.usage.output_tokens"
CACHE_READ = "gen_ai.usage.cache_read.input_tokens"
CACHE_CREATION = "gen_ai.usage.cache_creation.input_tokens"
REASONING = "gen_ai.usage.reasoning.output_tokens"
TTFC = "gen_ai.response.time_to_first_chunk"
INPUT_MESSAGES = "gen_ai.input.messages"
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
TOOL_DEFINITIONS = "gen_ai.tool.definitions"
ERROR_TYPE = "error.type"

NOT_GIVEN_NAMES = frozenset({"NotGiven", "Omit", "NoneType"})


def given(value: Any) -> bool:
    """False for None and the SDKs' ``NOT_GIVEN`` / ``omit`` sentinels."""
    return value is not None and type(value).__name__ not in NOT_GIVEN_NAMES


_is_mapping = subclass_memo(Mapping, limit=512, known=(dict,))


def field_of(obj: Any, name: str, default: Any = None) -> Any:
    """``obj.name`` or ``obj[name]``: SDK models and plain dicts alike.

    Called dozens of times per streamed response, so the Mapping check is remembered per type
    (an ABC ``isinstance`` is the slowest part otherwise)."""
    if obj is None:
        return default
    value = obj.get(name, default) if _is_mapping(type(obj)) else getattr(obj, name, default)
    return value if given(value) else default


def listed(value: Any) -> list[Any] | None:
    """A list of the value when it can be read without consuming anything (never an iterator)."""
    if isinstance(value, (list, tuple)):
        return list(value)
    return None


# --- response facts -------------------------------------------------------------------------------
@dataclass
class ResponseFacts:
    """What a response (or an accumulated stream) says about the call."""

    response_id: str | None = None
    response_model: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_read_tokens: int | None = None
    cache_creation_tokens: int | None = None
    reasoning_tokens: int | None = None
    output_messages: list[dict[str, Any]] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)  # {"name", "id", "arguments"}
    complete: bool = False  # the provider said the response is finished
    attributes: dict[str, Any] = field(default_factory=dict)  # extra response facts (e.g. cost): span and record
    scratch: dict[str, Any] = field(default_factory=dict)  # stream accumulators' working state
    build: Callable[[ResponseFacts], None] | None = None  # turns scratch into the fields above


def as_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


# --- request description -------------------------------------------------------------------------
@dataclass
class Request:
    provider: str
    operation: str
    model: str | None
    attributes: dict[str, Any]
    input_messages: list[dict[str, Any]] | None = None  # semconv shape; None = not readable
    system_instructions: list[dict[str, Any]] | None = None
    tool_definitions: list[Any] | None = None
    streaming: bool = False


def chat_request(
    provider: str,
    kwargs: Mapping[str, Any],
    attributes: dict[str, Any],
    input_messages: list[dict[str, Any]] | None,
    system_instructions: list[dict[str, Any]] | None = None,
) -> Request:
    """A chat call of an SDK whose methods take ``model``, ``tools`` and ``stream`` keyword arguments
    (OpenAI's chat completions and Responses, Anthropic's messages)."""
    model = kwargs.get("model")
    return Request(
        provider=provider,
        operation="chat",
        model=str(model) if given(model) else None,
        attributes=attributes,
        input_messages=input_messages,
        system_instructions=system_instructions,
        tool_definitions=listed(kwargs.get("tools")),
        streaming=bool(kwargs.get("stream") is True),
    )


_server_cache: tuple[object, dict[str, Any]] | None = None


def server_attributes(client: Any) -> dict[str, Any]:
    """``server.address`` / ``server.port`` from an SDK client's ``base_url`` (read-only result:
    the last URL object seen is remembered, as most applications use one client)."""
    global _server_cache
    try:
        # the SDKs' ``base_url`` property imports a module on every read: take the field it returns
        url = getattr(client, "_base_url", None) or client.base_url
        cached = _server_cache
        if cached is not None and cached[0] is url:
            return cached[1]
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        attrs = {"server.address": host, "server.port": port}
        _server_cache = (url, attrs)
        return attrs
    except Exception:  # noqa: BLE001
        return {}


# --- message shapes (GenAI semconv JSON schema) -------------------------------------------------------
def text_part(text: Any) -> dict[str, Any]:
    return {"type": "text", "content": text}


def tool_call_part(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    return {"type": "tool_call", "id": call_id, "name": name, "arguments": arguments}


def parse_json_arguments(arguments: Any) -> Any:
    """Tool-call arguments as sent: JSON text is decoded when it parses, kept as text otherwise."""
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except ValueError:
            return arguments
    return arguments


def parts_of_content(content: Any) -> list[dict[str, Any]]:
    """Message content (text, or a list of typed blocks) as semconv parts."""
    if content is None:
        return []
    if isinstance(content, str):
        return [text_part(content)]
    parts: list[dict[str, Any]] = []
    for block in content if isinstance(content, (list, tuple)) else [content]:
        kind = field_of(block, "type")
        if kind in ("text", "input_text", "output_text"):
            parts.append(text_part(field_of(block, "text")))
        elif kind == "tool_use":
            parts.append(tool_call_part(field_of(block, "id"), field_of(block, "name"), field_of(block, "input")))
        elif kind == "tool_result":
            call_id, response = field_of(block, "tool_use_id"), field_of(block, "content")
            parts.append({"type": "tool_call_response", "id": call_id, "response": response})
        elif kind in ("thinking", "reasoning"):
            parts.append({"type": "reasoning", "content": field_of(block, "thinking") or field_of(block, "text")})
        else:
            parts.append({"type": str(kind or "unknown")})
    return parts


def usage_total(*values: Any) -> int | None:
    ints = [v for v in (as_int(x) for x in values) if v is not None]
    return sum(ints) if ints else None


def iter_items(value: Any) -> Iterable[Any]:
    return value if isinstance(value, (list, tuple)) else ()
