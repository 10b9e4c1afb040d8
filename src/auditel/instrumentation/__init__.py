"""auditel's auto-instrumentations, each an OTel ``BaseInstrumentor`` under its own entry point.

``REGISTRY`` maps our instrumentation names (also the ``opentelemetry_instrumentor`` entry-point
names, so ``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS`` can tell them from other vendors') to
``module:Class``. ``instrument()`` switches on every one whose framework is installed;
missing frameworks are skipped silently.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from typing import Any

REGISTRY: dict[str, str] = {
    # name -> "module:Class"; the module is imported only when instrumenting
    "auditel_openai": "auditel.instrumentation.openai:OpenAIInstrumentor",
    "auditel_anthropic": "auditel.instrumentation.anthropic:AnthropicInstrumentor",
    "auditel_mcp": "auditel.instrumentation.mcp:MCPInstrumentor",
    "auditel_langchain": "auditel.instrumentation.langchain:LangChainInstrumentor",
    "auditel_openai_agents": "auditel.instrumentation.openai_agents:OpenAIAgentsInstrumentor",
}

# the framework package each instrumentation needs (import name)
REQUIRES: dict[str, str] = {
    "auditel_openai": "openai",
    "auditel_anthropic": "anthropic",
    "auditel_mcp": "mcp",
    "auditel_langchain": "langchain_core",
    "auditel_openai_agents": "agents",
}

# short aliases accepted by instrument(): "openai" -> "auditel_openai"
ALIASES = {name.removeprefix("auditel_"): name for name in REGISTRY}

_active: dict[str, Any] = {}


def available() -> list[str]:
    """Instrumentations whose framework is installed."""
    out = []
    for name in REGISTRY:
        try:
            if importlib.util.find_spec(REQUIRES.get(name, name)) is None:
                continue
            if importlib.util.find_spec(REGISTRY[name].partition(":")[0]) is None:
                continue
        except (ImportError, ValueError):
            continue
        out.append(name)
    return out


def _disabled() -> set[str]:
    raw = os.environ.get("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", "")
    return {part.strip() for part in raw.split(",") if part.strip()}


def get_instrumentor(name: str) -> Any:
    module_name, _, cls_name = REGISTRY[name].partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, cls_name)()


def instrument(*names: str) -> list[str]:
    """Instrument the named frameworks (default: all installed, minus the disabled ones)."""
    wanted = [ALIASES.get(n, n) for n in names] or [n for n in available() if n not in _disabled()]
    done = []
    for name in wanted:
        if name not in REGISTRY:
            raise ValueError(f"unknown instrumentation {name!r}: expected one of {', '.join(sorted(REGISTRY))}")
        if importlib.util.find_spec(REQUIRES.get(name, name)) is None or importlib.util.find_spec(
            REGISTRY[name].partition(":")[0]
        ) is None:
            continue
        inst = _active.get(name) or get_instrumentor(name)
        if not inst.is_instrumented_by_opentelemetry:
            inst.instrument()
        _active[name] = inst
        done.append(name)
    return done


def uninstrument(*names: str) -> list[str]:
    done = []
    for name in [ALIASES.get(n, n) for n in names] or list(_active):
        inst = _active.pop(name, None)
        if inst is not None and inst.is_instrumented_by_opentelemetry:
            inst.uninstrument()
            done.append(name)
    return done
