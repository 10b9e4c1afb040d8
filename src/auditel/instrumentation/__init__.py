"""auditel's auto-instrumentations, each an OTel ``BaseInstrumentor`` under its own entry point.

``INSTRUMENTATIONS`` is the one table: each row names the instrumentation (also its
``opentelemetry_instrumentor`` entry-point name, so ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` can
tell ours from other vendors'), its ``module:Class``, and the framework it audits (import name,
distribution name). ``REGISTRY``, ``REQUIRES`` and ``ALIASES`` are derived from it, and a test
checks that pyproject's entry points match it. ``NOT_AUDITED`` lists frameworks auditel knows
but does not instrument yet, so that ``status()`` and ``auditel run`` can say so.

``instrument()`` switches on every instrumentation whose framework is installed (missing ones are
skipped silently). It never imports a framework: patches are applied by post-import hooks when
(if) the application imports it (``patching.Patcher``); ``importlib.util.find_spec`` only looks.
``arm()`` (the zero-code start) goes one step further: it imports nothing of auditel's
instrumentation code either until the application imports the framework, then instruments it
from a post-import hook, so a process that never imports a framework pays nothing for it.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from typing import Any

from auditel.config.instrumentation import disabled_instrumentations


@dataclass(frozen=True)
class Instrumentation:
    name: str  # entry-point name
    target: str  # "module:Class"; imported only when instrumenting
    framework: str  # import name of the framework it audits
    distribution: str  # its PyPI distribution
    label: str  # what a person calls it


INSTRUMENTATIONS: tuple[Instrumentation, ...] = (
    Instrumentation(
        "auditel_openai", "auditel.instrumentation.openai:OpenAIInstrumentor", "openai", "openai", "OpenAI SDK"
    ),
    Instrumentation(
        "auditel_anthropic",
        "auditel.instrumentation.anthropic:AnthropicInstrumentor",
        "anthropic",
        "anthropic",
        "Anthropic SDK",
    ),
    Instrumentation("auditel_mcp", "auditel.instrumentation.mcp:MCPInstrumentor", "mcp", "mcp", "MCP SDK"),
    Instrumentation(
        "auditel_langchain",
        "auditel.instrumentation.langchain:LangChainInstrumentor",
        "langchain_core",
        "langchain-core",
        "LangChain / LangGraph",
    ),
    Instrumentation(
        "auditel_openai_agents",
        "auditel.instrumentation.openai_agents:OpenAIAgentsInstrumentor",
        "agents",
        "openai-agents",
        "OpenAI Agents SDK",
    ),
    Instrumentation(
        "auditel_google_genai",
        "auditel.instrumentation.google_genai:GoogleGenAIInstrumentor",
        "google.genai",
        "google-genai",
        "Google Gen AI SDK",
    ),
    Instrumentation(
        "auditel_litellm", "auditel.instrumentation.litellm:LiteLLMInstrumentor", "litellm", "litellm", "LiteLLM"
    ),
    Instrumentation(
        "auditel_bedrock",
        "auditel.instrumentation.bedrock:BedrockInstrumentor",
        "botocore",
        "botocore",
        "Amazon Bedrock Runtime (boto3)",
    ),
)

# Frameworks auditel recognises but does not audit yet: (import name, distribution, label).
# An instrumentation added to INSTRUMENTATIONS for one of them must be removed from here.
NOT_AUDITED: tuple[tuple[str, str, str], ...] = (
    ("crewai", "crewai", "CrewAI"),
    ("llama_index.core", "llama-index-core", "LlamaIndex"),
    ("autogen_agentchat", "autogen-agentchat", "AutoGen"),
    ("mistralai", "mistralai", "Mistral SDK"),
    ("cohere", "cohere", "Cohere SDK"),
    ("groq", "groq", "Groq SDK"),
)

# Frameworks audited from the spans they emit themselves (auditel.spans, docs/frameworks.md):
# (import name, label, how to turn their telemetry on).
VIA_SPANS: tuple[tuple[str, str, str], ...] = (("pydantic_ai", "Pydantic AI", "Agent.instrument_all()"),)

REGISTRY: dict[str, str] = {i.name: i.target for i in INSTRUMENTATIONS}
REQUIRES: dict[str, str] = {i.name: i.framework for i in INSTRUMENTATIONS}
# short aliases accepted by instrument(): "openai" -> "auditel_openai"
ALIASES = {name.removeprefix("auditel_"): name for name in REGISTRY}

_active: dict[str, Any] = {}
_armed: dict[str, dict[str, Any]] = {}  # name -> instrument() kwargs, until its framework is imported


def _installed(import_name: str) -> bool:
    """Whether a module can be imported, without importing it (parents of a dotted name excepted)."""
    try:
        return importlib.util.find_spec(import_name) is not None
    except (ImportError, ValueError):
        return False


def available() -> list[str]:
    """Instrumentations whose framework is installed."""
    return [i.name for i in INSTRUMENTATIONS if _installed(i.framework) and _installed(i.target.partition(":")[0])]


def get_instrumentor(name: str) -> Any:
    module_name, _, cls_name = REGISTRY[name].partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, cls_name)()


def instrument(*names: str, **kwargs: Any) -> list[str]:
    """Instrument the named frameworks (default: all installed, minus the disabled ones).

    ``kwargs`` go to each ``BaseInstrumentor.instrument`` (e.g. ``tracer_provider=``)."""
    disabled = disabled_instrumentations()
    wanted = [ALIASES.get(n, n) for n in names] or [n for n in available() if n not in disabled]
    done = []
    for name in wanted:
        if name not in REGISTRY:
            raise ValueError(f"unknown instrumentation {name!r}: expected one of {', '.join(sorted(REGISTRY))}")
        if not _installed(REQUIRES[name]) or not _installed(REGISTRY[name].partition(":")[0]):
            continue
        _armed.pop(name, None)
        inst = _active.get(name) or get_instrumentor(name)
        if not inst.is_instrumented_by_opentelemetry:
            inst.instrument(**kwargs)
        _active[name] = inst
        done.append(name)
    return done


def arm(**kwargs: Any) -> list[str]:
    """Instrument every installed, enabled framework when (if) the application imports it.

    A framework already imported is instrumented at once; for the others a post-import hook does
    it, so neither the framework nor auditel's code for it is imported before the application
    asks for the framework (start-up time of every audited process). Returns the names armed or
    instrumented; ``uninstrument()`` disarms."""
    from auditel.instrumentation.import_hooks import when_imported

    disabled = disabled_instrumentations()
    names = [n for n in available() if n not in disabled]
    for name in names:
        framework = REQUIRES[name]
        if framework in sys.modules or name in _active:
            instrument(name, **kwargs)
            continue
        first = name not in _armed
        _armed[name] = kwargs  # before the hook: an import in another thread may run it at once
        if first:
            when_imported(framework, functools.partial(_on_framework_import, name))
    return names


def _on_framework_import(name: str, _module: Any) -> None:
    kwargs = _armed.pop(name, None)
    if kwargs is None:
        return  # disarmed (uninstrument) or instrumented explicitly since
    try:
        instrument(name, **kwargs)
    except Exception as exc:  # noqa: BLE001 - never break the application's import
        from auditel.instrumentation.base import count_error

        count_error("instrument", exc)


def uninstrument(*names: str) -> list[str]:
    """Remove the named instrumentations (default: all), disarming those still waiting for their framework."""
    for name in [ALIASES.get(n, n) for n in names] or list(_armed):
        _armed.pop(name, None)  # its import callback, if it ever runs, finds nothing to do
    done = []
    for name in [ALIASES.get(n, n) for n in names] or list(_active):
        inst = _active.pop(name, None)
        if inst is not None and inst.is_instrumented_by_opentelemetry:
            inst.uninstrument()
            done.append(name)
    return done


def coverage() -> dict[str, Any]:
    """Which installed frameworks are audited, by which instrumentation, and which are not.

    ``audited``: framework label -> instrumentation name, for installed frameworks whose
    instrumentation is on in this process (or, with no instrumentation on, would be by
    ``instrument()``); ``available``: installed and instrumentable but not on; ``not_audited``:
    installed frameworks auditel does not instrument. Looks only (``find_spec``), never imports."""
    active = {name for name, inst in _active.items() if inst.is_instrumented_by_opentelemetry}
    active.update(_armed)  # switched on when the application imports the framework
    disabled = disabled_instrumentations()
    audited: dict[str, str] = {}
    available_: dict[str, str] = {}
    for i in INSTRUMENTATIONS:
        if not _installed(i.framework):
            continue
        if i.name in active:
            audited[i.label] = i.name
        else:
            available_[i.label] = i.name + (" (disabled)" if i.name in disabled else "")
    not_audited = [label for import_name, _, label in NOT_AUDITED if _installed(import_name)]
    via_spans = {label: how for import_name, label, how in VIA_SPANS if _installed(import_name)}
    return {"audited": audited, "available": available_, "not_audited": not_audited, "via_spans": via_spans}
