"""Shared helpers of the span-bridge tests: records by kind, the stand-in model server, telemetry."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import user_records


def records(outbox: Path, kind: str | None = None) -> list[dict[str, Any]]:
    out = user_records(outbox)
    if kind is not None:
        out = [r for r in out if r["event_name"] == f"auditel.{kind}"]
    return out


def bridged(outbox: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """Records the span bridge wrote (they name their source scope)."""
    return [r for r in records(outbox, kind) if "audit.source" in r["attributes"]]


def pydantic_ai_agent(base_url: str, name: str, **agent_kwargs: Any) -> Any:
    """A Pydantic AI agent on the stand-in's ``agent-tools-once`` model (it asks for ``get_weather`` once,
    then answers); the caller adds the tool."""
    from pydantic_ai import Agent
    from pydantic_ai.models.openai import OpenAIChatModel
    from pydantic_ai.providers.openai import OpenAIProvider

    model = OpenAIChatModel("agent-tools-once", provider=OpenAIProvider(base_url=base_url, api_key="test"))
    return Agent(model, name=name, **agent_kwargs)
