"""A Strands Agents agent that calls one tool and answers, its model pointed at the local stand-in server.

Run by test_strands_native.py with the interpreter of ``.venv-frameworks/strands`` (strands-agents
pins mcp < 2.2, which the main test environment cannot hold). ``STRANDS_APP_MODE``:

* ``plain``: no auditel at all (the reference answer);
* ``code-telemetry-first``: ``StrandsTelemetry()`` (Strands' documented switch; it sets the global
  TracerProvider), then ``auditel.configure()``;
* ``code-auditel-first``: ``auditel.configure()``, then ``StrandsTelemetry()``;
* ``zero-code``: no auditel code; run under ``auditel run`` or ``AUDITEL_ENABLED=true`` (Strands uses
  whatever global provider is set; ``STRANDS_APP_TELEMETRY=1`` also calls ``StrandsTelemetry()``).

Prints one JSON line (the answer, the Strands version, the spans the app's own exporter received).
"""

import importlib.metadata
import json
import os
import sys

MODE = os.environ.get("STRANDS_APP_MODE", "plain")
exporter = None


def strands_telemetry() -> None:
    global exporter
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from strands.telemetry import StrandsTelemetry

    exporter = InMemorySpanExporter()
    StrandsTelemetry().tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))


if MODE == "code-telemetry-first":
    strands_telemetry()
    import auditel

    auditel.configure(outbox=os.environ["APP_OUTBOX"])
elif MODE == "code-auditel-first":
    import auditel

    auditel.configure(outbox=os.environ["APP_OUTBOX"])
    strands_telemetry()
elif MODE == "zero-code" and os.environ.get("STRANDS_APP_TELEMETRY") == "1":
    strands_telemetry()

from strands import Agent, tool  # noqa: E402
from strands.models.openai import OpenAIModel  # noqa: E402

FAIL = os.environ.get("STRANDS_APP_TOOL_FAILS") == "1"


def weather(city: str, unit: str) -> str:
    """The weather in a city.

    Args:
        city: the city
        unit: celsius or fahrenheit
    """
    if FAIL:
        raise RuntimeError("TOOL-BROKE-MARKER")
    return "RESULT-MARKER-sunny-21C"


weather.__name__ = weather.__qualname__ = "get_weather"
if os.environ.get("STRANDS_APP_AUDITEL_TOOL") == "1":  # the function is also an @auditel.tool
    import auditel

    get_weather = tool(auditel.tool(weather))
else:
    get_weather = tool(weather)


model = OpenAIModel(
    client_args={"api_key": "sk-test", "base_url": os.environ["FAKE_LLM_BASE_URL"]},
    model_id="agent-tools-once",  # the stand-in asks for get_weather once, then answers
)
agent = Agent(
    model=model,
    tools=[get_weather],
    name="weather_agent",
    system_prompt="PROMPT-MARKER-system",
    callback_handler=None,
)
result = agent("USER-MARKER what is the weather in Paris?")
from opentelemetry import trace  # noqa: E402

out = {
    "output": str(result).strip(),
    "stop_reason": str(result.stop_reason),
    "strands_version": importlib.metadata.version("strands-agents"),
    "provider": type(trace.get_tracer_provider()).__name__,
    "spans": [
        {
            "name": s.name,
            "trace_id": format(s.context.trace_id, "032x"),
            "span_id": format(s.context.span_id, "016x"),
            "scope": s.instrumentation_scope.name,
        }
        for s in (exporter.get_finished_spans() if exporter is not None else ())
    ],
}
print(json.dumps(out))
sys.stdout.flush()
sys.exit(3)  # a distinct exit code: the test sees it passed through unchanged
