"""Span attributes -> the facts of one audit record (pure functions, no auditel state).

Recognised, by attributes and never by producer:

* OTel GenAI semantic conventions, current and older spellings (``gen_ai.operation.name``,
  ``gen_ai.system``, ``gen_ai.usage.prompt_tokens``, Pydantic AI's ``tool_arguments``, ...);
* MCP semantic conventions (``mcp.method.name`` = ``tools/call``);
* OpenInference (``openinference.span.kind``);
* OpenLLMetry / Traceloop (``traceloop.span.kind``, ``llm.request.type``, indexed ``gen_ai.prompt.N.*``);
* guardrail spans (``apply_guardrail``/``run_guardrail``, OpenInference ``GUARDRAIL``, OpenAI Agents);
* GenAI span names alone at span start (``execute_tool X``, ``invoke_agent X``: Strands Agents sets
  its attributes after starting the span), and the older conventions' content
  events (``gen_ai.user.message``, ``gen_ai.tool.message``, ``gen_ai.choice``, ...) at span end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

MODEL_CALL = "model_call"
TOOL_CALL = "tool_call"
AGENT_RUN = "agent_run"
POLICY = "policy_decision"

# keys whose presence makes a span a candidate: the constant-time check for every other span
MARKER_KEYS = (
    "gen_ai.operation.name",
    "openinference.span.kind",
    "traceloop.span.kind",
    "mcp.method.name",
    "llm.request.type",
)

_MODEL_OPS = {
    "chat": "chat",
    "text_completion": "text_completion",
    "completion": "text_completion",
    "generate_content": "generate_content",
    "embeddings": "embeddings",
    "embedding": "embeddings",
}
_TOOL_OPS = {"execute_tool"}
_AGENT_OPS = {"invoke_agent", "create_agent", "invoke_workflow"}
_GUARD_OPS = {"apply_guardrail", "run_guardrail", "guardrail"}

MISSING: Any = object()
MAX_EVENTS = 256  # span events (and output messages) read per span: a bound, whatever a producer put there


@dataclass
class Facts:
    action: str  # MODEL_CALL, TOOL_CALL, AGENT_RUN, POLICY
    convention: str  # genai, mcp, openinference, traceloop
    name: str | None = None  # tool name, agent name or model
    operation: str | None = None
    call_id: str | None = None
    arguments: Any = MISSING
    result: Any = MISSING
    input_messages: Any = MISSING
    output_messages: Any = MISSING
    model: str | None = None
    provider: str | None = None
    response_model: str | None = None
    response_id: str | None = None
    finish_reasons: list[str] | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # identity and MCP facts, copied as they are
    verdict: str | None = None
    action_taken: str | None = None
    policy_id: str | None = None
    reason: str | None = None

    def richness(self) -> int:
        """How many facts this view of the action carries (dedup prefers the richer of two views)."""
        n = sum(v is not None for v in (self.call_id, self.model, self.response_id, self.input_tokens))
        return n + sum(
            v is not MISSING for v in (self.arguments, self.result, self.input_messages, self.output_messages)
        )


# GenAI span names ``{operation} {name}`` that name an action before any attribute is set: frameworks
# that start the span bare and set its attributes right after (Strands Agents 1.62) are recognised
# at start by the name alone. Both prefixes are 13 characters: one slice and one set look-up per unmarked span.
NAMED_PREFIXES = frozenset(("execute_tool ", "invoke_agent "))
_NAMED_LEN = 13


def named_start(span_name: str | None) -> Facts | None:
    """The action a span's name alone announces (``execute_tool get_weather``), or None."""
    if not span_name or span_name[:_NAMED_LEN] not in NAMED_PREFIXES:
        return None
    name = span_name[_NAMED_LEN:].strip()
    if not name:
        return None
    if span_name[:_NAMED_LEN] == "execute_tool ":
        return Facts(TOOL_CALL, "genai", name=name, operation="execute_tool")
    return Facts(AGENT_RUN, "genai", name=name, operation="invoke_agent")


def is_candidate(attrs: Mapping[str, Any] | None) -> bool:
    """Five dict look-ups. The SDK's BoundedAttributes answers ``in`` through ``__getitem__`` and a
    caught KeyError (~0.4 µs per missing key), so its plain dict is asked directly when it has one."""
    if not attrs:
        return False
    d = getattr(attrs, "_dict", None)
    if type(d) is not dict:
        d = attrs
    return (
        "gen_ai.operation.name" in d
        or "openinference.span.kind" in d
        or "traceloop.span.kind" in d
        or "mcp.method.name" in d
        or "llm.request.type" in d
    )


def parse_json_text(value: Any) -> Any:
    """JSON text -> the value it encodes, so digests are of the canonical form auditel's own records use."""
    if isinstance(value, (str, bytes)) and value[:1] in ("{", "[", b"{", b"["):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value


def _first(attrs: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        value = attrs.get(key)
        if value is not None:
            return value
    return None


def _int(value: Any) -> int | None:
    try:
        return None if value is None or isinstance(value, bool) else int(value)
    except (TypeError, ValueError):
        return None


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _content(attrs: Mapping[str, Any], *keys: str) -> Any:
    for key in keys:
        if key in attrs:
            return parse_json_text(attrs[key])
    return MISSING


def _indexed(attrs: Mapping[str, Any], prefix: str) -> Any:
    """``prefix.0.role``, ``prefix.0.content``, ... (OpenLLMetry, OpenInference) -> a list of dicts."""
    items: dict[int, dict[str, Any]] = {}
    plen = len(prefix)
    for key, value in attrs.items():
        if not key.startswith(prefix):
            continue
        rest = key[plen:]
        index, _, sub = rest.partition(".")
        if not index.isdigit() or not sub:
            continue
        items.setdefault(int(index), {})[sub] = value
    if not items:
        return MISSING
    return [items[i] for i in sorted(items)]


_IDENTITY_KEYS = (
    "gen_ai.agent.name",
    "gen_ai.agent.id",
    "gen_ai.conversation.id",
    "session.id",
    "user.id",
    "gen_ai.agent.call.id",
    "mcp.session.id",
    "mcp.method.name",
    "mcp.protocol.version",
    "jsonrpc.request.id",
    "server.address",
    "server.port",
    "network.transport",
    "agent.name",
    "graph.node.id",
    "gen_ai.tool.type",
    "gen_ai.data_source.id",
)


def _identity(attrs: Mapping[str, Any]) -> dict[str, Any]:
    out = {key: attrs[key] for key in _IDENTITY_KEYS if key in attrs}
    if "agent.name" in out and "gen_ai.agent.name" not in out:  # OpenInference spelling
        out["gen_ai.agent.name"] = out.pop("agent.name")
    else:
        out.pop("agent.name", None)
    return out


def _model_name(attrs: Mapping[str, Any]) -> str | None:
    return _str(
        _first(
            attrs,
            "gen_ai.request.model",
            "llm.model_name",
            "embedding.model_name",
            "llm.request.model",
            "gen_ai.response.model",
        )
    )


def _model_facts(attrs: Mapping[str, Any], convention: str, operation: str) -> Facts:
    f = Facts(MODEL_CALL, convention, operation=operation)
    f.model = _model_name(attrs)
    f.name = f.model
    f.provider = _str(_first(attrs, "gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system"))
    f.response_model = _str(_first(attrs, "gen_ai.response.model", "llm.response.model"))
    f.response_id = _str(_first(attrs, "gen_ai.response.id"))
    reasons = _first(attrs, "gen_ai.response.finish_reasons")
    if reasons is not None:
        f.finish_reasons = [str(r) for r in reasons] if isinstance(reasons, (list, tuple)) else [str(reasons)]
    f.input_tokens = _int(
        _first(
            attrs,
            "gen_ai.usage.input_tokens",
            "gen_ai.usage.prompt_tokens",
            "llm.token_count.prompt",
            "llm.usage.prompt_tokens",
        )
    )
    f.output_tokens = _int(
        _first(
            attrs,
            "gen_ai.usage.output_tokens",
            "gen_ai.usage.completion_tokens",
            "llm.token_count.completion",
            "llm.usage.completion_tokens",
        )
    )
    f.input_messages = _content(attrs, "gen_ai.input.messages", "gen_ai.prompt", "input.value")
    if f.input_messages is MISSING:
        f.input_messages = _indexed(attrs, "gen_ai.prompt.")
    if f.input_messages is MISSING:
        f.input_messages = _indexed(attrs, "llm.input_messages.")
    f.output_messages = _content(attrs, "gen_ai.output.messages", "gen_ai.completion", "output.value")
    if f.output_messages is MISSING:
        f.output_messages = _indexed(attrs, "gen_ai.completion.")
    if f.output_messages is MISSING:
        f.output_messages = _indexed(attrs, "llm.output_messages.")
    if f.finish_reasons is None:
        f.finish_reasons = _message_finish_reasons(f.output_messages)
    f.extra = _identity(attrs)
    return f


def _message_finish_reasons(messages: Any) -> list[str] | None:
    """The current conventions put ``finish_reason`` on each output message (Strands with
    ``gen_ai_latest_experimental`` sets no ``gen_ai.response.finish_reasons``)."""
    if not isinstance(messages, list):
        return None
    reasons = [str(m["finish_reason"]) for m in messages[:MAX_EVENTS] if isinstance(m, dict) and "finish_reason" in m]
    return reasons or None


def _tool_identity(attrs: Mapping[str, Any], convention: str, span_name: str) -> tuple[str | None, str | None]:
    """A tool span's tool name and tool-call id."""
    name = _first(attrs, "gen_ai.tool.name", "tool.name", "mcp.tool.name", "traceloop.entity.name")
    if name is None and span_name:
        # "execute_tool get_weather", "tools/call get_weather", "MCP send tools/call get_weather" (the
        # MCP SDK's client span): the name follows the operation
        for op in ("execute_tool ", "tools/call "):
            at = span_name.find(op)
            if at >= 0 and span_name[at + len(op) :]:
                name = span_name[at + len(op) :]
                break
    if name is None and convention == "openinference" and span_name:
        name = span_name  # OpenInference names a TOOL span after the tool
    call_id = _first(attrs, "gen_ai.tool.call.id", "tool_call.id", "tool.id", "jsonrpc.request.id")
    return _str(name), _str(call_id)


def _tool_facts(attrs: Mapping[str, Any], convention: str, span_name: str) -> Facts:
    f = Facts(TOOL_CALL, convention, operation="execute_tool")
    f.name, f.call_id = _tool_identity(attrs, convention, span_name)
    # (OpenInference's tool.parameters is the tool's parameter schema, not the call's arguments)
    f.arguments = _content(
        attrs,
        "gen_ai.tool.call.arguments",
        "tool_arguments",
        "tool_call.function.arguments",
        "input.value",
        "traceloop.entity.input",
    )
    args = f.arguments
    if isinstance(args, dict) and args.get("args") == [] and isinstance(args.get("kwargs"), dict):
        # OpenInference's bound-call form ({"args": [], "kwargs": {...}, <the wrapper's own flags>},
        # e.g. smolagents' Tool.__call__): the keyword arguments are what the model supplied
        f.arguments = args["kwargs"]
    f.result = _content(attrs, "gen_ai.tool.call.result", "tool_response", "output.value", "traceloop.entity.output")
    f.extra = _identity(attrs)
    return f


def _agent_name(attrs: Mapping[str, Any], convention: str, operation: str, span_name: str) -> str | None:
    name = _first(attrs, "gen_ai.agent.name", "agent.name", "traceloop.entity.name")
    if name is None and span_name.startswith(operation + " "):
        name = span_name[len(operation) + 1 :]
    elif name is None and convention != "genai" and span_name:
        name = span_name  # OpenInference/Traceloop agent spans: the span name names the agent
    return _str(name)


def _agent_facts(attrs: Mapping[str, Any], convention: str, operation: str, span_name: str) -> Facts:
    f = Facts(AGENT_RUN, convention, operation=operation)
    f.name = _agent_name(attrs, convention, operation, span_name)
    f.extra = _identity(attrs)
    return f


_DENY = {"deny", "denied", "block", "blocked", "fail", "failed", "reject", "rejected", "true", "triggered"}


def _policy_facts(attrs: Mapping[str, Any], convention: str, span_name: str) -> Facts:
    f = Facts(POLICY, convention, operation="apply_guardrail")
    f.name = _str(_first(attrs, "gen_ai.guardrail.name", "guardrail.name", "traceloop.entity.name")) or span_name
    f.policy_id = f.name
    verdict = _first(
        attrs,
        "gen_ai.guardrail.verdict",
        "gen_ai.guardrail.decision",
        "guardrail.verdict",
        "guardrail.triggered",
        "gen_ai.guardrail.triggered",
        "triggered",
    )
    if verdict is None:
        f.verdict = "unknown"  # e.g. OpenInference drops the OpenAI Agents SDK's "triggered": never guess
    else:
        low = str(verdict).strip().lower()
        f.verdict = (
            low if low in ("allow", "deny", "modify", "warn", "escalate") else ("deny" if low in _DENY else "allow")
        )
    taken = _first(attrs, "gen_ai.guardrail.action", "guardrail.action")
    f.action_taken = _str(taken)
    f.reason = _str(_first(attrs, "gen_ai.guardrail.reason", "guardrail.reason"))
    f.extra = _identity(attrs)
    return f


# Span events of the older GenAI conventions (semantic-conventions <= 1.36, still emitted by Strands
# Agents by default): one event per message, content as JSON text in ``content`` / ``message``.
_MESSAGE_EVENTS = {
    "gen_ai.system.message": "system",
    "gen_ai.user.message": "user",
    "gen_ai.assistant.message": "assistant",
    "gen_ai.tool.message": "tool",
}
_CHOICE_EVENT = "gen_ai.choice"
# the current conventions' event (when content is not put on the span's attributes)
_DETAILS_EVENT = "gen_ai.client.inference.operation.details"


def add_event_content(facts: Facts, events: Any) -> None:
    """Fill the content the span's attributes lack from its events (model calls and tool calls).

    Tool span: ``gen_ai.tool.message`` carries the arguments (and the call id), ``gen_ai.choice`` the
    result. Model span: the message events are the input, ``gen_ai.choice`` the output; the
    details event carries ``gen_ai.input.messages`` / ``gen_ai.output.messages``. Content only ever
    becomes digests and sizes unless capture is on (the processor's records decide, as for attributes).
    """
    if not events or facts.action not in (MODEL_CALL, TOOL_CALL):
        return
    inputs: list[Any] = []
    outputs: list[Any] = []
    details_in: Any = MISSING
    details_out: Any = MISSING
    for n, event in enumerate(events):
        if n >= MAX_EVENTS:
            break
        name = getattr(event, "name", None)
        attrs = getattr(event, "attributes", None) or {}
        if name == _DETAILS_EVENT:
            if details_in is MISSING and "gen_ai.input.messages" in attrs:
                details_in = parse_json_text(attrs["gen_ai.input.messages"])
            if details_out is MISSING and "gen_ai.output.messages" in attrs:
                details_out = parse_json_text(attrs["gen_ai.output.messages"])
            continue
        if facts.action == TOOL_CALL:
            if name == "gen_ai.tool.message" and facts.arguments is MISSING and "content" in attrs:
                facts.arguments = parse_json_text(attrs["content"])
                if facts.call_id is None and attrs.get("id") is not None:
                    facts.call_id = str(attrs["id"])
            elif name == _CHOICE_EVENT and facts.result is MISSING and "message" in attrs:
                facts.result = parse_json_text(attrs["message"])
            continue
        role = _MESSAGE_EVENTS.get(name or "")
        if role is not None and "content" in attrs:
            inputs.append({"role": role, "content": parse_json_text(attrs["content"])})
        elif name == _CHOICE_EVENT and "message" in attrs:
            choice: dict[str, Any] = {"message": parse_json_text(attrs["message"])}
            if "finish_reason" in attrs:
                choice["finish_reason"] = attrs["finish_reason"]
            outputs.append(choice)
    if facts.action == MODEL_CALL:
        if facts.input_messages is MISSING:
            facts.input_messages = details_in if details_in is not MISSING else (inputs or MISSING)
        if facts.output_messages is MISSING:
            facts.output_messages = details_out if details_out is not MISSING else (outputs or MISSING)
        if facts.finish_reasons is None:
            facts.finish_reasons = _message_finish_reasons(facts.output_messages)


def operation_kind(attrs: Mapping[str, Any]) -> str | None:
    """``MODEL_CALL``, ``TOOL_CALL`` or ``AGENT_RUN`` when ``gen_ai.operation.name`` names one (then
    ``classify`` gives that action), else None. One look-up."""
    op = attrs.get("gen_ai.operation.name")
    if op is None:
        return None
    op = str(op)
    if op in _MODEL_OPS:
        return MODEL_CALL
    if op in _TOOL_OPS:
        return TOOL_CALL
    if op in _AGENT_OPS:
        return AGENT_RUN
    return None


def identify(attrs: Mapping[str, Any], span_name: str = "") -> tuple[str, str | None, str | None] | None:
    """``(action, name, call id)`` exactly as ``classify`` gives them, for a span whose
    ``gen_ai.operation.name`` names a model call, tool call or agent run (else None), without
    reading its content: the bridge only tracks auditel's own spans, never maps them."""
    kind = operation_kind(attrs)
    if kind == MODEL_CALL:
        return kind, _model_name(attrs), None
    if kind == TOOL_CALL:
        name, call_id = _tool_identity(attrs, "genai", span_name)
        return kind, name, call_id
    if kind == AGENT_RUN:
        return kind, _agent_name(attrs, "genai", str(attrs.get("gen_ai.operation.name")), span_name), None
    return None


def classify(attrs: Mapping[str, Any] | None, span_name: str = "", span_kind: str = "") -> Facts | None:
    """The facts of the action a span describes, or None when it describes none we record.

    ``span_kind`` is ``client``/``server``/... (the MCP side). Pure: never raises on odd values.
    """
    if not attrs:
        return None
    op = attrs.get("gen_ai.operation.name")
    if op is not None:
        op = str(op)
        if op in _MODEL_OPS:
            return _model_facts(attrs, "genai", _MODEL_OPS[op])
        if op in _TOOL_OPS:
            f = _tool_facts(attrs, "genai", span_name)
            if "mcp.method.name" in attrs and span_kind in ("client", "server"):
                f.extra["audit.mcp.side"] = span_kind  # the MCP SDK's server span is also execute_tool
            return f
        if op in _AGENT_OPS:
            return _agent_facts(attrs, "genai", op, span_name)
        if op in _GUARD_OPS:
            return _policy_facts(attrs, "genai", span_name)
    mcp = attrs.get("mcp.method.name")
    if mcp is not None:
        if str(mcp) == "tools/call":
            f = _tool_facts(attrs, "mcp", span_name)
            if span_kind in ("client", "server"):
                f.extra["audit.mcp.side"] = span_kind
            return f
        return None
    oi = attrs.get("openinference.span.kind")
    if oi is not None:
        kind = str(oi).upper()
        if kind == "LLM":
            return _model_facts(attrs, "openinference", "chat")
        if kind == "EMBEDDING":
            return _model_facts(attrs, "openinference", "embeddings")
        if kind == "TOOL":
            return _tool_facts(attrs, "openinference", span_name)
        if kind == "AGENT":
            return _agent_facts(attrs, "openinference", "invoke_agent", span_name)
        if kind == "GUARDRAIL":
            return _policy_facts(attrs, "openinference", span_name)
        return None  # CHAIN, RETRIEVER, RERANKER, EVALUATOR, PROMPT: steps, not audited actions
    tl = attrs.get("traceloop.span.kind")
    if tl is not None:
        kind = str(tl).lower()
        if kind == "tool":
            return _tool_facts(attrs, "traceloop", span_name)
        if kind == "agent":
            return _agent_facts(attrs, "traceloop", "invoke_agent", span_name)
        if kind == "workflow":
            return _agent_facts(attrs, "traceloop", "invoke_workflow", span_name)
        return None  # task: a step
    req = attrs.get("llm.request.type")
    if req is not None:
        req = str(req).lower()
        if req in ("chat", "completion", "embedding"):
            return _model_facts(attrs, "traceloop", _MODEL_OPS.get(req, "chat"))
    return None
