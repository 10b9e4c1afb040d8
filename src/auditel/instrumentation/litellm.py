"""Auto-instrumentation of LiteLLM: ``litellm.completion`` / ``acompletion`` and ``responses`` /
``aresponses`` (streaming or not); the ``Router`` calls these, so its calls are covered too.

The record names the provider and model LiteLLM resolved (``openai/gpt-4o`` -> provider ``openai``,
model ``gpt-4o``; LiteLLM's provider names are mapped to the GenAI conventions' values, e.g.
``bedrock`` -> ``aws.bedrock``, ``vertex_ai`` -> ``gcp.vertex_ai``), token usage, tool calls and the
cost LiteLLM computed (``audit.model_call.cost``, in US dollars, when it reports one).

One call, one record: when LiteLLM calls a provider SDK that auditel also instruments (the OpenAI SDK's
``chat.completions.with_raw_response.create`` for ``azure/...`` models; recent LiteLLM sends
``openai/...`` requests with the SDK client's low-level ``post``, which no instrumentation sees), the
LiteLLM layer wins and the SDK's instrumentation stands aside for the
duration of the call (``genai.OUTER_CALL_KEY`` in the context). The outer layer is the call the
application made: it knows the route, fallbacks and cost, and it still exists for providers LiteLLM
reaches over plain HTTP (Anthropic, Gemini, ...), so records look the same whatever the route.

Patched attributes live on the ``litellm`` module: code that did ``from litellm import completion``
before ``instrument()`` keeps the unwrapped function (auditel's zero-code start hooks before the app's
imports, so this only concerns late manual instrumentation).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from auditel.instrumentation import base as _base
from auditel.instrumentation import genai, openai
from auditel.instrumentation.genai.shapes import Request, ResponseFacts, text_part

COST = "audit.model_call.cost"

# LiteLLM provider name -> gen_ai.provider.name (others are kept as LiteLLM spells them)
PROVIDERS = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "azure": "azure.ai.openai",
    "azure_ai": "azure.ai.inference",
    "anthropic": "anthropic",
    "bedrock": "aws.bedrock",
    "sagemaker": "aws.bedrock",
    "vertex_ai": "gcp.vertex_ai",
    "vertex_ai_beta": "gcp.vertex_ai",
    "gemini": "gcp.gemini",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "mistral": "mistral_ai",
    "groq": "groq",
    "deepseek": "deepseek",
    "xai": "x_ai",
    "perplexity": "perplexity",
    "watsonx": "ibm.watsonx.ai",
}


def resolve(model: Any, kwargs: dict[str, Any]) -> tuple[str | None, str]:
    """(model, gen_ai.provider.name) as LiteLLM routes ``model`` (its pure routing function)."""
    if not model:
        return None, "litellm"
    try:
        import litellm

        name, provider, _, _ = litellm.get_llm_provider(
            model=str(model), custom_llm_provider=kwargs.get("custom_llm_provider"), api_base=kwargs.get("api_base")
        )
        return str(name), PROVIDERS.get(str(provider), str(provider))
    except Exception:  # noqa: BLE001 - a name LiteLLM cannot route: it will raise in the call itself
        prefix, _, rest = str(model).partition("/")
        return (rest or prefix), PROVIDERS.get(prefix, "litellm") if rest else "litellm"


def _routing(req: Request, kwargs: dict[str, Any]) -> Request:
    model = kwargs.get("model")
    req.model, req.provider = resolve(model, kwargs)
    req.attributes = {k: v for k, v in req.attributes.items() if not k.startswith("server.")}
    if model:
        req.attributes["litellm.model"] = str(model)  # the name the app asked LiteLLM for (span only)
    base = kwargs.get("api_base") or kwargs.get("base_url")
    if isinstance(base, str) and base:
        url = urlsplit(base)
        if url.hostname:
            req.attributes["server.address"] = url.hostname
            req.attributes["server.port"] = url.port or (443 if url.scheme == "https" else 80)
    return req


def describe_completion(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    if args and "model" not in kwargs:
        kwargs = dict(kwargs, model=args[0], **({"messages": args[1]} if len(args) > 1 else {}))
    return _routing(openai.describe_chat(None, (), kwargs), kwargs)


def describe_responses(instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    if args and "input" not in kwargs:
        kwargs = dict(kwargs, input=args[0], **({"model": args[1]} if len(args) > 1 else {}))
    req = openai.describe_responses(None, (), kwargs)
    instructions = kwargs.get("instructions")
    if isinstance(instructions, str):
        req.system_instructions = [text_part(instructions)]
    return _routing(req, kwargs)


def _cost(facts: ResponseFacts, response: Any) -> None:
    hidden = getattr(response, "_hidden_params", None)
    cost = hidden.get("response_cost") if isinstance(hidden, dict) else None
    if isinstance(cost, (int, float)) and not isinstance(cost, bool):
        facts.attributes[COST] = float(cost)


def completion_from_response(facts: ResponseFacts, response: Any) -> None:
    openai.chat_from_response(facts, response)
    _cost(facts, response)


def responses_from_response(facts: ResponseFacts, response: Any) -> None:
    openai.responses_from_response(facts, response)
    _cost(facts, response)


def _is_stream(result: Any) -> bool:
    name = type(result).__name__
    return name == "CustomStreamWrapper" or name.endswith("StreamingIterator")


def _wrapper(
    describe: genai.Describe, from_response: genai.FromResponse, observe: genai.Observe, *, is_async: bool
) -> Any:
    active = {"on": True}

    def begin(instance: Any, args: Any, kwargs: Any) -> genai.Invocation | None:
        return genai.begin(describe, instance, args, kwargs, "litellm_describe") if active["on"] else None

    def settle(inv: genai.Invocation, result: Any) -> Any:
        if not _is_stream(result):
            genai.finish_from(inv, from_response, result, "litellm_response")
            return result
        try:
            state = genai.StreamState(inv, observe)
            return genai.AsyncStreamProxy(result, state) if is_async else genai.SyncStreamProxy(result, state)
        except Exception as exc:  # noqa: BLE001
            _base.count_error("litellm_response", exc)
            inv.finish()
            return result

    # the span is current and the SDK underneath (openai) stands aside (``outer``): one call, one record
    if is_async:

        async def async_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
            inv = begin(instance, args, kwargs)
            if inv is None:
                return await wrapped(*args, **kwargs)
            with genai.SpanScope(inv, outer=True):
                result = await wrapped(*args, **kwargs)
            return settle(inv, result)

        async_wrapper.active = active  # type: ignore[attr-defined]
        return async_wrapper

    def sync_wrapper(wrapped: Any, instance: Any, args: Any, kwargs: Any) -> Any:
        inv = begin(instance, args, kwargs)
        if inv is None:
            return wrapped(*args, **kwargs)
        with genai.SpanScope(inv, outer=True):
            result = wrapped(*args, **kwargs)
        return settle(inv, result)

    sync_wrapper.active = active  # type: ignore[attr-defined]
    return sync_wrapper


class LiteLLMInstrumentor(genai.GenAIInstrumentor):
    """auditel's LiteLLM instrumentation (entry point ``auditel_litellm``)."""

    requirement = "litellm >= 1.50"

    def _apply(self, p: genai.Patcher) -> None:
        for sync_name, async_name, describe, from_response, observe in (
            ("completion", "acompletion", describe_completion, completion_from_response, openai.chat_observe),
            ("responses", "aresponses", describe_responses, responses_from_response, openai.responses_observe),
        ):
            p.wrap("litellm", sync_name, _wrapper(describe, from_response, observe, is_async=False))
            p.wrap("litellm", async_name, _wrapper(describe, from_response, observe, is_async=True))
