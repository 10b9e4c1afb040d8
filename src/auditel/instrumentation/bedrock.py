"""Auto-instrumentation of Amazon Bedrock Runtime through botocore (``boto3.client("bedrock-runtime")``).

botocore builds each service's client class at run time, so one generated class cannot be patched:
``BaseClient._make_api_call`` (the dispatch every client method goes through) is wrapped, which covers
clients made before and after ``instrument()``. Other services and operations pass straight through.

Operations: ``Converse``, ``ConverseStream``, ``InvokeModel`` (Anthropic Messages and Amazon Nova
body shapes; other bodies give a record without token details) and
``InvokeModelWithResponseStream``. A guardrail intervention Bedrock reports (``stopReason:
guardrail_intervened``, ``trace.guardrail``, ``amazon-bedrock-guardrailAction: INTERVENED``) also
writes an ``auditel.policy_decision`` record linked to the model span.

Return values keep their types: the response dict is the one botocore returned; its event stream
(``stream`` / ``body``) and ``InvokeModel``'s ``StreamingBody`` are replaced by transparent proxies
that finish the record exactly once (exhausted, error, ``close()``, early ``break``, garbage
collection). ``InvokeModel``'s facts are read from the bytes the caller reads through ``read()``.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace

from auditel import runtime as _rt
from auditel.api.helpers import policy_decision
from auditel.instrumentation import anthropic, genai
from auditel.instrumentation import base as _base
from auditel.instrumentation.genai.shapes import PROVIDER as PROVIDER_ATTR
from auditel.instrumentation.genai.shapes import (
    Request,
    ResponseFacts,
    as_int,
    field_of,
    parse_json_arguments,
    parts_of_content,
    text_part,
    tool_call_part,
    usage_total,
)

PROVIDER = "aws.bedrock"
SERVICE = "bedrock-runtime"
_OPERATIONS = frozenset({"Converse", "ConverseStream", "InvokeModel", "InvokeModelWithResponseStream"})


# --- requests ------------------------------------------------------------------------------------
def _block(block: Any) -> dict[str, Any]:
    """One Converse / Nova content block as a semconv part."""
    if "text" in block:
        return text_part(block["text"])
    if "toolUse" in block:
        use = block["toolUse"]
        return tool_call_part(use.get("toolUseId"), use.get("name"), use.get("input"))
    if "toolResult" in block:
        res = block["toolResult"]
        return {"type": "tool_call_response", "id": res.get("toolUseId"), "response": res.get("content")}
    if "reasoningContent" in block:
        return {"type": "reasoning", "content": field_of(field_of(block["reasoningContent"], "reasoningText"), "text")}
    return {"type": next(iter(block), "unknown") if isinstance(block, dict) else "unknown"}


def _messages(messages: Any) -> list[dict[str, Any]] | None:
    if not isinstance(messages, list):
        return None
    out = []
    for msg in messages:
        content = msg.get("content") if isinstance(msg, dict) else None
        parts = (
            [_block(b) for b in content if isinstance(b, dict)]
            if isinstance(content, list)
            else parts_of_content(content)
        )
        out.append({"role": (msg.get("role") if isinstance(msg, dict) else None) or "user", "parts": parts})
    return out


def _system(system: Any) -> list[dict[str, Any]] | None:
    if isinstance(system, str):
        return [text_part(system)]
    if isinstance(system, list):
        return [_block(b) for b in system if isinstance(b, dict)]
    return None


def _inference_attrs(cfg: Any) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if not isinstance(cfg, dict):
        return attrs
    for key, attr in (
        ("maxTokens", "gen_ai.request.max_tokens"),
        ("max_new_tokens", "gen_ai.request.max_tokens"),
        ("temperature", "gen_ai.request.temperature"),
        ("topP", "gen_ai.request.top_p"),
        ("top_p", "gen_ai.request.top_p"),
        ("topK", "gen_ai.request.top_k"),
        ("top_k", "gen_ai.request.top_k"),
    ):
        value = cfg.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            attrs[attr] = value
    stop = cfg.get("stopSequences")
    if isinstance(stop, list):
        attrs["gen_ai.request.stop_sequences"] = [str(s) for s in stop]
    return attrs


def _server(client: Any) -> dict[str, Any]:
    try:
        from urllib.parse import urlsplit

        url = urlsplit(client.meta.endpoint_url)
        return {"server.address": url.hostname, "server.port": url.port or (443 if url.scheme == "https" else 80)}
    except Exception:  # noqa: BLE001
        return {}


def describe_converse(client: Any, params: dict[str, Any], streaming: bool) -> Request:
    attrs = _inference_attrs(params.get("inferenceConfig"))
    guard = params.get("guardrailConfig")
    if isinstance(guard, dict) and guard.get("guardrailIdentifier"):
        attrs["aws.bedrock.guardrail.id"] = str(guard["guardrailIdentifier"])
    attrs.update(_server(client))
    tools = field_of(params.get("toolConfig"), "tools")
    return Request(
        provider=PROVIDER,
        operation="chat",
        model=str(params.get("modelId") or "") or None,
        attributes=attrs,
        input_messages=_messages(params.get("messages")),
        system_instructions=_system(params.get("system")),
        tool_definitions=tools if isinstance(tools, list) else None,
        streaming=streaming,
    )


def body_family(model_id: str, body: Any) -> str:
    """``anthropic`` (Messages API body), ``nova`` (Converse-like body) or ``other``."""
    if isinstance(body, dict):
        if "anthropic_version" in body or "anthropic." in model_id:
            return "anthropic"
        if "nova" in model_id or "inferenceConfig" in body or "schemaVersion" in body:
            return "nova"
    return "other"


def _json_body(raw: Any) -> Any:
    if isinstance(raw, (bytes, bytearray, str)):
        try:
            return json.loads(raw)
        except ValueError:
            return None
    return None  # a file-like body is never read here (it would be consumed)


def describe_invoke(client: Any, params: dict[str, Any], streaming: bool) -> Request:
    model_id = str(params.get("modelId") or "")
    body = _json_body(params.get("body"))
    family = body_family(model_id, body)
    if family == "anthropic":
        req = anthropic.describe_messages(None, (), dict(body))
        req.provider, req.model, req.streaming = PROVIDER, model_id or None, streaming
        req.attributes.update(_server(client))
    elif family == "nova":
        req = describe_converse(client, {"modelId": model_id, **body}, streaming)
    else:
        req = Request(PROVIDER, "chat", model_id or None, _server(client), streaming=streaming)
    req.attributes["aws.bedrock.body_family"] = family  # span only; tells the parser which shape to read
    guard = params.get("guardrailIdentifier")
    if guard:
        req.attributes["aws.bedrock.guardrail.id"] = str(guard)
    return req


# --- responses -----------------------------------------------------------------------------------
def _bedrock_usage(facts: ResponseFacts, usage: Any) -> None:
    if not isinstance(usage, dict):
        return
    fresh = as_int(usage.get("inputTokens"))
    cache_read = as_int(usage.get("cacheReadInputTokens", usage.get("cacheReadInputTokenCount")))
    cache_write = as_int(usage.get("cacheWriteInputTokens", usage.get("cacheWriteInputTokenCount")))
    if fresh is not None:
        facts.input_tokens = usage_total(fresh, cache_read, cache_write)  # semconv: cached tokens count as input
    if cache_read is not None:
        facts.cache_read_tokens = cache_read
    if cache_write is not None:
        facts.cache_creation_tokens = cache_write
    output = as_int(usage.get("outputTokens"))
    if output is not None:
        facts.output_tokens = output


def _converse_message(facts: ResponseFacts, message: Any, stop: Any) -> None:
    content = field_of(message, "content") or []
    parts = [_block(b) for b in content if isinstance(b, dict)]
    for block in content:
        use = block.get("toolUse") if isinstance(block, dict) else None
        if use:
            facts.tool_calls.append(
                {"name": use.get("name"), "id": use.get("toolUseId"), "arguments": use.get("input")}
            )
    facts.finish_reasons = [str(stop)] if stop else []
    facts.output_messages = [{"role": "assistant", "parts": parts, "finish_reason": stop}]


def converse_from_response(facts: ResponseFacts, response: Any) -> None:
    facts.response_id = field_of(field_of(response, "ResponseMetadata"), "RequestId")
    _converse_message(facts, field_of(field_of(response, "output"), "message"), response.get("stopReason"))
    _bedrock_usage(facts, response.get("usage"))
    _note_guardrail(facts, response.get("stopReason"), response.get("trace"), None)


def _note_guardrail(facts: ResponseFacts, stop: Any, trace_: Any, action: Any) -> None:
    guardrail = field_of(trace_, "guardrail")
    if stop == "guardrail_intervened" or action == "INTERVENED" or (guardrail and _interventions(guardrail)):
        facts.scratch["guardrail"] = {"trace": guardrail, "stop": stop, "action": action}


def _interventions(guardrail: Any) -> list[dict[str, Any]]:
    """The policy filters that acted, from a ``trace.guardrail`` (input and output assessments)."""
    found: list[dict[str, Any]] = []
    if not isinstance(guardrail, dict):
        return found
    outputs = guardrail.get("outputAssessments") or {}
    sources = [("input", guardrail.get("inputAssessment") or {})]
    sources += [
        ("output", {gid: a}) for gid, items in outputs.items() for a in (items if isinstance(items, list) else [items])
    ]
    for source, by_id in sources:
        for gid, assessment in by_id.items() if isinstance(by_id, dict) else ():
            for policy, detail in assessment.items() if isinstance(assessment, dict) else ():
                if not isinstance(detail, dict):
                    continue
                for items in detail.values():
                    for item in items if isinstance(items, list) else ():
                        act = item.get("action") if isinstance(item, dict) else None
                        if act and act != "NONE":
                            found.append(
                                {
                                    "source": source,
                                    "guardrail": gid,
                                    "policy": policy,
                                    "type": item.get("type") or item.get("name"),
                                    "action": act,
                                }
                            )
    return found


def invoke_from_body(family: str) -> Callable[[ResponseFacts, Any], None]:
    def parse(facts: ResponseFacts, body: Any) -> None:
        if not isinstance(body, dict):
            return
        if family == "anthropic":
            anthropic.messages_from_response(facts, body)
        elif family == "nova":
            _converse_message(facts, field_of(body.get("output"), "message"), body.get("stopReason"))
            _bedrock_usage(facts, body.get("usage"))
        _note_guardrail(facts, body.get("stopReason"), None, body.get("amazon-bedrock-guardrailAction"))

    return parse


# --- streamed events -----------------------------------------------------------------------------------
def converse_observe(facts: ResponseFacts, event: Any) -> None:
    """One ConverseStream event (also Nova's ``InvokeModelWithResponseStream`` chunks: same keys)."""
    if not isinstance(event, dict):
        return
    if facts.build is None:
        facts.build = _converse_build
        facts.scratch["blocks"] = {}
    blocks: dict[int, dict[str, Any]] = facts.scratch["blocks"]
    if "contentBlockDelta" in event:
        ev = event["contentBlockDelta"]
        slot = blocks.setdefault(
            ev.get("contentBlockIndex", 0), {"text": [], "tool": None, "json": [], "reasoning": []}
        )
        delta = ev.get("delta") or {}
        if "text" in delta:
            slot["text"].append(delta["text"])
        elif "toolUse" in delta:
            slot["json"].append(delta["toolUse"].get("input") or "")
        elif "reasoningContent" in delta:
            slot["reasoning"].append(delta["reasoningContent"].get("text") or "")
    elif "contentBlockStart" in event:
        ev = event["contentBlockStart"]
        slot = blocks.setdefault(
            ev.get("contentBlockIndex", 0), {"text": [], "tool": None, "json": [], "reasoning": []}
        )
        use = field_of(ev.get("start"), "toolUse")
        if use:
            slot["tool"] = {"id": use.get("toolUseId"), "name": use.get("name")}
    elif "messageStop" in event:
        stop = event["messageStop"].get("stopReason")
        facts.finish_reasons = [str(stop)] if stop else []
        facts.complete = True
        _note_guardrail(facts, stop, None, None)
    elif "metadata" in event:
        meta = event["metadata"]
        _bedrock_usage(facts, meta.get("usage"))
        _note_guardrail(facts, None, meta.get("trace"), None)
    metrics = event.get("amazon-bedrock-invocationMetrics")
    if isinstance(metrics, dict) and facts.input_tokens is None:
        facts.input_tokens = as_int(metrics.get("inputTokenCount"))
        facts.output_tokens = as_int(metrics.get("outputTokenCount"))


def _converse_build(facts: ResponseFacts) -> None:
    parts: list[dict[str, Any]] = []
    facts.tool_calls.clear()
    for index in sorted(facts.scratch.get("blocks", {})):
        slot = facts.scratch["blocks"][index]
        if slot["reasoning"]:
            parts.append({"type": "reasoning", "content": "".join(slot["reasoning"])})
        if slot["text"]:
            parts.append(text_part("".join(slot["text"])))
        if slot["tool"] is not None:
            arguments = parse_json_arguments("".join(slot["json"])) if slot["json"] else {}
            facts.tool_calls.append({"name": slot["tool"]["name"], "id": slot["tool"]["id"], "arguments": arguments})
            parts.append(tool_call_part(slot["tool"]["id"], slot["tool"]["name"], arguments))
    reason = facts.finish_reasons[0] if facts.finish_reasons else None
    facts.output_messages = [{"role": "assistant", "parts": parts, "finish_reason": reason}]


def invoke_observe(family: str) -> Callable[[ResponseFacts, Any], None]:
    """One ``InvokeModelWithResponseStream`` event: ``{"chunk": {"bytes": <the model's JSON>}}``."""

    def observe(facts: ResponseFacts, event: Any) -> None:
        raw = field_of(field_of(event, "chunk"), "bytes")
        if not raw:
            return
        payload = json.loads(raw)
        if family == "anthropic":
            anthropic.messages_observe(facts, payload)
            metrics = payload.get("amazon-bedrock-invocationMetrics")
            if isinstance(metrics, dict) and facts.input_tokens is None:
                facts.input_tokens = as_int(metrics.get("inputTokenCount"))
        else:
            converse_observe(facts, payload)
        action = payload.get("amazon-bedrock-guardrailAction")
        if action:
            _note_guardrail(facts, None, None, action)

    return observe


# --- the invocation: guardrail verdicts after the model record ----------------------------------------
class BedrockInvocation(genai.Invocation):
    __slots__ = ()

    def _finish(self, error: BaseException | None, outcome: str | None, end: str | None) -> None:
        super()._finish(error, outcome, end)
        info = self.facts.scratch.get("guardrail")
        if info is None or _rt.current() is None:
            return
        token = otel_context.attach(trace.set_span_in_context(self.span))
        try:
            found = _interventions(info["trace"])
            guard_id = self.request.attributes.get("aws.bedrock.guardrail.id") or (
                found[0]["guardrail"] if found else None
            )
            rules = sorted({f"{f['policy']}:{f['type']}" for f in found if f.get("type")})
            anonymized = found and all(f["action"] == "ANONYMIZED" for f in found)
            policy_decision(
                "modify" if anonymized else "deny",
                policy_id=guard_id,
                rule_id=",".join(rules) or None,
                reason="guardrail_intervened",
                action="model_call",
                target=self.request.model,
                attributes={
                    PROVIDER_ATTR: PROVIDER,
                    "audit.guardrail.sources": sorted({f["source"] for f in found}) or None,
                    "audit.guardrail.framework": "aws.bedrock.guardrails",
                },
            )
        finally:
            otel_context.detach(token)


# --- proxies ---------------------------------------------------------------------------------------
class EventStreamProxy(wrapt.ObjectProxy):
    """botocore's ``EventStream``: iterating it reports each event; finishes exactly once."""

    def __init__(self, wrapped: Any, state: genai.StreamState) -> None:
        super().__init__(wrapped)
        self._self_state = state
        weakref.finalize(self, genai.StreamState.abandoned, state.invocation)

    def __iter__(self) -> Iterator[Any]:
        return self._self_events()

    def _self_events(self) -> Iterator[Any]:
        state = self._self_state
        try:
            for item in self.__wrapped__:
                state.on_item(item)
                yield item
        except GeneratorExit:  # the caller stopped early (break, close, the iterator dropped)
            state.closed()
            raise
        except BaseException as exc:
            state.failed(exc)
            raise
        state.exhausted()

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_state.closed()


class BodyProxy(wrapt.ObjectProxy):
    """``InvokeModel``'s ``StreamingBody``: the bytes read through ``read()`` give the facts."""

    def __init__(self, wrapped: Any, inv: genai.Invocation, parse: Callable[[ResponseFacts, Any], None]) -> None:
        super().__init__(wrapped)
        self._self_inv = inv
        self._self_parse = parse
        self._self_chunks: list[bytes] = []
        weakref.finalize(self, inv.finish)  # never read: the call succeeded, details unknown

    def read(self, *args: Any, **kwargs: Any) -> Any:
        try:
            data = self.__wrapped__.read(*args, **kwargs)
        except BaseException as exc:
            self._self_inv.finish(error=exc, end="error")
            raise
        try:
            self._self_chunks.append(data)
            whole = not args and kwargs.get("amt") is None
            if whole or not data:
                self._self_done()
        except Exception as exc:  # noqa: BLE001
            _base.count_error("bedrock_body", exc)
        return data

    def _self_done(self) -> None:
        try:
            self._self_parse(self._self_inv.facts, json.loads(b"".join(self._self_chunks)))
            self._self_inv.facts.complete = True
        except Exception as exc:  # noqa: BLE001 - a body that is not JSON: record without details
            _base.count_error("bedrock_body", exc)
        self._self_inv.finish()

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_inv.finish()


# --- the dispatch wrapper -------------------------------------------------------------------------------
def _service(client: Any) -> str | None:
    try:
        return client._service_model.service_name
    except AttributeError:
        return None


def _settle(op: str, inv: BedrockInvocation, result: Any, family: str) -> Any:
    if op == "Converse":
        genai.finish_from(inv, converse_from_response, result, "bedrock_response")
    elif op == "ConverseStream":
        result["stream"] = EventStreamProxy(result["stream"], genai.StreamState(inv, converse_observe))
    elif op == "InvokeModelWithResponseStream":
        result["body"] = EventStreamProxy(result["body"], genai.StreamState(inv, invoke_observe(family)))
    else:
        result["body"] = BodyProxy(result["body"], inv, invoke_from_body(family))
    return result


def _make_api_call(active: dict[str, bool]) -> Callable[..., Any]:
    def wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        op = args[0] if args else kwargs.get("operation_name")
        if op not in _OPERATIONS or not active["on"] or _service(instance) != SERVICE:
            return wrapped(*args, **kwargs)
        if _rt.current() is None or genai.suppressed():
            return wrapped(*args, **kwargs)
        inv: BedrockInvocation | None = None
        family = "other"
        try:
            params = args[1] if len(args) > 1 else kwargs.get("api_params") or {}
            streaming = op in ("ConverseStream", "InvokeModelWithResponseStream")
            req = (
                describe_converse(instance, params, streaming)
                if op.startswith("Converse")
                else describe_invoke(instance, params, streaming)
            )
            family = req.attributes.get("aws.bedrock.body_family", "other")
            inv = BedrockInvocation(req, genai.content_policy())
        except Exception as exc:  # noqa: BLE001
            _base.count_error("bedrock_describe", exc)
        if inv is None:
            return wrapped(*args, **kwargs)
        with genai.SpanScope(inv):
            result = wrapped(*args, **kwargs)
        try:
            return _settle(op, inv, result, family)
        except Exception as exc:  # noqa: BLE001
            _base.count_error("bedrock_response", exc)
            inv.finish()
            return result

    wrapper.active = active  # type: ignore[attr-defined]
    return wrapper


class BedrockInstrumentor(genai.GenAIInstrumentor):
    """auditel's Amazon Bedrock Runtime instrumentation (entry point ``auditel_bedrock``)."""

    requirement = "botocore >= 1.34"

    def _apply(self, p: genai.Patcher) -> None:
        p.wrap("botocore.client", "BaseClient._make_api_call", _make_api_call({"on": True}))
