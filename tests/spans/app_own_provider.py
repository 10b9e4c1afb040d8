"""An app that sets its own TracerProvider in code (as Phoenix register(), Logfire, Langfuse do) and
uses Pydantic AI's built-in instrumentation. No auditel code. Run by test_zero_code_bridge.py under
``auditel run`` / ``opentelemetry-instrument``; prints what its own exporter received as JSON."""

import json
import os
import sys

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

exporter = InMemorySpanExporter()
if os.environ.get("APP_SETS_PROVIDER", "1") == "1":
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)

from pydantic_ai import Agent  # noqa: E402 - after the app set its provider, as apps do
from pydantic_ai.models.openai import OpenAIChatModel  # noqa: E402
from pydantic_ai.providers.openai import OpenAIProvider  # noqa: E402

Agent.instrument_all()  # Pydantic AI's documented switch
model = OpenAIChatModel(
    "agent-tools-once", provider=OpenAIProvider(base_url=os.environ["FAKE_LLM_BASE_URL"], api_key="t")
)
agent = Agent(model, name="zero_agent")


@agent.tool_plain
def get_weather(city: str, unit: str) -> str:
    return "sunny"


with trace.get_tracer("app").start_as_current_span("app-root"):
    output = agent.run_sync("PROMPT-MARKER-zero weather?").output
spans = exporter.get_finished_spans()
print(
    json.dumps(
        {
            "output": output,
            "provider": type(trace.get_tracer_provider()).__name__,
            "spans": [
                {
                    "name": s.name,
                    "trace_id": format(s.context.trace_id, "032x"),
                    "span_id": format(s.context.span_id, "016x"),
                    "scope": s.instrumentation_scope.name,
                }
                for s in spans
            ],
        }
    )
)
sys.exit(3)
